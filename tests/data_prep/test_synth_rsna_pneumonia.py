"""medpipe synth rsna-pneumonia: the real layout and quirks, DICOMs pydicom and SimpleITK read, synth -> prepare."""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
import pytest

from data_prep import get_spec, rsna_pneumonia
from data_prep.rsna_pneumonia import layout as L
from data_prep.rsna_pneumonia import tables as T
from data_prep.rsna_pneumonia.synth import dicom_bytes, draw_patient, synthesize, variant_of
from medpipe.cli import main as cli_main
from medpipe.io.dicom import read_dicom
from medpipe.prepare.synthetic import MARKER

ARGS = dict(patients=24, size=96, seed=0)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsna") / "raw"
    t0 = time.perf_counter()
    summary = synthesize(root, **ARGS)
    return root, summary, time.perf_counter() - t0


def test_registry_and_defaults():
    spec = get_spec("rsna-pneumonia")
    assert spec.synthesizer == "data_prep.rsna_pneumonia.synth:synthesize"
    assert [o.default for o in spec.synth_options[:3]] == [60, 256, 0]


def test_real_layout_and_csv_quirks(synth):
    root, s, took = synth
    assert took < 10 and (root / MARKER).is_file()
    dcms = sorted((root / L.TRAIN_DIR).glob("*.dcm"))
    tests = sorted((root / L.TEST_DIR).glob("*.dcm"))
    assert len(dcms) == s["images"] == 24 and len(tests) == s["test_images"] >= 2
    assert s["files"] == len(dcms) + len(tests) + 3 and all(L.is_patient_id(p.stem) for p in dcms + tests)
    lines = (root / L.LABELS_FILE).read_text().splitlines()
    assert lines[0] == "patientId,x,y,width,height,Target"
    ids = [line.split(",")[0] for line in lines[1:]]
    assert ids == sorted(ids) and len(set(ids)) == 24 and len(ids) == 24 + s["boxes"] - s["classes"][L.LUNG_OPACITY]
    assert any(line.endswith(",,,,,0") for line in lines) and any(",1" == line[-2:] and ".0," in line for line in lines)
    labels, info = T.read_labels(root / L.LABELS_FILE)
    assert max(info["rows_per_patient"]) == 2 and not info.get("malformed_rows")
    classes, _ = T.read_classes(root / L.CLASS_FILE)
    assert set(labels) - set(classes) == {s["missing_class_row"]}  # the shared copy's quirk
    assert labels[s["missing_class_row"]].target == 1
    for p, lab in labels.items():
        if p != s["missing_class_row"]:
            assert sum(classes[p].values()) == lab.rows and (L.LUNG_OPACITY in classes[p]) == bool(lab.target)
        for x, y, w, h in lab.boxes:
            assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96 and w >= 5 and h >= 5
    sub = T.read_submission_ids(root / L.SUBMISSION_FILE)
    assert sorted(sub) == sorted(p.stem for p in tests)
    assert s["classes"] == {c: sum(1 for p in labels if (classes.get(p) or {L.LUNG_OPACITY: 1}).get(c))
                            for c in L.CLASSES}


def test_dicoms_read_with_pydicom_and_simpleitk(synth):
    import pydicom
    import SimpleITK as sitk

    root, s, _ = synth
    seen = set()
    for path in sorted((root / L.TRAIN_DIR).glob("*.dcm"))[:12] + sorted((root / L.TEST_DIR).glob("*.dcm")):
        ds = pydicom.dcmread(path)
        assert ds.Modality == "CR" and ds.ViewPosition in L.VIEWS and ds.PatientID == path.stem
        assert ds.PatientSex in ("M", "F") and ds.PatientAge and len(ds.PixelSpacing) == 2
        assert ds.BodyPartExamined == "CHEST" and ds.pixel_array.shape == (96, 96)
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        assert ref.shape == (1, 96, 96)
        raw = ds.pixel_array.astype(int)
        if ds.PhotometricInterpretation == "MONOCHROME1":  # SimpleITK (GDCM) returns it inverted
            raw = 2 ** int(ds.BitsStored) - 1 - raw
        if "RescaleSlope" in ds:  # ... and rescaled
            raw = raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.abs(ref[0].astype(int) - raw).mean() < 1  # equal, or two JPEG decoders within rounding
        seen.add((ds.PhotometricInterpretation, int(ds.BitsStored), "RescaleSlope" in ds,
                  ds.file_meta.TransferSyntaxUID.is_compressed))
    assert {("MONOCHROME2", 8, False, True), ("MONOCHROME1", 12, False, False),
            ("MONOCHROME2", 12, True, False), ("MONOCHROME2", 10, False, False)} <= seen
    assert s["variants"] == dict(sorted(Counter(variant_of(i) for i in range(s["images"] + s["test_images"])).items()))


