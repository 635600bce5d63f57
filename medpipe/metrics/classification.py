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

__all__ = ["classification_metrics", "roc_points", "best_threshold", "rates_from_counts"]


def _safe_div(num, den):
    """``num / den`` elementwise with ``0/0`` (any ``x/0``) defined as 0.0; arrays or scalars."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)
    return out if out.ndim else float(out)


def rates_from_counts(tp, fp, fn, tn) -> dict:
    """Accuracy, precision, recall, f1 and specificity from confusion counts (scalars or arrays).

    Ratios with a zero denominator are 0.0. Shared by the classification and area-sweep code.

    Args:
        tp: true positives.
        fp: false positives.
        fn: false negatives.
        tn: true negatives.

    Returns:
        dict with ``accuracy``, ``precision``, ``recall``, ``f1``, ``specificity`` (python floats
        for scalar input, float arrays for array input).

    Example:
        >>> rates_from_counts(2, 1, 1, 1)["accuracy"]
        0.6
    """
    tp, fp, fn, tn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn, tn))
    return {
        "accuracy": _safe_div(tp + tn, tp + fp + fn + tn),
        "precision": _safe_div(tp, tp + fp),
        "recall": _safe_div(tp, tp + fn),
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
        "specificity": _safe_div(tn, tn + fp),
    }


def _to_numpy(x) -> np.ndarray:
    """numpy view of an array-like; torch tensors (any device) without importing torch."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_binary_labels(y_true, name: str = "y_true") -> np.ndarray:
    y = _to_numpy(y_true).ravel()
    if y.size == 0:
        raise ValueError(f"{name} is empty")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"{name} must be numeric 0/1 labels, got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"{name} must contain only 0 and 1, got e.g. {y[bad][:5].tolist()}")
    return y.astype(np.int64)


def _as_scores(y_prob, n: int, name: str = "y_prob") -> np.ndarray:
    p = _to_numpy(y_prob).astype(np.float64).ravel()
    if p.size != n:
        raise ValueError(f"{name} has {p.size} values but y_true has {n}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return p


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


def _counts_at_thresholds(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray):
    """tp, fp, fn, tn (int arrays) for "positive when p >= t" at each threshold t."""
    pos = np.sort(p[y == 1])
    neg = np.sort(p[y == 0])
    tp = pos.size - np.searchsorted(pos, thresholds, side="left")
    fp = neg.size - np.searchsorted(neg, thresholds, side="left")
    return tp, fp, pos.size - tp, neg.size - fp


def best_threshold(y_true, y_prob, metric: str = "f1") -> float:
    """The score threshold (rule ``y_prob >= t``) that maximizes ``metric``.

    Candidates are the unique values of ``y_prob``; ties go to the smallest threshold.

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
    cand = np.unique(p)  # sorted ascending, so argmax (first max) = smallest threshold on ties
    tp, fp, fn, tn = _counts_at_thresholds(y, p, cand)
    r = rates_from_counts(tp, fp, fn, tn)
    score = r["f1"] if metric == "f1" else r["recall"] + r["specificity"] - 1.0
    return float(cand[int(np.argmax(score))])
