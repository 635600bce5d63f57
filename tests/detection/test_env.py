"""medpipe.detection.env: offline ultralytics environment and device names."""

from __future__ import annotations

import os

import pytest
import torch

from medpipe.detection import env as E


@pytest.mark.parametrize("device,expected", [("cpu", "cpu"), ("cuda", "0"), ("cuda:1", "1"), ("0", "0"), ("0,1", "0,1"),
                                             (torch.device("cuda", 2), "2"), ("CPU ", "cpu")])
def test_device_mapping(device, expected):
    assert E.ul_device(device) == expected


@pytest.mark.parametrize("device", [None, "", "none"])
def test_device_default_follows_cuda(device):
    assert E.ul_device(device) == ("0" if torch.cuda.is_available() else "cpu")


def test_prepare_env_is_idempotent():
    before, chosen = torch.get_num_threads(), E._STATE["threads"]
    try:
        d1 = E.prepare_ultralytics_env(threads=1)
        d2 = E.prepare_ultralytics_env()
        E.ensure_ultralytics_env()  # already prepared: keeps the choice
        assert d1 == d2 and os.environ["YOLO_OFFLINE"] == "1"
        assert torch.get_num_threads() == 1  # a later call without threads keeps the chosen count
        torch.set_num_threads(2)
        E.restore_threads()  # what the ultralytics callbacks do
        assert torch.get_num_threads() == 1
    finally:
        E._STATE["threads"] = chosen
        torch.set_num_threads(before)
    assert all((d1 / f).stat().st_size > 100_000 for f in E.FONT_NAMES)
