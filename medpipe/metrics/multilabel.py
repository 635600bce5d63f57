"""Multi-label (any number of C labels per sample) classification metrics from 0/1 label vectors and
per-label probabilities (plain numpy; scikit-learn for AUROC and average precision).

Conventions:

* Label ``k`` of a sample is predicted positive when ``y_prob[:, k] >= thresholds[k]``.
* A class whose column of ``y_true`` holds a single value (no positives, or no negatives) has no
  ranking metric: its ``auroc`` and ``auprc`` (average precision) are ``None`` and its name is in
  ``undefined_classes``. ``auroc_mean``/``auprc_mean`` average the defined classes only and are
  ``None`` when there is none (sklearn's macro average over the same classes).
* Per class at the threshold: recall = tp/(tp+fn) is ``None`` without positives; specificity =
  tn/(tn+fp) is ``None`` without negatives; precision = tp/(tp+fp) is ``0.0`` when nothing is
  predicted but the class has positives (sklearn's ``zero_division=0``) and ``None`` when there is
  neither a positive nor a prediction; f1 = 2tp/(2tp+fp+fn) is ``None`` in that same "nothing
  to judge" case (no positives in ``y_true`` and none predicted), and ``0.0`` when there are no
  positives but some predictions.
* ``f1_macro`` averages the per-class f1 over the classes where it is defined (sklearn's
  ``f1_score(average="macro", zero_division=np.nan)``); ``f1_micro`` is 2TP/(2TP+FP+FN) over all
  labels pooled, ``None`` when that is 0/0. ``subset_accuracy`` is the fraction of samples with
  every label right, ``hamming_loss`` the fraction of wrong labels.
* Everything returned is a plain python ``int``/``float``/``list``/``dict``/``None`` (JSON-ready).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medpipe.metrics.multiclass import _class_names, _mean, _ratio
from medpipe.metrics.thresholds import _check_01, _to_numpy

__all__ = ["multilabel_metrics", "best_thresholds_per_class"]


def _as_label_matrix(y_true, name: str = "y_true") -> np.ndarray:
    y = _to_numpy(y_true)
    if y.ndim != 2:
        raise ValueError(f"{name} must be 0/1 label vectors of shape (N, C), got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} is empty (shape {y.shape})")
    return _check_01(y, name)


def _as_prob_matrix(y_prob, shape: tuple[int, int], name: str = "y_prob") -> np.ndarray:
    p = _to_numpy(y_prob).astype(np.float64)
    if p.shape != shape:
        raise ValueError(f"{name} must have the shape of y_true {shape}, got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return p


def _as_thresholds(thresholds, n_classes: int) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim == 0:
        t = np.full(n_classes, float(t))
    if t.shape != (n_classes,):
        raise ValueError(f"thresholds must be one number or one per class ({n_classes}), "
                         f"got {np.shape(thresholds)}")
    if np.isnan(t).any():
        raise ValueError("thresholds contains NaN")
    return t


def multilabel_metrics(y_true, y_prob, class_names: Sequence[str],
                       thresholds: float | Sequence[float] = 0.5) -> dict:
    """Multi-label metrics: per-class and mean AUROC/AUPRC, F1 (micro, macro) and more at thresholds.

    Args:
        y_true: 0/1 (or bool) label vectors, shape ``(N, C)`` (numpy, list or torch tensor).
        y_prob: per-label probabilities (sigmoid outputs or any scores), shape ``(N, C)``.
        class_names: the ``C`` label names, in column order (keys of the per-class dicts).
        thresholds: one cut for every label, or one per label (e.g. from
            :func:`best_thresholds_per_class`); positive when ``y_prob >= threshold``.

    Returns:
        A JSON-serializable dict: ``auroc_per_class``/``auprc_per_class`` (``{name: float or
        None}``), ``auroc_mean``/``auprc_mean``, ``f1_micro``, ``f1_macro``, ``subset_accuracy``,
        ``hamming_loss``, ``per_class`` (``{name: {auroc, auprc, precision, recall, f1,
        specificity, support, prevalence, threshold}}``), ``undefined_classes`` (names whose
        ``y_true`` column is constant), ``n`` and ``num_classes``. See the module docstring for
        ``None`` values.

    Raises:
        ValueError: empty or duplicate class names, shapes that do not match, labels other than
            0/1, non-finite scores, a wrong number of thresholds.

    Example:
        >>> m = multilabel_metrics([[1, 0], [0, 0], [1, 0]], [[.9, .2], [.4, .1], [.6, .7]],
        ...                        ["ich", "fracture"])
        >>> m["auroc_per_class"], m["undefined_classes"], m["per_class"]["fracture"]["f1"]
        ({'ich': 1.0, 'fracture': None}, ['fracture'], 0.0)
        >>> round(m["f1_micro"], 3), m["f1_macro"], round(m["hamming_loss"], 3)
        (0.8, 0.5, 0.167)
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    names = _class_names(class_names, min_classes=1)
    y = _as_label_matrix(y_true)
    n, c = y.shape
    if c != len(names):
        raise ValueError(f"y_true has {c} label columns but class_names has {len(names)} names")
    p = _as_prob_matrix(y_prob, (n, c))
    thr = _as_thresholds(thresholds, c)
    pred = p >= thr

    pos = y == 1
    tp = (pred & pos).sum(axis=0)
    fp = (pred & ~pos).sum(axis=0)
    fn = (~pred & pos).sum(axis=0)
    tn = n - tp - fp - fn
    support = pos.sum(axis=0)

    per_class: dict[str, dict] = {}
    for k, name in enumerate(names):
        defined = 0 < support[k] < n
        has_pos = support[k] > 0
        per_class[name] = {
            "auroc": float(roc_auc_score(y[:, k], p[:, k])) if defined else None,
            "auprc": float(average_precision_score(y[:, k], p[:, k])) if defined else None,
            "precision": _ratio(int(tp[k]), int(tp[k] + fp[k]), 0.0 if has_pos else None),
            "recall": _ratio(int(tp[k]), int(support[k])),
            "f1": _ratio(2 * int(tp[k]), int(2 * tp[k] + fp[k] + fn[k])),
            "specificity": _ratio(int(tn[k]), int(tn[k] + fp[k])),
            "support": int(support[k]),
            "prevalence": float(support[k] / n),
            "threshold": float(thr[k]),
        }

    auroc = {nm: r["auroc"] for nm, r in per_class.items()}
    auprc = {nm: r["auprc"] for nm, r in per_class.items()}
    TP, FP, FN = int(tp.sum()), int(fp.sum()), int(fn.sum())
    return {
        "auroc_per_class": auroc,
        "auroc_mean": _mean(auroc.values()),
        "auprc_per_class": auprc,
        "auprc_mean": _mean(auprc.values()),
        "f1_micro": _ratio(2 * TP, 2 * TP + FP + FN),
        "f1_macro": _mean(r["f1"] for r in per_class.values()),
        "subset_accuracy": float(np.mean((pred == pos).all(axis=1))),
        "hamming_loss": float(np.mean(pred != pos)),
        "per_class": per_class,
        "undefined_classes": [nm for nm, v in auroc.items() if v is None],
        "n": int(n),
        "num_classes": int(c),
    }


