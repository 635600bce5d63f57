"""Loading prepared 2D slices (and stored volumes, for 3-D models) as channel-first float arrays."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform


def load_gray(src, binarize: bool = False) -> np.ndarray:
    """A slice as float32 ``(1, H, W)``: a file path (PNG/JPEG, format by content) or an array; a
    stored volume path (``.npz``/``.npy``) gives ``(1, D, H, W)``.

    Args:
        src: path, or a 2D array, or an array already channel-first (3D for a slice, 4D for a volume).
        binarize: for masks: foreground (> 127 for 8-bit, > 0.5 for arrays in 0..1) -> 1.0, else 0.0.
    """
    if isinstance(src, (str, bytes)) or hasattr(src, "__fspath__"):
        if str(src).lower().endswith((".npz", ".npy")):  # a stored volume (slices, rows, columns)
            return load_volume(src)
        from PIL import Image

        with Image.open(src) as im:
            arr = np.asarray(im.convert("L") if im.mode not in ("L", "I;16", "I", "F") else im)
        threshold = 127
    else:
        arr = np.asarray(src)
        threshold = 0.5 if arr.dtype.kind == "f" and arr.max(initial=0) <= 1 else 127
    arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if binarize:
        arr = (arr > threshold).astype(np.float32)
    return arr


def load_volume(path) -> np.ndarray:
    """A stored volume (``medpipe prepare``'s ``volumes/*.npz``, key ``volume``, or a ``.npy``) as float32
    ``(1, slices, rows, columns)``."""
    if str(path).lower().endswith(".npz"):
        with np.load(path) as z:
            arr = np.asarray(z["volume"], dtype=np.float32)
    else:
        arr = np.load(path).astype(np.float32)
    if arr.ndim != 3:
        raise ValueError(f"{path}: a stored volume has 3 axes (slices, rows, columns), this one {arr.shape}")
    return arr[None]


class LoadGray(Transform):
    """Array version of :class:`LoadGrayd`."""

    def __init__(self, binarize: bool = False) -> None:
        self.binarize = binarize

    def __call__(self, src):
        return load_gray(src, self.binarize)


class LoadGrayd(MapTransform):
    """Load 8-bit grayscale slices (paths or arrays) as float32 ``(1, H, W)`` (0..255; masks 0/1).

    Pillow is used directly rather than ``LoadImaged(reader="PILReader")`` because the latter
    transposes to ``(W, H)`` by default; keeping the stored orientation means boxes, masks and
    overlays line up with the files without bookkeeping.

    Args:
        keys: keys to load.
        binarize_keys: the subset of ``keys`` that are masks.
        keep_path: store the source path of each loaded key as ``{key}_path`` (for reports).
        allow_missing_keys: skip keys that are absent.
    """

    def __init__(self, keys: KeysCollection, binarize_keys: KeysCollection = (), keep_path: bool = True,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.binarize_keys = {binarize_keys} if isinstance(binarize_keys, str) else set(binarize_keys)
        self.keep_path = keep_path

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            if self.keep_path and isinstance(d[key], str):
                d[f"{key}_path"] = d[key]
            d[key] = load_gray(d[key], binarize=key in self.binarize_keys)
            if self.keep_path:
                d[f"{key}_size"] = [int(d[key].shape[-2]), int(d[key].shape[-1])]  # native (H, W)
        return d
