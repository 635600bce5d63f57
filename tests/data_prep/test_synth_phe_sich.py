"""Tests for the synthetic PHE-SICH-CT-IDS generator (layout, determinism, labels, quirks, geometry)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep.phe_sich.layout import (
    CLINICAL_FILE,
    NATIVE_PIXEL_SPACING_MM,
    NATIVE_SIZE,
    NATIVE_SLICE_THICKNESS_MM,
    SUBSET_DIRS,
    VOC_CLASS_NAME,
    slice_dir,
    slice_stem,
    volume_path,
    volume_slice_to_display,
)
from data_prep.phe_sich import DATASET
from data_prep.phe_sich.synth import MARKER, _voc_xml, synthesize, window_to_uint8

nib = pytest.importorskip("nibabel")

ARGS = dict(patients=4, size=64, seed=0)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REAL_ROOT = Path(os.environ.get("MEDPIPE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
REAL_PNG = REAL_ROOT / "PHE-SICH-CT-IDS" / SUBSET_DIRS["png"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """One small synthetic set shared by the read-only tests: (root, summary)."""
    root = tmp_path_factory.mktemp("synth") / "phe"
    return root, synthesize(root, **ARGS)


def _quirk(summary: dict, kind: str) -> dict:
    return next(q for q in summary["quirks"] if q["kind"] == kind)


def _slices(root: Path, summary: dict):
    """(patient, slice, xml path) for every annotation of the PNG subset, quirk names included."""
    three = _quirk(summary, "three_digit_xml_names")["patient"]
    for pid in summary["patients"]:
        p = int(pid)
        n = nib.load(root / volume_path("image", p)).shape[2]
        for k in range(n):
            stem = f"{p:03d}_{k:02d}" if p == three else slice_stem(p, k)
            yield p, k, root / slice_dir("png", "annotation", p) / f"{stem}.xml"


def _orphan(summary: dict) -> tuple[int, int]:
    q = _quirk(summary, "orphan_xml")
    return q["patient"], q["slice"]


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_registry_points_here():
    from data_prep import get_spec

    assert get_spec("phe-sich") is DATASET and DATASET.load_synthesizer() is synthesize
    # the CLI's synth options are exactly the generator's arguments
    import inspect

    params = inspect.signature(synthesize).parameters
    assert all(o.name in params for o in DATASET.synth_options)


def test_layout_paths_exist(synth):
    root, summary = synth
    assert summary["patients"] == ["0001", "0002", "0003", "0004"]
    assert summary["subsets"] == ["png", "jpg", "nifti"]
    orphan = _orphan(summary)
    for p, k, xml in _slices(root, summary):
        assert xml.is_file()
        for sub, ext in (("png", ".png"), ("jpg", ".jpg")):
            assert (root / slice_dir(sub, "annotation", p) / xml.name).is_file()
            for kind in ("image", "mask"):
                f = root / slice_dir(sub, kind, p) / f"{slice_stem(p, k)}{ext}"
                assert f.is_file() != ((p, k) == orphan), f
    for pid in summary["patients"]:
        assert (root / volume_path("mask", int(pid))).is_file()
    assert (root / MARKER).is_file()
    files = [p for p in root.rglob("*") if p.is_file() and p.name != MARKER]
    assert summary["files"] == len(files)

    import pandas as pd

    table = pd.read_excel(root / CLINICAL_FILE)
    assert list(table.columns) == ["Patient ID", "Gender", "Age", "GCS", "Hematoma volume (ml)",
                                   "Edema volume (ml)", "Onset to CT (h)"]
    assert table["Patient ID"].tolist() == [1, 2, 3, 4]
    assert set(table["Gender"]) <= {"M", "F"}
    assert table["GCS"].between(3, 15).all()
    # edema volume is the mask volume: lesion patients have some, the others none
    has_lesion = {int(p): v is not None for p, v in summary["lesions"].items()}
    for _, row in table.iterrows():
        assert (row["Edema volume (ml)"] > 0) == has_lesion[row["Patient ID"]]
        assert (row["Hematoma volume (ml)"] > 0) == has_lesion[row["Patient ID"]]


def test_deterministic(synth, tmp_path):
    root, summary = synth
    again = synthesize(tmp_path / "again", **ARGS)
    a, b = _tree(root), _tree(tmp_path / "again")
    a.pop(MARKER), b.pop(MARKER)  # the marker records the output path
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []  # PNG, XML, NIfTI and xlsx alike
    assert {k: v for k, v in again.items() if k != "out"} == {k: v for k, v in summary.items() if k != "out"}

    other = _tree(Path(synthesize(tmp_path / "other", **{**ARGS, "seed": 1})["out"]))
    pngs = [k for k in a if k.endswith(".png") and k in other]
    assert pngs and any(a[k] != other[k] for k in pngs)
    assert any(a[k] != other[k] for k in a if k.endswith(".xml") and k in other)


def test_masks_binary_and_boxes_enclose_masks(synth):
    root, summary = synth
    orphan = _orphan(summary)
    for p, k, xml in _slices(root, summary):
        ann = ET.parse(xml).getroot()
        objects = ann.findall("object")
        assert ann.findtext("filename") == xml.stem + ".jpg"
        if (p, k) == orphan:
            continue
        mask = _read(root / slice_dir("png", "mask", p) / f"{slice_stem(p, k)}.png")
        image = Image.open(root / slice_dir("png", "image", p) / f"{slice_stem(p, k)}.png")
        assert image.mode == "L" and image.size == (64, 64)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        if not mask.any():
            assert objects == [] and ann.find("size") is None
            continue
        assert len(objects) == 1 and objects[0].findtext("name") == VOC_CLASS_NAME
        assert ann.find("size/width").text == "64" and ann.find("size/depth").text == "3"
        bb = objects[0].find("bndbox")
        xmin, ymin, xmax, ymax = (int(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        rows, cols = np.nonzero(mask)
        assert (xmin, ymin, xmax, ymax) == (cols.min(), rows.min(), cols.max(), rows.max())


def test_xml_is_crlf_ascii(synth):
    root, summary = synth
    data = next(iter(_slices(root, summary)))[2].read_bytes()
    assert data.startswith(b"<?xml version='1.0' encoding='us-ascii'?>\r\n<annotation>\r\n<folder>VOC2007</folder>")
    assert data.endswith(b"</annotation>") and b"\n" not in data.replace(b"\r\n", b"")
    data.decode("ascii")


def test_quirks(synth):
    root, summary = synth
    three = _quirk(summary, "three_digit_xml_names")["patient"]
    assert three == 2  # no patient 13 among four: the second patient carries the quirk
    for sub in ("png", "jpg"):
        names = sorted(p.name for p in (root / slice_dir(sub, "annotation", three)).iterdir())
        assert names and all(n.startswith("002_") for n in names)
        # images keep the 4-digit names, as in the real dataset
        assert (root / slice_dir(sub, "image", three) / f"{slice_stem(three, 0)}{'.' + sub}").is_file()

    p, k = _orphan(summary)
    assert p == 3
    for sub in ("png", "jpg"):
        assert (root / slice_dir(sub, "annotation", p) / f"{slice_stem(p, k)}.xml").is_file()
        assert not (root / slice_dir(sub, "image", p) / f"{slice_stem(p, k)}.{sub}").exists()
        assert not (root / slice_dir(sub, "mask", p) / f"{slice_stem(p, k)}.{sub}").exists()
    assert nib.load(root / volume_path("image", p)).shape[2] > k  # the volume keeps the slice


def test_three_digit_quirk_uses_patient_13(tmp_path):
    summary = synthesize(tmp_path / "s", patients=13, size=64, subsets=("png",), clinical=False)
    assert _quirk(summary, "three_digit_xml_names")["patient"] == 13
    ann = tmp_path / "s" / slice_dir("png", "annotation", 13)
    assert (ann / "013_00.xml").is_file() and not (ann / "0013_00.xml").exists()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [MARKER, SUBSET_DIRS["png"]]


def test_nifti_round_trip_matches_png(synth):
    root, summary = synth
    orphan = _orphan(summary)
    px = NATIVE_PIXEL_SPACING_MM * NATIVE_SIZE / 64
    for pid in summary["patients"]:
        p = int(pid)
        img, lab = nib.load(root / volume_path("image", p)), nib.load(root / volume_path("mask", p))
        assert img.get_data_dtype() == np.int16 and lab.get_data_dtype() == np.uint8
        assert np.allclose(img.header.get_zooms(), (px, px, NATIVE_SLICE_THICKNESS_MM))
        assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
        vol = nib.as_closest_canonical(img).get_fdata()
        mvol = nib.as_closest_canonical(lab).get_fdata()
        assert set(np.unique(mvol)) <= {0.0, 1.0}
        for k in range(vol.shape[2]):
            if (p, k) == orphan:
                continue
            png = _read(root / slice_dir("png", "image", p) / f"{slice_stem(p, k)}.png").astype(int)
            windowed = window_to_uint8(volume_slice_to_display(vol, k)).astype(int)
            assert np.abs(windowed - png).max() <= 1, (p, k)
            mask = _read(root / slice_dir("png", "mask", p) / f"{slice_stem(p, k)}.png")
            assert np.array_equal(volume_slice_to_display(mvol, k) * 255, mask), (p, k)


def test_jpg_subset_is_png_encoded(synth):
    root, _ = synth
    jpgs = sorted((root / SUBSET_DIRS["jpg"]).rglob("*.jpg"))
    assert jpgs
    for f in jpgs:
        assert f.read_bytes()[:8] == PNG_SIGNATURE, f
    # same content as the PNG subset, under another name
    rel = jpgs[0].relative_to(root / SUBSET_DIRS["jpg"]).with_suffix(".png")
    assert (root / SUBSET_DIRS["png"] / rel).read_bytes() == jpgs[0].read_bytes()


def test_positive_and_negative_slices(synth):
    root, summary = synth
    positives = sum(bool(ET.parse(xml).getroot().findall("object")) for _, _, xml in _slices(root, summary))
    assert positives == summary["positive_slices"] == summary["mask_nonempty"]
    assert 0 < positives < summary["slices"]


def _ring_hole(mask: np.ndarray) -> np.ndarray:
    """Pixels enclosed by a ring mask (mask on both sides along rows and columns)."""
    m = mask.astype(bool)
    left = np.maximum.accumulate(m, axis=1)
    right = np.maximum.accumulate(m[:, ::-1], axis=1)[:, ::-1]
    up = np.maximum.accumulate(m, axis=0)
    down = np.maximum.accumulate(m[::-1], axis=0)[::-1]
    return left & right & up & down & ~m


def test_lesion_contrast(synth):
    """The haematoma core is brighter and the PHE rim darker than the surrounding brain, well above noise."""
    root, summary = synth
    checked = 0
    for pid, span in summary["lesions"].items():
        if span is None:
            continue
        p = int(pid)
        vol = nib.as_closest_canonical(nib.load(root / volume_path("image", p))).get_fdata()
        mvol = nib.as_closest_canonical(nib.load(root / volume_path("mask", p))).get_fdata()
        k = (span[0] + span[1]) // 2
        hu, rim = volume_slice_to_display(vol, k), volume_slice_to_display(mvol, k).astype(bool)
        core = _ring_hole(rim)
        rows, cols = np.nonzero(rim)
        outside_box = np.ones_like(rim)
        outside_box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = False
        brain = outside_box & (hu > -200) & (hu < 200)  # soft tissue, not bone or air
        ref = np.median(hu[brain])
        assert core.sum() > 0
        assert hu[core].mean() > ref + 20, (p, k)
        assert hu[rim].mean() < ref - 8, (p, k)
        checked += 1
    assert checked > 0


def test_rerun_same_args_is_noop_and_other_args_raise(tmp_path):
    out = tmp_path / "s"
    first = synthesize(out, patients=2, size=64, subsets=("png",), clinical=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    lines = []
    assert synthesize(out, patients=2, size=64, subsets=["png"], clinical=False, progress=lines.append) == first
    assert lines == []  # nothing regenerated
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    with pytest.raises(FileExistsError, match="different arguments"):
        synthesize(out, patients=2, size=64, seed=1, subsets=("png",), clinical=False)
    # no temp folders left next to the output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_refuses_foreign_folder_and_accepts_empty_one(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        synthesize(foreign, patients=2, size=64, subsets=("png",))
    assert (foreign / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    lines = []
    summary = synthesize(empty, patients=2, size=64, subsets=("nifti",), clinical=False, progress=lines.append)
    assert len(lines) == 2 and summary["quirks"] == []  # the quirks belong to the 2D subsets
    assert (empty / volume_path("image", 2)).is_file()


@pytest.mark.parametrize("kwargs, match", [
    (dict(patients=1), "patients"),
    (dict(size=32), "size"),
    (dict(slices=(10, 8)), "slices"),
    (dict(slices=(2, 3)), "slices"),
    (dict(subsets=("bmp",)), "subsets"),
    (dict(subsets=()), "subsets"),
    (dict(seed=-1), "seed"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthesize(tmp_path / "s", **kwargs)
    assert not (tmp_path / "s").exists()


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_PNG.is_dir(), reason="real PHE-SICH-CT-IDS sample not available")
def test_voc_bytes_match_real_dataset():
    real = REAL_PNG / "annotation"
    assert _voc_xml("0004_15", 4, 15, 512, (164, 114, 285, 184)) == (real / "annotation4" / "0004_15.xml").read_bytes()
    assert _voc_xml("013_11", 13, 11, 512, (210, 150, 293, 224)) == (real / "annotation13" / "013_11.xml").read_bytes()
    assert _voc_xml("0004_00", 4, 0, 512, None) == (real / "annotation4" / "0004_00.xml").read_bytes()
