"""Image format sniffing and header reading without decoding pixels.

Dataset files often lie about their format (PHE-SICH-CT-IDS ``.jpg`` files are PNG-encoded), so the
format is taken from the content's signature, never from the extension. Reading only the header and
the file tail is enough to learn the size, the pixel layout and whether the file is truncated, which
is what a converter needs for images it will not otherwise touch.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
_PNG_COLOR = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


class ImageHeaderError(ValueError):
    """The file is empty, truncated, or not a PNG/JPEG."""


@dataclass
class ImageInfo:
    """What the header says: detected ``format`` (``png``/``jpeg``), ``width``, ``height``, ``mode``, ``bit_depth``."""

    format: str
    width: int
    height: int
    mode: str
    bit_depth: int


def sniff_format(head: bytes) -> str | None:
    """``"png"``, ``"jpeg"`` or None from the first bytes of a file."""
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(JPEG_SOI):
        return "jpeg"
    return None


def _jpeg_size(f, path: str) -> tuple[int, int, int]:
    f.seek(2)
    while True:
        b = f.read(1)
        while b and b != b"\xff":
            b = f.read(1)
        while b == b"\xff":
            b = f.read(1)
        if not b:
            raise ImageHeaderError(f"{path}: JPEG ends before its frame header (truncated)")
        marker = b[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        seg = f.read(2)
        if len(seg) < 2:
            raise ImageHeaderError(f"{path}: JPEG truncated in a segment header")
        (length,) = struct.unpack(">H", seg)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            data = f.read(6)
            if len(data) < 6:
                raise ImageHeaderError(f"{path}: JPEG truncated in its frame header")
            _depth, h, w, ncomp = struct.unpack(">BHHB", data)
            return w, h, ncomp
        f.seek(length - 2, os.SEEK_CUR)


def read_image_info(path: str | Path) -> ImageInfo:
    """Read size and pixel layout of a PNG or JPEG file from its header, and check it is complete.

    A PNG must start with the PNG signature, have a valid ``IHDR`` and end with an ``IEND`` chunk; a
    JPEG must have a frame header and end with the EOI marker. Pixels are not decoded.

    Args:
        path: the image file.

    Returns:
        The header information.

    Raises:
        ImageHeaderError: empty, truncated or unknown format; the message names the file.
    """
    p = str(path)
    try:
        size = os.path.getsize(p)
        with open(p, "rb") as f:
            head = f.read(33)
            fmt = sniff_format(head)
            if size == 0:
                raise ImageHeaderError(f"{p}: empty file (0 bytes)")
            if fmt == "png":
                if len(head) < 33 or head[12:16] != b"IHDR":
                    raise ImageHeaderError(f"{p}: PNG without a valid IHDR header (truncated or corrupt)")
                w, h, depth, color = struct.unpack(">IIBB", head[16:26])
                f.seek(max(0, size - 12))
                tail = f.read(12)
                if tail[4:8] != b"IEND":
                    raise ImageHeaderError(f"{p}: PNG has no IEND chunk at its end (truncated file)")
                return ImageInfo("png", w, h, _PNG_COLOR.get(color, f"color{color}"), depth)
            if fmt == "jpeg":
                w, h, ncomp = _jpeg_size(f, p)
                f.seek(max(0, size - 2))
                if f.read(2) != b"\xff\xd9":
                    raise ImageHeaderError(f"{p}: JPEG does not end with the EOI marker (truncated file)")
                return ImageInfo("jpeg", w, h, "L" if ncomp == 1 else "RGB", 8)
    except OSError as e:
        raise ImageHeaderError(f"{p}: cannot be read ({e.strerror or e})") from e
    raise ImageHeaderError(f"{p}: neither PNG nor JPEG by content (first bytes {head[:8]!r})")


def extension_format(path: str | Path) -> str | None:
    """The format a file's extension claims (``.png`` -> ``png``, ``.jpg``/``.jpeg`` -> ``jpeg``)."""
    ext = Path(path).suffix.lower()
    return {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(ext)
