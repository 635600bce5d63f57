"""The GPU path on CPU: the config ids exist in every MONAI-engine bundle (defaults from one place), and a
tiny training with channels-last (and, for sich_cls, torch.compile with the ``eager`` backend: inductor
works here too but compiles for about 30 s) runs, records the settings and throughput, and leaves a plain
checkpoint that eager inference loads."""

from __future__ import annotations

import json

import pytest
import torch

from medpipe.bundle import BUNDLES
from medpipe.engines.performance import IDS
from tests.bundles.conftest import RUNTIME, read_json, run_bundle
from tests.conftest import REPO

MONAI = sorted(n for n, s in BUNDLES.items() if s.engine == "monai")


@pytest.mark.parametrize("name", MONAI)
def test_every_monai_bundle_takes_the_gpu_ids_from_the_shared_skeleton(name):
    raw = json.loads((REPO / f"bundles/{name}/configs/train.json").read_text())
    assert "amp" in raw
    for key in IDS[1:]:
        assert raw.get(key) == f"%bundles/common/configs/supervised.json#performance#{key}", (name, key)
    defaults = json.loads((REPO / "bundles/common/configs/supervised.json").read_text())["performance"]
    assert set(defaults) == set(IDS[1:]) and defaults["channels_last"] is False and defaults["compile"] is False


@pytest.mark.parametrize("name, extra", [
    ("sich_cls", ["--image_size", "32", "--batch_size", "4", "--compile", "true", "--compile_backend", "eager"]),
    ("sich_seg", ["--image_size", "64", "--batch_size", "2"]),
])
def test_channels_last_training_leaves_a_plain_checkpoint_for_eager_inference(tiny_phe, tmp_path, name, extra):
    out = tmp_path / "run"
    run_bundle(["medpipe", "train", name, "--dataset_dir", str(tiny_phe), "--output_dir", str(out), "--max_epochs",
                "1", "--limit", "8", "--channels_last", "true", *extra, *RUNTIME])
    compiled = "--compile" in extra
    perf = read_json(out / "run_config.json")["settings"]["performance"]
    assert perf["channels_last"] is True and perf["compile"] is compiled and perf["device"] == "cpu"
    assert perf["amp"] is False and perf["cudnn_benchmark"] is False and perf["pin_memory"] is False  # CPU
    hist = read_json(out / "history.json")
    assert hist["epoch"] == [1] and hist["images_per_s"][0] > 0 and hist["train_s"][0] > 0
    for f in ("model.pt", "checkpoint_last.pt"):
        state = torch.load(out / "models" / f, map_location="cpu", weights_only=True)
        keys = list(state.get("model", state)) if f != "model.pt" else list(state)
        assert keys and not any("_orig_mod" in k or k.startswith("module.") for k in keys), (f, keys[:3])
    pred = tmp_path / "pred"
    run_bundle(["monai.bundle", "run", "--config_file", f"bundles/{name}/configs/inference.json", "--ckpt_path",
                str(out / "models/model.pt"), "--input", str(tiny_phe / "images"), "--output_dir", str(pred),
                *RUNTIME])
    assert (pred / "predictions.csv").read_text().count("\n") > 1
