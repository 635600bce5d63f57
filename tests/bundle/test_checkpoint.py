"""Checkpoint settings files: written beside the checkpoint, read back, checked against overrides."""

from __future__ import annotations

import json

import pytest
import torch

from medpipe.bundle.checkpoint import (check_consistent, conflicts, load_settings, read_sidecar, record_decision,
                                       sidecar_path, write_model_settings)
from medpipe.errors import UserError

SETTINGS = {"image_size": 64, "network_name": "dynunet", "patch_size": [32, 32], "class_names": ["bg", "phe"],
            "intensity_stats": {"mean": 1.5}}


@pytest.fixture
def ckpt(tmp_path):
    (tmp_path / "models").mkdir()
    torch.save({"w": torch.zeros(1)}, tmp_path / "models/model.pt")
    write_model_settings(tmp_path / "models", "sich_seg", SETTINGS, network={"name": "dynunet"},
                         dataset={"dir": "/data"})
    return tmp_path / "models/model.pt"


def test_round_trip(ckpt):
    rec = read_sidecar(ckpt, "sich_seg")
    assert rec["settings"] == SETTINGS and rec["network"] == {"name": "dynunet"} and rec["medpipe_version"]
    assert load_settings(ckpt, "sich_seg") == {**SETTINGS, "decision": {}}
    assert sidecar_path(ckpt).name == "model.json"
    other = ckpt.with_name("checkpoint_last.pt")
    torch.save({}, other)
    assert sidecar_path(other).name == "model.json"  # one settings file for every checkpoint of a run


@pytest.mark.parametrize("current,keys", [
    ({"image_size": 64, "patch_size": (32, 32)}, []),  # same values, other types
    ({"image_size": 64.0}, []),
    ({"image_size": 128}, ["image_size"]),
    ({"patch_size": [64, 64], "network_name": "dynunet"}, ["patch_size"]),
    ({"class_names": ["bg", "phe", "x"]}, ["class_names"]),
    ({"unrelated": 1}, []),
])
def test_conflicts(current, keys):
    assert [k for k, _, _ in conflicts(SETTINGS, current)] == keys


def test_check_consistent_names_every_key(ckpt):
    with pytest.raises(UserError) as e:
        check_consistent(SETTINGS, {"image_size": 128, "patch_size": [64, 64]}, str(ckpt))
    msg = str(e.value)
    assert "--image_size 128 (trained with 64)" in msg and "--patch_size [64, 64] (trained with [32, 32])" in msg
    assert str(ckpt) in msg and "\n" not in msg


def test_bad_checkpoints(tmp_path, ckpt):
    text = tmp_path / "x.pt"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a PyTorch checkpoint"):
        read_sidecar(text)
    with pytest.raises(UserError, match="trained by bundle 'sich_seg', not 'sich_cls'"):
        read_sidecar(ckpt, "sich_cls")
    lone = tmp_path / "lone" / "model.pt"
    lone.parent.mkdir()
    torch.save({}, lone)
    with pytest.raises(UserError, match="no settings file beside it"):
        read_sidecar(lone)
    (lone.parent / "model.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserError, match="not a medpipe model settings file"):
        read_sidecar(lone)


def test_decisions_are_stored_only_from_the_runs_own_validation(ckpt, tmp_path):
    assert not record_decision(ckpt, {"area_threshold": 40}, "/data", "test")  # a test set never sets them
    assert not record_decision(ckpt, {"area_threshold": 40}, str(tmp_path / "external"), "val")
    assert record_decision(ckpt, {"area_threshold": 68}, "/data", "val")
    d = load_settings(ckpt)["decision"]
    assert d["area_threshold"] == 68 and "validation fold" in d["chosen_on"]
    assert read_sidecar(ckpt)["settings"] == SETTINGS  # the model's settings are untouched
