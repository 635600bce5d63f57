"""Patient-level bootstrap confidence intervals.

Slices of one patient are not independent, so the unit of resampling is the patient: each
bootstrap resample draws as many patients as the evaluated set has, with replacement, and keeps
every row (slice) of each drawn patient, as many times as the patient was drawn. The interval is
the percentile interval of the statistic over the resamples.

Conventions:

* A statistic is *vectorised over resamples*: it receives the row weights ``w`` of shape
  ``(k, n_rows)`` (``w[b, i]`` = how often row ``i`` is in resample ``b``) and returns ``k``
  values. The builders below (:func:`count_statistic`, :func:`auroc_statistic`,
  :func:`pixel_statistic`, :func:`mean_statistic`) make the usual ones; any function of weighted
  sums is one matrix product, so 1000 resamples of a few thousand rows take milliseconds.
* A value is ``NaN`` when the statistic is undefined in that resample (0/0: recall without positive
  slices, AUROC with one class, ...). Those resamples are left out of the interval (unlike the
  point metrics of :mod:`medpipe.metrics.classification`, where 0/0 is 0.0: a resample without
  positives says nothing about recall). When no resample is defined the interval is
  ``(None, None)``.
* Deterministic: the resamples depend only on ``seed``, the number of patients and ``n_boot``
  (patients are indexed in sorted order of their ids), so every statistic computed with the same
  seed on the same rows sees the same resamples.
* With few patients the interval is crude (3 patients allow only 10 distinct resamples); say so
  next to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["patient_bootstrap", "bootstrap_distribution", "resample_counts", "count_statistic",
           "auroc_statistic", "pixel_statistic", "mean_statistic", "classification_cis",
           "segmentation_cis", "multilabel_auroc_cis", "multiclass_statistic", "multiclass_cis", "COUNT_METRICS",
           "PIXEL_METRICS", "MULTICLASS_METRICS"]

#: metrics of 0/1 labels and 0/1 predictions that :func:`count_statistic` builds
COUNT_METRICS = ("accuracy", "precision", "recall", "f1", "specificity")
#: multiclass metrics of a confusion matrix that :func:`multiclass_statistic` builds (as
#: :func:`medpipe.metrics.multiclass.multiclass_metrics` defines them: macro means over the classes present)
MULTICLASS_METRICS = ("accuracy", "balanced_accuracy", "kappa", "f1", "sensitivity", "specificity", "precision")
#: segmentation metrics of pixel counts that :func:`pixel_statistic` builds
PIXEL_METRICS = ("dice", "iou", "sensitivity")
#: resamples evaluated at once (bounds memory to ``_CHUNK * n_rows`` floats)
_CHUNK = 256

Statistic = Callable[[np.ndarray], np.ndarray]


def _patient_index(patients) -> tuple[np.ndarray, int]:
    """Index of each row's patient in the sorted list of distinct ids, and the number of patients."""
    ids = np.asarray([str(p) for p in patients])
    if ids.size == 0:
        raise ValueError("no rows to resample")
    _, idx = np.unique(ids, return_inverse=True)
    return idx.ravel(), int(idx.max()) + 1


def resample_counts(n_patients: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """How often each patient is drawn in each resample: ``(n_boot, n_patients)`` ints, rows sum to ``n_patients``.

    Example:
        >>> c = resample_counts(3, n_boot=4, seed=0)
        >>> c.shape, c.sum(axis=1).tolist()
        ((4, 3), [3, 3, 3, 3])
    """
    if n_patients < 1 or n_boot < 1:
        raise ValueError(f"need n_patients >= 1 and n_boot >= 1, got {n_patients}, {n_boot}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_patients, size=(n_boot, n_patients))
    flat = draws + (np.arange(n_boot) * n_patients)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_patients).reshape(n_boot, n_patients)


def bootstrap_distribution(patients: Sequence, statistic: Statistic, n_boot: int = 1000,
                           seed: int = 0) -> np.ndarray:
    """The statistic on each of ``n_boot`` patient-level resamples (``NaN`` where undefined).

    Args:
        patients: the patient id of each row.
        statistic: row weights ``(k, n_rows)`` -> ``k`` values (see the module docstring).
        n_boot: number of resamples.
        seed: seed of the resampling.

    Returns:
        ``(n_boot,)`` float array.
    """
    idx, n_pat = _patient_index(patients)
    counts = resample_counts(n_pat, n_boot, seed)
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, _CHUNK):
        w = counts[start:start + _CHUNK][:, idx].astype(np.float64)
        out[start:start + len(w)] = np.asarray(statistic(w), dtype=np.float64).reshape(len(w))
    return out