def test_every_variant_decodes_to_the_same_picture():
    img, boxes, *_ = draw_patient(0, 1, L.LUNG_OPACITY, 96)
    head = {"patient_id": "p", "view": "PA", "age": "40", "sex": "F", "spacing": 0.5, "study": "1.2.1",
            "series": "1.2.2", "instance": "1.2.3"}
    for variant, tol in (("jpeg", 3.0), ("mono1", 0.51), ("rescale", 0.51), ("bits10", 0.51)):
        got, h = read_dicom("x.dcm", data=dicom_bytes(img, head, variant))
        assert np.abs(got.astype(int) - img).mean() < tol, variant
        if variant == "rescale":
            win, _ = read_dicom("x.dcm", data=dicom_bytes(img, head, variant), intensity="window")
            assert np.abs(win.astype(int) - got).max() <= 1  # its VOI window spans the rescaled range


def test_opacity_is_visible_inside_its_boxes():
    """The same patient drawn as Lung Opacity and as Normal differs inside the boxes, barely outside."""
    with_o, boxes, *_ = draw_patient(0, 4, L.LUNG_OPACITY, 128)
    without, none, *_ = draw_patient(0, 4, L.NORMAL, 128)
    assert boxes and none == []
    diff = np.abs(with_o.astype(float) - without.astype(float))
    inside = np.zeros(diff.shape, bool)
    for x, y, w, h in boxes:
        inside[int(y): int(y + h), int(x): int(x + w)] = True
    assert diff[inside].mean() > 25 and diff[inside].mean() > 10 * diff[~inside].mean(), \
        (diff[inside].mean(), diff[~inside].mean())


def test_view_follows_the_class_but_mildly(tmp_path):
    s = synthesize(tmp_path / "v", patients=200, size=64, seed=1)
    ap = {c: s["views"][c]["AP"] / max(1, sum(s["views"][c].values())) for c in L.CLASSES}
    assert ap[L.LUNG_OPACITY] > ap[L.NORMAL] and 0.15 < ap[L.NORMAL] and ap[L.LUNG_OPACITY] < 0.85


def test_deterministic(synth, tmp_path):
    root, s, _ = synth
    again = synthesize(tmp_path / "again", **ARGS)
    assert again == {**s, "out": str(tmp_path / "again")}
    for rel in (L.LABELS_FILE, L.CLASS_FILE, L.SUBMISSION_FILE, f"{L.TRAIN_DIR}/{s['patients'][0]}.dcm",
                f"{L.TRAIN_DIR}/{s['patients'][2]}.dcm"):
        assert (root / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes()
    assert synthesize(root, **ARGS)["images"] == s["images"]  # same arguments: nothing to do
    with pytest.raises(FileExistsError, match="different arguments"):
        synthesize(root, patients=25, size=96)
    other = synthesize(tmp_path / "seed1", patients=24, size=96, seed=1)
    assert other["patients"] != s["patients"]


def test_complete_class_info(tmp_path):
    s = synthesize(tmp_path / "c", patients=8, size=64, complete_class_info=True)
    labels, _ = T.read_labels(tmp_path / "c" / L.LABELS_FILE)
    classes, _ = T.read_classes(tmp_path / "c" / L.CLASS_FILE)
    assert s["missing_class_row"] is None and set(classes) == set(labels)


def test_round_trip_synth_then_prepare(synth, tmp_path):
    root, s, _ = synth
    rep = rsna_pneumonia.prepare(root, tmp_path / "p", {"folds": 3, "cache_size": 48, "test_size": 4}, workers=2)
    assert rep["records"] == s["images"] and rep["source"]["synthetic"] and rep["accounting"]["adds_up"]
    assert rep["positives"] == s["classes"][L.LUNG_OPACITY] and rep["boxes"]["placed"] == s["boxes"]
    assert rep["inference_records"] == s["test_images"] and len(rep["test_patients"]) == 4
    assert rep["anomaly_counts"] == {"class_row_missing": 1, "age_unreadable": 1}  # both quirks, reported
    assert rep["skipped"] == [] and rep["dicom"]["inverted_monochrome1"] == s["variants"].get("mono1", 0) - sum(
        1 for i in range(s["images"], s["images"] + s["test_images"]) if variant_of(i) == "mono1")
    dl = json.loads((tmp_path / "p/datalist.json").read_text())
    assert dl["synthetic"] is True
    for r in dl["training"] + dl["test"]:
        assert r["image"].endswith(".png") and r["source"]["path"].endswith(".dcm") and (r["width"], r["height"]) == (48, 48)
        for b in r["boxes"]:
            assert 0 <= b[0] < b[2] <= 48 and 0 <= b[1] < b[3] <= 48


def test_cli_synth_then_prepare(tmp_path, capsys):
    assert cli_main(["synth", "rsna-pneumonia", "--out", str(tmp_path / "raw"), "--patients", "6", "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "synthetic rsna-pneumonia: 6 patients, 6 images" in out and "class_row_missing" in out
    assert cli_main(["prepare", "rsna-pneumonia", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "p"),
                     "--folds", "2", "--quiet"]) == 0
    assert "records: 6 from 6 patients" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--size", "32"], "argument --size: 32: must be >= 64 and <= 1024"),
    (["--patients", "3"], "argument --patients: 3: must be >= 5"),
])
def test_cli_refuses_bad_synth_options(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as e:
        cli_main(["synth", "rsna-pneumonia", "--out", str(tmp_path / "o"), *argv])
    assert e.value.code == 2 and match in capsys.readouterr().err and not (tmp_path / "o").exists()
