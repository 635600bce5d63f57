"""`--tracking` of the bundle wrappers and of `python -m monai.bundle run`: accepted values, settings, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from medpipe.bundle.overrides import check_monai_argv, check_tracking_argv
from medpipe.bundle.runner import check_tracking
from medpipe.engines.tracking import SETTINGS_FILE
from medpipe.errors import UserError
from tests.conftest import REPO


@pytest.mark.parametrize("ov,given", [
    ({}, []),
    ({"tracking": "tensorboard"}, []),
    ({"tracking": "mlflow"}, []),
    ({"tracking": "mlflow", "run_name": "a", "experiment_name": "e"}, ["run_name", "experiment_name"]),
])
def test_tracking_settings_accepted(ov, given, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if ov.get("tracking") == "mlflow":
        pytest.importorskip("mlflow", reason="the tracking extra is not installed (pip install -e '.[tracking]')")
    assert check_tracking("train", dict(ov)) == given


def test_tracking_uri_folder_made_absolute():
    pytest.importorskip("mlflow", reason="the tracking extra is not installed (pip install -e '.[tracking]')")
    ov = {"tracking": "mlflow", "tracking_uri": "my_store"}
    assert check_tracking("train", ov) == ["tracking_uri"]
    assert ov["tracking_uri"] == str(Path("my_store").absolute())
    ov = {"tracking": "mlflow", "tracking_uri": "http://127.0.0.1:5000"}
    check_tracking("train", ov)
    assert ov["tracking_uri"] == "http://127.0.0.1:5000"


@pytest.mark.parametrize("action,ov,match", [
    ("train", {"tracking": "wandb"}, "not a tracker; use --tracking tensorboard"),
    ("evaluate", {"tracking": "mlflow"}, "--tracking: an option of `medpipe train`"),
    ("train", {"tracking_uri": "/tmp/s"}, "--tracking_uri: an MLflow setting; add --tracking mlflow"),
    ("train", {"tracking": "tensorboard", "run_name": "x"}, "--run_name: an MLflow setting"),
])
def test_tracking_refusals(action, ov, match):
    with pytest.raises(UserError, match=match):
        check_tracking(action, ov)


def test_missing_mlflow_refused_before_anything_runs(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install -e '\.\[tracking\]'"):
        check_tracking("train", {"tracking": "mlflow"})


def test_monai_default_mlflow_settings_refused():
    """MONAI's own --tracking mlflow would patch nothing into a medpipe bundle: refused, with the file that works."""
    with pytest.raises(UserError, match=f"use --tracking {SETTINGS_FILE}"):
        check_tracking_argv("mlflow")
    assert check_tracking_argv(None) == []
    assert "tracking_uri" in check_tracking_argv(str(REPO / SETTINGS_FILE))


def test_monai_argv_accepts_the_tracking_settings(monkeypatch):
    import monai.bundle.__main__ as monai_main

    monkeypatch.chdir(REPO)
    cfg = "bundles/sich_cls/configs/train.json"
    check_monai_argv([monai_main.__file__, "run", "--config_file", cfg, "--tracking", SETTINGS_FILE,
                      "--tracking_uri", "/tmp/store", "--max_epochs", "1"])
    with pytest.raises(UserError, match="--tracking_uri: not a setting"):  # without the settings file: unknown
        check_monai_argv([monai_main.__file__, "run", "--config_file", cfg, "--tracking_uri", "/tmp/store"])
    with pytest.raises(UserError, match="MONAI's default MLflow settings"):
        check_monai_argv([monai_main.__file__, "run", "--config_file", cfg, "--tracking", "mlflow"])


@pytest.mark.parametrize("bundle", sorted(__import__("medpipe.bundle.registry", fromlist=["BUNDLES"]).BUNDLES))
def test_every_bundle_gets_the_mlflow_handlers(bundle, monkeypatch):
    """MONAI patches the settings file's handlers into each bundle's own lists (before any macro is resolved):
    MONAI-engine bundles log from train#handlers and validate#handlers, ultralytics-engine ones in a last run step."""
    from monai.bundle import ConfigWorkflow

    from medpipe.bundle.registry import BUNDLES

    monkeypatch.chdir(REPO)
    cfg = f"bundles/{bundle}/configs"
    wf = ConfigWorkflow(config_file=f"{cfg}/train.json", meta_file=f"{cfg}/metadata.json", logging_file=False,
                        tracking=SETTINGS_FILE)
    p = wf.parser
    if BUNDLES[bundle].engine == "monai":
        assert p["train#handlers"][-1] == "@mlflow_run" and p["validate#handlers"][-1] == "@mlflow_run"
        assert p["mlflow_run"]["_target_"] == "medpipe.handlers.tracking.MLflowTracking"
    else:
        assert p["run"][-1]["_target_"] == "medpipe.engines.tracking.log_finished_run"
    assert p["save_execute_config"] is None  # MONAI writes no config copy: run_config.json is the record
