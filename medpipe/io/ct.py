"""CT intensity helpers."""

from __future__ import annotations

import numpy as np


def window_to_uint8(hu, window: tuple[float, float]) -> np.ndarray:
    """Apply a (level, width) HU window and map it to 0..255 (rounded), as 8-bit CT slices store it.

    Example:
        >>> window_to_uint8(np.array([0.0, 40.0, 80.0]), (40.0, 80.0)).tolist()
        [0, 128, 255]
    """
    level, width = window
    lo = level - width / 2
    v = (np.asarray(hu, np.float32) - np.float32(lo)) * np.float32(255.0 / width)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)
