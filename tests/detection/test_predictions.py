"""medpipe.detection.predictions: box rows, the any-finding slice rows, the confidence sweep."""

from __future__ import annotations

import csv

import pytest

from medpipe.detection import predictions as P
from medpipe.metrics.classification import classification_metrics

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
    rows = P.box_prediction_rows(RECORDS, PREDS)
    assert [(r["patient"], r["slice"], r["box_index"]) for r in rows] == [
        ("0001", 0, 0), ("0001", 0, 1), ("0001", 1, "none"), ("0002", 0, 0)]
    assert rows[0]["confidence"] == 0.9 and rows[0]["xmin"] == 3.0  # highest confidence first
    assert rows[2]["xmin"] == "" and rows[2]["confidence"] == 0.0 and rows[2]["label"] == 0
    path = P.write_rows_csv(rows, tmp_path / "predictions.csv", P.BOX_COLUMNS)
    got = list(csv.DictReader(open(path)))
    assert tuple(got[0]) == P.BOX_COLUMNS
    assert got[2]["box_index"] == "none" and got[2]["xmin"] == "" and got[2]["confidence"] == "0.000000"
    assert got[0]["confidence"] == "0.900000" and got[3]["label"] == "1"


def test_box_rows_min_conf_and_no_labels(tmp_path):
    recs = [{k: v for k, v in r.items() if k != "label"} for r in RECORDS]
    rows = P.box_prediction_rows(recs, PREDS, min_conf=0.25)
    assert [r["box_index"] for r in rows] == [0, "none", "none"]
    path = P.write_rows_csv(rows, tmp_path / "p.csv", P.BOX_COLUMNS)
    assert tuple(next(csv.reader(open(path)))) == P.BOX_COLUMNS[:-1]  # no label column without labels
    with pytest.raises(ValueError):
        P.box_prediction_rows(RECORDS, PREDS[:2])


def test_slice_rows_probability_is_best_box():
    rows = P.slice_prediction_rows(RECORDS, PREDS, conf=0.15)
    assert [r["probability"] for r in rows] == [0.9, 0.0, 0.1]
    assert [r["prediction"] for r in rows] == [1, 0, 0]
    assert [r["label"] for r in rows] == [1, 0, 1]
    assert P.slice_prediction_rows(RECORDS, PREDS, conf=0.1)[2]["prediction"] == 1  # >= rule
    assert tuple(rows[0]) == P.SLICE_COLUMNS


def test_any_finding_is_the_best_box_of_any_class():
    preds = [{"boxes": [[0, 0, 1, 1], [2, 2, 3, 3]], "scores": [0.4, 0.7], "classes": [0, 2]}]
    rec = RECORDS[:1]
    row = P.slice_prediction_rows(rec, preds, conf=0.5)[0]
    assert row["probability"] == 0.7 and row["prediction"] == 1
    boxes, scores, classes = P.norm_pred(preds[0])
    assert scores.tolist() == [0.7, 0.4] and classes.tolist() == [2, 0] and boxes[0].tolist() == [2, 2, 3, 3]
    assert P.norm_pred(PREDS[0])[2].tolist() == [-1, -1]  # no class ids given
    with pytest.raises(ValueError, match="classes"):
        P.norm_pred({"boxes": [[0, 0, 1, 1]], "scores": [0.5], "classes": [0, 1]})


@pytest.mark.parametrize("names,expected", [
    (["phe"], ("no_phe", "phe")),
    (("blood",), ("no_blood", "blood")),
    (["phe", "ich"], ("no_finding", "any_finding")),
    (["a", "b", "c"], ("no_finding", "any_finding")),
])
def test_any_finding_names(names, expected):
    assert P.any_finding_names(names) == expected


def test_any_finding_names_needs_a_class():
    with pytest.raises(ValueError):
        P.any_finding_names([])


@pytest.mark.parametrize("labels,probs", [
    ([1, 1, 0, 0, 1, 0], [0.9, 0.3, 0.5, 0.0, 0.05, 0.25]),
    ([0, 0, 0], [0.1, 0.0, 0.7]),
    ([1, 1], [0.0, 0.0]),
])
def test_conf_sweep_matches_classification_metrics(labels, probs):
    thresholds = [0.6, 0.05, 0.25, 0.5]
    sweep = P.conf_sweep(labels, probs, thresholds)
    assert [r["conf"] for r in sweep] == sorted(thresholds)
    for r in sweep:
        m = classification_metrics(labels, probs, threshold=r["conf"])
        assert [[r["tn"], r["fp"]], [r["fn"], r["tp"]]] == m["confusion_matrix"]
        for k in ("accuracy", "precision", "recall", "f1", "specificity"):
            assert r[k] == pytest.approx(m[k])


def test_default_sweep_thresholds():
    assert P.SWEEP_THRESHOLDS[0] == 0.05 and P.SWEEP_THRESHOLDS[-1] == 0.95 and len(P.SWEEP_THRESHOLDS) == 19