def _interval(values: np.ndarray, alpha: float) -> tuple[float | None, float | None]:
    ok = values[np.isfinite(values)]
    if ok.size == 0:
        return None, None
    lo, hi = np.quantile(ok, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def patient_bootstrap(patients: Sequence, statistic: Statistic | Mapping[str, Statistic], n_boot: int = 1000,
                      seed: int = 0, alpha: float = 0.05):
    """Percentile bootstrap confidence interval of ``statistic``, resampling patients with replacement.

    Args:
        patients: the patient id of each row (slice); rows of one id are drawn together.
        statistic: maps row weights ``(k, n_rows)`` to ``k`` values (``NaN`` = undefined in that
            resample); build one with :func:`count_statistic`, :func:`auroc_statistic`,
            :func:`pixel_statistic` or :func:`mean_statistic`. A mapping name -> statistic gives
            one interval per name, all over the same resamples.
        n_boot: number of resamples.
        seed: seed of the resampling (same seed, same resamples).
        alpha: 0.05 for a 95 % interval.

    Returns:
        ``(lo, hi)`` floats, ``(None, None)`` when the statistic is undefined in every resample;
        for a mapping, ``{name: (lo, hi)}``.

    Example:
        >>> patients = ["a", "a", "b", "b", "c", "c"]
        >>> acc = count_statistic("accuracy", [1, 0, 1, 0, 1, 0], [1, 0, 1, 1, 0, 0])
        >>> patient_bootstrap(patients, acc, n_boot=200, seed=0)  # per patient: 1.0, 0.5, 0.5
        (0.5, 1.0)
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if isinstance(statistic, Mapping):
        return {k: _interval(bootstrap_distribution(patients, s, n_boot, seed), alpha) for k, s in statistic.items()}
    return _interval(bootstrap_distribution(patients, statistic, n_boot, seed), alpha)


# ---------------------------------------------------------------- statistics, vectorised over resamples
def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _binary(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if not np.all((a == 0) | (a == 1)):
        raise ValueError(f"{name} must be 0/1")
    return a


def count_statistic(metric: str, labels, predictions) -> Statistic:
    """``accuracy``, ``precision``, ``recall``, ``f1`` or ``specificity`` of 0/1 predictions.

    Example:
        >>> s = count_statistic("recall", [1, 1, 0], [1, 0, 0])
        >>> s(np.array([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0], [0.0, 0.0, 1.0]])).tolist()
        [0.5, 1.0, nan]
    """
    if metric not in COUNT_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(COUNT_METRICS)}")
    y, p = _binary(labels, "labels"), _binary(predictions, "predictions")
    if y.size != p.size:
        raise ValueError(f"{y.size} labels for {p.size} predictions")
    cols = np.stack([y * p, (1 - y) * p, y * (1 - p), (1 - y) * (1 - p)], axis=1)  # tp, fp, fn, tn

    def stat(w: np.ndarray) -> np.ndarray:
        tp, fp, fn, tn = (w @ cols).T
        return {"accuracy": lambda: _ratio(tp + tn, tp + fp + fn + tn),
                "precision": lambda: _ratio(tp, tp + fp),
                "recall": lambda: _ratio(tp, tp + fn),
                "f1": lambda: _ratio(2 * tp, 2 * tp + fp + fn),
                "specificity": lambda: _ratio(tn, tn + fp)}[metric]()

    return stat


def auroc_statistic(labels, scores) -> Statistic:
    """Area under the ROC curve of ``scores`` (ties count one half), weighted by the resample.

    Example:
        >>> s = auroc_statistic([0, 1, 0, 1], [0.1, 0.9, 0.8, 0.3])
        >>> s(np.ones((1, 4))).tolist(), s(np.array([[1.0, 1.0, 0.0, 0.0]])).tolist()
        ([0.75], [1.0])
    """
    y = _binary(labels, "labels")
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.size != s.size:
        raise ValueError(f"{y.size} labels for {s.size} scores")
    order = np.argsort(s, kind="stable")
    y_sorted = y[order]
    _, starts = np.unique(s[order], return_index=True)  # tie groups of equal scores, ascending

    def stat(w: np.ndarray) -> np.ndarray:
        ws = w[:, order]
        pos = np.add.reduceat(ws * y_sorted, starts, axis=1)
        neg = np.add.reduceat(ws * (1 - y_sorted), starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg  # negative weight with a strictly lower score
        num = (pos * (below + 0.5 * neg)).sum(axis=1)
        return _ratio(num, pos.sum(axis=1) * neg.sum(axis=1))

    return stat


def pixel_statistic(metric: str, tp, fp, fn) -> Statistic:
    """Global ``dice``, ``iou`` or ``sensitivity`` from per-row pixel counts (summed over the resample).

    Example:
        >>> pixel_statistic("dice", [8, 0], [2, 2], [0, 0])(np.ones((1, 2))).tolist()
        [0.8]
    """
    if metric not in PIXEL_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(PIXEL_METRICS)}")
    cols = np.stack([np.asarray(v, dtype=np.float64).ravel() for v in (tp, fp, fn)], axis=1)

    def stat(w: np.ndarray) -> np.ndarray:
        t, f, n = (w @ cols).T
        return {"dice": lambda: _ratio(2 * t, 2 * t + f + n), "iou": lambda: _ratio(t, t + f + n),
                "sensitivity": lambda: _ratio(t, t + n)}[metric]()

    return stat


def multiclass_statistic(metric: str, labels, predictions, num_classes: int | None = None) -> Statistic:
    """A multiclass metric of class-index predictions, from the resample's weighted confusion matrix.

    ``accuracy``; ``balanced_accuracy`` = ``sensitivity`` (mean recall), ``f1``, ``specificity`` and
    ``precision`` as macro means over the classes present **in the resample** (support > 0: a class
    no drawn patient has is left out, never averaged as 0), with the conventions of
    :func:`medpipe.metrics.multiclass.multiclass_metrics` (a present class never predicted has
    precision 0); ``kappa`` is Cohen's (NaN when undefined).

    Example:
        >>> s = multiclass_statistic("balanced_accuracy", [0, 0, 1, 2], [0, 1, 1, 2])
        >>> s(np.array([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 2.0]])).tolist()
        [0.8333333333333334, 1.0]
    """
    if metric not in MULTICLASS_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(MULTICLASS_METRICS)}")
    y = np.asarray(labels).astype(np.int64).ravel()
    p = np.asarray(predictions).astype(np.int64).ravel()
    if y.size != p.size:
        raise ValueError(f"{y.size} labels for {p.size} predictions")
    c = int(num_classes or max(int(y.max(initial=0)), int(p.max(initial=0))) + 1)
    if y.size and (y.min() < 0 or p.min() < 0 or y.max() >= c or p.max() >= c):
        raise ValueError(f"class indices must lie in 0..{c - 1}")
    cell = np.zeros((y.size, c * c))
    cell[np.arange(y.size), y * c + p] = 1.0  # each row's cell of the confusion matrix

    def stat(w: np.ndarray) -> np.ndarray:
        cm = (w @ cell).reshape(len(w), c, c)  # (k, true, predicted)
        n = cm.sum(axis=(1, 2))
        tp = np.diagonal(cm, axis1=1, axis2=2)
        support, predicted = cm.sum(axis=2), cm.sum(axis=1)
        fp, fn = predicted - tp, support - tp
        tn = n[:, None] - tp - fp - fn
        present = support > 0
        if metric == "accuracy":
            return _ratio(tp.sum(axis=1), n)
        if metric == "kappa":
            po = _ratio(tp.sum(axis=1), n)
            pe = _ratio((support * predicted).sum(axis=1), n ** 2)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(np.isfinite(pe) & (pe < 1), (po - pe) / np.where(pe < 1, 1 - pe, 1.0), np.nan)
        per = {"balanced_accuracy": lambda: _ratio(tp, support), "sensitivity": lambda: _ratio(tp, support),
               "f1": lambda: _ratio(2 * tp, 2 * tp + fp + fn), "specificity": lambda: _ratio(tn, tn + fp),
               "precision": lambda: np.where(predicted > 0, _ratio(tp, predicted), 0.0)}[metric]()
        ok = present & np.isfinite(per)
        return _ratio(np.where(ok, per, 0.0).sum(axis=1), ok.sum(axis=1).astype(np.float64))

    return stat


def mean_statistic(values) -> Statistic:
    """Weighted mean of per-row values; ``NaN`` rows (e.g. per-slice Dice of empty slices) are ignored.

    Example:
        >>> mean_statistic([1.0, float("nan"), 0.0])(np.array([[3.0, 1.0, 1.0]])).tolist()
        [0.75]
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    ok = np.isfinite(v)
    v0 = np.where(ok, v, 0.0)

    def stat(w: np.ndarray) -> np.ndarray:
        return _ratio(w @ v0, w @ ok.astype(np.float64))

    return stat


