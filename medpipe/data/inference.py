"""Inputs for inference: a folder of 2D slices (PNG/JPEG, format by content) or a NIfTI volume."""

from __future__ import annotations

import os
from pathlib import Path

from medpipe.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
NIFTI_EXTS = (".nii", ".nii.gz")


def is_nifti(path: str | os.PathLike) -> bool:
    """True for ``.nii`` / ``.nii.gz`` files."""
    return str(path).lower().endswith(NIFTI_EXTS)


def list_inputs(path: str | os.PathLike, window: tuple[float, float] | None = None) -> list[dict]:
    """Records to run inference on.

    Args:
        path: a folder of slices (searched recursively, sorted), a single slice file, or a NIfTI volume.
            Slice names like ``0004_15.png`` give patient ``0004`` and slice 15; other names give the
            file stem as patient and a running index as slice.
        window: HU window (level, width) applied to NIfTI volumes; default the PHE-SICH brain window,
            i.e. the same 8-bit intensities as the prepared slices.

    Returns:
        Records with ``image`` (a path, or a uint8 array for volume slices), ``image_path``,
        ``patient`` and ``slice``; volume records also carry ``volume`` (the NIfTI path) and ``spacing``.
    """
    from data_prep import phe_sich_layout as L

    p = Path(path)
    if not p.exists():
        raise DataError(f"--input {p}: no such file or folder. Give a folder of PNG/JPG slices or a .nii.gz volume.")
    if p.is_file() and is_nifti(p):
        from medpipe.io.ct import window_to_uint8
        from medpipe.io.masks import read_nifti_display_slices

        slices, spacing, _ = read_nifti_display_slices(str(p))
        w = window or L.BRAIN_WINDOW
        name = p.name[: -len(".nii.gz")] if p.name.lower().endswith(".nii.gz") else p.stem
        return [{"image": window_to_uint8(s, w), "image_path": f"{p}#{k}", "patient": name, "slice": k,
                 "volume": str(p), "spacing": [float(x) for x in spacing]} for k, s in enumerate(slices)]
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTS and f.is_file())
    if not files:
        raise DataError(f"--input {p}: no PNG/JPG slices found (and not a .nii/.nii.gz volume).")
    out = []
    for i, f in enumerate(files):
        parsed = L.parse_slice_stem(f.stem)
        patient, sl = (L.patient_id(parsed[0]), parsed[1]) if parsed else (f.stem, i)
        out.append({"image": str(f), "image_path": str(f), "patient": patient, "slice": sl})
    return out
