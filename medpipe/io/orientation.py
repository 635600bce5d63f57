"""Display orientation of axial slices: the radiological convention, defined once.

A *display slice* has rows anterior->posterior and columns patient right->left (the patient's
right on the left of the screen, anterior at the top), the way radiologists read axial CT and the
way 2D slice datasets (e.g. PHE-SICH-CT-IDS's PNGs) are stored. Volumes are indexed ``[x, y, z]``
in RAS+ orientation (as returned by :func:`nibabel.as_closest_canonical`); ``k`` indexes the axial
z axis (inferior->superior).

These two functions are the only place that knows the convention: dataset converters, synthetic
generators, NIfTI readers and mask writers all call them, so a slice made from a volume lines up
with a stored 2D slice and a predicted mask goes back onto its volume.
"""

from __future__ import annotations

#: name of the convention, as written in a prepared datalist's ``input.orientation``
RADIOLOGICAL = "radiological"

__all__ = ["RADIOLOGICAL", "volume_slice_to_display", "display_to_volume_slice"]


def volume_slice_to_display(volume_ras, k: int):
    """2D display slice (rows anterior->posterior, columns patient right->left) of a RAS volume.

    Args:
        volume_ras: array indexed ``[x, y, z]`` in RAS+ orientation.
        k: index along the axial (z, inferior->superior) axis.

    Returns:
        A ``(rows, columns)`` numpy array.

    Example:
        >>> import numpy as np
        >>> vol = np.arange(6).reshape(3, 2, 1)          # x=3 (R->), y=2 (A->), one slice
        >>> volume_slice_to_display(vol, 0).tolist()     # anterior row first, patient right on the left
        [[5, 3, 1], [4, 2, 0]]
    """
    import numpy as np

    # RAS+: x grows towards the patient's right, y towards anterior. Radiological display puts the
    # patient's right on the left of the screen and anterior at the top, so both in-plane axes flip.
    return np.asarray(volume_ras[::-1, ::-1, k]).T


def display_to_volume_slice(image2d):
    """Inverse of :func:`volume_slice_to_display`: a display slice -> the ``[x, y]`` plane of a RAS volume.

    Example:
        >>> import numpy as np
        >>> a = np.arange(6).reshape(2, 3)
        >>> bool((volume_slice_to_display(display_to_volume_slice(a)[..., None], 0) == a).all())
        True
    """
    import numpy as np

    return np.asarray(image2d).T[::-1, ::-1]
