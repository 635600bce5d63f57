"""Overlays as RGB arrays (for TensorBoard): prediction drawn on a slice, a grid of them, and which slices.

:mod:`medpipe.visualization.plots` writes PNG files through matplotlib figures (evaluation
reports); the functions here draw straight into ``uint8`` arrays of shape ``(H, W, 3)`` with numpy
and Pillow, cheap enough to run after every validation:

- :func:`segmentation_tile` — true contour (green) and predicted mask (red, translucent);
- :func:`heatmap_tile` — a heat map (e.g. Grad-CAM) over the slice;
- :func:`boxes_tile` — true boxes (green) and predicted boxes (red, with scores);
- :func:`tile_grid` — tiles side by side;
- :func:`pick_slices` — a fixed, deterministic choice of slices to watch (positives and negatives
  from different patients);
- :func:`strongest_plane` — the axial plane of a volume (and of its heat map) to draw for a 3-D model.

Every tile is the slice min-max scaled to gray, resized to ``size`` pixels on its longer side,
with an optional one-line caption drawn on a dark band at its top.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["segmentation_tile", "heatmap_tile", "boxes_tile", "tile_grid", "pick_slices", "is_positive",
           "strongest_plane", "TRUE_RGB", "PRED_RGB"]

#: colours of the truth (green) and the prediction (red), as in the evaluation PNGs
TRUE_RGB = (0, 230, 0)
PRED_RGB = (255, 40, 40)


def strongest_plane(image, heat=None) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """What to draw of an image and its heat map: a 2D image as it is; of a volume ``(D, H, W)`` the
    axial plane where the heat map sums highest (the middle plane without a map).

    Returns:
        ``(image plane (H, W), heat plane or None, plane index or None for a 2D image)``.

    Example:
        >>> h = np.zeros((5, 4, 4)); h[3, 1, 1] = 1
        >>> img, hp, k = strongest_plane(np.ones((5, 4, 4)), h)
        >>> img.shape, float(hp.max()), k
        ((4, 4), 1.0, 3)
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return image, None if heat is None else np.asarray(heat), None
    if heat is None:
        k = image.shape[0] // 2
        return image[k], None, k
    heat = np.asarray(heat).reshape(image.shape)
    sums = heat.reshape(len(heat), -1).sum(1)
    # a map without depth (e.g. a 1-plane map upsampled): the middle plane, not the first
    k = int(np.argmax(sums)) if np.ptp(sums) > 1e-6 * max(1e-12, float(np.abs(sums).max())) else len(heat) // 2
    return image[k], heat[k], k


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _plane(x, name: str) -> np.ndarray:
    a = np.squeeze(_np(x))
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2D (singleton axes allowed), got shape {_np(x).shape}")
    return a


