import json

import numpy as np
import pytest
import torch
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, cohen_kappa_score, confusion_matrix,
                             f1_score, multilabel_confusion_matrix, precision_score, recall_score, roc_auc_score)

from medpipe.metrics import multiclass_metrics

KEYS = {"accuracy", "balanced_accuracy", "kappa", "kappa_quadratic", "confusion_matrix", "per_class",
        "precision", "recall", "sensitivity", "specificity", "f1", "auroc", "absent_classes", "n", "num_classes"}
CLASS_KEYS = {"precision", "recall", "sensitivity", "specificity", "f1", "support", "auroc"}


def _probs(pred, c, rng=None):
    """Scores whose argmax is ``pred``, with some noise so the AUROC is not trivial."""
    rng = rng or np.random.default_rng(0)
    p = rng.random((len(pred), c)) * 0.5
    p[np.arange(len(pred)), pred] += 1.0
    return p / p.sum(1, keepdims=True)


def _ankle_case():
    """7 ankle CT classes, class 4 has no test slice; the model predicts it now and then anyway."""
    support = {0: 12, 1: 11, 2: 12, 3: 6, 5: 9, 6: 14}
    hits = {0: 1, 1: 1, 2: 10, 3: 2, 5: 6, 6: 1}
    y, pred = [], []
    for k, n in support.items():
        y += [k] * n
        pred += [k] * hits[k] + [(k + 1) % 7] * (n - hits[k])  # misses of class 3 go to the absent class 4
    return np.array(y), np.array(pred)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_absent_class_left_out_of_the_macro_ankle_ct():
    y, pred = _ankle_case()
    names = [f"grade{k}" for k in range(7)]
    m = multiclass_metrics(y, _probs(pred, 7), names)
    # averaging the absent class's sensitivity as 0 (sklearn over all labels) gives the wrong 0.297
    naive = recall_score(y, pred, labels=list(range(7)), average="macro", zero_division=0)
    assert round(naive, 3) == 0.297
    assert m["sensitivity"] == pytest.approx(0.3465, abs=1e-4) and round(m["sensitivity"], 2) == 0.35
    assert m["recall"] == m["sensitivity"] == m["balanced_accuracy"]
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["absent_classes"] == ["grade4"]
    g4 = m["per_class"]["grade4"]
    assert g4["support"] == 0 and g4["recall"] is None and g4["sensitivity"] is None and g4["auroc"] is None
    assert g4["precision"] == 0.0 and g4["f1"] == 0.0  # it was predicted: every such prediction is wrong
    assert m["confusion_matrix"][4] == [0] * 7  # absent classes still get their row
    present = [0, 1, 2, 3, 5, 6]
    assert m["precision"] == pytest.approx(precision_score(y, pred, labels=present, average="macro", zero_division=0))
    assert m["f1"] == pytest.approx(f1_score(y, pred, labels=present, average="macro", zero_division=0))
    json.dumps(m)


# y, pred, C, confusion matrix, accuracy, balanced accuracy, absent
HAND = [
    pytest.param([0, 0, 1, 1], [0, 1, 1, 1], 3, [[1, 1, 0], [0, 2, 0], [0, 0, 0]], 0.75, 0.75, [2], id="absent-last"),
    pytest.param([0, 1, 2], [0, 1, 2], 3, [[1, 0, 0], [0, 1, 0], [0, 0, 1]], 1.0, 1.0, [], id="perfect"),
    pytest.param([2, 2, 0, 0], [0, 0, 2, 2], 3, [[0, 0, 2], [0, 0, 0], [2, 0, 0]], 0.0, 0.0, [1], id="all-wrong"),
    # recall: class 0 = 2/3, class 1 = 0 (never predicted), class 2 = 1 -> mean 5/9
    pytest.param([0, 0, 0, 1, 2], [0, 0, 2, 0, 2], 3, [[2, 0, 1], [1, 0, 0], [0, 0, 1]], 0.6, 5 / 9, [],
                 id="class-never-predicted"),
]


@pytest.mark.parametrize("y,pred,c,cm,acc,bal,absent", HAND)
def test_hand_computed(y, pred, c, cm, acc, bal, absent):
    names = [f"c{k}" for k in range(c)]
    m = multiclass_metrics(y, _probs(pred, c), names)
    assert set(m) == KEYS and all(set(r) == CLASS_KEYS for r in m["per_class"].values())
    assert m["confusion_matrix"] == cm
    assert m["accuracy"] == pytest.approx(acc) and m["balanced_accuracy"] == pytest.approx(bal)
    assert m["absent_classes"] == [f"c{k}" for k in absent]
    assert m["n"] == len(y) and m["num_classes"] == c
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["confusion_matrix"] == confusion_matrix(y, pred, labels=list(range(c))).tolist()


def test_zero_division_conventions():
    # class 1 present but never predicted; class 2 absent and never predicted
    m = multiclass_metrics([0, 0, 1], [[.9, .05, .05], [.8, .1, .1], [.6, .3, .1]], ["a", "b", "c"])
    b, c = m["per_class"]["b"], m["per_class"]["c"]
    assert (b["precision"], b["recall"], b["f1"]) == (0.0, 0.0, 0.0)
    assert b["auroc"] == 1.0  # ranked right even though never the argmax
    assert (c["precision"], c["recall"], c["f1"], c["auroc"]) == (None, None, None, None)
    assert c["specificity"] == 1.0
    assert m["precision"] == pytest.approx((2 / 3 + 0) / 2)  # over a and b only


