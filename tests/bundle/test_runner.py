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


def test_presets_are_overlays_of_train_json_only():
    """Every preset names only ids train.json defines (a typo would otherwise add a dead key), comes last in
    the merge, and is refused for actions that read their settings from the checkpoint."""
    import json

    from medpipe.bundle.overrides import check_keys
    from medpipe.bundle.runner import config_files, raw_config, repo_root

    presets = sorted((repo_root() / "bundles").glob("*/configs/presets/*.json"))
    assert {p.stem for p in presets if p.parts[-4] == "sich_seg"} >= {"cpu_budget", "full"}
    for p in presets:
        bundle = p.parts[-4]
        files = config_files(bundle, "train", p.stem)
        assert files[-1].endswith(f"presets/{p.stem}.json")
        base = raw_config(files[:-1])
        keys = [k for k in json.loads(p.read_text()) if not k.startswith("_")]
        check_keys(keys, base, f"{bundle} train.json")  # raises on an unknown id
        merged = raw_config(files)
        assert all(merged[k] == json.loads(p.read_text())[k] for k in keys)
    with pytest.raises(UserError, match="reads every setting from the checkpoint"):
        config_files("sich_seg", "evaluate", "cpu_budget")
    with pytest.raises(UserError, match="presets: cpu_budget, full"):
        config_files("sich_seg", "train", "fast")
