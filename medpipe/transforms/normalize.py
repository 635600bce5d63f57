"""Intensity normalization transforms for 8-bit windowed CT slices (array and dictionary forms).

* :class:`ClipZScore` / :class:`ClipZScored`: nnU-Net CT normalization -- clip to the dataset's
  foreground percentiles, subtract the mean, divide by the std (statistics from
  :mod:`medpipe.data.stats`).
* :class:`IntensityMode` / :class:`IntensityModed`: fixed scalings of 0..255 input: ``"unit"``
  (``x/255``; also spelled ``"zero_one"``), ``"symmetric"`` (``x/127.5 - 1``; ``"minus_one_one"``)
  or ``"imagenet"`` (``x/255`` then ImageNet mean/std).

All are deterministic and accept numpy arrays, torch tensors and MONAI ``MetaTensor`` (metadata
kept); they return float32 of the same kind, so ``CacheDataset`` can cache their output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

__all__ = ["ClipZScore", "ClipZScored", "IntensityMode", "IntensityModed", "INTENSITY_MODES",
           "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the other names of the modes (the chest X-ray bundle's wording: ``zero_one``, ``minus_one_one``)
INTENSITY_ALIASES = {"zero_one": "unit", "minus_one_one": "symmetric"}
INTENSITY_MODES = ("imagenet", "unit", "symmetric", *INTENSITY_ALIASES)
_STATS_KEYS = ("mean", "std", "p_low", "p_high")


def _float32(x):
    if isinstance(x, torch.Tensor):
        return x.to(torch.float32)
    return np.asarray(x, dtype=np.float32)


def _clip(x, lo: float, hi: float):
    return torch.clamp(x, lo, hi) if isinstance(x, torch.Tensor) else np.clip(x, lo, hi)


def _check_stats(stats: Mapping, source: str) -> dict:
    missing = [k for k in _STATS_KEYS if k not in stats]
    if missing:
        raise ValueError(f"intensity statistics from {source} lack {missing}; expected the keys "
                         f"{list(_STATS_KEYS)} written by medpipe.data.stats.load_or_compute_stats")
    out = {k: float(stats[k]) for k in _STATS_KEYS}
    if not out["std"] > 0:
        raise ValueError(f"intensity statistics from {source}: std must be > 0, got {out['std']}")
    if out["p_low"] > out["p_high"]:
        raise ValueError(f"intensity statistics from {source}: p_low {out['p_low']} > p_high {out['p_high']}")
    return out


class ClipZScore(Transform):
    """Clip to ``[p_low, p_high]``, subtract ``mean``, divide by ``std`` (nnU-Net CT normalization).

    Args:
        stats: a dict with ``mean``, ``std``, ``p_low``, ``p_high`` (other keys ignored), e.g. the
            output of :func:`medpipe.data.stats.load_or_compute_stats`.
        stats_path: a JSON file holding such a dict, read lazily once on first use (so the
            transform can be built before the statistics exist). One of the two is required.

    Example:
        >>> t = ClipZScore(stats={"mean": 50.0, "std": 10.0, "p_low": 0.0, "p_high": 100.0})
        >>> t(np.array([0.0, 50.0, 255.0])).tolist()
        [-5.0, 0.0, 5.0]
    """

    def __init__(self, stats: Mapping | None = None, stats_path: str | os.PathLike | None = None) -> None:
        if stats is None and stats_path is None:
            raise ValueError("ClipZScore needs stats (a dict) or stats_path (a JSON file)")
        self.stats_path = None if stats_path is None else os.fspath(stats_path)
        self._stats = None if stats is None else _check_stats(stats, "the stats argument")

    @property
    def stats(self) -> dict:
        """The four statistics (loaded from ``stats_path`` on first access)."""
        if self._stats is None:
            try:
                with open(self.stats_path) as f:
                    raw = json.load(f)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"intensity statistics file {self.stats_path} does not exist; create it with "
                    "medpipe.data.stats.load_or_compute_stats (training images) first") from None
            except ValueError as e:
                raise ValueError(f"intensity statistics file {self.stats_path} is not valid JSON: {e}") from None
            self._stats = _check_stats(raw, self.stats_path)
        return self._stats

    def __call__(self, img):
        s = self.stats
        x = _clip(_float32(img), s["p_low"], s["p_high"])
        # python floats keep float32 for both numpy (NEP 50) and torch
        return (x - s["mean"]) / s["std"]


class ClipZScored(MapTransform):
    """Dictionary version of :class:`ClipZScore`.

    Args:
        keys: keys of the images to normalize (never the masks).
        stats: the statistics dict (``mean``, ``std``, ``p_low``, ``p_high``).
        stats_path: JSON file of the statistics, read lazily once when ``stats`` is None.
        allow_missing_keys: skip absent keys instead of raising.

    Example:
        >>> t = ClipZScored("image", stats={"mean": 50.0, "std": 10.0, "p_low": 0.0, "p_high": 100.0})
        >>> t({"image": torch.tensor([[[0.0, 150.0]]])})["image"].tolist()
        [[[-5.0, 5.0]]]

        In a bundle config::

            {"_target_": "medpipe.transforms.normalize.ClipZScored", "keys": "image",
             "stats_path": "@stats_path"}
    """

    def __init__(self, keys: KeysCollection, stats: Mapping | None = None,
                 stats_path: str | os.PathLike | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.normalizer = ClipZScore(stats=stats, stats_path=stats_path)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.normalizer(d[key])
        return d


class IntensityMode(Transform):
    """Fixed scaling of 8-bit (0..255) input.

    Modes:

    * ``"unit"`` (or ``"zero_one"``): ``x / 255`` -> [0, 1].
    * ``"symmetric"`` (or ``"minus_one_one"``): ``x / 127.5 - 1`` -> [-1, 1].
    * ``"imagenet"``: ``x / 255`` then ImageNet normalization: per channel for 3-channel
      channel-first input, else the mean of the ImageNet means/stds (0.449, 0.226) -- what an
      ImageNet-style encoder expects from a gray slice.

    Args:
        mode: one of :data:`INTENSITY_MODES`.

    Example:
        >>> IntensityMode("symmetric")(np.array([0.0, 127.5, 255.0])).tolist()
        [-1.0, 0.0, 1.0]
    """

    def __init__(self, mode: str = "unit") -> None:
        if mode not in INTENSITY_MODES:
            raise ValueError(f"unknown intensity mode {mode!r}; valid modes: {', '.join(INTENSITY_MODES)}")
        self.mode = INTENSITY_ALIASES.get(mode, mode)

    def __call__(self, img):
        x = _float32(img)
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "symmetric":
            return x / 127.5 - 1.0
        x = x / 255.0
        if x.ndim >= 3 and x.shape[0] == 3:
            shape = (3,) + (1,) * (x.ndim - 1)
            mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(shape)
            std = np.asarray(IMAGENET_STD, np.float32).reshape(shape)
            if isinstance(x, torch.Tensor):
                mean, std = torch.as_tensor(mean, device=x.device), torch.as_tensor(std, device=x.device)
            return (x - mean) / std
        mean = round(float(np.mean(IMAGENET_MEAN)), 3)  # 0.449
        std = round(float(np.mean(IMAGENET_STD)), 3)  # 0.226
        return (x - mean) / std


class IntensityModed(MapTransform):
    """Dictionary version of :class:`IntensityMode`.

    Args:
        keys: keys of the images to scale.
        mode: one of :data:`INTENSITY_MODES`.
        allow_missing_keys: skip absent keys instead of raising.

    Example:
        >>> IntensityModed("image", "unit")({"image": np.full((1, 2, 2), 255.0)})["image"].max()
        np.float32(1.0)
    """

    def __init__(self, keys: KeysCollection, mode: str = "unit", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scaler = IntensityMode(mode)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.scaler(d[key])
        return d
