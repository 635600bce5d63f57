"""cxr_pneumonia beyond the generic smoke table: the threshold chosen on validation and reused, the
held-out/external comparison, and inference straight from a folder of DICOMs with their identifiers."""

from __future__ import annotations

import csv

import pytest

from tests.bundles.conftest import RUNTIME, dataset_of, read_json, run_bundle

NAME = "cxr_pneumonia"


@pytest.fixture(scope="module")
def evaluated(trained_bundle, tiny_dataset):
    run = trained_bundle(NAME)
    ckpt = str(run / "models/model.pt")
    run_bundle(["medpipe", "evaluate", NAME, "--ckpt_path", ckpt, *RUNTIME])  # validation fold: chooses, stores
    run_bundle(["medpipe", "evaluate", NAME, "--ckpt_path", ckpt, "--records", "test", *RUNTIME])
    return run


def test_validation_threshold_is_stored_and_reused_on_held_out(evaluated):
    val = read_json(evaluated / "eval/metrics.json")
    assert val["threshold_source"].startswith("chosen on these validation records (youden)")
    op = val["operating_points"]
    assert op["threshold"]["threshold"] == pytest.approx(val["threshold"])
    assert op["youden"] is None or op["youden"]["youden_j"] >= op["threshold"]["youden_j"] - 1e-9
    stored = read_json(evaluated / "models/model.json")["decision"]["threshold"]
    assert stored == pytest.approx(val["threshold"])
    test = read_json(evaluated / "eval-prepared-test/eval/metrics.json")
    assert test["threshold"] == pytest.approx(stored) and "stored in models/model.json" in test["threshold_source"]
    text = (evaluated / "eval/classification_report.txt").read_text()
    assert "Youden point of these records (in-sample)" in text and "support" in text


def test_held_out_comparison_table(evaluated):
    c = read_json(evaluated / "eval-prepared-test/eval/internal_vs_external.json")
    assert c["same_dataset"] is True and "internal held-out set" in c["notes"][0]
    val, test = read_json(evaluated / "eval/metrics.json"), read_json(evaluated / "eval-prepared-test/eval/metrics.json")
    rows = {r["metric"]: r for r in c["rows"]}
    assert rows["accuracy"]["internal"] == val["accuracy"] and rows["accuracy"]["external"] == test["accuracy"]
    assert rows["accuracy"]["difference"] == pytest.approx(test["accuracy"] - val["accuracy"])
    md = (evaluated / "eval-prepared-test/eval/internal_vs_external.md").read_text()
    assert "| sensitivity (recall) |" in md and "decision threshold" in md


def test_infer_on_dicoms_writes_their_identifiers(evaluated, tiny_dataset, tmp_path):
    """The synthetic download's unlabelled stage_2_test_images: DICOMs in, one row each with UIDs out."""
    dicoms = dataset_of(NAME, tiny_dataset).parent / "raw" / "stage_2_test_images"
    files = sorted(dicoms.glob("*.dcm"))
    assert files, "the synthetic download has test DICOMs"
    out = tmp_path / "infer"
    run_bundle(["medpipe", "infer", NAME, "--ckpt_path", str(evaluated / "models/model.pt"), "--input", str(dicoms),
                "--output_dir", str(out), *RUNTIME])
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == len(files)
    for r in rows:
        assert r["patient_id"] and r["sop_uid"].count(".") > 3 and r["study_uid"] and r["view"] in ("AP", "PA")
        assert r["image"].endswith(".dcm") and 0.0 <= float(r["probability"]) <= 1.0


def test_external_site_evaluation(evaluated, tmp_path):
    """An external hospital (medpipe synth/prepare dicom-folder: everything in test) scored with the stored
    threshold, beside the validation fold; and scikit-learn's own report in classification_report.txt."""
    from data_prep import get_spec
    from medpipe.prepare.engine import prepare

    spec = get_spec("dicom-folder")
    spec.load_synthesizer()(tmp_path / "raw", progress=None, patients=8, size=64, seed=3)
    prepare(spec, tmp_path / "raw", tmp_path / "hospital", {"key": "PatientID", "label_column": "pneumonia"},
            workers=1, progress=None)
    run_bundle(["medpipe", "evaluate", NAME, "--ckpt_path", str(evaluated / "models/model.pt"),
                "--dataset_dir", str(tmp_path / "hospital"), "--records", "test", *RUNTIME])
    out = evaluated / "eval-hospital-test"
    c = read_json(out / "eval/internal_vs_external.json")
    assert c["same_dataset"] is False and c["external"]["dataset"] == "dicom-folder"
    stored = read_json(evaluated / "models/model.json")["decision"]["threshold"]
    assert c["external"]["threshold"] == pytest.approx(stored) == pytest.approx(c["internal"]["threshold"])
    m = read_json(out / "eval/metrics.json")
    assert m["n"] == c["external"]["n"] > 0
    assert "macro avg" in (out / "eval/classification_report.txt").read_text()
