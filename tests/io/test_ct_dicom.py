"""medpipe.io.ct_dicom: CT series written and read back (pydicom and SimpleITK), quirks, errors, order, windows."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from medpipe.io import ct_dicom as C
from medpipe.io import dicom as D
from tests.conftest import REPO

REAL_HEAD_CT = REPO.parent / "shared" / "data" / "fallback_head_ct_dicom" / "CT_DICOM"
REAL_FILES = ("7106", "7136", "7166", "7196")


def volume(shape=(3, 8, 10), seed=0) -> np.ndarray:
    """HU values over the range a head CT holds (air to dense bone), whole numbers."""
    return np.rint(np.random.default_rng(seed).uniform(-1000, 2000, shape)).astype(np.float32)


def write(folder: Path, hu, **kw) -> list[dict]:
    kw.setdefault("patient_id", "ID_p1")
    kw.setdefault("study_uid", "1.2.826.0.1.1")
    kw.setdefault("series_uid", "1.2.826.0.1.2")
    return C.write_ct_series(folder, hu, **kw)


@pytest.mark.parametrize("quirk, bits, signed, intercept, fixed", [
    (None, 16, 1, -1024.0, False),
    ("unsigned12", 12, 0, -1024.0, False),
    ("bits12_wrapped", 12, 0, 0.0, True),
])
def test_write_then_read_hu_and_header(tmp_path, quirk, bits, signed, intercept, fixed):
    import pydicom

    hu = volume()
    rows = write(tmp_path, hu, quirk=quirk, spacing=(2.5, 0.7, 0.6), series_description="HEAD", kernel="H30s",
                 z_offset=-40.0)
    assert [r["instance"] for r in rows] == [1, 2, 3] and [r["z"] for r in rows] == [-40.0, -37.5, -35.0]
    assert all(Path(r["path"]).name == f"{r['sop_uid']}.dcm" for r in rows)
    for i, r in enumerate(rows):
        h = C.read_ct_header(r["path"])
        assert (h["patient"], h["study"], h["series"], h["sop"]) == ("ID_p1", "1.2.826.0.1.1", "1.2.826.0.1.2",
                                                                     r["sop_uid"])
        assert (h["z"], h["instance"], h["rows"], h["columns"], h["modality"]) == (r["z"], i + 1, 8, 10, "CT")
        assert h["pixel_spacing"] == [0.7, 0.6] and h["slice_thickness"] == 2.5
        assert h["orientation"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0] and h["position"][2] == r["z"]
        assert (h["bits_stored"], h["pixel_representation"], h["rescale_intercept"], h["rescale_slope"]) == \
            (bits, signed, intercept, 1.0)
        assert (h["series_description"], h["kernel"], h["window_center"], h["window_width"]) == ("HEAD", "H30s", 40, 80)
        got, head = C.read_ct_hu(r["path"])
        lo, hi = (-1000, 3095) if quirk else (-2000, 3071)  # what each encoding can hold
        want = np.clip(hu[i], lo, 3071 if quirk == "unsigned12" else hi)
        assert got.dtype == np.float32 and np.array_equal(got, want) and head["fixed_bits12"] is fixed
        ds = pydicom.dcmread(r["path"])
        assert ds.SOPClassUID == C.CT_IMAGE_STORAGE and ds.file_meta.MediaStorageSOPInstanceUID == r["sop_uid"]


@pytest.mark.parametrize("quirk", [None, "unsigned12", "bits12_wrapped"])
def test_simpleitk_reads_the_files(tmp_path, quirk):
    import SimpleITK as sitk

    hu = volume()
    rows = write(tmp_path, hu, quirk=quirk)
    for i, r in enumerate(rows):
        arr = sitk.GetArrayFromImage(sitk.ReadImage(r["path"]))
        assert arr.shape == (1, 8, 10)
        if quirk != "bits12_wrapped":  # GDCM applies the rescale as written: right for valid encodings
            assert np.array_equal(arr[0].astype(np.float32), np.clip(hu[i], -1024, 3071))
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(tmp_path))
    assert len(files) == 3


def test_bits12_fix_gives_the_right_hu_and_the_naive_read_does_not(tmp_path):
    """The RSNA bad files: air reads 3096 without the fix; (s + 1000) mod 4096 - 1000 gives every HU back."""
    import pydicom

    values = np.array([[-1000, -999, -500, -1, 0, 1, 40, 80, 1000, 2000, 3000, 3095]], np.float32)
    (r,) = write(tmp_path, values[None], quirk="bits12_wrapped")
    ds = pydicom.dcmread(r["path"])
    naive = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert naive[0, 0] == 3096 and naive[0, 6] == 40  # the brain looks right, air does not
    hu, head = C.read_ct_hu(r["path"])
    assert hu.tolist() == values.tolist() and head["fixed_bits12"] and head["rescale_intercept_written"] == 0.0
    assert C.needs_bits12_fix(C.read_ct_header(r["path"]))
    hu2, _ = C.read_ct_hu(ds)  # a parsed dataset too
    assert np.array_equal(hu, hu2)


def test_multi_valued_window_tags(tmp_path):
    import pydicom
    from pydicom.multival import MultiValue

    (multi,) = write(tmp_path / "m", volume((1, 4, 4)), windows=((36, 80), (40, 80), (600, 2800)))
    (single,) = write(tmp_path / "s", volume((1, 4, 4)), windows=((40, 80),))
    ds = pydicom.dcmread(multi["path"])
    assert isinstance(ds.WindowCenter, MultiValue) and [float(v) for v in ds.WindowWidth] == [80, 80, 2800]
    h = C.read_ct_header(multi["path"])
    assert (h["window_center"], h["window_width"], h["windows_in_header"]) == (36.0, 80.0, 3)
    h = C.read_ct_header(single["path"])
    assert (h["window_center"], h["window_width"], h["windows_in_header"]) == (40.0, 80.0, 1)
    (none,) = write(tmp_path / "n", volume((1, 4, 4)), windows=())
    h = C.read_ct_header(none["path"])
    assert (h["window_center"], h["windows_in_header"]) == (None, 0)


def _strip_pixels(path: str) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)


@pytest.mark.parametrize("case, error, match", [
    ("truncated", D.DicomTruncatedError, "truncated"),
    ("no_pixels", D.DicomNoPixelDataError, "no pixel data"),
    ("modality", D.DicomModalityError, "modality MR"),
    ("junk", D.DicomReadError, "not a DICOM"),
    ("empty", D.DicomReadError, "empty"),
    ("header_cut", D.DicomReadError, "cut short"),
])
def test_bad_files_raise_the_dicom_error_classes(tmp_path, case, error, match):
    (r,) = write(tmp_path, volume((1, 16, 16)), modality="MR" if case == "modality" else "CT")
    p = Path(r["path"])
    data = p.read_bytes()
    if case == "truncated":
        p.write_bytes(data[:-100])
    elif case == "no_pixels":
        _strip_pixels(r["path"])
    elif case == "junk":
        p.write_bytes(b"this is not a dicom file" * 10)
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "header_cut":
        p.write_bytes(data[:200])
    with pytest.raises(error, match=match) as e:
        C.read_ct_hu(p)
    assert str(p) in str(e.value) and e.value.kind == error.kind
    if case in ("junk", "empty", "header_cut"):
        with pytest.raises(D.DicomReadError):
            C.read_ct_header(p)
    else:  # the header alone is fine: the problem is in the pixels (or the modality, which the caller checks)
        assert C.read_ct_header(p)["rows"] == 16


def test_multi_frame_is_refused(tmp_path):
    import pydicom

    (r,) = write(tmp_path, volume((1, 4, 4)))
    ds = pydicom.dcmread(r["path"])
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(r["path"])
    with pytest.raises(D.DicomMultiFrameError, match="2 frames"):
        C.read_ct_hu(r["path"])


@pytest.mark.parametrize("position, orientation, z", [
    ([0.0, 0.0, 12.5], [1, 0, 0, 0, 1, 0], 12.5),
    ([3.0, 4.0, 12.5], None, 12.5),  # no orientation: IPP[2]
    (None, [1, 0, 0, 0, 1, 0], None),
    ([0.0, 10.0, 10.0], [1, 0, 0, 0, np.cos(np.pi / 4), -np.sin(np.pi / 4)], round(10 * np.sqrt(2), 4)),  # tilted
    ([0.0, 0.0, 5.0], [1, 0, 0, 1, 0, 0], 5.0),  # degenerate orientation: IPP[2]
])
def test_slice_z(position, orientation, z):
    assert C.slice_z(position, orientation) == z


def test_window_channels_values():
    hu = np.array([[-1000.0, 0.0, 40.0, 80.0, 180.0, 1000.0]])
    img = C.window_channels(hu)
    assert img.shape == (1, 6, 3) and img.dtype == np.uint8
    assert img[0, :, 0].tolist() == [0, 0, 128, 255, 255, 255]  # brain 40/80: 0..80 HU
    assert img[0, :, 1].tolist() == [0, 26, 76, 128, 255, 255]  # subdural 80/200: -20..180 HU
    assert img[0, :, 2].tolist() == [0, 101, 128, 154, 221, 255]  # soft tissue 40/380: -150..230 HU
    for c, name in enumerate(C.DEFAULT_CHANNELS):
        from medpipe.io.ct import window_to_uint8

        assert np.array_equal(img[..., c], window_to_uint8(hu, C.CT_WINDOWS[name]))
    assert np.array_equal(C.window_channels(hu, ("subdural",))[..., 0], img[..., 1])
    with pytest.raises(ValueError, match="window channel 'bone'.*brain, subdural, soft_tissue"):
        C.window_channels(hu, ("bone",))


def test_series_grouped_ordered_and_linked(tmp_path):
    """Two series written with shuffled file names, read in a shuffled order, come back grouped and in z order."""
    rng = np.random.default_rng(3)
    written = {}
    for s, n in (("1.2.3.1", 5), ("1.2.3.2", 3)):
        names = [f"f{v}.dcm" for v in rng.permutation(100)[:n]]
        written[s] = write(tmp_path, volume((n, 4, 4)), series_uid=s, file_names=names, z_offset=-20.0)
    paths = sorted(tmp_path.glob("*.dcm"))
    heads = []
    for p in [paths[i] for i in rng.permutation(len(paths))]:
        h = C.read_ct_header(p)
        h["path"] = str(p)
        heads.append(h)
    groups = C.group_series(heads)
    assert sorted(groups) == ["1.2.3.1", "1.2.3.2"]
    for s, hs in groups.items():
        ordered = C.order_series(hs)
        assert [h["path"] for h in ordered] == [r["path"] for r in written[s]]
        assert [h["z"] for h in ordered] == sorted(h["z"] for h in hs) and [h["instance"] for h in ordered] == \
            list(range(1, len(hs) + 1))
        n = len(ordered)
        assert C.neighbours(ordered, 0) == (0, min(1, n - 1)) and C.neighbours(ordered, n - 1) == (n - 2, n - 1)
        assert all(C.neighbours(ordered, i) == (i - 1, i + 1) for i in range(1, n - 1))
    with pytest.raises(IndexError):
        C.neighbours([1, 2], 2)


def test_order_falls_back_on_instance_number_and_is_stable():
    hs = [{"z": None, "instance": 3, "k": 0}, {"z": 2.0, "instance": 1, "k": 1}, {"z": 1.0, "instance": 2, "k": 2}]
    assert [h["k"] for h in C.order_series(hs)] == [1, 2, 0]
    same = [{"z": 0.0, "instance": None, "k": i} for i in range(4)]
    assert [h["k"] for h in C.order_series(same)] == [0, 1, 2, 3]
    assert C.group_series([{"series": None}, {"series": "a"}]).keys() == {"", "a"}


@pytest.fixture
def real_head_ct(tmp_path):
    missing = [f for f in REAL_FILES if not (REAL_HEAD_CT / f).is_file()]
    if missing:
        pytest.skip(f"real head-CT DICOM slices not found at {REAL_HEAD_CT} (shared data absent: {', '.join(missing)})")
    return REAL_HEAD_CT


@pytest.mark.realdata
def test_real_head_ct_slices(real_head_ct, tmp_path):
    import pydicom
    import SimpleITK as sitk

    order = [REAL_FILES[i] for i in (3, 1, 0, 2)]
    heads = []
    for name in order:  # read out of order
        h = C.read_ct_header(real_head_ct / name)
        h["name"] = name
        heads.append(h)
    assert len(C.group_series(heads)) == 1 and {h["modality"] for h in heads} == {"CT"}
    ordered = C.order_series(heads)
    assert [h["name"] for h in ordered] == list(REAL_FILES)
    assert [h["z"] for h in ordered] == [-99.48, 103.02, 104.27, 105.52]
    assert [h["instance"] for h in ordered] == [18, 180, 181, 182]
    for h in ordered:
        assert (h["window_center"], h["window_width"], h["rescale_intercept"], h["rows"]) == (30.0, 100.0, -1024.0, 16)
        hu, head = C.read_ct_hu(real_head_ct / h["name"])
        assert hu.shape == (16, 16) and not head["fixed_bits12"]
        assert -1100 <= hu.min() and hu.max() <= 3100 and hu.max() - hu.min() > 10  # plausible HU, not flat
        ds = pydicom.dcmread(real_head_ct / h["name"])
        assert np.array_equal(hu, ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope)
                              + float(ds.RescaleIntercept))
        assert np.array_equal(hu, sitk.GetArrayFromImage(sitk.ReadImage(str(real_head_ct / h["name"])))[0])
        assert C.window_channels(hu).shape == (16, 16, 3)
    # a copy read through the series API of SimpleITK agrees on the order
    for name in REAL_FILES:
        shutil.copy(real_head_ct / name, tmp_path / f"{name}.dcm")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path))
    assert [Path(f).stem for f in files] == list(REAL_FILES)
