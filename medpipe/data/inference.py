"""Inputs for inference: a folder of 2D images (PNG/JPEG by content, or DICOM), one image, or a NIfTI volume.

How inputs are turned into the model's inputs comes from the checkpoint (its ``input_spec``, which the
training run copied from the prepared dataset's header): the HU window a volume is converted with,
and how a slice file name gives patient and slice. Nothing here knows a dataset.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from medpipe.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
NIFTI_EXTS = (".nii", ".nii.gz")
#: DICOM identifiers an inference record carries (and predictions.csv writes) for a DICOM input
DICOM_IDS = ("patient_id", "study_uid", "series_uid", "sop_uid", "view")


def is_dicom(path: Path) -> bool:
    """A DICOM file by its name (``.dcm``) or, for names without an extension, by the ``DICM`` magic at byte 128."""
    if path.suffix.lower() == ".dcm":
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _dicom_record(f: Path, index: int) -> dict:
    """One inference record of a DICOM file: the 8-bit image (as ``medpipe prepare`` stores it) and its identifiers."""
    from medpipe.io.dicom import read_dicom

    img, head = read_dicom(f)
    ids = {k: str(head.get(k) or "") for k in DICOM_IDS}
    return {"image": img, "image_path": str(f), "patient": ids["patient_id"] or f.stem, "slice": index, **ids}


def is_nifti(path: str | os.PathLike) -> bool:
    """True for ``.nii`` / ``.nii.gz`` files."""
    return str(path).lower().endswith(NIFTI_EXTS)


def _name_slice(stem: str, index: int, spec: dict) -> tuple[str, int]:
    """``(patient, slice)`` of a slice file from the checkpoint's ``slice_pattern``; else (stem, index)."""
    pattern = spec.get("slice_pattern")
    m = re.match(pattern, stem) if pattern else None
    if not m or "patient" not in m.groupdict():
        return stem, index
    patient = m.group("patient")
    fmt = spec.get("patient_format")
    if fmt and patient.isdigit():
        patient = fmt.format(int(patient))
    sl = m.groupdict().get("slice")
    return patient, int(sl) if sl is not None and sl.isdigit() else index


def _volume_name(p: Path) -> str:
    return p.name[: -len(".nii.gz")] if p.name.lower().endswith(".nii.gz") else p.stem


def _read_volume(p: Path, spec: dict):
    """The windowed uint8 axial slices ``(K, H, W)`` of a NIfTI volume, as ``medpipe prepare`` cuts them."""
    import numpy as np

    window = spec.get("window")
    multi = _named_windows(spec)
    if not window and not multi:
        raise DataError(f"--input {p}: a volume, but this model was trained on 8-bit slices whose dataset "
                        f"declares no HU window to convert volumes with. Give the 2D slices instead.")
    from medpipe.io.ct import window_to_uint8
    from medpipe.io.masks import read_nifti_display_slices

    try:
        slices, _spacing, _ = read_nifti_display_slices(str(p))
    except Exception as e:  # noqa: BLE001 - nibabel raises many kinds for a bad file
        raise DataError(f"--input {p}: not a readable NIfTI volume ({type(e).__name__}: {e}).") from e
    if multi:  # CT stored in several HU windows (one channel each): (K, H, W, C)
        return np.stack([np.stack([window_to_uint8(s, w) for w in multi], axis=-1) for s in slices])
    return np.stack([window_to_uint8(s, tuple(window)) for s in slices])


def _named_windows(spec: dict) -> list[tuple[float, float]] | None:
    """The (level, width) of each stored channel when the training data held CT slices in several named HU
    windows (``window_channels`` + ``windows`` of the dataset's input header), else None."""
    names, windows = spec.get("window_channels"), spec.get("windows")
    if not names or not isinstance(windows, dict) or not all(n in windows for n in names):
        return None
    return [tuple(float(v) for v in windows[n]) for n in names]


def _ct_series_records(p: Path, dicoms: list[Path], windows: list[tuple[float, float]]) -> list[dict]:
    """Records of CT DICOMs for a model trained on several HU windows: each file read in HU, windowed into one
    channel per window, slices grouped by series and ordered along the patient axis (``volume`` = the series,
    so that slice probabilities are pooled per series; ``image_prev``/``image_next`` for 2.5D models)."""
    import logging

    import numpy as np

    from medpipe.io.ct import window_to_uint8
    from medpipe.io.ct_dicom import group_series, order_series, read_ct_header, read_ct_hu
    from medpipe.io.dicom import DicomError

    heads, bad = [], []
    for f in dicoms:
        try:
            h = read_ct_header(f)
            h["path"] = str(f)
            heads.append(h)
        except DicomError as e:
            bad.append(f"{f}: {e}")
    out = []
    for series, hs in group_series(heads).items():
        ordered = order_series(hs)
        imgs = []
        for h in ordered:
            try:
                hu, _ = read_ct_hu(h["path"])
            except DicomError as e:
                bad.append(f"{h['path']}: {e}")
                continue
            imgs.append((h, np.stack([window_to_uint8(hu, w) for w in windows], axis=-1)))
        for k, (h, img) in enumerate(imgs):
            prev_img, next_img = imgs[max(k - 1, 0)][1], imgs[min(k + 1, len(imgs) - 1)][1]
            out.append({"image": img, "image_prev": prev_img, "image_next": next_img, "image_path": h["path"],
                        "patient": str(h.get("patient") or series), "slice": k, "volume": str(series),
                        "patient_id": str(h.get("patient") or ""), "study_uid": str(h.get("study") or ""),
                        "series_uid": str(series), "sop_uid": str(h.get("sop") or ""), "view": ""})
    if bad:
        logging.getLogger("medpipe").warning("%d of %d DICOM files skipped:\n  %s", len(bad), len(dicoms),
                                             "\n  ".join(bad[:20]))
    if not out:
        raise DataError(f"--input {p}: none of its {len(dicoms)} DICOM files could be read as CT "
                        f"({bad[0] if bad else 'no slices'}).")
    return out


