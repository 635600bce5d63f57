"""One entry point for classification metrics per label kind: ``binary``, ``multiclass``,
``multilabel``.

Shared code (handlers, evaluation, reports) calls :func:`classification_metrics_for` with the kind
named by the dataset instead of branching on it, and :func:`positive_scores` instead of writing
``p[:, 1]``. The kinds:

* ``binary``: ``y_true`` 0/1 of shape ``(N,)``; ``y_score`` the positive-class probability
  ``(N,)`` (or ``(N, 1)``, a single sigmoid output) or a two-class softmax ``(N, 2)``, whose
  column 1 is the positive class. Metrics: :func:`medpipe.metrics.classification.classification_metrics`.
* ``multiclass``: ``y_true`` class indices ``(N,)``; ``y_score`` class probabilities ``(N, C)``.
  Metrics: :func:`medpipe.metrics.multiclass.multiclass_metrics` (predicted class = argmax).
* ``multilabel``: ``y_true`` 0/1 vectors ``(N, C)``; ``y_score`` per-label probabilities ``(N, C)``.
  Metrics: :func:`medpipe.metrics.multilabel.multilabel_metrics`.

Every result is the delegate's JSON-safe dict plus ``"kind"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medpipe.metrics.classification import classification_metrics
from medpipe.metrics.multiclass import multiclass_metrics
from medpipe.metrics.multilabel import multilabel_metrics
from medpipe.metrics.thresholds import _to_numpy

__all__ = ["KINDS", "classification_metrics_for", "positive_scores"]

#: the label kinds, in the order they are documented
KINDS = ("binary", "multiclass", "multilabel")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown label kind {kind!r}; expected one of {', '.join(KINDS)}")


def positive_scores(kind: str, y_score) -> np.ndarray:
    """The one-vs-rest score of each class: what a ROC curve or a threshold sweep is drawn from.

    Args:
        kind: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        y_score: model outputs after sigmoid/softmax (numpy, list or torch tensor).

    Returns:
        binary: the positive-class probability, float array of shape ``(N,)``, from an ``(N,)``
        or ``(N, 1)`` input as is, or column 1 of an ``(N, 2)`` softmax. multiclass/multilabel:
        the ``(N, C)`` scores as a float array (column ``k`` scores class ``k`` against the rest).

    Raises:
        ValueError: unknown kind, or a shape that does not fit it.

    Example:
        >>> positive_scores("binary", [[0.9, 0.1], [0.2, 0.8]]).tolist()
        [0.1, 0.8]
        >>> positive_scores("binary", [0.1, 0.8]).tolist()
        [0.1, 0.8]
    """
    _check_kind(kind)
    s = _to_numpy(y_score).astype(np.float64)
    if kind == "binary":
        if s.ndim == 1:
            return s
        if s.ndim == 2 and s.shape[1] == 1:
            return s[:, 0]
        if s.ndim == 2 and s.shape[1] == 2:
            return s[:, 1]
        raise ValueError("binary scores must be the positive-class probability (N,) or (N, 1), or a "
                         f"two-class softmax (N, 2); got shape {s.shape}")
    if s.ndim != 2:
        raise ValueError(f"{kind} scores must have shape (N, C), one column per class; got {s.shape}")
    return s


def classification_metrics_for(kind: str, y_true, y_score, class_names: Sequence[str],
                               threshold: float | Sequence[float] = 0.5) -> dict:
    """Classification metrics for any label kind, from labels and model scores.

    Args:
        kind: ``"binary"``, ``"multiclass"`` or ``"multilabel"`` (see the module docstring for the
            shapes each expects).
        y_true: labels: ``(N,)`` 0/1, ``(N,)`` class indices, or ``(N, C)`` 0/1 vectors.
        y_score: probabilities: ``(N,)``/``(N, 1)``/``(N, 2)`` for binary, ``(N, C)`` otherwise.
        class_names: binary: the (negative, positive) names; otherwise the ``C`` class names.
        threshold: binary: the positive-probability cut; multilabel: one cut, or one per label;
            multiclass: unused (the predicted class is the argmax).

    Returns:
        The delegate's dict plus ``"kind"``: binary keeps the keys of
        :func:`~medpipe.metrics.classification.classification_metrics` (``accuracy``,
        ``precision``, ``recall``, ``f1``, ``specificity``, ``auroc``, ``confusion_matrix``,
        ``per_class``, ...); multiclass those of
        :func:`~medpipe.metrics.multiclass.multiclass_metrics`; multilabel those of
        :func:`~medpipe.metrics.multilabel.multilabel_metrics`.

    Raises:
        ValueError: unknown kind, shapes that do not fit the kind or the class names, or bad
            labels/scores.

    Example:
        >>> m = classification_metrics_for("binary", [0, 1, 1], [[.8, .2], [.3, .7], [.6, .4]],
        ...                                ["no", "yes"])
        >>> m["kind"], m["confusion_matrix"], m["auroc"]
        ('binary', [[1, 0], [1, 1]], 1.0)
    """
    _check_kind(kind)
    return {**_METRICS[kind](y_true, y_score, list(class_names), threshold), "kind": kind}


def _binary(y_true, y_score, class_names, threshold) -> dict:
    if len(class_names) != 2:
        raise ValueError(f"binary classification needs 2 class names (negative, positive), got "
                         f"{class_names}; use kind 'multiclass' for more classes")
    y = _to_numpy(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"binary y_true must be 0/1 labels of shape (N,), got shape {y.shape}")
    if np.ndim(threshold) != 0:
        raise ValueError(f"binary threshold must be one number, got {threshold!r}")
    s = positive_scores("binary", y_score)
    if s.shape[0] != y.shape[0]:
        raise ValueError(f"y_score has {s.shape[0]} samples but y_true has {y.shape[0]}")
    return classification_metrics(y, s, threshold=float(threshold), class_names=class_names)


def _multiclass(y_true, y_score, class_names, threshold) -> dict:
    return multiclass_metrics(y_true, positive_scores("multiclass", y_score), class_names)


def _multilabel(y_true, y_score, class_names, threshold) -> dict:
    return multilabel_metrics(y_true, positive_scores("multilabel", y_score), class_names,
                              thresholds=threshold)


#: label kind -> metrics function ``(y_true, y_score, class_names, threshold) -> dict``
_METRICS = {"binary": _binary, "multiclass": _multiclass, "multilabel": _multilabel}