# ---------------------------------------------------------------- ready-made sets
def classification_cis(patients: Sequence, labels, predictions, scores=None, n_boot: int = 1000, seed: int = 0,
                       alpha: float = 0.05) -> dict:
    """Intervals of the binary classification keys: :data:`COUNT_METRICS`, plus ``auroc`` when ``scores`` are given.

    Example:
        >>> ci = classification_cis(["a", "b", "c"], [1, 0, 1], [1, 0, 0], [0.9, 0.2, 0.4], n_boot=100)
        >>> sorted(ci)
        ['accuracy', 'auroc', 'f1', 'precision', 'recall', 'specificity']
    """
    stats = {m: count_statistic(m, labels, predictions) for m in COUNT_METRICS}
    if scores is not None:
        stats["auroc"] = auroc_statistic(labels, scores)
    return patient_bootstrap(patients, stats, n_boot=n_boot, seed=seed, alpha=alpha)


def multiclass_cis(patients: Sequence, labels, predictions, num_classes: int | None = None, n_boot: int = 1000,
                   seed: int = 0, alpha: float = 0.05) -> dict:
    """Patient-level intervals of the multiclass keys (:data:`MULTICLASS_METRICS`), all over the same resamples.

    Example:
        >>> ci = multiclass_cis(list("aabbcc"), [0, 1, 2, 0, 1, 2], [0, 1, 2, 1, 1, 0], n_boot=100)
        >>> sorted(ci) == sorted(MULTICLASS_METRICS)
        True
    """
    return patient_bootstrap(patients, {m: multiclass_statistic(m, labels, predictions, num_classes)
                                        for m in MULTICLASS_METRICS}, n_boot=n_boot, seed=seed, alpha=alpha)


