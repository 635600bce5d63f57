"""Multiclass (one label of C per sample) classification metrics from labels and class
probabilities (plain numpy; scikit-learn for kappa and AUROC).

Conventions:

* The predicted class is ``argmax(y_prob)`` unless ``y_pred`` is given.
* Per class ``k`` (one-vs-rest counts from the confusion matrix): recall = sensitivity =
  tp/(tp+fn), specificity = tn/(tn+fp), precision = tp/(tp+fp), f1 = 2tp/(2tp+fp+fn), auroc =
  one-vs-rest AUROC of the scores ``y_prob[:, k]``.
* A class **absent** from ``y_true`` (support 0; e.g. a test split without any slice of that
  class) has no recall, sensitivity or auroc: they are ``None``. Its precision is ``0.0`` when the
  model predicted it (every such prediction is wrong) and ``None`` when it never did; likewise its
  f1 is ``0.0`` when predicted and ``None`` otherwise. Its specificity is defined as usual.
* A **present** class that is never predicted has precision ``0.0`` (sklearn's
  ``zero_division=0``) and f1 ``0.0``. Specificity and auroc are ``None`` only for a class that is
  the sole class in ``y_true`` (no negatives to judge).
* The top-level ``precision``, ``recall``, ``sensitivity``, ``specificity``, ``f1`` and ``auroc``
  are macro means over the classes PRESENT in ``y_true`` only (skipping any ``None``); an absent
  class is never averaged as 0, it is listed in ``absent_classes`` instead. ``balanced_accuracy``
  is the same mean recall (= :func:`sklearn.metrics.balanced_accuracy_score`). A mean over
  nothing is ``None``.
* ``kappa`` is Cohen's kappa, ``kappa_quadratic`` its quadratic-weighted form (class indices as
  ordinal grades); ``None`` when undefined (truth and prediction are one and the same class).
* Everything returned is a plain python ``int``/``float``/``list``/``dict``/``None`` (JSON-ready).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from medpipe.metrics.thresholds import _to_numpy

__all__ = ["multiclass_metrics"]


def _class_names(class_names: Sequence[str], min_classes: int = 2) -> list[str]:
    names = [str(c) for c in class_names]
    if len(names) < min_classes:
        raise ValueError(f"class_names must name at least {min_classes} classes, got {names}")
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(f"class_names must be unique, {dup} appear more than once")
    return names


def _as_class_indices(y, n_classes: int, name: str, n: int | None = None) -> np.ndarray:
    a = _to_numpy(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name} must be class indices of shape (N,), got shape {a.shape}"
                         + (" (one-hot? pass argmax over the class axis)" if a.ndim == 2 else ""))
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if n is not None and a.size != n:
        raise ValueError(f"{name} has {a.size} values but y_true has {n}")
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be integer class indices, got dtype {a.dtype}")
    bad = ~np.isfinite(a) | (a != np.round(a)) | (a < 0) | (a >= n_classes)
    if bad.any():
        raise ValueError(f"{name} must hold class indices 0..{n_classes - 1} (one per class name), "
                         f"got e.g. {a[bad][:5].tolist()}")
    return a.astype(np.int64)


def _as_score_matrix(y_prob, n: int, n_classes: int, name: str = "y_prob") -> np.ndarray:
    p = _to_numpy(y_prob).astype(np.float64)
    if p.shape != (n, n_classes):
        raise ValueError(f"{name} must have shape (N, C) = ({n}, {n_classes}) for {n} samples and "
                         f"{n_classes} class names, got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return p


def _ratio(num: int, den: int, undefined=None):
    return undefined if den == 0 else num / den


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _kappa(y: np.ndarray, pred: np.ndarray, n_classes: int, weights: str | None) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():  # 0/0 when truth and prediction are one class: reported as None
        warnings.simplefilter("ignore")
        k = float(cohen_kappa_score(y, pred, labels=np.arange(n_classes), weights=weights))
    return None if np.isnan(k) else k


def _auroc_ovr(pos: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(pos, scores)) if 0 < int(pos.sum()) < pos.size else None


def multiclass_metrics(y_true, y_prob, class_names: Sequence[str], y_pred=None) -> dict:
    """Multiclass metrics: accuracy, balanced accuracy, kappa, per-class and macro rates, OvR AUROC.

    Args:
        y_true: class indices ``0..C-1``, shape ``(N,)`` (numpy, list or torch tensor).
        y_prob: class probabilities (or any per-class scores), shape ``(N, C)``; used for the
            one-vs-rest AUROC and, unless ``y_pred`` is given, for the predicted class (argmax).
        class_names: the ``C`` class names, in index order (keys of ``per_class``).
        y_pred: predicted class indices, shape ``(N,)``; default ``argmax(y_prob, axis=1)``.

    Returns:
        A JSON-serializable dict: ``accuracy``, ``balanced_accuracy``, ``precision``, ``recall``,
        ``sensitivity``, ``specificity``, ``f1``, ``auroc`` (macro over present classes),
        ``kappa``, ``kappa_quadratic``, ``confusion_matrix`` (``C x C`` ints, rows = true class,
        columns = predicted class, every class has a row), ``per_class`` (``{name: {precision,
        recall, sensitivity, specificity, f1, support, auroc}}``), ``absent_classes`` (names with
        support 0), ``n`` and ``num_classes``. See the module docstring for ``None`` values.

    Raises:
        ValueError: fewer than 2 or duplicate class names, labels out of ``0..C-1``, shapes that do
            not match, non-finite scores.

    Example:
        >>> m = multiclass_metrics([0, 0, 1, 1], [[.8, .1, .1], [.3, .6, .1], [.2, .7, .1],
        ...                                      [.1, .8, .1]], ["a", "b", "c"])
        >>> m["accuracy"], m["balanced_accuracy"], m["absent_classes"], m["per_class"]["c"]["recall"]
        (0.75, 0.75, ['c'], None)
        >>> m["confusion_matrix"]
        [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    """
    names = _class_names(class_names)
    c = len(names)
    y = _as_class_indices(y_true, c, "y_true")
    p = _as_score_matrix(y_prob, y.size, c)
    pred = p.argmax(axis=1) if y_pred is None else _as_class_indices(y_pred, c, "y_pred", y.size)
    n = int(y.size)

    cm = np.bincount(y * c + pred, minlength=c * c).reshape(c, c)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    fp = predicted - tp
    fn = support - tp
    tn = n - tp - fp - fn

    per_class: dict[str, dict] = {}
    for k, name in enumerate(names):
        present = support[k] > 0
        recall = _ratio(int(tp[k]), int(support[k]))
        per_class[name] = {
            "precision": _ratio(int(tp[k]), int(predicted[k]), 0.0 if present else None),
            "recall": recall,
            "sensitivity": recall,
            "specificity": _ratio(int(tn[k]), int(tn[k] + fp[k])),
            "f1": _ratio(2 * int(tp[k]), int(2 * tp[k] + fp[k] + fn[k])),
            "support": int(support[k]),
            "auroc": _auroc_ovr(y == k, p[:, k]) if present else None,
        }

    present = [per_class[nm] for nm, s in zip(names, support) if s > 0]
    macro = {key: _mean(r[key] for r in present)
             for key in ("precision", "recall", "sensitivity", "specificity", "f1", "auroc")}
    return {
        "accuracy": float(np.mean(y == pred)),
        "balanced_accuracy": macro["recall"],
        **macro,
        "kappa": _kappa(y, pred, c, None),
        "kappa_quadratic": _kappa(y, pred, c, "quadratic"),
        "confusion_matrix": cm.tolist(),
        "per_class": per_class,
        "absent_classes": [nm for nm, s in zip(names, support) if s == 0],
        "n": n,
        "num_classes": c,
    }
