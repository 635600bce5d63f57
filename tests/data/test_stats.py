"""Intensity statistics: foreground choice, sampling, determinism, JSON cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medpipe.data.stats import compute_intensity_stats, load_or_compute_stats, stats_key


def _write(tmp_path, n=4, size=24):
    """n slices: background 0, a 'head' of values 20..120, a lesion square of value 200."""
    rng = np.random.default_rng(0)
    images, masks, head_values, lesion_values = [], [], [], []
    for i in range(n):
        img = np.zeros((size, size), np.uint8)
        img[4:20, 4:20] = rng.integers(20, 121, (16, 16))
        img[8:12, 8:12] = 200
        mask = np.zeros((size, size), np.uint8)
        mask[8:12, 8:12] = 255
        ip, mp = tmp_path / f"img_{i}.png", tmp_path / f"mask_{i}.png"
        Image.fromarray(img).save(ip)
        Image.fromarray(mask).save(mp)
        images.append(str(ip))
        masks.append(str(mp))
        head_values.append(img[img > 0])
        lesion_values.append(img[mask > 0])
    return images, masks, np.concatenate(head_values), np.concatenate(lesion_values)


def test_nonzero_foreground_matches_numpy(tmp_path):
    images, _, head, _ = _write(tmp_path)
    s = compute_intensity_stats(images, pixels_per_image=10_000)  # every pixel used
    assert s["foreground"] == "nonzero" and s["n_images"] == 4 and s["n_pixels"] == head.size
    assert s["mean"] == pytest.approx(head.mean())
    assert s["std"] == pytest.approx(head.std())
    assert s["p_low"] == pytest.approx(np.percentile(head, 0.5))
    assert s["p_high"] == pytest.approx(np.percentile(head, 99.5))
    assert (s["lower"], s["upper"]) == (0.5, 99.5)
    json.dumps(s)


def test_mask_foreground(tmp_path):
    images, masks, _, lesion = _write(tmp_path)
    s = compute_intensity_stats(images, masks, foreground="mask")
    assert s["foreground"] == "mask" and s["mean"] == pytest.approx(200.0) and s["std"] == pytest.approx(0.0)
    assert s["n_pixels"] == lesion.size
    with pytest.raises(ValueError, match="needs masks"):
        compute_intensity_stats(images, foreground="mask")
    with pytest.warns(UserWarning, match="ignored"):
        compute_intensity_stats(images, masks)  # default: head pixels, masks unused


def test_sampling_is_bounded_deterministic_and_order_free(tmp_path):
    images, _, _, _ = _write(tmp_path, n=6)
    a = compute_intensity_stats(images, max_images=3, pixels_per_image=50, seed=1)
    b = compute_intensity_stats(images[::-1], max_images=3, pixels_per_image=50, seed=1)
    assert a == b
    assert a["n_images"] == 3 and a["n_pixels"] == 150
    c = compute_intensity_stats(images, max_images=3, pixels_per_image=50, seed=2)
    assert c != a


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        compute_intensity_stats([])
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(blank)
    with pytest.raises(ValueError, match="no foreground"):
        compute_intensity_stats([str(blank)])
    with pytest.raises(ValueError, match="lower < upper"):
        compute_intensity_stats([str(blank)], lower=99, upper=1)


def test_cache(tmp_path, monkeypatch):
    images, _, _, _ = _write(tmp_path)
    path = tmp_path / "cache" / "stats.json"
    first = load_or_compute_stats(path, images)
    assert json.loads(path.read_text()) == first
    assert first["key"] == stats_key(images)
    assert not list(path.parent.glob(".*tmp"))  # the temp file was moved into place

    import medpipe.data.stats as stats_mod

    calls = []
    real = stats_mod.compute_intensity_stats
    monkeypatch.setattr(stats_mod, "compute_intensity_stats", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert load_or_compute_stats(path, images[::-1]) == first  # same files, any order: cache hit
    assert calls == []
    other = load_or_compute_stats(path, images, upper=99.0)  # a parameter changed: recomputed
    assert calls == [1] and other["key"] != first["key"] and other["upper"] == 99.0
    load_or_compute_stats(path, images[:2])  # other files: recomputed
    assert len(calls) == 2
    path.write_text("{not json")  # a corrupt cache is replaced
    assert load_or_compute_stats(path, images[:2])["n_images"] == 2
    assert len(calls) == 3
