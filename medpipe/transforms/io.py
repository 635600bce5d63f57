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


def load_channels(src, channels=None) -> np.ndarray:
    """A slice stored with several channels (e.g. a CT slice in three HU windows as an RGB PNG) as float32
    ``(C, H, W)`` in 0..255; a grayscale file gives ``(1, H, W)``.

    Args:
        src: a path (PNG/JPEG), or an array ``(H, W)``, ``(H, W, C)`` with C in 1..4, or ``(C, H, W)``.
        channels: indices of the channels to keep, in order (None: all).
    """
    if isinstance(src, (str, bytes)) or hasattr(src, "__fspath__"):
        from PIL import Image

        with Image.open(src) as im:
            arr = np.asarray(im.convert("RGB") if im.mode in ("RGBA", "P", "CMYK", "YCbCr") else im)
    else:
        arr = np.asarray(src)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[-1] <= 4 and arr.shape[0] > 4:
        arr = np.moveaxis(arr, -1, 0)
    arr = arr.astype(np.float32)
    if channels is not None:
        idx = list(channels)
        if max(idx) >= arr.shape[0]:
            from medpipe.errors import DataError

            what = src if isinstance(src, str) else "the image"
            raise DataError(f"{what} has {arr.shape[0]} channel(s), but this model reads channels {idx} of its "
                            f"training data's slices" + (
                                " (e.g. CT slices exported in a single window given to a model trained "
                                "on several HU windows): use a model trained with --window_channels set to that one "
                                "window (e.g. brain), or give slices stored like the training data." if arr.shape[0] == 1
                                else "; give slices stored like the training data."))
        arr = arr[idx]
    return np.ascontiguousarray(arr)


class LoadStackd(MapTransform):
    """Load a multi-channel slice and, for 2.5D models, its neighbours: ``(C * (1 + 2 * context), H, W)``.

    With ``context`` 1 the channels are ``[previous slice, this slice, next slice]`` (each with its
    ``channels``), read from the record's ``<key>_prev`` / ``<key>_next`` paths (:func:`~medpipe.data.datalist.load_split`
    sets them from the prepared ``neighbors``); a record without them repeats the slice itself.

    Args:
        keys: the image key(s).
        channels: channel indices kept from every file (None: all).
        context: 0 (the slice alone) or 1 (2.5D: one neighbour on each side).
        keep_path: store the source path as ``{key}_path``.
    """

    def __init__(self, keys: KeysCollection, channels=None, context: int = 0, keep_path: bool = True,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if int(context) not in (0, 1):
            raise ValueError(f"context {context}: 0 (one slice) or 1 (2.5D, the slices above and below)")
        self.channels, self.context, self.keep_path = channels, int(context), keep_path

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            src = d[key]
            if self.keep_path and isinstance(src, str):
                d[f"{key}_path"] = src
            cur = load_channels(src, self.channels)
            if self.context:
                def side(name):
                    other = d.get(f"{key}_{name}")
                    if other is None or (isinstance(other, str) and other in ("", src)):
                        return cur
                    return load_channels(other, self.channels)
                cur = np.concatenate([side("prev"), cur, side("next")], axis=0)
            d[key] = cur
            if self.keep_path:
                d[f"{key}_size"] = [int(cur.shape[-2]), int(cur.shape[-1])]
        return d


def channel_indices(input_spec: Mapping, window_channels="all") -> list[int]:
    """Indices of the stored channels a model reads, from the dataset's ``input`` header.

    Args:
        input_spec: the prepared dataset's (or checkpoint's) input settings: ``channels`` (how many the
            stored slices have) and, for CT slices stored in several HU windows, ``window_channels``
            (their names in order, e.g. ``["brain", "subdural", "soft_tissue"]``).
        window_channels: ``all``, or names of windows (a list or a comma-separated string) to keep.

    Example:
        >>> channel_indices({"channels": 3, "window_channels": ["brain", "subdural", "soft_tissue"]}, "brain")
        [0]
    """
    from medpipe.errors import UserError

    n = int(input_spec.get("channels") or 1)
    if window_channels in (None, "all"):
        return list(range(n))
    wanted = [w.strip() for w in window_channels.split(",")] if isinstance(window_channels, str) else list(window_channels)
    names = list(input_spec.get("window_channels") or [])
    if not names:
        raise UserError(f"--window_channels {','.join(wanted)}: this dataset's slices have {n} channel(s) and no "
                        f"named windows; use --window_channels all.")
    bad = [w for w in wanted if w not in names]
    if bad or not wanted:
        raise UserError(f"--window_channels {','.join(wanted)}: {', '.join(bad) or 'nothing'} not among the "
                        f"dataset's windows ({', '.join(names)}); name some of them, or use all.")
    return [names.index(w) for w in wanted]


def check_input_channels(records: list[dict], channels, key: str = "image") -> list[dict]:
    """Load the first record's image and refuse inputs with fewer channels than the model reads, before the data
    loader starts (an error inside a loader worker would reach the user as a traceback); returns ``records``.

    Raises:
        DataError: naming the file and what to do (see :func:`load_channels`).
    """
    if records:
        load_channels(records[0][key], channels)
    return records


def training_chain(preprocessing, augmentation, track_meta: bool = False) -> list:
    """The training transform list (cached ``preprocessing`` then random ``augmentation``), with MONAI's
    metadata tracking switched off for this process (and the loader workers it forks).

    MONAI transforms turn every tensor they return into a ``MetaTensor`` while tracking is on; on a CPU
    the bookkeeping of each operation (``__torch_function__``) costs more than the augmentation itself
    for small patches. medpipe keeps what it needs (paths, native sizes) as plain dictionary keys, so
    the training loaders do not need it.

    Args:
        preprocessing: the deterministic transforms (a ``Compose`` or a list).
        augmentation: the random transforms.
        track_meta: the value given to :func:`monai.data.set_track_meta`.
    """
    from monai.data import set_track_meta

    set_track_meta(bool(track_meta))
    first = list(getattr(preprocessing, "transforms", preprocessing))
    return first + list(augmentation)
