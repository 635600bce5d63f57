import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from medpipe.metrics import best_threshold, classification_metrics, rates_from_counts, roc_points

KEYS = {"accuracy", "precision", "recall", "f1", "specificity", "auroc", "average_precision",
        "confusion_matrix", "per_class", "threshold", "n", "positives"}

# y_true, y_prob, threshold, (tn, fp, fn, tp), accuracy, precision, recall, f1, specificity
CASES = [
    pytest.param([1, 1, 0, 0, 1], [0.9, 0.6, 0.7, 0.2, 0.3], 0.5, (1, 1, 1, 2),
                 0.6, 2 / 3, 2 / 3, 2 / 3, 0.5, id="mixed"),
    pytest.param([0, 0, 1, 1], [0.1, 0.4, 0.6, 0.9], 0.5, (2, 0, 0, 2),
                 1.0, 1.0, 1.0, 1.0, 1.0, id="perfect"),
    # nothing predicted positive: precision 0/0 := 0, f1 0
    pytest.param([1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], 0.5, (2, 0, 2, 0),
                 0.5, 0.0, 0.0, 0.0, 1.0, id="all-predicted-negative"),
    # everything predicted positive: f1 = 2*0.25*1/(1.25) = 0.4
    pytest.param([1, 0, 0, 0], [0.9, 0.9, 0.9, 0.9], 0.5, (0, 3, 0, 1),
                 0.25, 0.25, 1.0, 0.4, 0.0, id="all-predicted-positive"),
    # a score equal to the threshold is positive
    pytest.param([1, 0], [0.5, 0.49], 0.5, (1, 0, 0, 1),
                 1.0, 1.0, 1.0, 1.0, 1.0, id="score-equals-threshold"),
    pytest.param([1, 1, 0, 0, 1], [0.9, 0.6, 0.7, 0.2, 0.3], 0.25, (1, 1, 0, 3),
                 0.8, 0.75, 1.0, 6 / 7, 0.5, id="lower-threshold"),
    # hard 0/1 predictions as scores
    pytest.param([True, False, True, False, False], [1, 1, 0, 0, 0], 0.5, (2, 1, 1, 1),
                 0.6, 0.5, 0.5, 0.5, 2 / 3, id="bool-labels-hard-preds"),
]


@pytest.mark.parametrize("y,p,thr,cm,acc,prec,rec,f1,spec", CASES)
def test_hand_computed(y, p, thr, cm, acc, prec, rec, f1, spec):
    m = classification_metrics(y, p, threshold=thr)
    assert set(m) == KEYS
    tn, fp, fn, tp = cm
    assert m["confusion_matrix"] == [[tn, fp], [fn, tp]]
    for key, want in [("accuracy", acc), ("precision", prec), ("recall", rec), ("f1", f1),
                      ("specificity", spec)]:
        assert m[key] == pytest.approx(want), key
    assert m["n"] == len(y) and m["positives"] == tp + fn and m["threshold"] == thr


def test_per_class_hand_computed():
    m = classification_metrics([1, 1, 0, 0, 1], [0.9, 0.6, 0.7, 0.2, 0.3], class_names=("no", "ich"))
    assert set(m["per_class"]) == {"no", "ich"}
    # negative class: precision tn/(tn+fn) = 1/2, recall = specificity = 1/2
    assert m["per_class"]["no"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["ich"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3,
                                                   "support": 3})
    assert m["per_class"]["ich"]["support"] == 3 and isinstance(m["per_class"]["ich"]["support"], int)


def test_auroc_hand_and_sklearn():
    y, p = [1, 1, 0, 0, 1], [0.9, 0.6, 0.7, 0.2, 0.3]
    m = classification_metrics(y, p)
    # 6 (pos, neg) pairs, 4 ranked correctly
    assert m["auroc"] == pytest.approx(4 / 6)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, p))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_matches_sklearn(seed):
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    p = np.round(np.clip(0.35 * y + 0.65 * rng.random(300), 0, 1), 2)  # ties included
    m = classification_metrics(y, p, threshold=0.4)
    pred = (p >= 0.4).astype(int)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, p))


@pytest.mark.parametrize("y", [[0, 0, 0], [1, 1, 1, 1]])
def test_single_class_ranking_metrics_none(y):
    m = classification_metrics(y, np.linspace(0.1, 0.9, len(y)))
    assert m["auroc"] is None and m["average_precision"] is None
    json.dumps(m)


def test_json_serializable_python_types():
    m = classification_metrics(np.array([1, 0, 1, 0]), np.array([0.8, 0.3, 0.4, 0.6], dtype=np.float32))
    json.dumps(m)
    for k in ("accuracy", "precision", "recall", "f1", "specificity", "auroc", "average_precision", "threshold"):
        assert type(m[k]) is float, k
    assert type(m["n"]) is int and type(m["positives"]) is int
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)


def test_torch_inputs():
    m = classification_metrics(torch.tensor([1, 0, 1]), torch.tensor([0.7, 0.2, 0.1]))
    assert m["confusion_matrix"] == [[1, 0], [1, 1]]


