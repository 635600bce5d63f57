"""ClipZScored and IntensityModed on numpy, torch and MetaTensor input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, MetaTensor
from monai.transforms import Compose

from medpipe.transforms.normalize import ClipZScore, ClipZScored, IntensityMode, IntensityModed

STATS = {"mean": 50.0, "std": 10.0, "p_low": 10.0, "p_high": 100.0}
RAW = [[[0.0, 10.0, 50.0, 100.0, 255.0]]]
EXPECTED = [[[-4.0, -4.0, 0.0, 5.0, 5.0]]]


def _kinds(values):
    return [np.asarray(values, np.uint8), np.asarray(values, np.float64), torch.tensor(values),
            MetaTensor(torch.tensor(values), meta={"filename_or_obj": "x.png"})]


@pytest.mark.parametrize("kind", range(4))
def test_clip_zscore_kinds(kind):
    img = _kinds(RAW)[kind]
    out = ClipZScored("image", stats=STATS)({"image": img, "label": img})
    assert type(out["image"]) is type(img)
    assert out["image"].dtype in (np.float32, torch.float32)
    np.testing.assert_allclose(np.asarray(out["image"]), EXPECTED)
    assert out["label"] is img  # only the listed keys change
    if isinstance(img, MetaTensor):
        assert out["image"].meta["filename_or_obj"] == "x.png"


def test_stats_path_is_read_lazily_once(tmp_path):
    path = tmp_path / "stats.json"
    t = ClipZScored("image", stats_path=str(path))  # building before the file exists is fine
    path.write_text(json.dumps({**STATS, "n_pixels": 5, "key": "abc"}))
    np.testing.assert_allclose(t({"image": np.asarray(RAW)})["image"], EXPECTED)
    path.write_text(json.dumps({**STATS, "mean": 0.0}))  # not re-read
    np.testing.assert_allclose(t({"image": np.asarray(RAW)})["image"], EXPECTED)


@pytest.mark.parametrize("kw, match", [
    ({}, "needs stats"),
    ({"stats": {"mean": 1.0}}, "lack"),
    ({"stats": {**STATS, "std": 0.0}}, "std"),
])
def test_clip_zscore_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        ClipZScore(**kw)


def test_missing_stats_file(tmp_path):
    t = ClipZScore(stats_path=tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="load_or_compute_stats"):
        t(np.zeros(3))


@pytest.mark.parametrize("mode, expected", [
    ("unit", [0.0, 0.5, 1.0]),
    ("zero_one", [0.0, 0.5, 1.0]),
    ("symmetric", [-1.0, 0.0, 1.0]),
    ("minus_one_one", [-1.0, 0.0, 1.0]),
    ("imagenet", [(0 - 0.449) / 0.226, (0.5 - 0.449) / 0.226, (1 - 0.449) / 0.226]),
])
@pytest.mark.parametrize("kind", range(4))
def test_intensity_modes(mode, expected, kind):
    img = _kinds([[[0.0, 127.5, 255.0]]])[kind] if kind else np.asarray([[[0, 127.5, 255]]])
    out = IntensityModed("image", mode)({"image": img})["image"]
    assert out.dtype in (np.float32, torch.float32)
    np.testing.assert_allclose(np.asarray(out).ravel(), expected, rtol=1e-5, atol=1e-6)


def test_imagenet_three_channels():
    img = torch.full((3, 2, 2), 255.0)
    out = IntensityMode("imagenet")(img)
    expected = [(1 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    torch.testing.assert_close(out[:, 0, 0], torch.tensor(expected))
    with pytest.raises(ValueError, match="valid modes"):
        IntensityMode("zscore")


def test_cacheable_and_deterministic():
    data = [{"image": np.full((1, 4, 4), v, np.float32)} for v in (0.0, 60.0, 200.0)]
    tf = Compose([ClipZScored("image", stats=STATS), IntensityModed("image", "unit")])
    ds = CacheDataset(data, tf, cache_rate=1.0, num_workers=0, progress=False)
    again = [tf(d)["image"] for d in data]
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(ds[i]["image"]), np.asarray(again[i]))
