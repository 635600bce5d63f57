import json

import numpy as np
import pytest
import torch
from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, hamming_loss,
                             precision_score, recall_score, roc_auc_score)

from medpipe.metrics import best_threshold, best_thresholds_per_class, multilabel_metrics

KEYS = {"auroc_per_class", "auroc_mean", "auprc_per_class", "auprc_mean", "f1_micro", "f1_macro", "per_class",
        "undefined_classes", "subset_accuracy", "hamming_loss", "n", "num_classes"}
CLASS_KEYS = {"auroc", "auprc", "precision", "recall", "f1", "specificity", "support", "prevalence", "threshold"}
NAMES = ["epidural", "subdural", "fracture", "edema"]


def _data(seed, n=120, prev=(0.5, 0.3, 0.15, 0.08)):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(prev))) < prev).astype(int)
    y[: len(prev)] = np.eye(len(prev), dtype=int)  # every class has a positive
    p = np.clip(0.35 * y + 0.65 * rng.random(y.shape), 0, 1).round(2)  # ties included
    return y, p


@pytest.mark.parametrize("seed,thresholds", [(0, 0.5), (1, 0.4), (2, [0.3, 0.5, 0.6, 0.45])])
def test_all_defined_matches_sklearn(seed, thresholds):
    y, p = _data(seed)
    m = multilabel_metrics(y, p, NAMES, thresholds=thresholds)
    assert set(m) == KEYS and all(set(r) == CLASS_KEYS for r in m["per_class"].values())
    pred = (p >= np.broadcast_to(np.asarray(thresholds), (4,))).astype(int)
    assert m["undefined_classes"] == []
    assert list(m["auroc_per_class"].values()) == pytest.approx(roc_auc_score(y, p, average=None))
    assert m["auroc_mean"] == pytest.approx(roc_auc_score(y, p, average="macro"))
    assert list(m["auprc_per_class"].values()) == pytest.approx(average_precision_score(y, p, average=None))
    assert m["auprc_mean"] == pytest.approx(average_precision_score(y, p, average="macro"))
    assert m["f1_micro"] == pytest.approx(f1_score(y, pred, average="micro"))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["subset_accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["hamming_loss"] == pytest.approx(hamming_loss(y, pred))
    for key, fn in [("precision", precision_score), ("recall", recall_score), ("f1", f1_score)]:
        want = fn(y, pred, average=None, zero_division=0)
        assert [m["per_class"][c][key] for c in NAMES] == pytest.approx(want), key
    spec = recall_score(1 - y, 1 - pred, average=None)
    assert [m["per_class"][c]["specificity"] for c in NAMES] == pytest.approx(spec)
    assert [m["per_class"][c]["support"] for c in NAMES] == y.sum(0).tolist()
    assert [m["per_class"][c]["prevalence"] for c in NAMES] == pytest.approx(y.mean(0))
    assert [m["per_class"][c]["threshold"] for c in NAMES] == pytest.approx(np.broadcast_to(thresholds, (4,)))
    assert m["n"] == 120 and m["num_classes"] == 4
    json.dumps(m)


# column of y_true, column of y_prob (threshold 0.5), expected per-class (auroc, precision, recall, f1, specificity)
UNDEFINED = [
    # no positives, none predicted: nothing to judge
    pytest.param([0, 0, 0], [0.1, 0.2, 0.3], (None, None, None, None, 1.0), id="no-pos-none-predicted"),
    # no positives, some predicted: those predictions are wrong
    pytest.param([0, 0, 0], [0.1, 0.7, 0.3], (None, 0.0, None, 0.0, 2 / 3), id="no-pos-predicted"),
    # only positives: ranking and specificity undefined, recall/precision fine
    pytest.param([1, 1, 1], [0.1, 0.7, 0.9], (None, 1.0, 2 / 3, 0.8, None), id="only-pos"),
    # positives present, none predicted: precision 0 (sklearn zero_division=0)
    pytest.param([1, 0, 0], [0.3, 0.2, 0.1], (1.0, 0.0, 0.0, 0.0, 1.0), id="pos-never-predicted"),
]


@pytest.mark.parametrize("col,prob,want", UNDEFINED)
def test_undefined_cases(col, prob, want):
    y = np.stack([[1, 0, 1], col], 1)
    p = np.stack([[0.9, 0.2, 0.6], prob], 1)
    m = multilabel_metrics(y, p, ["ok", "odd"])
    r = m["per_class"]["odd"]
    got = (r["auroc"], r["precision"], r["recall"], r["f1"], r["specificity"])
    assert got == tuple(None if w is None else pytest.approx(w) for w in want)
    single_valued = len(set(col)) == 1
    assert m["undefined_classes"] == (["odd"] if single_valued else [])
    assert (r["auprc"] is None) == single_valued
    # means over the defined classes only, as sklearn with zero_division=nan excludes them
    assert m["auroc_mean"] == pytest.approx(1.0 if single_valued else np.mean([1.0, r["auroc"]]))
    pred = (p >= 0.5).astype(int)
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=np.nan))
    assert m["f1_micro"] == pytest.approx(f1_score(y, pred, average="micro"))
    json.dumps(m)


