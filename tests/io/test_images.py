import io

import numpy as np
import pytest
from PIL import Image

from medpipe.io.images import ImageHeaderError, extension_format, read_image_info, sniff_format


def _save(path, fmt, mode="L", size=(40, 30)):
    arr = np.zeros((size[1], size[0]) + ((3,) if mode == "RGB" else ()), np.uint8)
    Image.fromarray(arr, mode).save(path, format=fmt)
    return path


@pytest.mark.parametrize("fmt,ext,mode", [("PNG", ".png", "L"), ("PNG", ".jpg", "L"), ("JPEG", ".jpg", "L"),
                                          ("JPEG", ".png", "RGB"), ("PNG", ".png", "RGB")])
def test_header_by_content_not_extension(tmp_path, fmt, ext, mode):
    p = _save(tmp_path / f"x{ext}", fmt, mode)
    info = read_image_info(p)
    assert info.format == fmt.lower().replace("jpeg", "jpeg")
    assert (info.width, info.height) == (40, 30)
    assert info.mode == mode
    assert extension_format(p) == {".png": "png", ".jpg": "jpeg"}[ext]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated(tmp_path, fmt):
    p = _save(tmp_path / "x.img", fmt)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 20])
    with pytest.raises(ImageHeaderError, match="truncated"):
        read_image_info(p)


@pytest.mark.parametrize("content,match", [(b"", "empty file"), (b"hello world" * 5, "neither PNG nor JPEG"),
                                           (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "IHDR")])
def test_bad_files(tmp_path, content, match):
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(ImageHeaderError, match=match) as e:
        read_image_info(p)
    assert "bad.png" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ImageHeaderError, match="cannot be read"):
        read_image_info(tmp_path / "nope.png")


def test_sniff():
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, format="PNG")
    assert sniff_format(buf.getvalue()) == "png"
    assert sniff_format(b"\xff\xd8\xff") == "jpeg"
    assert sniff_format(b"GIF89a") is None


@pytest.mark.parametrize("fix_crc", [False, True])
def test_decode_image_finds_damage_inside_the_pixels(tmp_path, fix_crc):
    from medpipe.io.images import ImageDecodeError, decode_image
    from tests.conftest import corrupt_png_pixels

    p = tmp_path / "x.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 40, (64, 64), dtype=np.uint8)).save(p)
    im, info = decode_image(p)
    assert im.size == (64, 64) and info.format == "png"
    corrupt_png_pixels(p, fix_crc=fix_crc)
    assert read_image_info(p).width == 64  # the header check alone passes
    with pytest.raises(ImageDecodeError, match="x.png: the pixel data cannot be decoded"):
        decode_image(p)


def test_decode_image_jpeg(tmp_path):
    from medpipe.io.images import decode_image

    p = _save(tmp_path / "x.jpg", "JPEG")
    im, info = decode_image(p)
    assert info.format == "jpeg" and im.mode == "L"
