"""Binary classification metrics from labels and predicted probabilities (plain numpy/sklearn).

Conventions:

* A sample is predicted positive when ``y_prob >= threshold`` (the same ``>=`` rule that
  :func:`sklearn.metrics.roc_curve` uses for its thresholds).
* ``precision``/``recall``/``f1`` refer to the positive class (label 1). Any ratio whose
  denominator is 0 (e.g. precision when nothing is predicted positive) is defined as ``0.0``.
* ``auroc`` and ``average_precision`` are ranking metrics that need both classes in ``y_true``;
  they are ``None`` when only one class is present.
* Everything returned is a plain python ``int``/``float``/``list``/``dict``/``None``, so results
  can be passed straight to :func:`json.dumps`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# the binary building blocks live with the sweep; re-exported here for existing imports
from medpipe.metrics.thresholds import (_as_binary_labels, _as_scores, _safe_div,  # noqa: F401
                                        _sweep_arrays, _to_numpy, rates_from_counts)

__all__ = ["classification_metrics", "roc_points", "best_threshold", "rates_from_counts"]


def _inputs(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    y = _as_binary_labels(y_true)
    return y, _as_scores(y_prob, y.size)


def classification_metrics(y_true, y_prob, threshold: float = 0.5,
                           class_names: Sequence[str] = ("negative", "positive")) -> dict:
    """Binary classification metrics at one decision threshold.

    Args:
        y_true: 0/1 (or bool) labels, any array-like or torch tensor; flattened.
        y_prob: scores for the positive class (probabilities, or hard 0/1 predictions), same
            number of values as ``y_true``.
        threshold: a sample is predicted positive when ``y_prob >= threshold``.
        class_names: names for label 0 and label 1, used as the keys of ``per_class``.

    Returns:
        A JSON-serializable dict with keys ``accuracy``, ``precision``, ``recall``, ``f1``,
        ``specificity`` (floats; precision/recall/f1 of the positive class, 0/0 := 0.0),
        ``auroc`` and ``average_precision`` (floats, or ``None`` when ``y_true`` holds a single
        class), ``confusion_matrix`` (``[[tn, fp], [fn, tp]]``: rows are the true class, columns the
        predicted class), ``per_class`` (``{name: {"precision", "recall", "f1", "support"}}`` for
        both classes), ``threshold``, ``n`` (number of samples) and ``positives`` (number of
        true positives in ``y_true``, i.e. the positive support).

    Raises:
        ValueError: empty input, lengths differ, labels other than 0/1, non-finite scores, or
            ``class_names`` not of length 2.

    Example:
        >>> m = classification_metrics([1, 1, 0, 0, 1], [0.9, 0.6, 0.7, 0.2, 0.3])
        >>> m["confusion_matrix"], m["accuracy"], round(m["precision"], 4)
        ([[1, 1], [1, 2]], 0.6, 0.6667)
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    if len(class_names) != 2:
        raise ValueError(f"class_names must have 2 names (negative, positive), got {list(class_names)}")
    y, p = _inputs(y_true, y_prob)
    pred = p >= threshold
    pos = y == 1
    tp = int(np.sum(pred & pos))
    fp = int(np.sum(pred & ~pos))
    fn = int(np.sum(~pred & pos))
    tn = int(np.sum(~pred & ~pos))
    r = rates_from_counts(tp, fp, fn, tn)
    # the negative class seen as "the positive one": swap roles
    r_neg = rates_from_counts(tn, fn, fp, tp)

    both = 0 < int(pos.sum()) < y.size
    auroc = float(roc_auc_score(y, p)) if both else None
    ap = float(average_precision_score(y, p)) if both else None

    neg_name, pos_name = (str(c) for c in class_names)
    return {
        "accuracy": r["accuracy"],
        "precision": r["precision"],
        "recall": r["recall"],
        "f1": r["f1"],
        "specificity": r["specificity"],
        "auroc": auroc,
        "average_precision": ap,
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "per_class": {
            neg_name: {"precision": r_neg["precision"], "recall": r_neg["recall"],
                       "f1": r_neg["f1"], "support": tn + fp},
            pos_name: {"precision": r["precision"], "recall": r["recall"],
                       "f1": r["f1"], "support": tp + fn},
        },
        "threshold": float(threshold),
        "n": int(y.size),
        "positives": tp + fn,
    }


