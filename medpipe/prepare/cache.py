"""The resized image cache several converters write (``--cache-size PX``).

Chest X-rays are 1024-3000 px and networks see 128-512 px; decoding the originals every epoch
makes training I/O-bound. With ``--cache-size PX`` a converter stores each image resized so that
its longer side is at most PX (never enlarged; 8-bit gray PNG) and scales its boxes to it, so the
records describe the stored image only. ``0`` means no cache. Importing this module is cheap.

Example:
    >>> resized_size(1024, 1024, 256), parse_cache_size("0")
    ((256, 256), 0)
"""

from __future__ import annotations

import os

#: ``--cache-size`` bounds (0 = no cache)
MIN_CACHE, MAX_CACHE = 32, 4096


def parse_cache_size(s) -> int:
    """The ``--cache-size`` option's parser: 0, or a size from :data:`MIN_CACHE` to :data:`MAX_CACHE`."""
    v = int(s)
    if v != 0 and not MIN_CACHE <= v <= MAX_CACHE:
        raise ValueError(f"expected 0 (no cache) or a size from {MIN_CACHE} to {MAX_CACHE} pixels, e.g. 256")
    return v


def resized_size(w: int, h: int, limit: int) -> tuple[int, int]:
    """The size an image is cached at: the longer side ``limit``, aspect kept; never enlarged.

    Example:
        >>> resized_size(1024, 1024, 256), resized_size(64, 64, 256), resized_size(2000, 1000, 256)
        ((256, 256), (64, 64), (256, 128))
    """
    s = limit / max(w, h)
    if s >= 1:
        return w, h
    return max(1, round(w * s)), max(1, round(h * s))


def store_gray_png(img, dst: str | os.PathLike, cache_size: int = 0) -> tuple[int, int, bool]:
    """Write an 8-bit gray image (array or Pillow ``L`` image) as PNG, resized when ``cache_size`` asks.

    Bilinear resampling (Pillow's, which widens its support when shrinking, so it does not alias).
    PNG compression level 1: several times faster to write than the default, files ~10 % larger.

    Returns:
        ``(width, height, resized)`` of the stored image.
    """
    from PIL import Image

    im = img if isinstance(img, Image.Image) else Image.fromarray(img)
    if im.mode != "L":
        raise ValueError(f"store_gray_png: expected an 8-bit gray image, got mode {im.mode}")
    resized = False
    if cache_size and max(im.size) > cache_size:
        im = im.resize(resized_size(im.width, im.height, cache_size), Image.Resampling.BILINEAR)
        resized = True
    im.save(dst, format="PNG", compress_level=1)
    return im.width, im.height, resized


def store_rgb_png(img, dst: str, cache_size: int = 0) -> tuple[int, int, bool]:
    """Write an 8-bit ``(H, W, 3)`` image (e.g. a CT slice in three HU windows) as PNG, the longer side shrunk
    to ``cache_size`` when larger (bilinear, as :func:`store_gray_png`), compression level 1.

    Returns:
        ``(width, height, resized)`` of the stored image.

    Raises:
        ValueError: the image is not ``(H, W, 3)``.
    """
    import numpy as np
    from PIL import Image

    img = np.ascontiguousarray(img)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"store_rgb_png: expected an (H, W, 3) uint8 image, got shape {img.shape}")
    im = Image.fromarray(img.astype(np.uint8, copy=False), mode="RGB")
    resized = False
    if cache_size and max(im.size) > cache_size:
        im = im.resize(resized_size(im.width, im.height, cache_size), Image.Resampling.BILINEAR)
        resized = True
    im.save(dst, format="PNG", compress_level=1)
    return im.width, im.height, resized
