"""medpipe.detection.inference without a checkpoint: what ultralytics is given, and slices for drawing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medpipe.detection.inference import as_source, gray_image


@pytest.mark.parametrize("image,expected", [
    (np.full((3, 4), 7, np.uint8), 7),
    (np.full((3, 4), 300.0, np.float32), 255),  # clipped to 8 bits
    (np.full((3, 4), -5.0), 0),
])
def test_array_sources_are_gray_repeated_uint8(image, expected):
    src = as_source({"image": image})
    assert src.shape == (3, 4, 3) and src.dtype == np.uint8 and src.flags["C_CONTIGUOUS"]
    assert (src == expected).all()


def test_path_sources_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert as_source({"image": "a/b.png"}) == str(tmp_path / "a/b.png")


def test_gray_image(tmp_path):
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[..., 0] = 40
    assert gray_image(rgb).shape == (5, 6) and (gray_image(rgb) == 40).all()
    Image.fromarray(np.full((5, 6), 90, np.uint8)).save(tmp_path / "s.png")
    assert gray_image(tmp_path / "s.png").tolist() == np.full((5, 6), 90).tolist()
