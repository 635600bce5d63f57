"""Binary segmentation metrics from pixel counts, and the area-threshold sweep that turns a
segmentation model into a slice classifier.

Conventions:

* Masks are binary: any nonzero value is foreground (threshold probabilities before calling).
  numpy arrays and torch tensors of any (matching) shape are accepted.
* Global metrics (:meth:`PixelCounter.compute`) come from the pixel counts summed over every
  update: dice = 2tp / (2tp + fp + fn), iou = tp / (tp + fp + fn); both are 1.0 when their
  denominator is 0 (target and prediction empty everywhere). sensitivity = tp / (tp + fn) and
  specificity = tn / (tn + fp) are ``None`` when their denominator is 0 (no foreground, or no
  background, pixels in any target), since no prediction can be judged then.
* Per-case Dice: empty target and empty prediction is undefined (``None``); empty target with
  predicted pixels is 0.0; otherwise 2tp / (2tp + fp + fn).
* ``dice_per_case_mean`` averages Dice over the cases whose TARGET is non-empty (positive slices)
  only; it is ``None`` when there is no such case. Empty-target cases never enter it, even when
  the model predicted foreground there: those show up in ``empty_case_false_positive_rate``, the
  fraction of empty-target cases with any predicted foreground (``None`` when there are none).
* Area sweep: a slice is called positive when its predicted foreground area ``>= A``; it is
  :func:`medpipe.metrics.thresholds.threshold_sweep` over the areas, so all ratios with a zero
  denominator are 0.0 there too.
* Everything returned is plain python ``int``/``float``/``list``/``dict``/``None`` (JSON-ready).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np

from medpipe.metrics.thresholds import (SWEEP_METRICS, _as_binary_labels, _to_numpy,
                                        choose_threshold, threshold_sweep)

__all__ = ["pixel_confusion", "PixelCounter", "area_threshold_sweep", "choose_area_threshold",
           "SWEEP_METRICS"]


def _to_bool(x) -> np.ndarray:
    a = _to_numpy(x)
    return a if a.dtype == bool else a != 0


def pixel_confusion(pred, target) -> dict:
    """Pixel confusion counts of a binary prediction against a binary target.

    Args:
        pred: predicted mask (numpy array or torch tensor, any shape; nonzero = foreground).
        target: ground-truth mask, same shape as ``pred``.

    Returns:
        ``{"tp", "fp", "fn", "tn"}`` as python ints.

    Raises:
        ValueError: the shapes differ.

    Example:
        >>> pixel_confusion([[1, 1, 0], [0, 1, 0]], [[0, 1, 1], [0, 1, 0]])
        {'tp': 2, 'fp': 1, 'fn': 1, 'tn': 2}
    """
    p = _to_bool(pred)
    t = _to_bool(target)
    if p.shape != t.shape:
        raise ValueError(f"pred shape {p.shape} != target shape {t.shape}")
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p)) - tp
    fn = int(np.count_nonzero(t)) - tp
    tn = int(p.size) - tp - fp - fn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _dice(tp: int, fp: int, fn: int, empty=None):
    den = 2 * tp + fp + fn
    return empty if den == 0 else 2.0 * tp / den


class PixelCounter:
    """Accumulates pixel counts case by case (slice, volume, ...) and computes Dice & co.

    See the module docstring for the conventions on empty masks.

    Example:
        >>> c = PixelCounter()
        >>> _ = c.update([[1, 1], [0, 0]], [[1, 0], [0, 0]], case_id="a")
        >>> _ = c.update([[0, 0], [0, 0]], [[0, 0], [0, 0]], case_id="b")  # both empty
        >>> m = c.compute()
        >>> round(m["dice"], 4), m["dice_per_case_mean"], m["per_case"][1]["dice"]
        (0.6667, 0.6666666666666666, None)
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every case."""
        self._cases: list[dict] = []

    def __len__(self) -> int:
        return len(self._cases)

    def update(self, pred, target, case_id: Hashable | None = None) -> dict:
        """Add one case.

        Args:
            pred: predicted mask of the case (numpy/torch, any shape, nonzero = foreground).
            target: its ground-truth mask, same shape.
            case_id: a name for the case (defaults to its running index); must be JSON-friendly
                if the result is to be serialized.

        Returns:
            The case's record: ``{case_id, dice, tp, fp, fn, tn, target_area, pred_area}``.

        Example:
            >>> PixelCounter().update([1, 0, 0], [1, 1, 0], case_id=7)["dice"]
            0.6666666666666666
        """
        c = pixel_confusion(pred, target)
        rec = {
            "case_id": len(self._cases) if case_id is None else case_id,
            "dice": _dice(c["tp"], c["fp"], c["fn"], empty=None),
            **c,
            "target_area": c["tp"] + c["fn"],
            "pred_area": c["tp"] + c["fp"],
        }
        self._cases.append(rec)
        return rec

    def merge(self, other: "PixelCounter") -> "PixelCounter":
        """Add the cases of another counter (e.g. gathered from another DDP rank); returns self."""
        self._cases.extend(dict(c) for c in other._cases)
        return self

    def update_batch(self, preds, targets, case_ids: Sequence[Hashable] | None = None) -> list[dict]:
        """Add a batch of cases, one per entry along the first axis (e.g. ``(B, 1, H, W)``).

        Args:
            preds: predicted masks, first axis = case.
            targets: ground-truth masks, same shape.
            case_ids: optional ids, one per case.

        Returns:
            The records of the added cases.

        Example:
            >>> import numpy as np
            >>> len(PixelCounter().update_batch(np.zeros((3, 4, 4)), np.zeros((3, 4, 4))))
            3
        """
        if case_ids is not None and len(case_ids) != len(preds):
            raise ValueError(f"{len(case_ids)} case_ids for {len(preds)} cases")
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        return [self.update(preds[i], targets[i], None if case_ids is None else case_ids[i])
                for i in range(len(preds))]

    def compute(self) -> dict:
        """Metrics over every case added so far.

        Returns:
            A JSON-serializable dict with ``dice``, ``iou``, ``sensitivity``, ``specificity``
            (from the global pixel counts), ``dice_per_case_mean`` (over non-empty-target cases),
            ``pixel_confusion`` (``{tp, fp, fn, tn}`` summed), ``n_cases``, ``n_positive_cases``,
            ``empty_case_false_positive_rate`` and ``per_case`` (list of case records, in order).

        Raises:
            ValueError: no case was added.

        Example:
            >>> c = PixelCounter(); _ = c.update([0, 1], [0, 0])  # false positive on an empty case
            >>> m = c.compute(); m["dice"], m["dice_per_case_mean"], m["empty_case_false_positive_rate"]
            (0.0, None, 1.0)
        """
        if not self._cases:
            raise ValueError("PixelCounter.compute() called before any update()")
        tp, fp, fn, tn = (sum(c[k] for c in self._cases) for k in ("tp", "fp", "fn", "tn"))
        pos = [c for c in self._cases if c["target_area"] > 0]
        empty = [c for c in self._cases if c["target_area"] == 0]
        iou_den = tp + fp + fn
        return {
            "dice": _dice(tp, fp, fn, empty=1.0),
            "iou": 1.0 if iou_den == 0 else tp / iou_den,
            "sensitivity": None if tp + fn == 0 else tp / (tp + fn),
            "specificity": None if tn + fp == 0 else tn / (tn + fp),
            "dice_per_case_mean": float(np.mean([c["dice"] for c in pos])) if pos else None,
            "pixel_confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
            "n_cases": len(self._cases),
            "n_positive_cases": len(pos),
            "empty_case_false_positive_rate":
                sum(c["pred_area"] > 0 for c in empty) / len(empty) if empty else None,
            "per_case": [dict(c) for c in self._cases],
        }


def _default_area_thresholds(areas: np.ndarray, max_thresholds: int) -> np.ndarray:
    u = np.unique(areas)
    if u.size + 1 > max_thresholds:
        # quantiles of the (nonzero) areas as they occur, so dense regions get more thresholds;
        # "nearest" keeps them actual area values; min and max are always included
        nz = areas[areas > 0] if np.any(areas > 0) else areas
        u = np.unique(np.quantile(nz, np.linspace(0.0, 1.0, max_thresholds - 1), method="nearest"))
    return np.unique(np.concatenate([np.zeros(1, dtype=u.dtype), u]))


def area_threshold_sweep(pred_areas, labels, thresholds: Iterable[float] | None = None,
                         max_thresholds: int = 200) -> list[dict]:
    """Slice-level metrics of the rule "positive when predicted foreground area >= A" for many A.

    Args:
        pred_areas: predicted foreground area per slice (pixels, or any unit; >= 0).
        labels: 0/1 slice labels (1 = the slice has a lesion).
        thresholds: the areas A to try (sorted, deduplicated). Default: 0 plus the sorted unique
            values of ``pred_areas``; if that exceeds ``max_thresholds``, 0 plus about
            ``max_thresholds - 1`` quantile-spaced values of the nonzero areas (always including
            the smallest and the largest).
        max_thresholds: cap for the default thresholds.

    Returns:
        One dict per threshold, ascending: ``{"area": A, "accuracy", "precision", "recall",
        "f1", "specificity", "tp", "fp", "fn", "tn"}``. ``A`` is an int when the areas are
        integers. A = 0 calls every slice positive.

    Raises:
        ValueError: empty input, lengths differ, labels other than 0/1, negative or non-finite
            areas.

    Example:
        >>> sweep = area_threshold_sweep([0, 0, 5, 50, 80], [0, 0, 0, 1, 1])
        >>> [(r["area"], round(r["f1"], 3)) for r in sweep]
        [(0, 0.571), (5, 0.8), (50, 1.0), (80, 0.667)]
    """
    y = _as_binary_labels(labels, "labels")
    a = _to_numpy(pred_areas).ravel()
    if a.size != y.size:
        raise ValueError(f"pred_areas has {a.size} values but labels has {y.size}")
    if not np.issubdtype(a.dtype, np.number) or a.dtype == bool:
        a = a.astype(np.float64)
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError("pred_areas must be finite and >= 0")
    if thresholds is None:
        thresholds = _default_area_thresholds(a, max_thresholds)
    return [{"area": r["threshold"], **{k: r[k] for k in SWEEP_METRICS},
             **{k: r[k] for k in ("tp", "fp", "fn", "tn")}}
            for r in threshold_sweep(y, a, thresholds)]


def choose_area_threshold(sweep: Sequence[dict], metric: str = "f1"):
    """The area threshold of a sweep that maximizes ``metric``; ties go to the smallest area.

    Args:
        sweep: rows from :func:`area_threshold_sweep` (any order).
        metric: a metric key of the rows: ``accuracy``, ``precision``, ``recall``, ``f1`` or
            ``specificity``.

    Returns:
        The chosen area ``A`` (int or float, as in the sweep).

    Raises:
        ValueError: empty sweep or unknown metric.

    Example:
        >>> choose_area_threshold(area_threshold_sweep([0, 0, 5, 50, 80], [0, 0, 0, 1, 1]))
        50
    """
    return choose_threshold(sweep, metric, key="area")