@pytest.mark.parametrize("y,p,kw", [
    ([], [], {}),
    ([0, 1], [0.5], {}),
    ([0, 2], [0.1, 0.2], {}),
    ([0, 1], [0.1, float("nan")], {}),
    ([0, 1], [0.1, 0.2], {"class_names": ("a", "b", "c")}),
])
def test_bad_input(y, p, kw):
    with pytest.raises(ValueError):
        classification_metrics(y, p, **kw)


def test_rates_from_counts_zero_division():
    assert rates_from_counts(0, 0, 0, 0) == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0,
                                             "f1": 0.0, "specificity": 0.0}
    r = rates_from_counts(np.array([2, 0]), np.array([1, 0]), np.array([1, 3]), np.array([1, 1]))
    np.testing.assert_allclose(r["f1"], [2 / 3, 0.0])


def test_roc_points_match_sklearn():
    y, p = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    fpr, tpr, thr = roc_points(y, p)
    assert fpr == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert math.isinf(thr[0]) and thr[1:] == [0.8, 0.4, 0.35, 0.1]
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 100)
    p = rng.random(100)
    fpr, tpr, thr = roc_points(y, p)
    s_fpr, s_tpr, s_thr = roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(fpr, s_fpr)
    np.testing.assert_allclose(tpr, s_tpr)
    np.testing.assert_allclose(thr, s_thr)
    assert all(type(v) is float for v in fpr + tpr + thr)


def test_roc_points_single_class_raises():
    with pytest.raises(ValueError, match="single class"):
        roc_points([1, 1], [0.2, 0.3])


# y, p, metric, expected threshold
BEST = [
    # f1: t=0.35 -> tp3 fp1 fn0 -> 6/7; t=0.8 -> 0.8; t=0.4 -> 2/3; t=0.3 -> 0.75
    pytest.param([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.35, 0.8, 0.4, 0.9], "f1", 0.35, id="f1"),
    # youden ties at 0.35 (1 - 1/3) and 0.8 (2/3 - 0): smallest wins
    pytest.param([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.35, 0.8, 0.4, 0.9], "youden", 0.35, id="youden-tie"),
    # youden: t=0.6 -> tpr 1, fpr 0 -> J=1
    pytest.param([0, 1, 0, 1], [0.2, 0.6, 0.5, 0.9], "youden", 0.6, id="youden-separable"),
    # separable: f1 = 1 only at 0.6 (0.5 adds a false positive, 0.9 drops a true positive)
    pytest.param([0, 1, 0, 1], [0.2, 0.6, 0.5, 0.9], "f1", 0.6, id="f1-separable"),
    # all positive: every threshold up to the min keeps f1 = 1 -> smallest
    pytest.param([1, 1, 1], [0.2, 0.5, 0.7], "f1", 0.2, id="f1-all-positive"),
]


@pytest.mark.parametrize("y,p,metric,want", BEST)
def test_best_threshold_hand(y, p, metric, want):
    t = best_threshold(y, p, metric=metric)
    assert t == pytest.approx(want) and type(t) is float


@pytest.mark.parametrize("metric", ["f1", "youden"])
def test_best_threshold_brute_force(metric):
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 150)
    p = np.round(0.3 * y + 0.7 * rng.random(150), 2)
    best, best_s = None, -np.inf
    for t in np.unique(p):
        m = classification_metrics(y, p, threshold=t)
        s = m["f1"] if metric == "f1" else m["recall"] + m["specificity"] - 1
        if s > best_s + 1e-12:
            best, best_s = t, s
    assert best_threshold(y, p, metric) == pytest.approx(best)


@pytest.mark.parametrize("y,metric", [([0, 0], "f1"), ([1, 1], "youden"), ([0, 1], "accuracy")])
def test_best_threshold_undefined(y, metric):
    with pytest.raises(ValueError):
        best_threshold(y, [0.2, 0.4], metric=metric)


def test_gradcam_highlights_the_evidence_not_its_complement():
    """MONAI's default CAM normalizer flips maps; ours must keep high = evidence for the class."""
    import torch
    from monai.visualize import GradCAM

    from medpipe.handlers.classification import minmax_per_sample

    class Net(torch.nn.Module):  # logit 1 = mean of the top-left quadrant of a feature map
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Conv2d(1, 1, 1, bias=False)
            torch.nn.init.ones_(self.features.weight)

        def forward(self, x):
            f = torch.relu(self.features(x))
            return torch.stack([-f.mean((1, 2, 3)), f[:, :, :8, :8].mean((1, 2, 3))], 1)

    x = torch.zeros(1, 1, 16, 16)
    x[..., :8, :8] = 1.0
    cam = GradCAM(nn_module=Net(), target_layers="features", postprocessing=minmax_per_sample)(x, class_idx=1)[0, 0]
    assert cam[:8, :8].mean() > cam[8:, 8:].mean()
