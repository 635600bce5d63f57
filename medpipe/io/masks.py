"""Writing predicted masks (PNG slices, NIfTI volumes) and reading NIfTI volumes as display slices.

The 2D pipeline works on *display slices*: rows anterior->posterior, columns patient
right->left, slice index ``k`` along the RAS-canonical z axis (inferior->superior) -- the
radiological convention, defined once in :mod:`medpipe.io.orientation`. A NIfTI volume may
be stored in any orientation; :func:`read_nifti_display_slices` goes volume -> display slices and
:func:`write_mask_nifti` goes back, ending in the reference file's ORIGINAL voxel order, affine and
header, so the written mask overlays the input exactly in any viewer.

Files are written atomically (temp file in the same folder, then :func:`os.replace`).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np

from medpipe.io.orientation import display_to_volume_slice, volume_slice_to_display

__all__ = ["write_mask_png", "write_mask_nifti", "read_nifti_display_slices"]


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _tmp_sibling(path: Path) -> Path:
    # the real name stays at the end so that suffix-driven writers (nibabel's .nii.gz) still work
    return path.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}-{path.name}")


def _as_labels(mask, name: str) -> np.ndarray:
    """uint8 label array: bool -> 0/1, integral numbers in 0..255 kept, anything else rejected."""
    m = _numpy(mask)
    if m.dtype == bool:
        return m.astype(np.uint8)
    if not np.issubdtype(m.dtype, np.number):
        raise ValueError(f"{name} must be numeric or bool, got dtype {m.dtype}")
    if m.size and (not np.isfinite(m).all() or (m < 0).any() or (m > 255).any()
                   or (np.issubdtype(m.dtype, np.floating) and (m != np.round(m)).any())):
        raise ValueError(f"{name} must hold integer labels in 0..255 (threshold probabilities first)")
    return m.astype(np.uint8)


def write_mask_png(mask2d, path) -> Path:
    """Write a binary mask as an 8-bit PNG with values 0 and 255 (any nonzero input -> 255).

    Args:
        mask2d: 2D mask (numpy or torch; singleton axes such as ``(1, H, W)`` are dropped).
        path: output PNG path (parent folders are created).

    Returns:
        The written path.

    Example:
        >>> write_mask_png(np.eye(4), "pred/0001_03.png")  # doctest: +SKIP
        PosixPath('pred/0001_03.png')
    """
    from PIL import Image

    m = _numpy(mask2d)
    if m.ndim > 2:
        m = np.squeeze(m)
    if m.ndim != 2:
        raise ValueError(f"mask2d must be 2D (singleton axes allowed), got shape {_numpy(mask2d).shape}")
    out = np.where(m != 0, 255, 0).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        Image.fromarray(out, mode="L").save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _canonical_shape(shape, affine) -> tuple[int, int, int]:
    """Shape of a volume after :func:`nibabel.as_closest_canonical`, without loading its data."""
    from nibabel.orientations import io_orientation

    ornt = io_orientation(affine)
    out = [0, 0, 0]
    for axis, (target, _flip) in enumerate(ornt):
        out[int(target)] = int(shape[axis])
    return tuple(out)


def _spatial3d(img, path) -> tuple[int, int, int]:
    shape = img.shape
    if len(shape) == 3:
        return shape
    if len(shape) > 3 and all(s == 1 for s in shape[3:]):
        return shape[:3]
    raise ValueError(f"{path}: expected a 3D volume, got shape {shape}")


def read_nifti_display_slices(path) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """Read a NIfTI volume as a stack of 2D display slices (in HU for CT).

    The volume is reoriented to RAS+ (:func:`nibabel.as_closest_canonical`) and each axial slice
    converted with :func:`medpipe.io.orientation.volume_slice_to_display`.

    Args:
        path: NIfTI file (``.nii`` / ``.nii.gz``), 3D (a trailing singleton 4th axis is allowed), or an
            already loaded nibabel image (e.g. one built from a DICOM series).

    Returns:
        ``(slices, spacing, canonical_affine)``: ``slices`` float32 ``(K, H, W)`` with the header's
        scaling applied (HU), ``K`` inferior->superior, rows anterior->posterior, columns patient
        right->left; ``spacing`` in mm in the same axis order as ``slices``: ``(slice, row,
        column)`` = canonical ``(dz, dy, dx)``; ``canonical_affine`` the 4x4 affine of the RAS
        voxel grid.

    Example:
        >>> slices, spacing, affine = read_nifti_display_slices("0001.nii.gz")  # doctest: +SKIP
        >>> slices.shape, spacing  # doctest: +SKIP
        ((32, 512, 512), (5.0, 0.508, 0.508))
    """
    import nibabel as nib

    img = path if isinstance(path, nib.spatialimages.SpatialImage) else nib.load(os.fspath(path))
    _spatial3d(img, path)
    canon = nib.as_closest_canonical(img)
    data = np.asarray(canon.get_fdata(dtype=np.float32))
    data = data.reshape(data.shape[:3])
    slices = np.stack([volume_slice_to_display(data, k) for k in range(data.shape[2])]).astype(np.float32)
    zooms = [float(z) for z in canon.header.get_zooms()[:3]]
    return slices, (zooms[2], zooms[1], zooms[0]), np.asarray(canon.affine, dtype=np.float64)


def write_mask_nifti(mask_volume_display, reference_path, out_path) -> Path:
    """Write display-slice masks as a NIfTI label volume aligned with its reference image.

    Inverse of :func:`read_nifti_display_slices`: each display slice goes back to the RAS voxel
    plane (:func:`medpipe.io.orientation.display_to_volume_slice`), the RAS volume is reoriented
    to the reference's original axis order/directions (``nibabel.orientations``), and it is saved
    as uint8 with the reference's affine and header (qform/sform and their codes kept; scaling
    reset to 1/0 and display range set to 0..max label so the labels are stored as is).

    Args:
        mask_volume_display: ``(K, H, W)`` labels (bool or integers 0..255; numpy or torch), the
            same geometry as the slices returned by :func:`read_nifti_display_slices`.
        reference_path: the NIfTI image the masks were predicted from.
        out_path: output ``.nii``/``.nii.gz`` path (parent folders are created).

    Returns:
        The written path.

    Raises:
        ValueError: the mask's shape does not match the reference's display geometry, or the
            values are not integer labels.

    Example:
        >>> slices, _, _ = read_nifti_display_slices("0001.nii.gz")  # doctest: +SKIP
        >>> write_mask_nifti(predict(slices) > 0.5, "0001.nii.gz", "pred/0001.nii.gz")  # doctest: +SKIP
    """
    import nibabel as nib
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    ref = nib.load(os.fspath(reference_path))
    if not isinstance(ref, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise ValueError(f"{reference_path}: reference must be a NIfTI image, got {type(ref).__name__}")
    shape = _spatial3d(ref, reference_path)
    labels = _as_labels(mask_volume_display, "mask_volume_display")
    cx, cy, cz = _canonical_shape(shape, ref.affine)
    if labels.shape != (cz, cy, cx):
        raise ValueError(f"mask_volume_display has shape {labels.shape} but {reference_path} gives "
                         f"{cz} display slices of {cy}x{cx} (K, H, W) = {(cz, cy, cx)}")
    canon = np.stack([display_to_volume_slice(labels[k]) for k in range(cz)], axis=2)
    # from RAS back to the reference's own axis order and directions
    to_orig = ornt_transform(axcodes2ornt(("R", "A", "S")), io_orientation(ref.affine))
    data = np.ascontiguousarray(apply_orientation(canon, to_orig)).astype(np.uint8)

    header = ref.header.copy()
    header.set_data_shape(data.shape)
    header.set_data_dtype(np.uint8)
    out = type(ref)(data, ref.affine, header=header)
    # keep the reference's exact qform/sform and codes (viewers choose between them by code)
    qform, qcode = ref.header.get_qform(coded=True)
    sform, scode = ref.header.get_sform(coded=True)
    out.set_qform(qform if qform is not None else ref.header.get_qform(), int(qcode))
    out.set_sform(sform if sform is not None else ref.header.get_sform(), int(scode))
    # a CT header often carries scl_slope/inter and a HU display range: labels need neither
    out.header.set_slope_inter(1.0, 0.0)
    out.header["cal_min"] = 0
    out.header["cal_max"] = int(data.max()) if data.size else 0
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(out_path)
    try:
        nib.save(out, tmp)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_path
