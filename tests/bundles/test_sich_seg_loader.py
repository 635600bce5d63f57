"""sich_seg's training loader: the cache is shared with the random transforms without a copy
(``copy_cache=False``) and must come out of every epoch unchanged; 2.5D input stacks the neighbours."""

from __future__ import annotations

import os

import numpy as np
import torch

from tests.conftest import REPO


def test_cached_items_survive_augmentation_and_hold_three_slices(tiny_phe, tmp_path):
    from monai.bundle import ConfigParser
    from monai.data import get_track_meta, set_track_meta

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        p = ConfigParser()
        p.read_config(["bundles/sich_seg/configs/train.json", "bundles/sich_seg/configs/presets/cpu_budget.json"])
        p.update({"dataset_dir": str(tiny_phe), "output_dir": str(tmp_path / "run"), "image_size": 64,
                  "patch_size": [32, 32], "num_workers": 0, "device": "cpu", "limit": 12, "context": 1})
        ds = p.get_parsed_content("train#dataset")
        assert not get_track_meta()  # training_chain switched MONAI's metadata tracking off
        before = [{k: (v.clone() if isinstance(v, torch.Tensor) else np.copy(v) if isinstance(v, np.ndarray) else v)
                   for k, v in item.items()} for item in ds._cache]
        assert before[0]["image"].shape[0] == 3  # previous, this, next slice
        for _ in range(2):
            for i in range(len(ds)):
                crops = ds[i]
                assert len(crops) == 2 and crops[0]["image"].shape == (3, 32, 32)
        for old, new in zip(before, ds._cache):
            assert old.keys() == new.keys()
            for k, v in old.items():
                if isinstance(v, (torch.Tensor, np.ndarray)):
                    assert np.array_equal(np.asarray(v), np.asarray(new[k])), k
    finally:
        set_track_meta(True)
        os.chdir(cwd)