def segmentation_cis(patients: Sequence, tp, fp, fn, dice=None, n_boot: int = 1000, seed: int = 0,
                     alpha: float = 0.05) -> dict:
    """Intervals of global ``dice``, ``iou``, ``sensitivity`` (pixel counts per slice) and, given the
    per-slice ``dice``, ``dice_per_case_mean``.

    ``dice`` must be ``NaN`` on slices whose target is empty: like
    :meth:`medpipe.metrics.segmentation.PixelCounter.compute`, the per-case mean is over positive
    slices only.

    Example:
        >>> ci = segmentation_cis(["a", "b"], [8, 5], [2, 0], [0, 5], n_boot=50)
        >>> sorted(ci)
        ['dice', 'iou', 'sensitivity']
    """
    stats = {m: pixel_statistic(m, tp, fp, fn) for m in PIXEL_METRICS}
    if dice is not None:
        stats["dice_per_case_mean"] = mean_statistic(dice)
    return patient_bootstrap(patients, stats, n_boot=n_boot, seed=seed, alpha=alpha)


def multilabel_auroc_cis(patients: Sequence, labels, scores, class_names: Sequence[str], n_boot: int = 1000,
                         seed: int = 0, alpha: float = 0.05) -> dict:
    """Intervals of each label's AUROC and of their mean, over the same patient-level resamples.

    Args:
        patients: the patient id of each row (image).
        labels: 0/1 label vectors ``(N, C)``.
        scores: per-label scores ``(N, C)``.
        class_names: the ``C`` names.
        n_boot: resamples; seed: their seed; alpha: 0.05 for 95 %.

    Returns:
        ``{"auroc_per_class": {name: (lo, hi) or None}, "auroc_mean": (lo, hi) or None}``. A label
        whose column is constant on the evaluated set has no interval (None) and is left out of the
        mean. In each resample the mean is over the labels defined in that resample (a rare label
        without a positive patient drawn drops out of that resample's mean).

    Example:
        >>> ci = multilabel_auroc_cis(list("aabbccdd"), [[1, 0], [0, 1], [1, 0], [0, 0], [0, 1], [1, 1], [0, 0], [1, 0]],
        ...                           [[.9, .2], [.1, .8], [.7, .3], [.2, .1], [.3, .6], [.8, .9], [.4, .2], [.6, .4]],
        ...                           ["a", "b"], n_boot=200)
        >>> sorted(ci), sorted(ci["auroc_per_class"])
        (['auroc_mean', 'auroc_per_class'], ['a', 'b'])
    """
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape or y.shape[1] != len(class_names):
        raise ValueError(f"labels {y.shape} and scores {s.shape} must both be (N, {len(class_names)})")
    per_class: dict = {}
    dists = []
    for k, name in enumerate(class_names):
        col = y[:, k]
        if not 0 < col.sum() < col.size:
            per_class[str(name)] = None
            continue
        d = bootstrap_distribution(patients, auroc_statistic(col, s[:, k]), n_boot, seed)
        per_class[str(name)] = _interval(d, alpha)
        dists.append(d)
    mean = None
    if dists:
        stack = np.stack(dists)
        ok = np.isfinite(stack)
        mean = _interval(_ratio(np.where(ok, stack, 0.0).sum(axis=0), ok.sum(axis=0).astype(np.float64)), alpha)
    return {"auroc_per_class": per_class, "auroc_mean": mean}
