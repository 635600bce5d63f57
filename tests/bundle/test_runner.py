from pathlib import Path

import pytest

from medpipe.bundle.runner import monai_command, parse_overrides
from medpipe.errors import UserError


def test_overrides_paths_made_absolute():
    ov = parse_overrides(["--max_epochs", "3", "--dataset_dir", "data/x", "--fold=2", "--device", "cpu"])
    assert ov == {"max_epochs": "3", "dataset_dir": str(Path("data/x").absolute()), "fold": "2", "device": "cpu"}


@pytest.mark.parametrize("argv,match", [(["max_epochs", "3"], "unexpected argument"), (["--fold"], "needs a value")])
def test_bad_overrides(argv, match):
    with pytest.raises(UserError, match=match):
        parse_overrides(argv)


def test_commands():
    run = monai_command("run", "sich_cls", {"max_epochs": "1"}, ["train.json", "evaluate.json"])
    assert run[1:4] == ["-m", "monai.bundle", "run"]
    assert run[run.index("--config_file") + 1] == \
        "['bundles/sich_cls/configs/train.json','bundles/sich_cls/configs/evaluate.json']"
    assert run[-2:] == ["--max_epochs", "1"]
    exp = monai_command("ckpt_export", "sich_seg", {}, ["inference.json"], ["--filepath", "m.ts"])
    assert exp[3:5] == ["ckpt_export", "network_def"] and "--meta_file" in exp


def test_unknown_bundle():
    with pytest.raises(UserError, match="unknown bundle"):
        monai_command("run", "nope", {})
