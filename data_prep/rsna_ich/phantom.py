"""A head-CT phantom in Hounsfield units with the five intracranial hemorrhage subtypes, and its slice labels.

:func:`head_volume` draws an axial stack from the skull base (slice 0) to the vertex:

* air (-1000 HU), scalp (~40 HU), skull (an elliptic ring of ~+1000 HU bone, thicker and with
  petrous bone near the base), brain parenchyma with a grey/white texture (grey ~38, white ~27 HU),
  CSF (~5 HU) in the lateral ventricles (middle slices) and in sulci radiating from the cortex;
* per lesion name, a hyperdensity of fresh blood (~55-80 HU) shaped like the subtype:

  - ``epidural``: a biconvex lens against the inner table of the skull over a short arc;
  - ``subdural``: a thin crescent along the inner table over a long arc;
  - ``intraparenchymal``: an irregular blob inside the parenchyma with a rim of oedema (~18 HU);
  - ``intraventricular``: blood layering in the dependent (posterior) part of a lateral ventricle;
  - ``subarachnoid``: the sulci of a sector filled with blood (thin streaks).

  Each lesion spans a random range of slices and waxes and wanes over it (a 3-D shape);
* mild CT noise (~4 HU in soft tissue).

Slice labels (``(Z, 6)`` in :data:`~data_prep.rsna_ich.layout.SUBTYPES` order) mark where each
lesion is visible (enough of its pixels on the slice); ``any`` is their OR. Head size, position,
tilt and ventricle size vary with ``rng``; the same ``rng`` state gives the same volume.

In the brain window (40/80) blood is bright against the parenchyma and CSF dark; against the skull,
blood and bone both saturate there and separate in the subdural window (80/200) -- the reason
models see the three windows as channels. At 64 px a small CNN learns the subtypes.

Example:
    >>> import numpy as np
    >>> hu, labels = head_volume(np.random.default_rng(0), shape=(8, 64, 64), lesions=("subdural",))
    >>> hu.shape, labels.shape, int(labels[:, 0].max()), int(labels[:, 5].max())
    ((8, 64, 64), (8, 6), 1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from data_prep.rsna_ich.layout import LESIONS, SUBTYPES

AIR, SCALP, BONE, GREY, WHITE, CSF = -1000.0, 40.0, 1000.0, 38.0, 27.0, 5.0
#: relative thickness of scalp and skull (fraction of the image's half width)
SCALP_T, SKULL_T = 0.035, 0.075


def _interp_matrix(n: int, cells: int) -> np.ndarray:
    """``(n, cells)`` weights of linear interpolation from ``cells`` knots to ``n`` samples."""
    pos = np.linspace(0, cells - 1, n)
    lo = np.clip(np.floor(pos).astype(int), 0, cells - 2) if cells > 1 else np.zeros(n, int)
    w = np.zeros((n, cells), np.float32)
    if cells == 1:
        w[:, 0] = 1
        return w
    frac = pos - lo
    w[np.arange(n), lo] = 1 - frac
    w[np.arange(n), lo + 1] = frac
    return w


def smooth_field(rng: np.random.Generator, shape: tuple[int, int, int], cells=(3, 7, 7)) -> np.ndarray:
    """A smooth random field in ``[0, 1]`` of ``shape`` (knots on a coarse grid, trilinear in between)."""
    knots = rng.random(cells).astype(np.float32)
    f = np.einsum("zc,yb,xa,cba->zyx", *(_interp_matrix(n, c) for n, c in zip(shape, cells)), knots,
                  optimize=True)
    lo, hi = float(f.min()), float(f.max())
    return (f - lo) / (hi - lo + 1e-6)


def _angle_diff(a, b):
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def _profile(z: np.ndarray, k0: int, k1: int) -> np.ndarray:
    """0 outside slices ``k0..k1``, a half sine inside (so a lesion waxes and wanes), per slice."""
    t = (z - k0 + 0.5) / (k1 - k0 + 1)
    return np.where((z >= k0) & (z <= k1), np.sin(np.pi * np.clip(t, 0, 1)) * 0.6 + 0.4, 0.0)


def head_volume(rng: np.random.Generator, shape: tuple[int, int, int] = (16, 96, 96),
                lesions: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """A head CT in HU and its per-slice hemorrhage labels.

    Args:
        rng: the random generator (consumed; the same state gives the same volume).
        shape: ``(slices, rows, columns)``; slice 0 is the skull base, the last the vertex.
        lesions: subtype names among :data:`~data_prep.rsna_ich.layout.LESIONS` (each drawn once;
            an empty tuple draws a normal head).

    Returns:
        ``(hu, labels)``: ``float32 (Z, Y, X)`` and ``uint8 (Z, 6)`` in ``SUBTYPES`` order (``any`` =
        OR of the five); a lesion's column is 1 on the slices where it shows.
    """
    unknown = [s for s in lesions if s not in LESIONS]
    if unknown:
        raise ValueError(f"lesion {unknown[0]!r}: expected one of {', '.join(LESIONS)}")
    nz, ny, nx = shape
    zz = np.arange(nz, dtype=np.float32)[:, None, None]
    t = (zz + 0.5) / nz  # 0 at the base, 1 at the vertex
    v, u = np.mgrid[0:ny, 0:nx].astype(np.float32)
    u = ((u + 0.5) / nx * 2 - 1)[None]
    v = ((v + 0.5) / ny * 2 - 1)[None]
    # the patient: head size, position, tilt, ventricle size, sulcal pattern
    A, B = rng.uniform(0.70, 0.80), rng.uniform(0.82, 0.92)
    cx, cy, tilt = rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04), rng.uniform(-0.15, 0.15)
    vent = rng.uniform(0.8, 1.3)
    n_sulci, sulcal_phase = int(rng.integers(14, 20)), rng.uniform(0, 2 * np.pi)
    scale = np.sqrt(np.clip(1 - ((t - 0.42) / 0.8) ** 2, 0.2, 1))  # (Z, 1, 1): smaller at base and vertex
    x = (u - cx) * np.cos(tilt) + (v - cy) * np.sin(tilt)
    y = -(u - cx) * np.sin(tilt) + (v - cy) * np.cos(tilt)
    a, b = A * scale, B * scale
    dist = np.sqrt(x ** 2 + y ** 2)
    theta = np.arctan2(y, x)
    radius = 1 / np.sqrt((np.cos(theta) / a) ** 2 + (np.sin(theta) / b) ** 2)
    depth = radius - dist  # below the outer surface
    skull_t = SKULL_T * (1 + 0.6 * np.clip(0.25 - t, 0, None) / 0.25)  # thicker near the base
    inner = depth - SCALP_T - skull_t  # below the inner table (> 0 inside the skull)
    inner_r = radius - SCALP_T - skull_t
    brain = inner > 0

    tex = smooth_field(rng, shape, (max(2, nz // 4), 9, 9))
    hu = np.full(shape, AIR, np.float32)
    hu = np.where((depth >= 0) & (depth < SCALP_T), SCALP, hu)
    bone = (depth >= SCALP_T) & ~brain
    diploe = np.abs(depth - SCALP_T - skull_t / 2) < skull_t * 0.2
    hu = np.where(bone, np.where(diploe, 650.0, BONE + 250 * (tex - 0.5)), hu)
    # parenchyma: grey cortex, grey/white texture inside
    white = (inner > 0.09) & (tex > 0.42)
    hu = np.where(brain, np.where(white, WHITE, GREY), hu)
    # sulci: CSF clefts radiating in from the cortex
    sulcal = np.sin(n_sulci * theta + sulcal_phase + 3 * tex) > 0.82
    sulci = brain & (inner < 0.13 * scale) & sulcal
    hu = np.where(sulci, CSF, hu)
    # petrous bone near the base
    base = t < 0.22
    for side in (-1, 1):
        pet = ((x - side * 0.32 * a) / (0.16 * a)) ** 2 + ((y - 0.05) / (0.07 * b)) ** 2 < 1
        hu = np.where(brain & base & pet, 750.0, hu)
    # lateral ventricles (middle slices), a little closer together at the front
    ventricles = np.zeros(shape, bool)
    vent_slices = (t > 0.38) & (t < 0.72)
    vent_side = []
    for side in (-1, 1):
        rot = -side * 0.28  # frontal horns (top of the image) closer together
        xv, yv = x - side * 0.11 * a, y + 0.02
        xr = xv * np.cos(rot) + yv * np.sin(rot)
        yr = -xv * np.sin(rot) + yv * np.cos(rot)
        m = vent_slices & brain & ((xr / (0.055 * vent)) ** 2 + (yr / (0.26 * vent * scale)) ** 2 < 1)
        vent_side.append((m, yr))
        ventricles |= m
    hu = np.where(ventricles, CSF, hu)

    labels = np.zeros((nz, len(SUBTYPES)), np.uint8)
    min_px = max(2, round(6e-4 * ny * nx))
    brain_slices = np.flatnonzero(brain.reshape(nz, -1).sum(1) > 0.1 * ny * nx)
    vent_ids = np.flatnonzero(ventricles.reshape(nz, -1).any(1))
    for name in lesions:
        pool = vent_ids if name == "intraventricular" and len(vent_ids) else brain_slices
        if name == "subarachnoid":  # not at the very top: sulci there are too small
            pool = pool[: max(1, len(pool) - 1)]
        span = int(rng.integers(3, max(4, len(pool) // 2 + 2)))
        span = min(span, len(pool))
        start = int(rng.integers(0, len(pool) - span + 1))
        k0, k1 = int(pool[start]), int(pool[start + span - 1])
        prof = _profile(zz, k0, k1)
        blood = np.float32(rng.uniform(62, 78))
        mottle = (tex - 0.5) * 8
        if name == "epidural":
            t0, w, thick = rng.uniform(-np.pi, np.pi), rng.uniform(0.35, 0.6), rng.uniform(0.09, 0.15)
            arc = np.clip(1 - (_angle_diff(theta, t0) / w) ** 2, 0, None)
            mask = brain & (inner < thick * prof * arc)
        elif name == "subdural":
            t0, w, thick = rng.uniform(-np.pi, np.pi), rng.uniform(0.9, 1.5), rng.uniform(0.045, 0.075)
            arc = np.sqrt(np.clip(1 - (_angle_diff(theta, t0) / w) ** 2, 0, None))
            mask = brain & (inner < thick * prof * arc)
            blood = np.float32(blood - 6)
        elif name == "intraparenchymal":
            ang, rr = rng.uniform(-np.pi, np.pi), rng.uniform(0.15, 0.45)
            px, py = rr * A * np.cos(ang), rr * B * np.sin(ang)
            r0 = rng.uniform(0.09, 0.15) * prof
            lump = np.sqrt((x - px) ** 2 + ((y - py) / 1.2) ** 2) * (1 + 0.35 * (tex - 0.5))
            mask = brain & (lump < r0)
            hu = np.where(brain & ~mask & (lump < r0 + 0.035 * (prof > 0)) & (prof > 0), 18.0, hu)
        elif name == "intraventricular":
            pick = vent_side[int(rng.integers(2))] if rng.random() < 0.6 else None
            sides = [pick] if pick is not None else vent_side
            mask = np.zeros(shape, bool)
            level = rng.uniform(-0.05, 0.12)
            for m, yr in sides:
                mask |= m & (yr > level) & (prof > 0)
        else:  # subarachnoid: the sulci of a sector, widened a little (blood fills them)
            t0, w = rng.uniform(-np.pi, np.pi), rng.uniform(0.7, 1.3)
            sector = np.abs(_angle_diff(theta, t0)) < w * np.clip(prof, 0, 1)
            wide = np.sin(n_sulci * theta + sulcal_phase + 3 * tex) > 0.35
            mask = brain & ~ventricles & (inner < 0.18 * scale) & (wide | (inner < 0.025)) & sector & (prof > 0)
            blood = np.float32(blood - 8)
        hu = np.where(mask, blood + mottle, hu)
        counts = mask.reshape(nz, -1).sum(1)
        shown = counts >= min_px
        if not shown.any():  # small everywhere: labelled where it shows most
            shown = (counts == counts.max()) & (counts > 0)
        labels[:, SUBTYPES.index(name)] = shown
    labels[:, 0] = labels[:, 1:].max(axis=1)
    hu = hu + rng.normal(0, 4, shape).astype(np.float32) * np.where(np.abs(hu) < 200, 1.0, 3.0).astype(np.float32)
    return hu.astype(np.float32), labels