def test_nothing_defined():
    m = multilabel_metrics([[0, 0], [0, 0]], [[0.1, 0.2], [0.3, 0.4]], ["a", "b"])
    assert m["auroc_mean"] is None and m["auprc_mean"] is None
    assert m["f1_micro"] is None and m["f1_macro"] is None
    assert m["undefined_classes"] == ["a", "b"] and m["subset_accuracy"] == 1.0 and m["hamming_loss"] == 0.0


def test_torch_and_bool_inputs():
    y = torch.tensor([[True, False], [False, True]])
    m = multilabel_metrics(y, torch.tensor([[0.8, 0.1], [0.3, 0.6]]), ["a", "b"])
    assert m["f1_micro"] == 1.0 and m["auroc_mean"] == 1.0


@pytest.mark.parametrize("metric", ["f1", "youden"])
def test_best_thresholds_per_class(metric):
    y, p = _data(3)
    thr = best_thresholds_per_class(y, p, metric=metric)
    assert thr == [best_threshold(y[:, k], p[:, k], metric) for k in range(4)]
    assert all(type(t) is float for t in thr)
    if metric == "f1":  # tuned cuts are at least as good as 0.5 on the data they were tuned on
        assert multilabel_metrics(y, p, NAMES, thr)["f1_macro"] >= multilabel_metrics(y, p, NAMES)["f1_macro"]


@pytest.mark.parametrize("col,metric,want", [([0, 0, 0], "f1", 0.25), ([1, 1, 1], "youden", 0.25),
                                             ([1, 1, 1], "f1", 0.2)])
def test_best_thresholds_default_when_undefined(col, metric, want):
    y = np.stack([[1, 0, 1], col], 1)
    p = np.stack([[0.9, 0.2, 0.6], [0.2, 0.5, 0.3]], 1)
    assert best_thresholds_per_class(y, p, metric, default=0.25)[1] == want


@pytest.mark.parametrize("y,p,names,thr,match", [
    ([0, 1], [0.2, 0.3], ["a"], 0.5, r"shape \(N, C\)"),
    ([[0, 1]], [[0.2, 0.3]], ["a"], 0.5, "2 label columns"),
    ([[0, 2]], [[0.2, 0.3]], ["a", "b"], 0.5, "only 0 and 1"),
    ([[0, 1]], [[0.2, 0.3, 0.1]], ["a", "b"], 0.5, "shape"),
    ([[0, 1]], [[0.2, float("nan")]], ["a", "b"], 0.5, "NaN"),
    ([[0, 1]], [[0.2, 0.3]], ["a", "b"], [0.5, 0.5, 0.5], "one per class"),
    ([[0, 1]], [[0.2, 0.3]], ["a", "a"], 0.5, "unique"),
    (np.zeros((0, 2)), np.zeros((0, 2)), ["a", "b"], 0.5, "empty"),
])
def test_bad_input(y, p, names, thr, match):
    with pytest.raises(ValueError, match=match):
        multilabel_metrics(y, p, names, thresholds=thr)


def test_best_thresholds_bad_metric():
    with pytest.raises(ValueError, match="metric"):
        best_thresholds_per_class([[0, 1]], [[0.2, 0.3]], metric="auroc")


def test_weighted_log_loss_hand_computed_and_against_sklearn():
    import math

    from sklearn.metrics import log_loss

    from medpipe.metrics.multilabel import weighted_log_loss

    names = ["any", "epidural", "subdural"]
    y = [[1, 0, 1], [0, 0, 0]]
    p = [[0.8, 0.1, 0.6], [0.3, 0.2, 0.1]]
    # by hand: per-class mean binary log loss, then weights any 2, others 1
    any_ = -(math.log(0.8) + math.log(0.7)) / 2
    epi = -(math.log(0.9) + math.log(0.8)) / 2
    sdh = -(math.log(0.6) + math.log(0.9)) / 2
    assert weighted_log_loss(y, p, names, {"any": 2}) == pytest.approx((2 * any_ + epi + sdh) / 4, abs=1e-12)
    ya, pa = np.asarray(y), np.asarray(p)
    sk = [log_loss(ya[:, k], pa[:, k], labels=[0, 1]) for k in range(3)]
    assert weighted_log_loss(y, p, names, [2, 1, 1]) == pytest.approx((2 * sk[0] + sk[1] + sk[2]) / 4, abs=1e-9)
    assert weighted_log_loss(y, p, names) == pytest.approx(np.mean(sk), abs=1e-9)
    # certain and right -> ~0 (clipped), never inf
    assert weighted_log_loss([[1, 0, 0]], [[1.0, 0.0, 0.0]], names) < 1e-6
    with pytest.raises(ValueError, match="unknown classes"):
        weighted_log_loss(y, p, names, {"ANY": 2})
