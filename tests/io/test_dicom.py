"""medpipe.io.dicom: photometric, rescale, BitsStored, header facts, and one error class per bad case."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from medpipe.io import dicom as D
from tests.conftest import REPO

REAL_CXR = REPO.parent / "shared/data/fallback_chest_xray_dicom/1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"


def make_dicom(path: Path | None, arr: np.ndarray, *, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
               signed: bool = False, ts: str | None = None, pixel_data: bytes | None = None, modality: str | None = "CR",
               frames: int | None = None, rescale=None, window=None, view: str | None = "PA", age: str | None = "51",
               sex: str | None = "M", spacing=(0.143, 0.143), patient_id: str = "p1", imager_spacing=None,
               preamble: bool = True) -> bytes:
    """A DICOM holding ``arr`` (uint8/uint16/int16, or HxWx3 uint8 for RGB) written to ``path`` (if given); its bytes."""
    import warnings

    with warnings.catch_warnings():  # lower-case or non-standard values are test cases here
        warnings.simplefilter("ignore")
        return _make_dicom(path, arr, photometric, bits_stored, signed, ts, pixel_data, modality, frames, rescale,
                           window, view, age, sex, spacing, patient_id, imager_spacing, preamble)


def _make_dicom(path, arr, photometric, bits_stored, signed, ts, pixel_data, modality, frames, rescale, window, view,
                age, sex, spacing, patient_id, imager_spacing, preamble) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path), patient_id])
    meta.TransferSyntaxUID = ts or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    if modality:
        ds.Modality = modality
    ds.PatientID = patient_id
    for name, v in (("ViewPosition", view), ("PatientSex", sex)):
        if v is not None:
            setattr(ds, name, v)
    if age is not None:
        ds.PatientAge = age
    if spacing:
        ds.PixelSpacing = [str(s) for s in spacing]
    if imager_spacing:
        ds.ImagerPixelSpacing = [str(s) for s in imager_spacing]
    color = arr.ndim == 3
    ds.Rows, ds.Columns = arr.shape[:2]
    ds.SamplesPerPixel = 3 if color else 1
    if color:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = "RGB" if color else photometric
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    if frames:
        ds.NumberOfFrames = frames
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = str(rescale[0]), str(rescale[1])
    if window:
        ds.WindowCenter, ds.WindowWidth = str(window[0]), str(window[1])
    ds.PixelData = pixel_data if pixel_data is not None else arr.tobytes()
    if pixel_data is not None and ts and ts != ExplicitVRLittleEndian:
        ds["PixelData"].VR = "OB"
    else:
        ds["PixelData"].VR = "OB" if ds.BitsAllocated == 8 else "OW"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    if not preamble:
        data = data[132:]  # drop the 128-byte preamble and "DICM": read only with force=True
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


def fake_encapsulated(ts: str) -> bytes:
    """Encapsulated pixel data that claims ``ts`` but holds no valid stream (JPEG 2000 markers, then zeros)."""
    from pydicom.encaps import encapsulate

    return encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])


def codec_available(ts: str) -> bool:
    from pydicom.pixels import get_decoder

    return get_decoder(ts).is_available


RAMP = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4


# ------------------------------------------------------------------------------------------- pixels


def test_monochrome2_8bit_is_unchanged(tmp_path):
    img, head = D.read_dicom(tmp_path / "a.dcm", data=make_dicom(None, RAMP))
    assert img.dtype == np.uint8 and (img == RAMP).all()
    assert head["intensity"] == "bits" and head["range"] == [0.0, 255.0] and not head["inverted"]


def test_monochrome1_is_inverted(tmp_path):
    img, head = D.read_dicom(tmp_path / "a.dcm", data=make_dicom(None, RAMP, photometric="MONOCHROME1"))
    assert (img == 255 - RAMP).all() and head["inverted"] and head["photometric"] == "MONOCHROME1"


def test_bits_stored_scales_by_its_range_and_masks_high_bits(tmp_path):
    a = np.array([[0, 4095], [2048, 0xF000 | 100]], np.uint16)  # junk above bit 12 in the last pixel
    img, head = D.read_dicom(tmp_path / "a.dcm", data=make_dicom(None, a, bits_stored=12))
    assert img.tolist() == [[0, 255], [128, round(100 * 255 / 4095)]]
    assert head["bits_stored"] == 12 and head["range"] == [0.0, 4095.0]
    ten, _ = D.read_dicom(tmp_path / "b.dcm", data=make_dicom(None, np.array([[1023, 512]], np.uint16), bits_stored=10))
    assert ten.tolist() == [[255, 128]]


def test_signed_data_uses_the_signed_range(tmp_path):
    a = np.array([[-2048, 2047, 0]], np.int16)
    img, head = D.read_dicom(tmp_path / "a.dcm", data=make_dicom(None, a, bits_stored=12, signed=True))
    assert img.tolist() == [[0, 255, 128]] and head["range"] == [-2048.0, 2047.0]


@pytest.mark.parametrize("stored, rescale, mode, expected", [
    # bits: the 12-bit range through the rescale; a positive rescale keeps the gray levels
    ([0, 2048, 4095], (2.0, -1024.0), "bits", [0, 128, 255]),
    # a negative slope inverts
    ([0, 2048, 4095], (-1.0, 4095.0), "bits", [255, 127, 0]),
    # window 0/1001 is in rescaled units: 2s-1024 = -500, 0, 500 -> its bottom, centre, top
    ([262, 512, 762], (2.0, -1024.0), "window", [0, 128, 255]),
    # the same window without the rescale: the stored values would saturate
    ([262, 512, 762], None, "window", [194, 255, 255]),
])
def test_rescale_is_applied(tmp_path, stored, rescale, mode, expected):
    s = np.array([stored], np.uint16)
    data = make_dicom(None, s, bits_stored=12, rescale=rescale, window=(0, 1001))
    img, head = D.read_dicom(tmp_path / "a.dcm", data=data, intensity=mode)
    assert img.tolist() == [expected], head["range"]
    assert head["intensity"] == mode and head["rescale"] == (list(rescale) if rescale else None)


def test_window_mode_falls_back_to_bits_and_minmax_uses_the_image(tmp_path):
    a = np.array([[100, 200, 300]], np.uint16)
    img, head = D.read_dicom(tmp_path / "a.dcm", data=make_dicom(None, a, bits_stored=12), intensity="window")
    assert head["intensity"] == "bits" and img.tolist() == [[6, 12, 19]]
    img, head = D.read_dicom(tmp_path / "a.dcm", data=make_dicom(None, a, bits_stored=12), intensity="minmax")
    assert head["intensity"] == "minmax" and img.tolist() == [[0, 128, 255]]


def test_rgb_becomes_luma(tmp_path):
    rgb = np.dstack([RAMP, RAMP, RAMP])
    img, head = D.read_dicom(tmp_path / "a.dcm", data=make_dicom(None, rgb))
    assert img.shape == RAMP.shape and np.abs(img.astype(int) - RAMP).max() <= 1 and head["converted_from"] == "RGB"


# ------------------------------------------------------------------------------------------- header


def test_header_facts(tmp_path):
    _, head = D.read_dicom(tmp_path / "a.dcm", data=make_dicom(None, RAMP, view="ap", age="051Y", sex="f",
                                                                spacing=(0.168, 0.139)))
    assert (head["view"], head["age"], head["age_how"], head["sex"]) == ("AP", 51, "suffixed", "F")
    assert head["pixel_spacing"] == [0.168, 0.139] and head["pixel_spacing_tag"] == "PixelSpacing"
    _, head = D.read_dicom(tmp_path / "b.dcm", data=make_dicom(None, RAMP, age="148", spacing=None,
                                                                imager_spacing=(0.2, 0.2), view=None))
    assert head["age"] is None and head["age_how"] == "implausible" and head["view"] is None
    assert head["pixel_spacing"] == [0.2, 0.2] and head["pixel_spacing_tag"] == "ImagerPixelSpacing"


def test_header_facts_identifiers():
    """The UIDs, accession number and study date that key an export's label table; None when absent or empty."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(make_dicom(None, RAMP)))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", "1.2.3.4.5"
    ds.AccessionNumber, ds.StudyDate = "ACC 0042 ", "20240131"
    head = D.header_facts(ds)
    assert (head["study_uid"], head["series_uid"], head["accession"], head["study_date"]) == \
        ("1.2.3.4", "1.2.3.4.5", "ACC 0042", "20240131")
    assert head["sop_uid"] == str(ds.SOPInstanceUID) and len(head["sop_uid"]) > 10
    ds.AccessionNumber = ""
    del ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.StudyDate
    head = D.header_facts(ds)
    assert [head[k] for k in ("study_uid", "series_uid", "sop_uid", "accession", "study_date")] == [None] * 5