def test_single_class_present():
    m = multiclass_metrics([1, 1, 1], [[.2, .7, .1], [.1, .8, .1], [.5, .4, .1]], ["a", "b", "c"])
    assert m["per_class"]["b"]["specificity"] is None and m["per_class"]["b"]["auroc"] is None
    assert m["specificity"] is None and m["auroc"] is None
    assert m["recall"] == pytest.approx(2 / 3) and m["absent_classes"] == ["a", "c"]
    json.dumps(m)


def test_kappa_undefined_is_none():
    m = multiclass_metrics([0, 0], [[.9, .1], [.8, .2]], ["a", "b"])
    assert m["kappa"] is None and m["kappa_quadratic"] is None and m["accuracy"] == 1.0


@pytest.mark.parametrize("seed,c", [(0, 3), (1, 5)])
def test_random_matches_sklearn(seed, c):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(c), rng.integers(0, c, 150)])  # every class present
    logits = rng.normal(size=(y.size, c))
    logits[np.arange(y.size), y] += 1.0
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = p.argmax(1)
    m = multiclass_metrics(y, p, [f"k{k}" for k in range(c)])
    assert m["absent_classes"] == []
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, pred))
    assert m["kappa_quadratic"] == pytest.approx(cohen_kappa_score(y, pred, weights="quadratic"))
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    for key, fn in [("precision", precision_score), ("recall", recall_score), ("f1", f1_score)]:
        assert m[key] == pytest.approx(fn(y, pred, average="macro", zero_division=0)), key
        per = fn(y, pred, average=None, zero_division=0)
        assert [m["per_class"][f"k{k}"][key] for k in range(c)] == pytest.approx(per), key
    mcm = multilabel_confusion_matrix(y, pred)  # per class [[tn, fp], [fn, tp]]
    spec = mcm[:, 0, 0] / (mcm[:, 0, 0] + mcm[:, 0, 1])
    assert [m["per_class"][f"k{k}"]["specificity"] for k in range(c)] == pytest.approx(spec)
    assert m["specificity"] == pytest.approx(spec.mean())
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    per_auc = roc_auc_score(y, p, multi_class="ovr", average=None)
    assert [m["per_class"][f"k{k}"]["auroc"] for k in range(c)] == pytest.approx(per_auc)
    assert [m["per_class"][f"k{k}"]["support"] for k in range(c)] == np.bincount(y, minlength=c).tolist()


def test_y_pred_overrides_argmax_and_torch_inputs():
    p = torch.tensor([[.9, .1], [.2, .8], [.6, .4]])
    m = multiclass_metrics(torch.tensor([[0], [1], [1]]), p, ["a", "b"], y_pred=torch.tensor([0, 1, 1]))
    assert m["accuracy"] == 1.0 and m["auroc"] == pytest.approx(1.0)
    m = multiclass_metrics([0, 1, 1], p.numpy(), ["a", "b"])
    assert m["confusion_matrix"] == [[1, 0], [1, 1]]


def test_json_python_types():
    m = multiclass_metrics(np.array([0, 1, 2, 1]), np.eye(3, dtype=np.float32)[[0, 1, 1, 1]], ["a", "b", "c"])
    json.dumps(m)
    for k in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auroc", "kappa"):
        assert type(m[k]) is float, k
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)
    assert type(m["per_class"]["a"]["support"]) is int


@pytest.mark.parametrize("y,p,names,kw,match", [
    ([0, 1], [[.5, .5], [.5, .5]], ["a"], {}, "at least 2"),
    ([0, 1], [[.5, .5], [.5, .5]], ["a", "a"], {}, "unique"),
    ([0, 2], [[.5, .5], [.5, .5]], ["a", "b"], {}, r"indices 0\.\.1"),
    ([0, -1], [[.5, .5], [.5, .5]], ["a", "b"], {}, r"indices 0\.\.1"),
    ([0, 0.5], [[.5, .5], [.5, .5]], ["a", "b"], {}, r"indices 0\.\.1"),
    ([[1, 0], [0, 1]], [[.5, .5], [.5, .5]], ["a", "b"], {}, "one-hot"),
    ([0, 1], [[.5, .5, 0], [.5, .5, 0]], ["a", "b"], {}, "shape"),
    ([0, 1], [.5, .5], ["a", "b"], {}, "shape"),
    ([0, 1], [[.5, .5], [.5, float("nan")]], ["a", "b"], {}, "NaN"),
    ([], np.zeros((0, 2)), ["a", "b"], {}, "empty"),
    ([0, 1], [[.5, .5], [.5, .5]], ["a", "b"], {"y_pred": [0]}, "y_pred has 1"),
    ([0, 1], [[.5, .5], [.5, .5]], ["a", "b"], {"y_pred": [0, 3]}, "y_pred must hold"),
])
def test_bad_input(y, p, names, kw, match):
    with pytest.raises(ValueError, match=match):
        multiclass_metrics(y, p, names, **kw)
