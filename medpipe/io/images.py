"""Image format sniffing, header reading, and a full decode check.

Dataset files often lie about their format (PHE-SICH-CT-IDS ``.jpg`` files are PNG-encoded), so the
format is taken from the content's signature, never from the extension. :func:`read_image_info`
reads only the header and the file tail (size, pixel layout, truncation); :func:`decode_image`
also decodes every pixel, because a file damaged inside its pixel data has a perfect header and
would otherwise fail only later, inside training, without naming the file.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
_PNG_COLOR = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


class ImageHeaderError(ValueError):
    """The file is empty, truncated, or not a PNG/JPEG."""


class ImageDecodeError(ImageHeaderError):
    """The header is fine but the pixel data cannot be decoded (damaged file)."""


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


def read_image_info(path: str | Path, data: bytes | None = None) -> ImageInfo:
    """Read size and pixel layout of a PNG or JPEG file from its header, and check it is complete.

    A PNG must start with the PNG signature, have a valid ``IHDR`` and end with an ``IEND`` chunk; a
    JPEG must have a frame header and end with the EOI marker. Pixels are not decoded.

    Args:
        path: the image file (named in errors).
        data: the file's bytes when already read (then ``path`` is not opened).

    Returns:
        The header information.

    Raises:
        ImageHeaderError: empty, truncated or unknown format; the message names the file.
    """
    p = str(path)
    try:
        size = len(data) if data is not None else os.path.getsize(p)
        with (io.BytesIO(data) if data is not None else open(p, "rb")) as f:
            return _info(f, size, p)
    except OSError as e:
        raise ImageHeaderError(f"{p}: cannot be read ({e.strerror or e})") from e


def _info(f, size: int, p: str) -> ImageInfo:
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
    raise ImageHeaderError(f"{p}: neither PNG nor JPEG by content (first bytes {head[:8]!r})")


def _png_crc_error(data: bytes) -> str | None:
    """The first PNG chunk whose CRC does not match its bytes (None when all match)."""
    pos, n = 8, len(data)
    while pos + 12 <= n:
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        end = pos + 8 + length
        if end + 4 > n:
            return f"chunk {data[pos + 4:pos + 8]!r} runs past the end of the file"
        (crc,) = struct.unpack(">I", data[end:end + 4])
        if zlib.crc32(data[pos + 4:end]) & 0xFFFFFFFF != crc:
            return f"bad checksum in chunk {data[pos + 4:pos + 8].decode('latin-1')!r} at byte {pos}"
        if data[pos + 4:pos + 8] == b"IEND":
            return None
        pos = end + 4
    return "no IEND chunk"


def extension_format(path: str | Path) -> str | None:
    """The format a file's extension claims (``.png`` -> ``png``, ``.jpg``/``.jpeg`` -> ``jpeg``)."""
    ext = Path(path).suffix.lower()
    return {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(ext)


def decode_image(path: str | Path, data: bytes | None = None):
    """Check an image completely and return it decoded (a loaded Pillow image) with its header info.

    The header is checked first (:func:`read_image_info`); then, for a PNG, every chunk's CRC is
    verified and the pixels are decoded (Pillow ``load()``), so damage anywhere in the file is found
    here, with the file named, rather than in a data loader. The file is read once.

    Args:
        path: a PNG or JPEG file (named in errors).
        data: its bytes when already read (then ``path`` is not opened).

    Returns:
        ``(image, info)``: the decoded :class:`PIL.Image.Image` and its :class:`ImageInfo`.

    Raises:
        ImageHeaderError: unreadable header (see :func:`read_image_info`);
            ImageDecodeError: the pixel data is damaged.

    Example:
        >>> im, info = decode_image("0004_15.png")  # doctest: +SKIP
        >>> info.format, im.size  # doctest: +SKIP
        ('png', (512, 512))
    """
    from PIL import Image

    p = str(path)
    if data is None:
        try:
            data = Path(p).read_bytes()
        except OSError as e:
            raise ImageHeaderError(f"{p}: cannot be read ({e.strerror or e})") from e
    info = read_image_info(p, data)
    bad = _png_crc_error(data) if info.format == "png" else None
    try:
        if bad:  # damage that might still decode, into wrong pixels
            raise ValueError(bad)
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError, zlib.error...
        msg = str(e) or type(e).__name__
        raise ImageDecodeError(f"{p}: the pixel data cannot be decoded ({msg}); the file is damaged. "
                               f"Re-download or re-extract it.") from e
    return im, info
