"""medpipe.detection.yolo without training: fold data.yaml, label discovery, prediction tables, sweep."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import yaml

from medpipe.detection import yolo as Y
from medpipe.errors import DataError, UserError
from medpipe.metrics.classification import classification_metrics
from tests.bundles.conftest import tiny_phe  # noqa: F401 - session fixture: synth -> prepare (3 folds)


def _datalist(ds):
    return json.loads((ds / "datalist.json").read_text())


@pytest.mark.parametrize("fold", [0, 1])
def test_fold_data_yaml_lists_the_fold(tiny_phe, tmp_path, fold):  # noqa: F811
    path = Y.fold_data_yaml(tiny_phe, fold, tmp_path / "data")
    cfg = yaml.safe_load(open(path))
    assert cfg["nc"] == 1 and cfg["names"] == {0: "phe"}
    assert cfg["path"] == str(tmp_path / "data") and "test" not in cfg
    recs = _datalist(tiny_phe)["training"]
    expected = {"train": [r for r in recs if r["fold"] != fold], "val": [r for r in recs if r["fold"] == fold]}
    for split, want in expected.items():
        listed = open(cfg[split]).read().split()
        assert cfg[split].startswith("/") and all(p.startswith(str(tiny_phe / "yolo/images")) for p in listed)
        assert [p.rsplit("/", 1)[1] for p in listed] == [r["image"].rsplit("/", 1)[1] for r in want]
        assert all("/yolo/images/" in p for p in listed)
    # fold 1 is not prepare's YOLO val fold (0): its val list draws from yolo/images/train
    val = open(cfg["val"]).read().split()
    assert any("/images/train/" in p for p in val) == (fold != 0)


def test_labels_found_the_ultralytics_way(tiny_phe, tmp_path):  # noqa: F811
    Y.prepare_ultralytics_env()
    from ultralytics.data.utils import img2label_paths

    cfg = yaml.safe_load(open(Y.fold_data_yaml(tiny_phe, 1, tmp_path)))
    recs = {r["image"].rsplit("/", 1)[1]: r for r in _datalist(tiny_phe)["training"]}
    for split in ("train", "val"):
        images = open(cfg[split]).read().split()
        labels = img2label_paths(images)
        assert labels == [str(Y.label_path(p)) for p in images]
        for img, lab in zip(images, labels):
            lines = [x for x in open(lab).read().splitlines() if x.strip()]
            assert len(lines) == len(recs[img.rsplit("/", 1)[1]]["boxes"])


def test_fold_data_yaml_errors(tiny_phe, tmp_path):  # noqa: F811
    with pytest.raises(DataError, match="fold 7"):
        Y.fold_data_yaml(tiny_phe, 7, tmp_path / "a")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_phe, broken)
    victim = next((broken / "yolo/labels/val").glob("*.txt"))
    victim.unlink()
    with pytest.raises(DataError, match="label file missing"):
        Y.fold_data_yaml(broken, 0, tmp_path / "b")
    shutil.rmtree(broken / "yolo")
    with pytest.raises(DataError, match="re-run prepare"):
        Y.fold_data_yaml(broken, 0, tmp_path / "c")


def test_label_path_rule():
    assert str(Y.label_path("/d/images/x/yolo/images/val/0001_02.png")) == "/d/images/x/yolo/labels/val/0001_02.txt"
    with pytest.raises(DataError):
        Y.label_path("/d/pics/0001_02.png")


RECORDS = [
    {"patient": "0001", "slice": 0, "image": "/d/0001_00.png", "label": 1},
    {"patient": "0001", "slice": 1, "image": "/d/0001_01.png", "label": 0},
    {"patient": "0002", "slice": 0, "image": "/d/0002_00.png", "label": 1},
]
PREDS = [
    {"boxes": [[1, 2, 10, 12], [3, 4, 20, 22]], "scores": [0.2, 0.9]},  # out of order on purpose
    {"boxes": [], "scores": []},
    {"boxes": [[5, 5, 9, 9]], "scores": [0.1]},
]


def test_box_rows_one_per_box_and_none_rows(tmp_path):
    rows = Y.box_prediction_rows(RECORDS, PREDS)
    assert [(r["patient"], r["slice"], r["box_index"]) for r in rows] == [
        ("0001", 0, 0), ("0001", 0, 1), ("0001", 1, "none"), ("0002", 0, 0)]
    assert rows[0]["confidence"] == 0.9 and rows[0]["xmin"] == 3.0  # highest confidence first
    assert rows[2]["xmin"] == "" and rows[2]["confidence"] == 0.0 and rows[2]["label"] == 0
    path = Y.write_rows_csv(rows, tmp_path / "predictions.csv", Y.BOX_COLUMNS)
    got = list(csv.DictReader(open(path)))
    assert tuple(got[0]) == Y.BOX_COLUMNS
    assert got[2]["box_index"] == "none" and got[2]["xmin"] == "" and got[2]["confidence"] == "0.000000"
    assert got[0]["confidence"] == "0.900000" and got[3]["label"] == "1"


def test_box_rows_min_conf_and_no_labels(tmp_path):
    recs = [{k: v for k, v in r.items() if k != "label"} for r in RECORDS]
    rows = Y.box_prediction_rows(recs, PREDS, min_conf=0.25)
    assert [r["box_index"] for r in rows] == [0, "none", "none"]
    path = Y.write_rows_csv(rows, tmp_path / "p.csv", Y.BOX_COLUMNS)
    assert tuple(next(csv.reader(open(path)))) == Y.BOX_COLUMNS[:-1]  # no label column without labels
    with pytest.raises(ValueError):
        Y.box_prediction_rows(RECORDS, PREDS[:2])


def test_slice_rows_probability_is_best_box():
    rows = Y.slice_prediction_rows(RECORDS, PREDS, conf=0.15)
    assert [r["probability"] for r in rows] == [0.9, 0.0, 0.1]
    assert [r["prediction"] for r in rows] == [1, 0, 0]
    assert [r["label"] for r in rows] == [1, 0, 1]
    assert Y.slice_prediction_rows(RECORDS, PREDS, conf=0.1)[2]["prediction"] == 1  # >= rule


@pytest.mark.parametrize("labels,probs", [
    ([1, 1, 0, 0, 1, 0], [0.9, 0.3, 0.5, 0.0, 0.05, 0.25]),
    ([0, 0, 0], [0.1, 0.0, 0.7]),
    ([1, 1], [0.0, 0.0]),
])
def test_conf_sweep_matches_classification_metrics(labels, probs):
    thresholds = [0.6, 0.05, 0.25, 0.5]
    sweep = Y.conf_sweep(labels, probs, thresholds)
    assert [r["conf"] for r in sweep] == sorted(thresholds)
    for r in sweep:
        m = classification_metrics(labels, probs, threshold=r["conf"])
        assert [[r["tn"], r["fp"]], [r["fn"], r["tp"]]] == m["confusion_matrix"]
        for k in ("accuracy", "precision", "recall", "f1", "specificity"):
            assert r[k] == pytest.approx(m[k])


def test_examples_mix_outcomes():
    slices = [{"prediction": p, "label": y, "probability": q} for p, y, q in
              [(1, 1, 0.9), (1, 1, 0.8), (1, 0, 0.7), (0, 1, 0.1), (0, 0, 0.0), (0, 0, 0.05), (1, 0, 0.3)]]
    picked = Y._pick_examples(slices, 6)
    assert [k for k, _ in picked] == ["TP", "FP", "FN", "TN", "TP", "FP"]
    assert picked[1][1] == 2  # the most confident false positive first
    assert {k for k, _ in Y._pick_examples(slices, 7)} == {"TP", "FP", "FN", "TN"}


def test_read_results_csv(tmp_path):
    p = tmp_path / "results.csv"
    p.write_text("                  epoch,  train/box_loss,metrics/mAP50(B),metrics/mAP50-95(B),lr/pg0\n"
                 "1,1.5,0.1,0.05,0.001\n2,1.2,nan,0.07,0.002\n")
    h = Y.read_results_csv(p)
    assert h["epoch"] == [1, 2] and h["box_loss"] == [1.5, 1.2] and h["map50"] == [0.1, None]
    assert h["map50_95"] == [0.05, 0.07] and h["recall"] == [None, None]
    assert Y.read_results_csv(tmp_path / "missing.csv") == {"epoch": []}


@pytest.mark.parametrize("device,expected", [("cpu", "cpu"), ("cuda", "0"), ("cuda:1", "1"), ("0", "0"), ("0,1", "0,1")])
def test_device_mapping(device, expected):
    assert Y._ul_device(device) == expected


@pytest.mark.parametrize("model,ok", [("yolov8n.yaml", True), ("yolov8m.yaml", True), ("yolov8n.pt", False),
                                      ("yolov8n", False), ("/no/such/weights.pt", False)])
def test_model_argument(model, ok):
    if ok:
        assert Y._check_model_arg(model) == model
    else:
        with pytest.raises(UserError, match="yolov8n.yaml"):
            Y._check_model_arg(model)


def test_prepare_env_is_idempotent(tmp_path):
    import os

    import torch

    before, chosen = torch.get_num_threads(), Y._STATE["threads"]
    try:
        d1 = Y.prepare_ultralytics_env(threads=1)
        d2 = Y.prepare_ultralytics_env()
        assert d1 == d2 and os.environ["YOLO_OFFLINE"] == "1"
        assert torch.get_num_threads() == 1  # a later call without threads keeps the chosen count
    finally:
        Y._STATE["threads"] = chosen
        torch.set_num_threads(before)
    assert all((d1 / f).stat().st_size > 100_000 for f in Y.FONT_NAMES)
