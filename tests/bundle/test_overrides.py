"""Override keys and values are checked before a bundle runs."""

from __future__ import annotations

import pytest

from medpipe.bundle.overrides import check_keys, check_settings, known_ids, parse_value
from medpipe.errors import UserError

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
