"""A synthetic ankle-ct set: small NIfTI bone phantoms in HU, one learnable pattern per class, and a manifest.

Each patient has one ankle CT (``scans/<patient>/ankle_<side>.nii.gz``, ``size`` x ``size`` x
``slices`` voxels, RAS affine); every sixth patient also has the other ankle, normal. The phantom,
in axial slices from inferior to superior: soft tissue (40 HU) around the talus (lower third),
the tibiotalar joint space, the tibia (upper half) and the fibula (lateral, from a quarter up),
bones with a cortical rim (1200 HU) around marrow (300 HU). The classes
(:data:`~data_prep.ankle_ct.layout.CLASS_NAMES`):

0. normal;
1. a fracture gap through the fibula (on a slice range, given in the manifest's ``slices``);
2. a fracture gap through the medial tibia (slice range);
3. a fracture gap through the talus (slice range);
4. a displaced bone fragment between tibia and fibula (slice range);
5. the joint space filled with bone (joint space narrowing; slice range);
6. the fibula moved away from the tibia (syndesmotic widening; every slice).

Class frequencies follow :data:`~data_prep.ankle_ct.layout.CLASS_FREQUENCIES` (class 1 about 40 %),
each class at least once from 7 patients on. About a third of the scans are left ankles
(mirrored anatomy). ``labels.csv`` writes most labels as class names, every third as a number.

Example:
    >>> summary = synthesize("/tmp/ankle-raw", patients=8)  # doctest: +SKIP
    >>> summary["scans"], summary["classes"]["lateral_malleolus_fracture"]  # doctest: +SKIP
    (10, 3)
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_prep.ankle_ct import layout as L
from medpipe.io.orientation import display_to_volume_slice
from medpipe.prepare.synthetic import existing, write_marker
from medpipe.utils.fs import atomic_output_dir

#: field of view (mm) across a slice, and the slice thickness (mm)
FOV_MM, SLICE_MM = 120.0, 2.0
AIR, SOFT, MARROW, CORTEX = -1000.0, 40.0, 300.0, 1200.0
MANIFEST = L.DEFAULT_MANIFEST


def class_counts(n: int, seed: int) -> list[int]:
    """Each patient's class: :data:`~data_prep.ankle_ct.layout.CLASS_FREQUENCIES` by largest remainder, shuffled.

    Example:
        >>> from collections import Counter
        >>> sorted(Counter(class_counts(30, 0)).items())
        [(0, 6), (1, 12), (2, 4), (3, 3), (4, 2), (5, 2), (6, 1)]
    """
    raw = np.array(L.CLASS_FREQUENCIES) * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    for i in range(L.NUM_CLASSES):  # every class at least once when there are enough patients
        if counts[i] == 0 and n >= L.NUM_CLASSES:
            counts[i], counts[int(np.argmax(counts))] = 1, counts[int(np.argmax(counts))] - 1
    labels = [c for c, k in enumerate(counts) for _ in range(k)]
    np.random.default_rng([seed, 7]).shuffle(labels)
    return labels


def _ellipse(size: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _bone(hu: np.ndarray, mask: np.ndarray, rim: int) -> None:
    """Paint a bone: cortex on ``mask``, marrow inside it (the mask eroded by ``rim`` pixels)."""
    inner = mask.copy()
    for _ in range(rim):
        inner = inner & np.roll(inner, 1, 0) & np.roll(inner, -1, 0) & np.roll(inner, 1, 1) & np.roll(inner, -1, 1)
    hu[mask] = CORTEX
    hu[inner] = MARROW


def _gap(size: int, cy: float, cx: float, angle: float, width: float) -> np.ndarray:
    """A straight band through (cy, cx): a fracture gap."""
    yy, xx = np.mgrid[:size, :size]
    return np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle)) <= width / 2


def phantom(label: int, size: int, slices: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int] | None]:
    """One right ankle in display slices ``(K, size, size)`` HU, and the slice range showing the finding (or None)."""
    s, k = float(size), slices
    j = rng.uniform(-0.03, 0.03, 4) * s  # per-patient jitter of the bones
    talus_top, tibia_bottom, fibula_bottom = round(0.35 * k), round(0.45 * k), round(0.25 * k)
    if label == 5:  # joint space narrowing: the tibia reaches down to the talus
        tibia_bottom = talus_top
    tib = (0.45 * s + j[0], 0.58 * s + j[1], 0.20 * s, 0.21 * s)   # cy, cx, ry, rx (columns: patient right -> left)
    fib_shift = 0.10 * s if label == 6 else 0.0
    fib = (0.58 * s + j[2], 0.26 * s + j[3] - fib_shift, 0.075 * s, 0.075 * s)
    tal = (0.47 * s + j[0], 0.52 * s + j[1], 0.19 * s, 0.23 * s)
    rim = max(1, size // 32)
    gap_w = max(2.0, s / 20)
    finding = {1: (fibula_bottom + 1, min(k - 2, fibula_bottom + k // 3)),
               2: (tibia_bottom, min(k - 1, tibia_bottom + k // 4)),
               3: (max(0, talus_top - k // 4), talus_top - 1),
               4: (tibia_bottom, min(k - 1, tibia_bottom + k // 4)),
               5: (talus_top, round(0.45 * k) - 1)}.get(label)
    angle = rng.uniform(0.3, 1.2)
    vol = np.full((k, size, size), AIR, np.float32)
    body = _ellipse(size, 0.5 * s, 0.47 * s, 0.40 * s, 0.44 * s)
    for z in range(k):
        hu = vol[z]
        hu[body] = SOFT
        if z < talus_top:
            _bone(hu, _ellipse(size, *tal), rim)
        if z >= tibia_bottom:
            _bone(hu, _ellipse(size, *tib), rim)
        if z >= fibula_bottom:
            _bone(hu, _ellipse(size, *fib), rim)
        inside = finding is not None and finding[0] <= z <= finding[1]
        if inside and label == 1:
            hu[_gap(size, fib[0], fib[1], angle, gap_w) & _ellipse(size, *fib)] = SOFT
        elif inside and label == 2:
            hu[_gap(size, tib[0], tib[1] + 0.08 * s, angle, gap_w) & _ellipse(size, *tib)] = SOFT
        elif inside and label == 3:
            hu[_gap(size, tal[0], tal[1], angle, gap_w) & _ellipse(size, *tal)] = SOFT
        elif inside and label == 4:
            _bone(hu, _ellipse(size, 0.30 * s, 0.36 * s, 0.05 * s, 0.05 * s), 1)
        vol[z] = hu + rng.normal(0, 20, hu.shape).astype(np.float32)
    return vol, finding


def nifti_gz_bytes(display: np.ndarray, spacing: tuple[float, float, float]) -> bytes:
    """A display-slice stack ``(K, H, W)`` as reproducible ``.nii.gz`` bytes with a RAS affine (int16 HU)."""
    import nibabel as nib

    vol = np.stack([display_to_volume_slice(display[z]) for z in range(display.shape[0])], axis=-1)
    affine = np.diag([*spacing, 1.0])
    img = nib.Nifti1Image(np.rint(vol).astype(np.int16), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def _check(patients, size, seed, slices) -> dict:
    from data_prep.ankle_ct import DATASET

    return DATASET.resolve_options({"patients": patients, "size": size, "seed": seed, "slices": slices},
                                   which="synth")


def synthesize(out: str | Path, patients: int = 30, size: int = 64, seed: int = 0, slices: int = 24,
               progress: Callable[[str], None] | None = None) -> dict:
    """Write a deterministic synthetic ankle-ct set (NIfTI phantoms + ``labels.csv``) into ``out``.

    Args:
        out: folder to create (absent, empty, or a synthetic set made with the same arguments).
        patients: number of patients (ids ``A0001``...).
        size: in-plane voxels (a ``size`` x ``size`` slice covering 120 mm).
        seed: random seed; identical arguments give byte-identical files.
        slices: axial slices per volume (2 mm apart).
        progress: called with a line of text every few patients, if given.

    Returns:
        Summary with ``out``, ``patients`` (ids), ``scans``, ``files``, ``classes`` (class name ->
        scans), ``left`` (left-ankle scans) and ``manifest``.

    Raises:
        OptionError (a ValueError): invalid arguments, named as on the command line.
        FileExistsError: ``out`` holds something else.
    """
    args = _check(patients, size, seed, slices)
    out = Path(out)
    done = existing(out, args)
    if done is not None:
        return done
    n, size, seed, k = args["patients"], args["size"], args["seed"], args["slices"]
    spacing = (FOV_MM / size, FOV_MM / size, SLICE_MM)
    labels = class_counts(n, seed)
    rows, counts, left = [], {c: 0 for c in L.CLASS_NAMES}, 0
    with atomic_output_dir(out) as tmp:
        for i in range(n):
            pid = f"A{i + 1:04d}"
            rng = np.random.default_rng([seed, i])
            side = "L" if rng.random() < 0.33 else "R"
            scans = [(labels[i], side)] + ([(0, "R" if side == "L" else "L")] if i % 6 == 5 else [])
            for label, sd in scans:
                vol, finding = phantom(label, size, k, rng)
                if sd == "L":
                    vol = vol[:, :, ::-1]  # the left ankle: the fibula on the other side
                    left += 1
                rel = f"scans/{pid}/ankle_{sd}.nii.gz"
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(nifti_gz_bytes(vol, spacing))
                value = str(label) if len(rows) % 3 == 2 else L.CLASS_NAMES[label]
                rows.append({"image": rel, "label": value, "patient": pid, "side": sd,
                             "slices": f"{finding[0]}:{finding[1]}" if finding else ""})
                counts[L.CLASS_NAMES[label]] += 1
            if progress is not None and ((i + 1) % 10 == 0 or i + 1 == n):
                progress(f"ankle-ct synth: {i + 1}/{n} patients")
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["image", "label", "patient", "side", "slices"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        (tmp / MANIFEST).write_text(buf.getvalue())
        summary = {"out": str(out), "patients": [f"A{i + 1:04d}" for i in range(n)], "scans": len(rows),
                   "files": len(rows) + 1, "classes": counts, "left": left, "manifest": MANIFEST,
                   "shape": [size, size, k], "spacing_mm": list(spacing)}
        write_marker(tmp, args, summary)
    return summary