@pytest.mark.parametrize("text, expected", [
    ("058Y", (58, "suffixed")), ("58", (58, "years")), ("018M", (1, "suffixed")), ("003W", (0, "suffixed")),
    ("148", (None, "implausible")), ("", (None, "missing")), (None, (None, "missing")), ("abc", (None, "invalid")),
])
def test_parse_age(text, expected):
    assert D.parse_age(text) == expected


def test_file_without_preamble_is_read(tmp_path):
    img, _ = D.read_dicom(tmp_path / "a.dcm", data=make_dicom(None, RAMP, preamble=False))
    assert (img == RAMP).all()


# ------------------------------------------------------------------------------------------- errors


def _bad_cases(tmp_path):
    from pydicom.uid import JPEG2000, JPEGBaseline8Bit, JPEGLSLossless

    good = make_dicom(None, RAMP)
    big = make_dicom(None, np.zeros((64, 64), np.uint16), bits_stored=12)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(buf, format="JPEG")
    from pydicom.encaps import encapsulate

    jpeg = make_dicom(None, np.zeros((64, 64), np.uint8), ts=JPEGBaseline8Bit, pixel_data=encapsulate([buf.getvalue()]))
    import pydicom

    nopix = pydicom.dcmread(io.BytesIO(good))
    del nopix.PixelData
    b = io.BytesIO()
    nopix.save_as(b)
    j2k = "codec_missing" if not codec_available(JPEG2000) else "undecodable_pixels"
    jls = "codec_missing" if not codec_available(JPEGLSLossless) else "undecodable_pixels"
    return [
        ("truncated (uncompressed)", big[: len(big) - 3000], D.DicomTruncatedError, "truncated_dicom"),
        ("truncated (JPEG)", jpeg[: len(jpeg) - 200], D.DicomTruncatedError, "truncated_dicom"),
        ("no pixel data", b.getvalue(), D.DicomNoPixelDataError, "no_pixel_data"),
        ("JPEG 2000, fake data", make_dicom(None, RAMP, ts=JPEG2000, pixel_data=fake_encapsulated(JPEG2000)),
         D.DicomError, j2k),
        ("JPEG-LS, fake data", make_dicom(None, RAMP, ts=JPEGLSLossless, pixel_data=fake_encapsulated(JPEGLSLossless)),
         D.DicomError, jls),
        ("CT", make_dicom(None, RAMP, modality="CT"), D.DicomModalityError, "wrong_modality"),
        ("MR", make_dicom(None, RAMP, modality="MR"), D.DicomModalityError, "wrong_modality"),
        ("two frames", make_dicom(None, RAMP, frames=2, pixel_data=RAMP.tobytes() * 2), D.DicomMultiFrameError,
         "multi_frame"),
        ("not a DICOM", b"this is not a dicom file\n" * 20, D.DicomReadError, "unreadable_dicom"),
        ("empty", b"", D.DicomReadError, "unreadable_dicom"),
    ]