def _gray01(image) -> np.ndarray:
    a = _plane(image, "image").astype(np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros_like(a)
    lo, hi = a[finite].min(), a[finite].max()
    a = np.where(finite, a, lo)
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _out_shape(shape, size: int | None) -> tuple[int, int]:
    h, w = shape
    if not size:
        return h, w
    s = float(size) / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def _resize(a: np.ndarray, shape: tuple[int, int], nearest: bool) -> np.ndarray:
    if a.shape[:2] == tuple(shape):
        return a
    from PIL import Image

    img = Image.fromarray(a.astype(np.float32), mode="F")
    img = img.resize((shape[1], shape[0]), Image.NEAREST if nearest else Image.BILINEAR)
    return np.asarray(img, dtype=np.float64)


def _base(image, size: int | None) -> np.ndarray:
    g = _gray01(image)
    g = np.clip(_resize(g, _out_shape(g.shape, size), nearest=False), 0.0, 1.0)
    return np.repeat((g * 255.0 + 0.5).astype(np.uint8)[..., None], 3, axis=2)


def _mask_at(mask, like: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    if mask is None:
        return np.zeros(shape, dtype=bool)
    m = _plane(mask, name)
    if m.shape != like.shape:
        raise ValueError(f"{name} shape {m.shape} does not match the image {like.shape}")
    return _resize((m != 0).astype(np.float32), shape, nearest=True) > 0.5


def _edge(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The pixels of ``mask`` within ``width`` of its boundary (4-neighbourhood erosion)."""
    inner = mask.copy()
    for _ in range(max(1, width)):
        p = np.pad(inner, 1)
        inner = inner & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def _blend(rgb: np.ndarray, where: np.ndarray, color, alpha: float) -> None:
    c = np.asarray(color, dtype=np.float64)
    rgb[where] = ((1.0 - alpha) * rgb[where] + alpha * c + 0.5).astype(np.uint8)


def _font(px: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=px)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _caption(rgb: np.ndarray, text: str | None) -> np.ndarray:
    if not text:
        return rgb
    from PIL import Image, ImageDraw

    h, w = rgb.shape[:2]
    px = max(9, min(16, w // 20))
    band = px + 6
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img, "RGBA")
    draw.rectangle((0, 0, w, band), fill=(0, 0, 0, 170))
    draw.text((3, 2), text, fill=(255, 255, 255), font=_font(px))
    return np.asarray(img).copy()


def segmentation_tile(image, mask_true=None, mask_pred=None, caption: str | None = None, size: int | None = 256,
                      alpha: float = 0.55) -> np.ndarray:
    """The slice with the predicted mask filled in red (translucent) and the true contour in green.

    Args:
        image: 2D slice, any range (singleton axes allowed).
        mask_true: ground-truth mask of the same shape (nonzero = foreground), or None.
        mask_pred: predicted mask of the same shape, or None.
        caption: one line drawn at the top (e.g. the slice and its Dice).
        size: pixels of the longer side of the tile (None: the slice's own size).
        alpha: opacity of the predicted mask.

    Returns:
        ``uint8`` array ``(H, W, 3)``.

    Example:
        >>> img = np.zeros((32, 32)); gt = np.zeros((32, 32)); gt[8:20, 8:20] = 1
        >>> segmentation_tile(img, gt, gt > 0, size=64).shape
        (64, 64, 3)
    """
    rgb = _base(image, size)
    shape = rgb.shape[:2]
    like = _plane(image, "image")
    mt = _mask_at(mask_true, like, shape, "mask_true")
    mp = _mask_at(mask_pred, like, shape, "mask_pred")
    _blend(rgb, mp, PRED_RGB, alpha)
    width = max(1, round(max(shape) / 160))
    rgb[_edge(mt, width)] = TRUE_RGB
    return _caption(rgb, caption)


def _jet(x: np.ndarray) -> np.ndarray:
    """The jet colour map of values in [0, 1] (piecewise-linear), as floats ``(..., 3)``."""
    x = np.clip(x, 0.0, 1.0)[..., None]
    return np.clip(1.5 - np.abs(4.0 * x - np.array([3.0, 2.0, 1.0])), 0.0, 1.0)


def heatmap_tile(image, heatmap, caption: str | None = None, size: int | None = 256, alpha: float = 0.4) -> np.ndarray:
    """The slice under a jet-coloured heat map (min-max scaled; stretched over the slice when coarser).

    A constant map (e.g. Grad-CAM of a 1x1 feature map) is not drawn: the tile is the slice alone.

    Example:
        >>> heatmap_tile(np.random.rand(32, 32), np.random.rand(4, 4), caption="p(phe) 0.81", size=64).shape
        (64, 64, 3)
    """
    rgb = _base(image, size)
    raw = _plane(heatmap, "heatmap")
    if not np.ptp(raw[np.isfinite(raw)]) if np.isfinite(raw).any() else True:
        return _caption(rgb, caption)  # a flat map says nothing: the slice alone, not a uniform tint
    heat = _resize(_gray01(raw), rgb.shape[:2], nearest=False)
    out = (1.0 - alpha) * rgb.astype(np.float64) + alpha * 255.0 * _jet(heat)
    return _caption((out + 0.5).clip(0, 255).astype(np.uint8), caption)


def boxes_tile(image, boxes_true=None, boxes_pred=None, scores: Sequence[float] | None = None,
               caption: str | None = None, size: int | None = 256) -> np.ndarray:
    """The slice with true boxes (green) and predicted boxes (red, score above each).

    Boxes are ``[xmin, ymin, xmax, ymax]`` in pixels of ``image``.

    Example:
        >>> boxes_tile(np.zeros((64, 64)), [[10, 10, 30, 30]], [[12, 11, 29, 33]], [0.9], size=128).shape
        (128, 128, 3)
    """
    from PIL import Image, ImageDraw

    like = _plane(image, "image")
    rgb = _base(image, size)
    s = rgb.shape[1] / like.shape[1], rgb.shape[0] / like.shape[0]
    bt, bp = (np.zeros((0, 4)) if b is None or len(b) == 0 else _np(b).astype(np.float64).reshape(-1, 4)
              for b in (boxes_true, boxes_pred))
    if scores is not None and len(scores) != len(bp):
        raise ValueError(f"{len(scores)} scores for {len(bp)} predicted boxes")
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    width = max(1, round(max(rgb.shape[:2]) / 160))
    px = max(9, min(14, rgb.shape[1] // 22))
    for boxes, color in ((bt, TRUE_RGB), (bp, PRED_RGB)):
        for x0, y0, x1, y1 in boxes:
            draw.rectangle((x0 * s[0], y0 * s[1], x1 * s[0], y1 * s[1]), outline=color, width=width)
    font = _font(px)
    for (x0, y0, _, _), sc in zip(bp, scores if scores is not None else []):
        xy = (x0 * s[0], max(0.0, y0 * s[1] - px - 3))
        draw.rectangle(draw.textbbox(xy, f"{float(sc):.2f}", font=font), fill=PRED_RGB)
        draw.text(xy, f"{float(sc):.2f}", fill=(255, 255, 255), font=font)
    return _caption(np.asarray(img).copy(), caption)


def tile_grid(tiles: Sequence[np.ndarray], ncols: int = 4, pad: int = 2) -> np.ndarray:
    """Tiles (``(H, W, 3)`` ``uint8``, any sizes) in a grid of ``ncols`` columns on a black background.

    Example:
        >>> tile_grid([np.zeros((8, 8, 3), np.uint8)] * 3, ncols=2, pad=1).shape
        (19, 19, 3)
    """
    if not tiles:
        raise ValueError("no tiles to put in a grid")
    ncols = max(1, min(int(ncols), len(tiles)))
    nrows = math.ceil(len(tiles) / ncols)
    th = max(t.shape[0] for t in tiles)
    tw = max(t.shape[1] for t in tiles)
    out = np.zeros((nrows * th + (nrows + 1) * pad, ncols * tw + (ncols + 1) * pad, 3), dtype=np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncols)
        y, x = pad + r * (th + pad), pad + c * (tw + pad)
        out[y:y + t.shape[0], x:x + t.shape[1]] = t[..., :3]
    return out


def is_positive(record: dict) -> bool:
    """Whether a datalist record shows a finding: a slice label, boxes, a multi-label vector or a class > 0.

    Keys are looked at in this order: ``slice_label`` (segmentation records, whose ``label`` is the
    mask path), ``boxes``, ``labels``, ``label``.

    Example:
        >>> is_positive({"label": 1}), is_positive({"boxes": []}), is_positive({"labels": [0, 1]})
        (True, False, True)
    """
    for key in ("slice_label", "boxes", "labels", "label"):
        v = record.get(key)
        if v is None or isinstance(v, str):
            continue
        a = _np(v)
        return bool(a.size) if key == "boxes" else bool(np.any(a))
    return False


def _middle_out(items: list) -> list:
    """``items`` from the middle outwards (the middle of a lesion's slice run first)."""
    mid = (len(items) - 1) // 2
    order = sorted(range(len(items)), key=lambda i: (abs(i - mid), i))
    return [items[i] for i in order]


def pick_slices(records: Sequence[dict], n: int = 4,
                positive: Callable[[dict], bool] = is_positive) -> list[dict]:
    """A fixed choice of up to ``n`` records to watch during training: half positives, half negatives,
    each from another patient while patients last.

    Deterministic (records are ordered by patient and slice first, so the datalist's order does not
    matter): the same validation records always give the same slices. Within a patient the middle
    slice of its positive (or negative) run comes first. When one kind is short the other fills in.

    Args:
        records: datalist records with ``patient`` and ``slice`` (missing ones sort first).
        n: how many.
        positive: tells a positive record (default :func:`is_positive`).

    Returns:
        The chosen records, positives first.

    Example:
        >>> recs = [{"patient": p, "slice": s, "label": int(p == "b" and s > 0)} for p in "abc" for s in range(3)]
        >>> [(r["patient"], r["slice"]) for r in pick_slices(recs, 4)]
        [('b', 1), ('b', 2), ('a', 1), ('c', 1)]
    """
    n = max(0, int(n))
    ordered = sorted(records, key=lambda r: (str(r.get("patient", "")), int(r.get("slice", 0) or 0),
                                             str(r.get("image", ""))))
    by_kind: dict[bool, dict[str, list]] = {True: {}, False: {}}
    for r in ordered:
        by_kind[bool(positive(r))].setdefault(str(r.get("patient", "")), []).append(r)
    n_pos_all = sum(map(len, by_kind[True].values()))
    n_neg_all = sum(map(len, by_kind[False].values()))
    n_pos = min(math.ceil(n / 2), n_pos_all)
    n_neg = min(n - n_pos, n_neg_all)
    n_pos = min(n - n_neg, n_pos_all)
    used: set[str] = set()

    def take(kind: bool, k: int) -> list[dict]:
        queues = {p: _middle_out(rs) for p, rs in by_kind[kind].items()}
        # patients not shown yet first, then round after round over every patient
        fresh = [p for p in queues if p not in used] + [p for p in queues if p in used]
        out: list[dict] = []
        while len(out) < k and any(queues.values()):
            for p in fresh:
                if queues[p] and len(out) < k:
                    out.append(queues[p].pop(0))
                    used.add(p)
        return out

    return take(True, n_pos) + take(False, n_neg)