def best_thresholds_per_class(y_true, y_prob, metric: str = "f1", default: float = 0.5) -> list[float]:
    """Per-label decision thresholds, each maximizing ``metric`` on that label's column.

    Each column goes through :func:`medpipe.metrics.classification.best_threshold` (candidates =
    the column's unique scores, rule ``>=``, ties to the smallest).

    Args:
        y_true: 0/1 label vectors, shape ``(N, C)``.
        y_prob: per-label scores, shape ``(N, C)``.
        metric: ``"f1"`` or ``"youden"``.
        default: the threshold of a label where ``metric`` cannot choose (no positives; for
            ``"youden"`` also no negatives).

    Returns:
        ``C`` python floats, ready for ``multilabel_metrics(..., thresholds=...)``.

    Raises:
        ValueError: unknown metric, or bad shapes/labels/scores.

    Example:
        >>> best_thresholds_per_class([[1, 0], [0, 0], [1, 1]], [[.9, .2], [.4, .1], [.6, .7]])
        [0.6, 0.7]
    """
    from medpipe.metrics.classification import best_threshold

    if metric not in ("f1", "youden"):
        raise ValueError(f"metric must be 'f1' or 'youden', got {metric!r}")
    y = _as_label_matrix(y_true)
    p = _as_prob_matrix(y_prob, y.shape)
    out = []
    for k in range(y.shape[1]):
        n_pos = int(y[:, k].sum())
        undefined = n_pos == 0 or (metric == "youden" and n_pos == y.shape[0])
        out.append(float(default) if undefined else best_threshold(y[:, k], p[:, k], metric))
    return out


def weighted_log_loss(y_true, y_prob, class_names: Sequence[str], weights: dict | Sequence[float] | None = None,
                      eps: float = 1e-7) -> float:
    """Weighted multi-label logarithmic loss, as scored in the RSNA 2019 haemorrhage challenge.

    Each label's binary log loss, averaged over the records, then averaged over the labels with
    ``weights`` (the challenge weights ``any`` 2 and each subtype 1). Probabilities are clipped to
    ``[eps, 1 - eps]``. Equal to a per-record weighted mean averaged over the records.

    Args:
        y_true: 0/1 labels ``(N, C)``.
        y_prob: probabilities ``(N, C)``.
        class_names: the ``C`` names in column order.
        weights: ``{name: weight}`` (absent names weigh 1) or one weight per column; None: all 1.
        eps: clipping of the probabilities.

    Example:
        >>> round(weighted_log_loss([[1, 0]], [[0.9, 0.2]], ["any", "epidural"], {"any": 2}), 4)
        0.1446
    """
    names = _class_names(class_names, min_classes=1)
    y = _as_label_matrix(y_true).astype(np.float64)
    p = np.clip(_as_prob_matrix(y_prob, y.shape).astype(np.float64), eps, 1 - eps)
    if weights is None:
        w = np.ones(len(names))
    elif isinstance(weights, dict):
        unknown = set(weights) - set(names)
        if unknown:
            raise ValueError(f"weights name unknown classes {sorted(unknown)} (classes: {names})")
        w = np.asarray([float(weights.get(n, 1.0)) for n in names])
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(names),):
            raise ValueError(f"{len(w)} weights for {len(names)} classes")
    per_class = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=0)
    return float((per_class * w).sum() / w.sum())