def test_each_bad_case_raises_its_error_class_naming_the_file(tmp_path):
    for name, data, cls, kind in _bad_cases(tmp_path):
        path = tmp_path / f"{name.split()[0]}.dcm"
        path.write_bytes(data)
        with pytest.raises(cls) as e:
            D.read_dicom(path, modalities=("CR", "DX"))
        assert e.value.kind == kind, (name, e.value.kind, str(e.value))
        assert str(e.value).startswith(str(path)) and "\n" not in str(e.value), name


def test_codec_missing_says_what_to_install(tmp_path):
    from pydicom.uid import JPEGLSLossless

    if codec_available(JPEGLSLossless):
        pytest.skip("a JPEG-LS decoder is installed here, so the codec is not missing")
    path = tmp_path / "jls.dcm"
    make_dicom(path, RAMP, ts=JPEGLSLossless, pixel_data=fake_encapsulated(JPEGLSLossless))
    with pytest.raises(D.DicomCodecError, match=r"JPEG-LS Lossless.*no decoder for it is installed.*Install a decoder"):
        D.read_dicom(path)


def test_modalities_none_accepts_any(tmp_path):
    img, head = D.read_dicom(tmp_path / "a.dcm", data=make_dicom(None, RAMP, modality="CT"))
    assert head["modality"] == "CT" and img.shape == (8, 8)


# ------------------------------------------------------------------------------------------- the real file


@pytest.fixture
def real_cxr():
    if not REAL_CXR.is_file():
        pytest.skip(f"real chest X-ray DICOM not found at {REAL_CXR} (shared data absent)")
    return REAL_CXR


@pytest.mark.realdata
def test_real_chest_radiograph(real_cxr):
    import pydicom
    import SimpleITK as sitk

    img, head = D.read_dicom(real_cxr, modalities=("CR", "DX"))
    assert img.shape == (1024, 1024) and img.dtype == np.uint8
    assert (head["modality"], head["photometric"], head["bits_stored"], head["view"], head["age"], head["sex"]) == \
        ("CR", "MONOCHROME2", 8, "PA", 62, "M")
    assert head["pixel_spacing"] == [0.168, 0.168] and head["transfer_syntax_name"] == "JPEG Baseline (Process 1)"
    assert (img == pydicom.dcmread(real_cxr).pixel_array).all()  # 8-bit MONOCHROME2, no rescale: unchanged
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(real_cxr)))[0]
    assert np.abs(ref.astype(int) - img).mean() < 1.0  # another JPEG decoder (GDCM) agrees
    # dense is bright: the mediastinum (centre) is brighter than the lung fields beside it
    assert img[400:600, 480:540].mean() > img[400:600, 250:350].mean()
