"""Segmentation-to-classification evaluation with hand-made rows."""

from __future__ import annotations

import csv
import json

import pytest
from sklearn.metrics import roc_auc_score

from medpipe.evaluation.seg_to_cls import compare_slice_classifiers, evaluate_seg_to_cls, split_patients


def _rows(spec):
    """spec: {patient: [(area, label), ...]} -> rows with slice = position."""
    return [{"patient": p, "slice": s, "label": y, "pred_area": a}
            for p, items in spec.items() for s, (a, y) in enumerate(items)]


# patients 1, 2 (first half): the best A is 10; patients 3, 4 (second half): the best A is 50
CROSS = _rows({
    1: [(0, 0), (10, 1)],
    2: [(5, 0), (20, 1)],
    3: [(2, 0), (50, 1)],
    4: [(30, 0), (60, 1)],
})


def test_split_patients():
    assert split_patients(["0010", "0002", "0001"]) == (["0001", "0002"], ["0010"])
    assert split_patients([4, 3, 2, 1]) == ([1, 2], [3, 4])


def test_cross_fitting_applies_each_halfs_threshold_to_the_other(tmp_path):
    res = evaluate_seg_to_cls(CROSS, out_dir=tmp_path)
    assert res["selection"] == "cross-fitted" and res["sweep_source"] == "all_rows"
    # every patient has a positive slice, so the halves alternate: {1, 3} and {2, 4}
    assert res["folds"] == [{"patients": [1, 3], "area_threshold": 20, "n": 4},
                            {"patients": [2, 4], "area_threshold": 10, "n": 4}]
    # half 1,3 judged with A=20 (chosen on 2,4): area 10 missed; half 2,4 with A=10: area 30 a false positive
    assert res["confusion_matrix"] == [[3, 1], [1, 3]]
    assert res["f1"] == pytest.approx(0.75)
    # deployment threshold chosen on everything (f1 8/9 at A=10)
    assert res["area_threshold"] == res["area_threshold_all"] == 10
    labels = [r["label"] for r in CROSS]
    assert res["auroc"] == pytest.approx(roc_auc_score(labels, [r["pred_area"] for r in CROSS]))
    assert "threshold" not in res
    assert {r["area"] for r in res["sweep"]} == {0, 2, 5, 10, 20, 30, 50, 60}

    saved = json.loads((tmp_path / "seg_to_cls_metrics.json").read_text())
    assert saved == json.loads(json.dumps(res))
    with open(tmp_path / "seg_to_cls_predictions.csv") as f:
        pred = list(csv.DictReader(f))
    assert list(pred[0]) == ["patient", "slice", "pred_area", "prediction", "label", "area_threshold"]
    assert [int(r["prediction"]) for r in pred] == [0, 0, 0, 1, 0, 1, 1, 1]
    # each row says which A decided it: the one chosen on the other half of the patients
    assert [r["area_threshold"] for r in pred] == ["20", "20", "10", "10", "20", "20", "10", "10"]
    with open(tmp_path / "seg_to_cls_sweep.csv") as f:
        sweep = list(csv.DictReader(f))
    assert len(sweep) == len(res["sweep"]) and "f1" in sweep[0]
    assert (tmp_path / "seg_to_cls_sweep.png").stat().st_size > 1000


def test_threshold_rows_choose_the_area():
    val = _rows({9: [(0, 0), (25, 1), (12, 0)]})  # best A on validation: 25
    res = evaluate_seg_to_cls(CROSS, threshold_rows=val)
    assert res["selection"] == res["sweep_source"] == "threshold_rows" and res["area_threshold"] == 25
    assert "folds" not in res and "area_threshold_all" not in res
    assert [r["area"] for r in res["sweep"]] == [0, 12, 25]
    # applied to CROSS: positives 50, 60, and the negative 30
    assert res["confusion_matrix"] == [[3, 1], [2, 2]]


