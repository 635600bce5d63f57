"""Mask writers and the NIfTI <-> display-slice round trip in non-canonical orientations."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from medpipe.io.masks import read_nifti_display_slices, write_mask_nifti, write_mask_png

# affines whose voxel axes are not RAS: LPS with flipped axes, and permuted + flipped axes
AFFINES = {
    "LPS": np.array([[-0.5, 0, 0, 60], [0, -0.6, 0, 70], [0, 0, 3.0, -20], [0, 0, 0, 1]]),
    "ALI": np.array([[0, -0.5, 0, 10], [0.7, 0, 0, -5], [0, 0, -3.0, 20], [0, 0, 0, 1]]),
    "RAS": np.diag([0.5, 0.5, 2.0, 1.0]),
}


def _write_ct(path, affine, qcode=1, scode=1, shape=(10, 12, 5)):
    """A HU volume stored as int16 with scl_inter -1024 (as scanners write it)."""
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 1400, shape).astype(np.int16)
    img = nib.Nifti1Image(raw, None)
    img.set_qform(affine, qcode)
    img.set_sform(affine, scode)
    img.header.set_slope_inter(1.0, -1024.0)
    img.header["cal_min"], img.header["cal_max"] = -1024, 400
    nib.save(img, path)
    return nib.load(path)


@pytest.mark.parametrize("name", list(AFFINES))
@pytest.mark.parametrize("codes", [(1, 1), (0, 2), (2, 0)])
def test_nifti_roundtrip_in_original_orientation(tmp_path, name, codes):
    ref_path = tmp_path / "ct.nii.gz"
    ref = _write_ct(ref_path, AFFINES[name], *codes)
    hu = ref.get_fdata()
    slices, spacing, canon_affine = read_nifti_display_slices(ref_path)
    canon = nib.as_closest_canonical(ref)
    assert slices.dtype == np.float32
    assert slices.shape == (canon.shape[2], canon.shape[1], canon.shape[0])
    np.testing.assert_allclose(spacing, np.asarray(canon.header.get_zooms())[[2, 1, 0]])
    np.testing.assert_allclose(canon_affine, canon.affine)

    out = write_mask_nifti(slices > 0, ref_path, tmp_path / "pred" / "mask.nii.gz")
    mask = nib.load(out)
    data = np.asarray(mask.dataobj)
    assert data.dtype == np.uint8
    np.testing.assert_array_equal(data, (hu > 0).astype(np.uint8))  # voxel-identical, original order
    np.testing.assert_allclose(mask.affine, ref.affine)
    assert mask.header.get_qform(coded=True)[1] == codes[0]
    assert mask.header.get_sform(coded=True)[1] == codes[1]
    np.testing.assert_allclose(mask.header.get_qform(), ref.header.get_qform())
    np.testing.assert_allclose(mask.header.get_sform(), ref.header.get_sform())
    assert not list((tmp_path / "pred").glob(".tmp-*"))


def test_display_convention_on_a_non_canonical_volume(tmp_path):
    """The voxel nearest patient right-anterior-superior is pixel (0, 0) of the last display slice."""
    affine = AFFINES["ALI"]
    shape = (10, 12, 5)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    xyz = nib.affines.apply_affine(affine, ijk)
    # RAS+ world: +x towards the patient's right, +y anterior, +z superior
    i, j, k = ijk[np.argmax(xyz[:, 0] * 1e6 + xyz[:, 1] * 1e3 + xyz[:, 2])]
    vol = np.zeros(shape, np.int16)
    vol[i, j, k] = 1000
    img = nib.Nifti1Image(vol, affine)
    nib.save(img, tmp_path / "v.nii.gz")
    slices, _, _ = read_nifti_display_slices(tmp_path / "v.nii.gz")
    assert slices[-1, 0, 0] == 1000 and slices.sum() == 1000


def test_write_mask_nifti_rejects_bad_input(tmp_path):
    ref_path = tmp_path / "ct.nii.gz"
    _write_ct(ref_path, AFFINES["LPS"])
    slices, _, _ = read_nifti_display_slices(ref_path)
    with pytest.raises(ValueError, match="display slices"):
        write_mask_nifti(np.zeros(slices.shape[:2] + (3,), np.uint8), ref_path, tmp_path / "m.nii.gz")
    with pytest.raises(ValueError, match="threshold"):
        write_mask_nifti(np.full(slices.shape, 0.5), ref_path, tmp_path / "m.nii.gz")


@pytest.mark.parametrize("mask", [
    np.array([[0, 1], [2, 0]]),
    np.array([[False, True], [True, False]]),
    torch.tensor([[[0.0, 0.9], [1.0, 0.0]]]),  # (1, H, W) tensor, any nonzero is foreground
])
def test_write_mask_png(tmp_path, mask):
    path = write_mask_png(mask, tmp_path / "sub" / "m.png")
    with Image.open(path) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), [[0, 255], [255, 0]])
    assert [p.name for p in path.parent.iterdir()] == ["m.png"]


def test_write_mask_png_rejects_3d(tmp_path):
    with pytest.raises(ValueError, match="2D"):
        write_mask_png(np.zeros((2, 3, 3)), tmp_path / "m.png")
