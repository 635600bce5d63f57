import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

from medpipe.metrics import (area_threshold_sweep, best_threshold, choose_threshold, classification_metrics,
                             threshold_sweep)

ROW_KEYS = {"threshold", "tp", "fp", "fn", "tn", "accuracy", "precision", "recall", "f1", "specificity"}

# y, scores, thresholds, expected [(threshold, tp, fp, fn, tn)]
HAND = [
    pytest.param([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.8], None,
                 [(0.1, 2, 2, 0, 0), (0.4, 2, 1, 0, 1), (0.6, 1, 1, 1, 1), (0.8, 1, 0, 1, 2)], id="unique-scores"),
    # explicit cuts are sorted and deduplicated; a cut above every score predicts nothing
    pytest.param([0, 1, 1], [0.2, 0.5, 0.9], [1.0, 0.5, 0.0, 0.5],
                 [(0.0, 2, 1, 0, 0), (0.5, 2, 0, 0, 1), (1.0, 0, 0, 2, 1)], id="explicit-cuts"),
    # ties: a score equal to the cut is positive
    pytest.param([0, 1, 0, 1], [3, 3, 1, 7], None, [(1, 2, 2, 0, 0), (3, 2, 1, 0, 1), (7, 1, 0, 1, 2)],
                 id="int-scores-ties"),
    pytest.param([0, 0], [0.3, 0.7], None, [(0.3, 0, 2, 0, 0), (0.7, 0, 1, 0, 1)], id="no-positives"),
]


@pytest.mark.parametrize("y,s,thr,want", HAND)
def test_sweep_hand(y, s, thr, want):
    rows = threshold_sweep(y, s, thr)
    assert [(r["threshold"], r["tp"], r["fp"], r["fn"], r["tn"]) for r in rows] == want
    assert all(set(r) == ROW_KEYS for r in rows)
    json.dumps(rows)


def test_sweep_threshold_types():
    assert all(type(r["threshold"]) is int for r in threshold_sweep([0, 1], np.array([2, 5])))
    assert all(type(r["threshold"]) is float for r in threshold_sweep([0, 1], [0.2, 0.5]))
    assert all(type(r[k]) is int for r in threshold_sweep([0, 1], [0.2, 0.5]) for k in ("tp", "fp", "fn", "tn"))


@pytest.mark.parametrize("seed", [0, 1])
def test_sweep_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    s = np.round(0.3 * y + 0.7 * rng.random(200), 2)  # ties included
    rows = threshold_sweep(y, s, thresholds=[-1.0, 0.0, 0.25, 0.5, 0.51, 0.75, 2.0])
    for r in rows:
        pred = (s >= r["threshold"]).astype(int)
        tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
        assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (tp, fp, fn, tn)
        assert r["precision"] == pytest.approx(precision_score(y, pred, zero_division=0))
        assert r["recall"] == pytest.approx(recall_score(y, pred, zero_division=0))
        assert r["f1"] == pytest.approx(f1_score(y, pred, zero_division=0))
        assert r["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0, zero_division=0))
        m = classification_metrics(y, s, threshold=r["threshold"])
        assert r["accuracy"] == pytest.approx(m["accuracy"])


@pytest.mark.parametrize("metric", ["f1", "accuracy", "specificity"])
def test_one_mechanism_best_threshold_and_area_sweep(metric):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 120)
    s = np.round(0.4 * y + 0.6 * rng.random(120), 2)
    sweep = threshold_sweep(y, s)
    if metric == "f1":
        assert best_threshold(y, s) == choose_threshold(sweep)
    areas = (s * 100).astype(int)
    area_rows = area_threshold_sweep(areas, y, thresholds=np.unique(areas))
    plain = threshold_sweep(y, areas)
    assert [{"threshold": r["area"], **{k: v for k, v in r.items() if k != "area"}} for r in area_rows] == plain
    assert choose_threshold(plain, metric) == choose_threshold(area_rows, metric, key="area")


def test_choose_threshold_ties_and_errors():
    rows = [{"threshold": 0.7, "f1": 0.9}, {"threshold": 0.2, "f1": 0.9}, {"threshold": 0.5, "f1": 0.1}]
    assert choose_threshold(rows) == 0.2
    assert choose_threshold(rows, "f1") == 0.2
    with pytest.raises(ValueError, match="empty"):
        choose_threshold([])
    with pytest.raises(ValueError, match="unknown metric"):
        choose_threshold(rows, "auroc")
    with pytest.raises(ValueError, match="threshold key"):
        choose_threshold(rows, key="area")


@pytest.mark.parametrize("y,s,thr,match", [
    ([], [], None, "empty"),
    ([0, 1], [0.5], None, "2"),
    ([0, 2], [0.1, 0.2], None, "only 0 and 1"),
    ([0, 1], [0.1, float("inf")], None, "NaN or infinite"),
    ([0, 1], [0.1, 0.2], [], "empty"),
    ([0, 1], [0.1, 0.2], [0.5, float("nan")], "NaN"),
])
def test_sweep_bad_input(y, s, thr, match):
    with pytest.raises(ValueError, match=match):
        threshold_sweep(y, s, thr)


def test_sweep_large_is_fast():
    import time

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200_000)
    s = rng.random(200_000).astype(np.float32)
    t = time.perf_counter()
    best_threshold(y, s)
    assert time.perf_counter() - t < 2.0  # vectorised: no per-threshold pass over the data
