"""Dataset intensity statistics for nnU-Net-style CT normalization (clip to percentiles, z-score).

nnU-Net's CT normalization clips every image to the 0.5/99.5 percentiles of the *foreground*
intensities of the training set and z-scores with their mean and std. These statistics are
computed once from the training images (:func:`compute_intensity_stats`), cached to a JSON file
(:func:`load_or_compute_stats`) and applied by :class:`medpipe.transforms.normalize.ClipZScored`.

Foreground choice. nnU-Net takes the foreground of the segmentation labels, but its labels cover
whole organs; a PHE mask is a small rim around a haematoma, so its intensities describe only
oedema, not the head the network sees. The default ``foreground="nonzero"`` therefore uses every
pixel with value > 0 of each 8-bit windowed slice -- the head inside the brain window (air, and
anything below the window, is 0) -- which is the body region nnU-Net also relies on for CT
(``use_mask_for_norm`` off: statistics of all body voxels). ``foreground="mask"`` gives the
label-foreground variant.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["compute_intensity_stats", "load_or_compute_stats", "stats_key", "FOREGROUNDS"]

FOREGROUNDS = ("nonzero", "mask")


def _read_gray(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("L", "I", "I;16", "F"):
            im = im.convert("L")
        return np.asarray(im)


def _pairs(images, masks, foreground: str) -> list[tuple[str, str | None]]:
    images = [os.fspath(p) for p in images]
    if not images:
        raise ValueError("images is empty: need at least one image to compute intensity statistics")
    if foreground not in FOREGROUNDS:
        raise ValueError(f"foreground must be one of {FOREGROUNDS}, got {foreground!r}")
    if foreground == "mask":
        if masks is None:
            raise ValueError("foreground='mask' needs masks (one mask file per image)")
        masks = [os.fspath(p) for p in masks]
        if len(masks) != len(images):
            raise ValueError(f"{len(masks)} masks for {len(images)} images")
        pairs = list(zip(images, masks))
    else:
        if masks is not None:
            warnings.warn("masks are ignored with foreground='nonzero' (statistics of the head "
                          "pixels); pass foreground='mask' to use them", stacklevel=3)
        pairs = [(p, None) for p in images]
    # order-free: the same set of files gives the same sample, statistics and cache key
    return sorted(pairs)


def stats_key(images, masks=None, max_images: int = 200, seed: int = 0, lower: float = 0.5,
              upper: float = 99.5, foreground: str = "nonzero", pixels_per_image: int = 10000) -> str:
    """SHA-256 of the (sorted) file lists and every parameter: the cache key of the statistics."""
    pairs = _pairs(images, masks if foreground == "mask" else None, foreground)
    payload = json.dumps({"pairs": pairs, "max_images": int(max_images), "seed": int(seed),
                          "lower": float(lower), "upper": float(upper), "foreground": foreground,
                          "pixels_per_image": int(pixels_per_image)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def compute_intensity_stats(images: Sequence, masks: Sequence | None = None, max_images: int = 200,
                            seed: int = 0, lower: float = 0.5, upper: float = 99.5,
                            foreground: str = "nonzero", pixels_per_image: int = 10000) -> dict:
    """Mean, std and clipping percentiles of foreground intensities over a set of 8-bit images.

    When there are more than ``max_images`` images, ``max_images`` of them are drawn with
    ``seed``; from each, up to ``pixels_per_image`` foreground pixels are drawn (also with
    ``seed``), so the cost is bounded whatever the dataset size. Files are sorted first, so the
    result does not depend on the order of the lists. mean/std are of the unclipped sampled
    intensities (as nnU-Net computes them).

    Args:
        images: image file paths (8-bit PNG, read with PIL; colour images are converted to gray).
        masks: mask file paths, one per image; only used with ``foreground="mask"``.
        max_images: most images to read.
        seed: seed of the image and pixel sampling.
        lower: lower clipping percentile (0-100).
        upper: upper clipping percentile (0-100).
        foreground: ``"nonzero"`` (pixels > 0: the head; default, see the module docstring) or
            ``"mask"`` (pixels where the mask > 0).
        pixels_per_image: most pixels sampled per image.

    Returns:
        ``{"mean", "std", "p_low", "p_high", "n_pixels", "n_images", "foreground", "lower",
        "upper"}`` (``n_pixels``: sampled pixels used; ``n_images``: images read) -- plain
        JSON-ready numbers and strings.

    Raises:
        ValueError: no images, bad parameters, mask/image size mismatch, or no foreground pixel in
            any sampled image.

    Example:
        >>> s = compute_intensity_stats(sorted(glob.glob("prepared/images/*.png")))  # doctest: +SKIP
        >>> s["p_low"], s["p_high"], s["mean"], s["std"]  # doctest: +SKIP
        (1.0, 255.0, 61.3, 52.8)
    """
    if not 0 <= lower < upper <= 100:
        raise ValueError(f"need 0 <= lower < upper <= 100, got lower={lower}, upper={upper}")
    if max_images < 1 or pixels_per_image < 1:
        raise ValueError("max_images and pixels_per_image must be >= 1")
    pairs = _pairs(images, masks, foreground)
    rng = np.random.default_rng(seed)
    if len(pairs) > max_images:
        idx = np.sort(rng.choice(len(pairs), size=max_images, replace=False))
        pairs = [pairs[i] for i in idx]
    samples = []
    for img_path, mask_path in pairs:
        img = _read_gray(img_path)
        if mask_path is None:
            fg = img > 0
        else:
            mask = _read_gray(mask_path)
            if mask.shape != img.shape:
                raise ValueError(f"mask {mask_path} has shape {mask.shape} but image {img_path} has {img.shape}")
            fg = mask > 0
        values = img[fg]
        if values.size > pixels_per_image:
            values = rng.choice(values, size=pixels_per_image, replace=False)
        samples.append(values.astype(np.float64))
    v = np.concatenate(samples) if samples else np.zeros(0)
    if v.size == 0:
        raise ValueError(f"no foreground pixels ({foreground}) in the {len(pairs)} sampled images "
                         f"(first: {pairs[0][0]}); check the files or the foreground choice")
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "p_low": float(np.percentile(v, lower)),
        "p_high": float(np.percentile(v, upper)),
        "n_pixels": int(v.size),
        "n_images": len(pairs),
        "foreground": foreground,
        "lower": float(lower),
        "upper": float(upper),
    }


def load_or_compute_stats(path, images: Sequence, masks: Sequence | None = None, **kw) -> dict:
    """Intensity statistics cached in a JSON file; recomputed when the files or parameters change.

    The cache holds a ``"key"`` (:func:`stats_key` of the sorted file lists and every parameter);
    a file with another key, or an unreadable one, is recomputed and replaced atomically (temp file
    in the same folder, then :func:`os.replace`), so concurrent readers never see a partial file.

    Args:
        path: the JSON cache file (parent folders are created).
        images: image file paths.
        masks: mask file paths (used with ``foreground="mask"``).
        kw: parameters of :func:`compute_intensity_stats` (``max_images``, ``seed``, ``lower``,
            ``upper``, ``foreground``, ``pixels_per_image``).

    Returns:
        The statistics dict with its ``"key"`` added.

    Example:
        >>> stats = load_or_compute_stats("runs/seg/intensity_stats.json", train_images)  # doctest: +SKIP

        In a bundle config (the transform then reads the file)::

            "stats": {"_target_": "medpipe.data.stats.load_or_compute_stats",
                      "path": "$@bundle_root + '/models/intensity_stats.json'", "images": "@train_images"}
    """
    path = Path(path)
    key = stats_key(images, masks, **kw)
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
        except (OSError, ValueError):
            cached = None
        if isinstance(cached, dict) and cached.get("key") == key:
            return cached
    stats = compute_intensity_stats(images, masks, **kw)
    stats["key"] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp.write_text(json.dumps(stats, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return stats
