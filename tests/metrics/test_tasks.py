import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from medpipe.metrics import (KINDS, classification_metrics, classification_metrics_for, multiclass_metrics,
                             multilabel_metrics, positive_scores)

Y_BIN = [0, 1, 1, 0, 1]
P_POS = [0.2, 0.7, 0.4, 0.6, 0.9]
BINARY_KEYS = {"accuracy", "precision", "recall", "f1", "specificity", "auroc", "confusion_matrix", "per_class"}


@pytest.mark.parametrize("scores", [
    pytest.param(P_POS, id="(N,)"),
    pytest.param([[p] for p in P_POS], id="(N,1)"),
    pytest.param([[1 - p, p] for p in P_POS], id="(N,2)-softmax"),
    pytest.param(torch.tensor([[1 - p, p] for p in P_POS]), id="torch"),
])
@pytest.mark.parametrize("threshold", [0.5, 0.65])
def test_binary_any_score_form(scores, threshold):
    m = classification_metrics_for("binary", Y_BIN, scores, ["no", "ich"], threshold=threshold)
    want = classification_metrics(Y_BIN, P_POS, threshold=threshold, class_names=("no", "ich"))
    assert m.pop("kind") == "binary"
    assert set(m) >= BINARY_KEYS
    assert m == want  # same numbers, not just the same keys


def test_multiclass_and_multilabel_delegate():
    y = [0, 2, 1, 2]
    p = np.array([[.7, .2, .1], [.1, .3, .6], [.2, .5, .3], [.5, .1, .4]])
    m = classification_metrics_for("multiclass", y, p, ["a", "b", "c"], threshold=0.9)  # threshold unused
    assert m.pop("kind") == "multiclass" and m == multiclass_metrics(y, p, ["a", "b", "c"])
    yl = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    pl = torch.tensor([[.8, .3], [.2, .6], [.6, .4], [.1, .2]])
    m = classification_metrics_for("multilabel", yl, pl, ("x", "y"), threshold=[0.5, 0.35])
    assert m.pop("kind") == "multilabel"
    assert m == multilabel_metrics(yl, pl.numpy(), ["x", "y"], thresholds=[0.5, 0.35])
    json.dumps(m)


@pytest.mark.parametrize("kind,scores,want", [
    ("binary", [0.1, 0.8], [0.1, 0.8]),
    ("binary", [[0.1], [0.8]], [0.1, 0.8]),
    ("binary", [[0.9, 0.1], [0.2, 0.8]], [0.1, 0.8]),
    ("multiclass", [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]], [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]]),
    ("multilabel", [[0.9, 0.1], [0.2, 0.8]], [[0.9, 0.1], [0.2, 0.8]]),
])
def test_positive_scores(kind, scores, want):
    s = positive_scores(kind, scores)
    assert isinstance(s, np.ndarray) and s.dtype == np.float64
    np.testing.assert_allclose(s, want)


@pytest.mark.parametrize("kind,y,s,names,thr,match", [
    ("segmentation", [0, 1], [0.1, 0.9], ["a", "b"], 0.5, "unknown label kind 'segmentation'; expected one of"),
    ("binary", [0, 1], [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]], ["a", "b"], 0.5, r"\(N, 2\)"),
    ("binary", [0, 1], [0.1, 0.9], ["a", "b", "c"], 0.5, "multiclass"),
    ("binary", [[0, 1], [1, 0]], [0.1, 0.9], ["a", "b"], 0.5, r"shape \(N,\)"),
    ("binary", [0, 1, 1], [0.1, 0.9], ["a", "b"], 0.5, "2 samples but y_true has 3"),
    ("binary", [0, 1], [0.1, 0.9], ["a", "b"], [0.5, 0.5], "one number"),
    ("multiclass", [0, 1], [0.1, 0.9], ["a", "b"], 0.5, r"\(N, C\)"),
    ("multiclass", [0, 1], [[0.1, 0.9], [0.5, 0.5]], ["a", "b", "c"], 0.5, "shape"),
    ("multilabel", [0, 1], [[0.1, 0.9], [0.5, 0.5]], ["a", "b"], 0.5, r"\(N, C\)"),
    ("multilabel", [[0, 1]], [[0.1, 0.9]], ["a", "b"], [0.5], "one per class"),
])
def test_errors(kind, y, s, names, thr, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics_for(kind, y, s, names, threshold=thr)


def test_kinds_and_positive_scores_unknown_kind():
    assert KINDS == ("binary", "multiclass", "multilabel")
    with pytest.raises(ValueError, match="unknown label kind"):
        positive_scores("ordinal", [0.1])


def test_package_import_stays_light():
    code = ("import sys, medpipe.metrics; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'torch', 'scipy', 'iterstrat'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
