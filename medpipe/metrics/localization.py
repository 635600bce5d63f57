"""Weak localisation scores: a box from a heat map, and how well it meets a reference box (plain numpy).

What Wang et al. (ChestX-ray8, CVPR 2017) did to score heat maps against the NIH boxes, as functions:

* :func:`box_from_map` — threshold a heat map at a fraction of its maximum and box the largest
  connected region above it (the seed projects' 0.5 and 0.8);
* :func:`box_iou` and :func:`box_iobb` — intersection over union, and intersection over the
  *predicted* box's area ("IoBB", Wang et al.);
* :func:`accuracy_at` — the fraction of cases scoring above each threshold ``T`` (their
  accuracy-at-T(IoBB) and T(IoU) tables, ``T`` = 0.1 ... 0.7);
* :func:`gaussian_map` — a centred Gaussian, the control map that says what a box in the middle of
  the image scores without looking at it.

Conventions:

* A box is ``[xmin, ymin, xmax, ymax]`` in continuous pixel coordinates: pixel column ``j`` covers
  ``[j, j + 1)``, so a box around pixels ``j0..j1`` is ``[j0, ..., j1 + 1, ...]`` and its area is
  ``(xmax - xmin) * (ymax - ymin)``. An NIH box ``[x, y, w, h]`` is ``[x, y, x + w, y + h]``.
* Maps are 2D arrays indexed ``[row, column]`` = ``[y, x]``, in the image's own orientation.
* A case is correct at ``T`` when its score is strictly above ``T`` (Wang et al.: "IoBB > T").
* Everything returned is plain python (``float``, ``list``, ``dict``, ``None``): JSON-ready.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["box_area", "box_intersection", "box_iou", "box_iobb", "box_from_map", "scale_box", "xywh_to_xyxy",
           "gaussian_map", "accuracy_at", "LOCALIZATION_THRESHOLDS", "MAP_FRACTIONS"]

#: the T of Wang et al.'s accuracy tables
LOCALIZATION_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
#: fractions of a heat map's maximum the seed projects thresholded at
MAP_FRACTIONS = (0.5, 0.8)


def _box(b, name: str = "box") -> np.ndarray:
    a = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != (4,) or not np.isfinite(a).all():
        raise ValueError(f"{name} must be 4 finite numbers [xmin, ymin, xmax, ymax], got {b!r}")
    return a


def xywh_to_xyxy(box: Sequence[float]) -> list[float]:
    """``[x, y, w, h]`` (the NIH ``Bbox [x,y,w,h]`` columns) -> ``[xmin, ymin, xmax, ymax]``.

    Example:
        >>> xywh_to_xyxy([10, 20, 5, 8])
        [10.0, 20.0, 15.0, 28.0]
    """
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def box_area(box) -> float:
    """Area of a box (0 for an empty or inverted one).

    Example:
        >>> box_area([0, 0, 4, 3]), box_area([5, 5, 4, 9])
        (12.0, 0.0)
    """
    b = _box(box)
    return float(max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]))


def box_intersection(a, b) -> float:
    """Area of the intersection of two boxes.

    Example:
        >>> box_intersection([0, 0, 4, 4], [2, 2, 6, 6])
        4.0
    """
    a, b = _box(a, "a"), _box(b, "b")
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return float(max(0.0, w) * max(0.0, h))


def box_iou(pred, true) -> float:
    """Intersection over union of two boxes (0.0 when both are empty).

    Example:
        >>> box_iou([0, 0, 4, 4], [2, 2, 6, 6])  # 4 / (16 + 16 - 4)
        0.14285714285714285
    """
    inter = box_intersection(pred, true)
    union = box_area(pred) + box_area(true) - inter
    return float(inter / union) if union > 0 else 0.0


def box_iobb(pred, true) -> float:
    """Intersection over the *predicted* box's area (Wang et al.'s IoBB); 0.0 for an empty predicted box.

    A small predicted box inside a large true box scores 1.0: IoBB rewards a heat map that points
    into the finding, not one that outlines it (IoU does that).

    Example:
        >>> box_iobb([1, 1, 3, 3], [0, 0, 10, 10]), box_iobb([0, 0, 4, 4], [2, 2, 6, 6])
        (1.0, 0.25)
    """
    area = box_area(pred)
    return float(box_intersection(pred, true) / area) if area > 0 else 0.0


def box_from_map(heat, fraction: float = 0.5, connectivity: int = 8) -> list[float] | None:
    """The box around the largest connected region of ``heat >= fraction * max(heat)``.

    Args:
        heat: 2D heat map ``[y, x]`` (e.g. a Grad-CAM map at the input's size), any range; NaN is
            treated as the map's minimum.
        fraction: in (0, 1]: the region is where the map reaches this fraction of its maximum.
        connectivity: 8 (diagonal neighbours join a region) or 4.

    Returns:
        ``[xmin, ymin, xmax, ymax]`` in the map's pixels (pixel-edge convention, see the module
        docstring), or None when the map has no positive value (no evidence anywhere: a ReLU'd
        Grad-CAM of a class the image gives no reason for). Ties between equally large regions go
        to the one holding the map's maximum, then to the first in row-major order.

    Example:
        >>> m = np.zeros((6, 8)); m[1:3, 1:3] = 1.0; m[3:6, 4:8] = 0.9
        >>> box_from_map(m, 0.5)  # the larger region (12 px) wins over the brighter one (4 px)
        [4.0, 3.0, 8.0, 6.0]
        >>> box_from_map(m, 0.95)
        [1.0, 1.0, 3.0, 3.0]
    """
    from scipy import ndimage

    if not 0 < float(fraction) <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    a = np.squeeze(np.asarray(heat, dtype=np.float64))
    if a.ndim != 2:
        raise ValueError(f"heat must be a 2D map, got shape {np.shape(heat)}")
    finite = np.isfinite(a)
    if not finite.any():
        return None
    a = np.where(finite, a, a[finite].min())
    top = float(a.max())
    if top <= 0:
        return None
    structure = np.ones((3, 3), bool) if connectivity == 8 else None
    labels, n = ndimage.label(a >= fraction * top, structure=structure)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    peak = labels.flat[int(np.argmax(a))]
    best = max(range(1, n + 1), key=lambda k: (sizes[k], k == peak, -k))
    rows, cols = np.nonzero(labels == best)
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]


def scale_box(box, sx: float, sy: float | None = None) -> list[float]:
    """A box from one pixel grid to another (e.g. from the network input to the stored image).

    Example:
        >>> scale_box([1, 2, 3, 4], 4.0)
        [4.0, 8.0, 12.0, 16.0]
    """
    b = _box(box)
    sy = sx if sy is None else sy
    return [float(b[0] * sx), float(b[1] * sy), float(b[2] * sx), float(b[3] * sy)]


def gaussian_map(shape: Sequence[int], sigma: float = 0.25) -> np.ndarray:
    """A centred isotropic Gaussian ``[y, x]`` of peak 1: the control heat map.

    Args:
        shape: ``(H, W)``.
        sigma: standard deviation as a fraction of the image's side (per axis).

    Thresholded at 0.5 of its maximum it gives a centred box of about 0.59 x the image's side for
    ``sigma`` 0.25 (0.33 x at 0.8).

    Example:
        >>> g = gaussian_map((9, 9)); float(g[4, 4]), box_from_map(g, 0.5)
        (1.0, [2.0, 2.0, 7.0, 7.0])
    """
    h, w = (int(v) for v in shape)
    if h < 1 or w < 1 or not sigma > 0:
        raise ValueError(f"need a positive shape and sigma, got {shape}, {sigma}")
    y = (np.arange(h) + 0.5 - h / 2.0) / (sigma * h)
    x = (np.arange(w) + 0.5 - w / 2.0) / (sigma * w)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))


def accuracy_at(scores: Iterable[float | None], thresholds: Sequence[float] = LOCALIZATION_THRESHOLDS) -> dict:
    """Fraction of cases whose score is above each threshold (a case without a box scores 0).

    Args:
        scores: one IoBB (or IoU) per case; None (no box predicted) counts as 0.
        thresholds: the ``T`` values.

    Returns:
        ``{"0.1": fraction, ...}`` (keys formatted with ``:g``), values None when there is no case.

    Example:
        >>> accuracy_at([0.05, 0.3, 0.55, None], (0.1, 0.5))
        {'0.1': 0.5, '0.5': 0.25}
    """
    v = np.asarray([0.0 if s is None else float(s) for s in scores], dtype=np.float64)
    return {f"{t:g}": (float(np.mean(v > t)) if v.size else None) for t in thresholds}
