"""`medpipe train|evaluate|infer|export BUNDLE --help`: the bundle's settings with defaults and meanings,
read from its configs and metadata (nothing typed twice), and the docs path; fast, no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medpipe.bundle import BUNDLES
from medpipe.bundle.helptext import ACTION_FILES, settings_section
from tests.conftest import REPO


@pytest.mark.parametrize("action", list(ACTION_FILES))
@pytest.mark.parametrize("bundle", list(BUNDLES))
def test_settings_section(bundle, action):
    text = settings_section(REPO, bundle, action)
    assert f"docs: bundles/{bundle}/docs/README.md" in text
    cfg = json.loads((REPO / "bundles" / bundle / "configs" / ACTION_FILES[action][0]).read_text())
    if action == "train":
        assert f"--max_epochs        {cfg['max_epochs']}" in text or f"--max_epochs {cfg['max_epochs']}" in " ".join(text.split())
    if action in ("evaluate", "infer"):
        assert "from the checkpoint" in text  # model settings are rebuilt from models/model.json


@pytest.mark.parametrize("bundle", list(BUNDLES))
def test_every_documented_setting_exists(bundle):
    """A meaning in settings_help that names no setting of the bundle would be help for nothing."""
    ids = set()
    for f in ("train.json", "evaluate.json", "inference.json"):
        ids |= set(json.loads((REPO / "bundles" / bundle / "configs" / f).read_text()))
    own = json.loads((REPO / "bundles" / bundle / "configs/metadata.json").read_text())["settings_help"]
    assert set(own) <= ids, set(own) - ids


def test_help_is_fast_and_imports_no_torch():
    code = ("import sys\nfrom medpipe.cli import main\n"
            "try:\n    main(['train', 'sich_seg', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('torch', 'monai', 'ultralytics') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and "--patch_size" in out and "--max_epochs" in out and "bundles/sich_seg/docs/README.md" in out
