"""Post-processing of predicted masks learned on validation: the foreground probability threshold and
the removal of connected components below a size.

nnU-Net's post-processing keeps a step only when it improves the validation Dice. Here the steps are
"foreground where its probability exceeds ``fg_threshold``" (0.5 = the argmax of two classes) and
"remove every connected component (8-connected, per slice, at the slice's native resolution)
smaller than ``min_component_px`` pixels". :class:`ComponentSweep` collects, slice by slice and for
each candidate probability threshold, the size of every predicted component and its overlap with
the truth, from which the global pixel counts at any size threshold follow without relabelling;
:meth:`ComponentSweep.choose` picks the pair with the best global Dice and keeps it only if it beats no post-processing (0.5, 0)
both on all slices and cross-fitted (each half of the patients scored with the pair chosen on the
other half): an improvement that appears only on the slices that chose it is not kept.

Example:
    >>> import numpy as np
    >>> sw = ComponentSweep(thresholds=(0, 3), prob_thresholds=(0.5,))
    >>> pred = np.zeros((6, 6), np.uint8); pred[0:3, 0:3] = 1; pred[5, 5] = 1  # a lesion and a speck
    >>> truth = np.zeros((6, 6), np.uint8); truth[0:3, 0:3] = 1
    >>> sw.update(pred, truth, patient="1")
    >>> r = sw.choose(); r["min_component_px"], round(r["dice_raw"], 3), r["dice_postprocessed"]
    (3, 0.947, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["remove_small_components", "component_stats", "ComponentSweep", "DEFAULT_THRESHOLDS",
           "DEFAULT_PROB_THRESHOLDS", "postprocess"]

#: candidate minimum component sizes, pixels at the stored slice's resolution (0 = no post-processing)
DEFAULT_THRESHOLDS = (0, 10, 20, 35, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1200, 1600)
#: candidate foreground probability thresholds (0.5 = the plain argmax, no post-processing)
DEFAULT_PROB_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6)


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage

    return ndimage.label(np.asarray(mask) > 0, structure=np.ones((3,) * np.asarray(mask).ndim, bool))


def remove_small_components(mask, min_px: int) -> np.ndarray:
    """``mask`` (2D or 3D, nonzero = foreground) without its connected components smaller than ``min_px`` pixels.

    Args:
        mask: the predicted mask.
        min_px: smallest component kept; 0 or 1 returns the mask unchanged (as uint8 0/1).

    Returns:
        A uint8 0/1 array of the mask's shape.

    Example:
        >>> m = np.zeros((5, 5), np.uint8); m[0:2, 0:2] = 1; m[4, 4] = 1
        >>> int(remove_small_components(m, 2).sum())
        4
    """
    m = (np.asarray(mask) > 0).astype(np.uint8)
    if int(min_px) <= 1 or not m.any():
        return m
    lab, n = _label(m)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= int(min_px)
    keep[0] = False
    return keep[lab].astype(np.uint8)


def component_stats(pred, target) -> tuple[np.ndarray, np.ndarray, int]:
    """``(sizes, overlaps, target_area)``: each predicted component's pixel count, how many of its pixels are
    true foreground, and the truth's area.

    Example:
        >>> p = np.array([[1, 1, 0, 1]]); t = np.array([[1, 0, 0, 0]])
        >>> s, o, a = component_stats(p, t); s.tolist(), o.tolist(), a
        ([2, 1], [1, 0], 1)
    """
    t = np.asarray(target) > 0
    lab, n = _label(pred)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    overlaps = np.bincount(lab[t].ravel(), minlength=n + 1)[1:] if n else np.zeros(0, np.int64)
    return sizes.astype(np.int64), overlaps.astype(np.int64), int(t.sum())


def postprocess(prob_fg, fg_threshold: float = 0.5, min_component_px: int = 0) -> np.ndarray:
    """The learned post-processing applied to a foreground probability map: ``prob > fg_threshold``, then
    components below ``min_component_px`` removed (uint8 0/1).

    Example:
        >>> p = np.array([[0.45, 0.45, 0.0, 0.9]])
        >>> postprocess(p).tolist(), postprocess(p, 0.4).tolist(), postprocess(p, 0.4, 2).tolist()
        ([[0, 0, 0, 1]], [[1, 1, 0, 1]], [[1, 1, 0, 0]])
    """
    return remove_small_components(np.asarray(prob_fg) > float(fg_threshold), min_component_px)


class ComponentSweep:
    """Global Dice of the predictions at each (probability threshold, minimum component size) pair.

    Args:
        thresholds: candidate minimum sizes in pixels; 0 (no removal) is always included.
        prob_thresholds: candidate foreground probability thresholds; 0.5 (the argmax) is always included.
    """

    def __init__(self, thresholds: Sequence[int] = DEFAULT_THRESHOLDS,
                 prob_thresholds: Sequence[float] = DEFAULT_PROB_THRESHOLDS) -> None:
        self.thresholds = np.array(sorted({0, *(int(t) for t in thresholds)}), dtype=np.int64)
        self.prob_thresholds = np.array(sorted({0.5, *(float(t) for t in prob_thresholds)}))
        self.rows: list[tuple[str, np.ndarray]] = []  # (patient, [tp, fp, fn] per (prob, size) pair)

    def update(self, prob_fg, target, patient: str = "") -> None:
        """Add one slice: its foreground probability map (or a 0/1 mask) and true mask, same (native) size."""
        prob_fg = np.asarray(prob_fg, dtype=np.float32)
        out = np.zeros((len(self.prob_thresholds), len(self.thresholds), 3), np.int64)
        for i, t in enumerate(self.prob_thresholds):
            sizes, overlaps, area = component_stats(prob_fg > t, target)
            kept = sizes[None, :] >= self.thresholds[:, None]  # (sizes, components)
            tp = (kept * overlaps[None, :]).sum(1)
            fp = (kept * (sizes - overlaps)[None, :]).sum(1)
            out[i] = np.stack([tp, fp, area - tp], axis=1)
        self.rows.append((str(patient), out))

    def extend(self, other: ComponentSweep) -> ComponentSweep:
        """Add the slices of another sweep (e.g. gathered from another DDP rank); returns self."""
        self.rows.extend(other.rows)
        return self

    @staticmethod
    def _dice(counts: np.ndarray) -> np.ndarray:
        tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
        den = 2 * tp + fp + fn
        return np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0)

    def _counts(self, patients=None) -> np.ndarray:
        sel = [c for p, c in self.rows if patients is None or p in patients]
        shape = (len(self.prob_thresholds), len(self.thresholds), 3)
        return np.sum(sel, axis=0) if sel else np.zeros(shape, np.int64)

    @property
    def _plain(self) -> tuple[int, int]:
        return int(np.flatnonzero(np.isclose(self.prob_thresholds, 0.5))[0]), 0

    def _best(self, counts: np.ndarray) -> tuple[int, int]:
        """The (prob, size) index pair kept: the best Dice, if it beats no post-processing, else the plain one."""
        dice = self._dice(counts)
        best = np.unravel_index(int(np.argmax(dice)), dice.shape)
        plain = self._plain
        return (int(best[0]), int(best[1])) if dice[best] > dice[plain] + 1e-9 else plain

    def choose(self) -> dict:
        """The learned post-processing and the evidence for it.

        Returns:
            ``fg_threshold`` and ``min_component_px`` (0.5 and 0: post-processing did not help and is
            off), ``dice_raw``, ``dice_postprocessed`` (of the kept choice, on all slices), the pair chosen
            on all slices whatever the outcome (``chosen_on_all_slices``), the cross-fitted
            ``dice_postprocessed_crossfit`` and its per-half choices, and the whole ``sweep``.
        """
        from medpipe.evaluation.seg_to_cls import split_patients

        total = self._counts()
        i, j = self._best(total)
        dice = self._dice(total)
        plain = self._plain
        positive = {p for p, c in self.rows if c[plain][0] + c[plain][2] > 0}
        halves = split_patients([p for p, _ in self.rows], positive=positive)
        cross = np.zeros(3, np.int64)
        folds = []
        if all(halves):
            for mine, other in (halves, halves[::-1]):
                a, b = self._best(self._counts(set(other)))
                cross += self._counts(set(mine))[a, b]
                folds.append({"patients": list(mine), "fg_threshold": float(self.prob_thresholds[a]),
                              "min_component_px": int(self.thresholds[b])})
        else:
            cross = total[i, j]
        chosen_on_all = {"fg_threshold": float(self.prob_thresholds[i]), "min_component_px": int(self.thresholds[j]),
                         "dice": float(dice[i, j])}
        held_out = float(self._dice(cross))
        if folds and held_out <= dice[plain] + 1e-9:  # it helps only on the slices that chose it: off
            i, j = plain
        return {
            "fg_threshold": float(self.prob_thresholds[i]),
            "min_component_px": int(self.thresholds[j]),
            "kept": bool((i, j) != plain),
            "dice_raw": float(dice[plain]),
            "dice_postprocessed": float(dice[i, j]),
            "dice_postprocessed_crossfit": held_out,
            "chosen_on_all_slices": chosen_on_all,
            "crossfit_folds": folds,
            "slices": len(self.rows),
            "rule": "foreground where its probability > fg_threshold, then 8-connected components smaller than "
                    "min_component_px pixels removed, per slice at native resolution; kept only when it raises "
                    "the global Dice, both on all slices and cross-fitted (each half of the patients scored "
                    "with the choice of the other half)",
            "sweep": [{"fg_threshold": float(t), "min_component_px": int(m), "dice": float(dice[a, b]),
                       "tp": int(total[a, b, 0]), "fp": int(total[a, b, 1]), "fn": int(total[a, b, 2])}
                      for a, t in enumerate(self.prob_thresholds) for b, m in enumerate(self.thresholds)],
        }