def roc_points(y_true, y_prob) -> tuple[list[float], list[float], list[float]]:
    """ROC curve points (thin wrapper over :func:`sklearn.metrics.roc_curve`).

    Args:
        y_true: 0/1 labels.
        y_prob: positive-class scores.

    Returns:
        ``(fpr, tpr, thresholds)`` as python float lists of equal length, fpr/tpr increasing.
        ``thresholds[i]`` is the score cut (``>=``) giving ``(fpr[i], tpr[i])``; the first one is
        ``inf`` (nothing predicted positive, the ``(0, 0)`` point), as in sklearn.

    Raises:
        ValueError: ``y_true`` holds a single class (the ROC curve is undefined), or bad input.

    Example:
        >>> fpr, tpr, thr = roc_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> fpr, tpr
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    from sklearn.metrics import roc_curve

    y, p = _inputs(y_true, y_prob)
    if y.min() == y.max():
        raise ValueError("ROC curve is undefined: y_true contains a single class")
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    return fpr.tolist(), tpr.tolist(), [float(t) for t in thr]


def best_threshold(y_true, y_prob, metric: str = "f1") -> float:
    """The score threshold (rule ``y_prob >= t``) that maximizes ``metric``.

    Candidates are the unique values of ``y_prob`` (the default rows of
    :func:`medpipe.metrics.thresholds.threshold_sweep`); ties go to the smallest threshold.

    Args:
        y_true: 0/1 labels.
        y_prob: positive-class scores.
        metric: ``"f1"`` (F1 of the positive class) or ``"youden"`` (sensitivity + specificity - 1).

    Returns:
        The best threshold, a python float taken from ``y_prob``.

    Raises:
        ValueError: unknown metric; ``y_true`` has no positives (f1 is 0 everywhere) or, for
            ``"youden"``, only one class; bad input.

    Example:
        >>> best_threshold([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.35, 0.8, 0.4, 0.9])
        0.35
    """
    if metric not in ("f1", "youden"):
        raise ValueError(f"metric must be 'f1' or 'youden', got {metric!r}")
    y, p = _inputs(y_true, y_prob)
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("cannot choose a threshold: y_true has no positives")
    if metric == "youden" and n_pos == y.size:
        raise ValueError("Youden's J is undefined: y_true has no negatives")
    # candidates = unique scores, ascending, so argmax (first max) = smallest threshold on ties
    cand, r = _sweep_arrays(y, p)
    score = r["f1"] if metric == "f1" else r["recall"] + r["specificity"] - 1.0
    return float(cand[int(np.argmax(score))])


def operating_points(y_true, y_prob, threshold: float) -> dict:
    """Sensitivity, specificity, precision, F1 and accuracy at ``threshold`` and at the Youden point.

    The Youden point is the threshold maximizing sensitivity + specificity - 1 on *these* scores
    (:func:`best_threshold`): in-sample for them, an upper bound of what a fixed threshold gives.

    Args:
        y_true: 0/1 labels.
        y_prob: positive-class scores.
        threshold: the decision threshold in use (e.g. chosen on the validation fold).

    Returns:
        ``{"threshold": point, "youden": point | None}``, each point ``{"threshold", "sensitivity",
        "specificity", "precision", "f1", "accuracy", "youden_j"}``; ``youden`` is None when the
        labels hold a single class.

    Example:
        >>> op = operating_points([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5)
        >>> op["threshold"]["sensitivity"], op["youden"]["threshold"], op["youden"]["youden_j"]
        (0.5, 0.4, 0.5)
    """
    from medpipe.metrics.thresholds import rates_from_counts

    y, p = _inputs(y_true, y_prob)

    def point(t: float) -> dict:
        pred = p >= t
        r = rates_from_counts(int(np.sum(pred & (y == 1))), int(np.sum(pred & (y == 0))),
                              int(np.sum(~pred & (y == 1))), int(np.sum(~pred & (y == 0))))
        return {"threshold": float(t), "sensitivity": r["recall"], "specificity": r["specificity"],
                "precision": r["precision"], "f1": r["f1"], "accuracy": r["accuracy"],
                "youden_j": r["recall"] + r["specificity"] - 1.0}

    try:
        youden = point(best_threshold(y, p, "youden"))
    except ValueError:
        youden = None
    return {"threshold": point(float(threshold)), "youden": youden}