@pytest.mark.parametrize("metric, spec, expected", [
    # f1 is 2/3 at A = 0, 10 and 30: the smallest wins
    ("f1", {1: [(10, 1), (20, 0), (25, 0), (30, 1)]}, 0),
    # recall is 1 for every A up to the smallest positive area
    ("recall", {1: [(7, 1), (3, 0), (9, 1)]}, 0),
    # specificity is 1 from A = 4 on: 4 is the smallest
    ("specificity", {1: [(7, 1), (3, 0), (9, 1)]}, 7),
])
def test_ties_go_to_the_smallest_area(metric, spec, expected):
    res = evaluate_seg_to_cls(CROSS, threshold_rows=_rows(spec), metric=metric)
    assert res["area_threshold"] == expected


def test_bad_rows():
    with pytest.raises(ValueError, match="at least 2 patients"):
        evaluate_seg_to_cls(_rows({1: [(0, 0), (5, 1)]}))
    with pytest.raises(ValueError, match="lacks"):
        evaluate_seg_to_cls([{"patient": 1, "slice": 0, "label": 1}])
    with pytest.raises(ValueError, match="duplicate"):
        evaluate_seg_to_cls(CROSS + CROSS[:1])
    with pytest.raises(ValueError, match="label must be"):
        evaluate_seg_to_cls([{**CROSS[0], "label": 2}] + CROSS[1:])


def test_compare_excludes_slices_missing_from_any_classifier():
    seg = [{"patient": r["patient"], "slice": r["slice"], "label": r["label"],
            "prediction": int(r["pred_area"] >= 10), "probability": r["pred_area"]} for r in CROSS]
    cnn = [{"patient": r["patient"], "slice": r["slice"], "label": r["label"],
            "probability": 0.9 if r["label"] else 0.2} for r in CROSS[:-1]]  # misses (4, 1)
    cnn.append({"patient": 7, "slice": 0, "label": 1, "probability": 0.8})  # only the CNN has it
    md, res = compare_slice_classifiers({"seg": seg, "cnn": cnn})
    assert res["n_common"] == 7
    assert res["excluded"] == {"seg": 1, "cnn": 1}
    assert res["metrics"]["cnn"]["accuracy"] == 1.0 and res["metrics"]["cnn"]["n"] == 7
    assert res["metrics"]["cnn"]["threshold"] == 0.5
    # seg: prediction (area >= 10) decides; area 30 (label 0) is its only error
    assert res["metrics"]["seg"]["confusion_matrix"] == [[3, 1], [0, 3]]
    assert res["metrics"]["seg"]["auroc"] == pytest.approx(10 / 12)  # from the areas as scores
    lines = md.strip().splitlines()
    assert lines[0].startswith("| classifier | n | accuracy")
    assert lines[2].startswith("| seg | 7 | 0.857") and lines[3].startswith("| cnn | 7 | 1.000")


def test_compare_errors():
    a = [{"patient": 1, "slice": 0, "label": 1, "probability": 0.4}]
    with pytest.raises(ValueError, match="disagree"):
        compare_slice_classifiers({"a": a, "b": [{**a[0], "label": 0}]})
    with pytest.raises(ValueError, match="share no"):
        compare_slice_classifiers({"a": a, "b": [{**a[0], "slice": 1}]})
    with pytest.raises(ValueError, match="probability"):
        compare_slice_classifiers({"a": [{"patient": 1, "slice": 0, "label": 1}]})
    _, res = compare_slice_classifiers({"a": a}, thresholds={"a": 0.3})
    assert res["metrics"]["a"]["recall"] == 1.0 and res["metrics"]["a"]["auroc"] is None


def test_split_patients_stratified_by_positive_patients():
    a, b = split_patients(["1", "2", "3", "4", "5", "6"], positive={"5", "6"})
    assert ("5" in a) != ("6" in a)  # one positive patient on each side
    assert sorted(a + b) == ["1", "2", "3", "4", "5", "6"] and abs(len(a) - len(b)) <= 1
