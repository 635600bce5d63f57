"""The radiological display convention, defined once in medpipe.io.orientation."""

import numpy as np

from medpipe.io.orientation import display_to_volume_slice, volume_slice_to_display


def test_round_trip_and_axes():
    nib = __import__("pytest").importorskip("nibabel")
    vol = np.arange(4 * 3 * 2).reshape(4, 3, 2)  # x (R), y (A), z (S)
    for k in range(2):
        d = volume_slice_to_display(vol, k)
        assert d.shape == (3, 4)  # rows = y, columns = x
        assert d[0, 0] == vol[3, 2, k]  # top-left: most anterior row, the patient's right (largest x)
        assert np.array_equal(display_to_volume_slice(d), vol[:, :, k])
    img = nib.Nifti1Image(vol.astype(np.int16), np.diag([-1.0, 1, 1, 1]))  # LAS on disk
    canon = nib.as_closest_canonical(img).get_fdata()
    assert np.array_equal(volume_slice_to_display(canon, 0), volume_slice_to_display(vol[::-1], 0))
