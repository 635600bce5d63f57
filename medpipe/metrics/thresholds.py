"""Binary decision cuts: confusion counts of the rule ``score >= t`` for many ``t`` at once, the
rates derived from them, and the choice of the best ``t``.

One sweep serves every "positive above a cut" decision in medpipe: the probability cut of a
classifier (:func:`medpipe.metrics.classification.best_threshold`), the predicted-area cut that
turns a segmenter into a slice classifier (:func:`medpipe.metrics.segmentation.area_threshold_sweep`)
and the per-class cuts of a multi-label model
(:func:`medpipe.metrics.multilabel.best_thresholds_per_class`).

Conventions:

* A sample is predicted positive when ``score >= t`` (the rule of :func:`sklearn.metrics.roc_curve`).
* Any ratio whose denominator is 0 is ``0.0`` (precision when nothing is predicted positive, recall
  when there are no positives, ...): the rows of a sweep are compared with each other, so every
  row needs a number.
* :func:`choose_threshold` breaks ties towards the smallest threshold.
* Everything returned is a plain python ``int``/``float``/``list``/``dict`` (JSON-ready); a
  threshold is an ``int`` when the thresholds are integers (e.g. pixel areas), else a ``float``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["threshold_sweep", "choose_threshold", "rates_from_counts", "SWEEP_METRICS"]

#: the rate keys of each :func:`threshold_sweep` row (besides ``threshold`` and the counts)
SWEEP_METRICS = ("accuracy", "precision", "recall", "f1", "specificity")
_COUNTS = ("tp", "fp", "fn", "tn")


def _safe_div(num, den):
    """``num / den`` elementwise with ``0/0`` (any ``x/0``) defined as 0.0; arrays or scalars."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)
    return out if out.ndim else float(out)


def rates_from_counts(tp, fp, fn, tn) -> dict:
    """Accuracy, precision, recall, f1 and specificity from confusion counts (scalars or arrays).

    Ratios with a zero denominator are 0.0. Shared by every binary metric and sweep in medpipe.

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
    return _check_01(y, name)


def _check_01(y: np.ndarray, name: str) -> np.ndarray:
    """``y`` as int64 after checking it holds only 0 and 1 (bool allowed), any shape."""
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


def _py_number(v):
    return int(v) if np.issubdtype(np.asarray(v).dtype, np.integer) else float(v)


def _sweep_arrays(y_true, scores, thresholds: Iterable[float] | None = None):
    """``(thresholds, {tp, fp, fn, tn, accuracy, ...})`` as arrays, one entry per threshold."""
    y = _as_binary_labels(y_true)
    s = _to_numpy(scores).ravel()
    if s.dtype == bool or not np.issubdtype(s.dtype, np.number):
        s = s.astype(np.float64)  # integer scores (areas, counts) keep their dtype
    if s.size != y.size:
        raise ValueError(f"scores has {s.size} values but y_true has {y.size}")
    if not np.isfinite(s).all():
        raise ValueError("scores contains NaN or infinite values")
    if thresholds is None:
        thr = np.unique(s)
    else:
        thr = np.unique(np.asarray(list(thresholds)))
        if thr.size == 0:
            raise ValueError("thresholds is empty")
        if not np.issubdtype(thr.dtype, np.number) or np.isnan(thr.astype(np.float64)).any():
            raise ValueError(f"thresholds must be numbers (not NaN), got e.g. {thr[:5].tolist()}")
    # positive when s >= t: count the scores left of t in each class's sorted scores
    pos = np.sort(s[y == 1])
    neg = np.sort(s[y == 0])
    tp = pos.size - np.searchsorted(pos, thr, side="left")
    fp = neg.size - np.searchsorted(neg, thr, side="left")
    out = {"tp": tp, "fp": fp, "fn": pos.size - tp, "tn": neg.size - fp}
    out.update(rates_from_counts(out["tp"], out["fp"], out["fn"], out["tn"]))
    return thr, out


def threshold_sweep(y_true, scores, thresholds: Iterable[float] | None = None) -> list[dict]:
    """Confusion counts and rates of the binary rule "positive when ``score >= t``" for many ``t``.

    Vectorised: sorts each class's scores once and counts with :func:`numpy.searchsorted`, so a
    sweep over all unique scores of 10^6 samples takes well under a second.

    Args:
        y_true: 0/1 (or bool) labels, any array-like or torch tensor; flattened.
        scores: one score per label (probability, predicted area, confidence, ...); integer
            scores keep integer thresholds.
        thresholds: the cuts ``t`` to evaluate (sorted and deduplicated here). Default: the
            unique values of ``scores``.

    Returns:
        One dict per threshold, ascending: ``{"threshold", "tp", "fp", "fn", "tn", "accuracy",
        "precision", "recall", "f1", "specificity"}`` (0/0 := 0.0).

    Raises:
        ValueError: empty input, lengths differ, labels other than 0/1, non-finite scores, empty
            or NaN thresholds.

    Example:
        >>> rows = threshold_sweep([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.8])
        >>> [(r["threshold"], r["tp"], r["fp"], round(r["f1"], 3)) for r in rows]
        [(0.1, 2, 2, 0.667), (0.4, 2, 1, 0.8), (0.6, 1, 1, 0.5), (0.8, 1, 0, 0.667)]
    """
    thr, a = _sweep_arrays(y_true, scores, thresholds)
    rows = []
    for i, t in enumerate(thr):
        row = {"threshold": _py_number(t)}
        row.update({k: int(a[k][i]) for k in _COUNTS})
        row.update({k: float(a[k][i]) for k in SWEEP_METRICS})
        rows.append(row)
    return rows


def choose_threshold(sweep: Sequence[dict], metric: str = "f1", key: str = "threshold"):
    """The threshold of a sweep that maximizes ``metric``; ties go to the smallest threshold.

    Args:
        sweep: rows such as those of :func:`threshold_sweep` (any order).
        metric: a numeric key of the rows, e.g. ``accuracy``, ``precision``, ``recall``, ``f1``,
            ``specificity``.
        key: the row key holding the threshold (``"area"`` for an area sweep).

    Returns:
        The chosen threshold, as stored in the row.

    Raises:
        ValueError: empty sweep, or ``metric``/``key`` missing from the rows.

    Example:
        >>> choose_threshold(threshold_sweep([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.8]))
        0.4
    """
    if not sweep:
        raise ValueError("empty sweep")
    for what, k in (("metric", metric), ("threshold key", key)):
        if k not in sweep[0]:
            raise ValueError(f"unknown {what} {k!r}; rows have {sorted(sweep[0])}")
    best = max(sweep, key=lambda r: (r[metric], -r[key]))
    return best[key]
