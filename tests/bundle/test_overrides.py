"""Override keys and values are checked before a bundle runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from medpipe.bundle.overrides import check_keys, check_settings, known_ids, parse_value
from medpipe.errors import UserError

REPO = Path(__file__).resolve().parents[2]
RAW = {"max_epochs": 2, "learning_rate": 0.1, "train": {"dataloader": {"num_workers": 2}}, "network_args": {"name": "x"}}


@pytest.mark.parametrize("text,value", [("2", 2), ("1e-3", 0.001), ("[64,64]", [64, 64]), ("abc", "abc"),
                                        ("True", True), ("None", None), ("/tmp/x", "/tmp/x")])
def test_values_are_read_as_monai_bundle_reads_them(text, value):
    assert parse_value(text) == value


def test_known_ids_include_nested_paths():
    ids = known_ids(RAW)
    assert {"max_epochs", "train#dataloader#num_workers", "network_args#name"} <= ids


@pytest.mark.parametrize("key,hint", [("learnin_rate", "did you mean --learning_rate"),
                                      ("train#dataloadr#num_workers", "did you mean --train#dataloader#num_workers"),
                                      ("config_file", "set by medpipe itself")])
def test_unknown_keys_are_refused_with_a_suggestion(key, hint):
    with pytest.raises(UserError, match=hint.replace("#", "#")):
        check_keys([key], RAW, "sich_cls train.json")
    check_keys(["max_epochs", "train::dataloader::num_workers", "tracking"], RAW, "x")


@pytest.mark.parametrize("values,match", [({"max_epochs": 0}, "at least 1"), ({"batch_size": True}, "whole number"),
                                          ({"image_size": 40}, "multiple of 16"), ({"image_size": 16}, "at least 32"),
                                          ({"learning_rate": -1}, "positive number"), ({"device": "cuda:0"}, "no CUDA"),
                                          ({"device": "tpu"}, "not a device"), ({"num_workers": -1}, "at least 0")])
def test_bad_values(values, match):
    import torch

    if "cuda" in str(values.get("device")) and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(UserError, match=match):
        check_settings("sich_seg", "train", values)


def test_good_values_pass():
    assert check_settings("sich_seg", "train", {"max_epochs": 1, "image_size": 64, "fold": 0, "device": "cpu",
                                                "learning_rate": 1e-3, "time_limit_s": None})


def test_monai_run_argv_unknown_key_is_refused_with_suggestion():
    """`python -m monai.bundle run --epochs 1` would silently add an unused key; it is refused instead."""
    import monai.bundle.__main__ as monai_main

    from medpipe.bundle.overrides import check_monai_argv

    cfg = str(REPO / "bundles" / "sich_cls" / "configs" / "train.json")
    argv = [monai_main.__file__, "run", "--config_file", cfg, "--epochs", "1", "--image_size=64"]
    with pytest.raises(UserError, match=r"--epochs: not a setting of train.json; did you mean --max_epochs\?"):
        check_monai_argv(argv)
    # known keys, nested ids, --key=value and a list of config files pass
    ok = [monai_main.__file__, "run", "--config_file", f"['{cfg}']", "--max_epochs", "1",
          "--image_size=64", "--bundle_root", "x", "--network_args#name", "resnet18"]
    check_monai_argv(ok)
    # other processes (the medpipe wrappers, tests) are not checked here
    check_monai_argv(["medpipe", "run", "--config_file", cfg, "--epochs", "1"])
    # overrides held in an args file are not second-guessed
    check_monai_argv([monai_main.__file__, "run", "--config_file", cfg, "--args_file", "a.json", "--epochs", "1"])