def list_inputs(path: str | os.PathLike, input_spec: dict | None = None, level: str = "slice") -> list[dict]:
    """Records to run inference on.

    Args:
        path: a folder of slices (searched recursively, sorted; hidden files skipped), a single slice
            file, or a NIfTI volume.
        input_spec: the checkpoint's input settings: ``window`` (level, width) in HU for volumes,
            ``slice_pattern`` (a regex with ``patient``/``slice`` groups) and ``patient_format``
            to name slice files. Without a pattern a file's stem is its patient and the running
            index its slice.
        level: ``slice`` (2D models: a volume gives one record per axial slice, with ``volume`` naming
            the file so that slice predictions can be averaged per volume) or ``volume`` (3-D models:
            one record per NIfTI volume, ``path`` a volume or a folder of volumes, the image a
            ``(1, K, H, W)`` uint8 array).

    Returns:
        Records with ``image`` (a path, or a uint8 array for volume slices), ``image_path``
        (``volume.nii.gz#k`` for volume slices), ``patient`` and ``slice``.

    Raises:
        DataError: the path is missing, holds no image, is not an image, or is a volume for a model
            whose training data declares no HU window.
    """
    from medpipe.io.images import sniff_format

    spec = dict(input_spec or {})
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"--input {p}: no such file or folder. Give a folder of PNG/JPG slices, one slice, "
                        f"or a .nii/.nii.gz volume.")
    if level == "volume":
        vols = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and is_nifti(f)
                                              and not any(q.startswith(".") for q in f.relative_to(p).parts))
        if not vols or not all(is_nifti(v) for v in vols):
            raise DataError(f"--input {p}: this model reads whole volumes (trained with --spatial_dims 3): give "
                            f"a .nii/.nii.gz volume or a folder of them.")
        return [{"image": _read_volume(v, spec)[None], "image_path": str(v), "patient": _volume_name(v),
                 "volume": str(v)} for v in vols]
    if p.is_file() and is_nifti(p):
        stack = _read_volume(p, spec)
        n = len(stack)
        return [{"image": s, "image_path": f"{p}#{k}", "patient": _volume_name(p), "slice": k, "volume": str(p),
                 "image_prev": stack[max(k - 1, 0)], "image_next": stack[min(k + 1, n - 1)]}
                for k, s in enumerate(stack)]
    if p.is_file():
        files = [p]
    else:
        files = sorted(f for f in p.rglob("*") if f.is_file() and (f.suffix.lower() in IMAGE_EXTS or is_dicom(f))
                       and not any(part.startswith(".") for part in f.relative_to(p).parts))
        if not files:
            raise DataError(f"--input {p}: no PNG/JPG slices or DICOM files in this folder (searched its "
                            f"sub-folders too), and it is not a .nii/.nii.gz volume.")
    dicoms = [f for f in files if is_dicom(f)]
    if dicoms and _named_windows(spec):
        if len(dicoms) != len(files):
            raise DataError(f"--input {p}: holds both DICOM files and PNG/JPG images; give a folder of one kind.")
        return _ct_series_records(p, dicoms, _named_windows(spec))
    if dicoms:
        return _dicom_records(p, files, dicoms)
    out = []
    for i, f in enumerate(files):
        with open(f, "rb") as fh:
            head = fh.read(16)
        if sniff_format(head) is None:
            raise DataError(f"--input {f}: not a PNG or JPEG image (by its content). Give image slices or a "
                            f".nii/.nii.gz volume.")
        patient, sl = _name_slice(f.stem, i, spec)
        out.append({"image": str(f), "image_path": str(f), "patient": patient, "slice": sl})
    # 2.5D models: each slice's neighbours in its patient's stack (the slice itself at the ends or a gap)
    from medpipe.prepare.records import link_slice_neighbors

    link_slice_neighbors(out, group="patient", order="slice")
    for r in out:  # a slice without an integer index (no stack order known) stands in for its neighbours
        r["image_prev"], r["image_next"] = r.pop("neighbors", None) or (r["image"], r["image"])
    return out


def _dicom_records(p: Path, files: list[Path], dicoms: list[Path]) -> list[dict]:
    """Records of a folder of DICOMs (PNG/JPEG files beside them are refused: one kind per run)."""
    import logging

    from medpipe.io.dicom import DicomError

    if len(dicoms) != len(files):
        raise DataError(f"--input {p}: holds both DICOM files and PNG/JPG images; give a folder of one kind.")
    out, bad = [], []
    for i, f in enumerate(dicoms):
        try:
            out.append(_dicom_record(f, i))
        except DicomError as e:
            bad.append(f"{f}: {e}")
    if bad:
        logging.getLogger("medpipe").warning("%d of %d DICOM files skipped:\n  %s", len(bad), len(dicoms),
                                             "\n  ".join(bad[:20]))
    if not out:
        raise DataError(f"--input {p}: none of its {len(dicoms)} DICOM files could be read ({bad[0]}).")
    # collation needs the same keys with strings everywhere
    return [{**r, "image_path": str(r["image_path"])} for r in out]
