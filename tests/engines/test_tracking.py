"""Experiment tracking helpers: --tracking values, the MLflow store, parameters, a run logged from its files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medpipe.engines import tracking as T
from medpipe.errors import UserError
from tests.conftest import REPO


@pytest.mark.parametrize("value,expected", [("mlflow", T.SETTINGS_FILE), ("MLflow", T.SETTINGS_FILE),
                                            ("tensorboard", None), (None, None), ("", None)])
def test_settings_file(value, expected):
    assert T.settings_file(value) == expected
    if expected:
        assert (REPO / expected).is_file()


def test_unknown_tracker_lists_the_choices():
    with pytest.raises(UserError, match=r"--tracking wandb: not a tracker; use --tracking tensorboard .* mlflow"):
        T.settings_file("wandb")


def test_settings_keys_are_the_overridable_settings_not_the_handlers():
    keys = T.settings_keys(REPO / T.SETTINGS_FILE)
    assert {"tracking_uri", "experiment_name", "run_name"} <= set(keys)
    assert not {"trainer", "validator", "detector"} & set(keys)


@pytest.mark.parametrize("given,env,expected", [
    # a folder (plain path, relative to the root, or file: URI): a SQLite database and artifacts/ inside it
    ("/s/store", {}, ("sqlite:////s/store/mlflow.db", "file:///s/store/artifacts")),
    ("store", {}, ("sqlite:////repo/store/mlflow.db", "file:///repo/store/artifacts")),
    ("file:///s/f", {}, ("sqlite:////s/f/mlflow.db", "file:///s/f/artifacts")),
    # a database: its files beside it; a server: passed on, it decides where files go
    ("sqlite:////s/x.db", {}, ("sqlite:////s/x.db", "file:///s/artifacts")),
    ("http://127.0.0.1:5000", {}, ("http://127.0.0.1:5000", None)),
    # nothing given: MLFLOW_TRACKING_URI, else runs/mlruns of the repository; a given value beats the variable
    (None, {"MLFLOW_TRACKING_URI": "/e"}, ("sqlite:////e/mlflow.db", "file:///e/artifacts")),
    (None, {}, ("sqlite:////repo/runs/mlruns/mlflow.db", "file:///repo/runs/mlruns/artifacts")),
    ("/s/store", {"MLFLOW_TRACKING_URI": "/e"}, ("sqlite:////s/store/mlflow.db", "file:///s/store/artifacts")),
])
def test_resolve_store(given, env, expected):
    assert T.resolve_store(given, env=env, root="/repo") == expected


def test_default_store_is_under_the_checkout(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert T.resolve_store()[0] == "sqlite:///" + str(REPO / "runs" / "mlruns" / "mlflow.db")


def test_missing_mlflow_is_a_user_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(UserError, match=r"mlflow are not installed.*pip install -e '\.\[tracking\]'"):
        T.require_mlflow("sqlite:////tmp/x.db")


def _fake_run(out: Path, epochs: int = 2) -> Path:
    (out / "models").mkdir(parents=True)
    (out / "eval").mkdir()
    settings = {"max_epochs": epochs, "batch_size": 8, "learning_rate": 0.001, "image_size": 32,
                "network_name": "resnet18", "fold": 0, "class_names": ["no", "yes"], "time_limit_s": None,
                "input_spec": {"channels": 1, "window": [40.0, 80.0]},
                "model_settings": {"image_size": 32}, "mlflow_artifacts": ["history.json"], "long": "x" * 600}
    (out / "run_config.json").write_text(json.dumps({"settings": settings, "datalist_sha256": "abc",
                                                     "versions": {"monai": "1.6.1"}, "config": {"big": 1}}))
    hist = {"epoch": list(range(1, epochs + 1)), "loss": [1.0 / e for e in range(1, epochs + 1)],
            "val_f1": [0.5, None][:epochs]}
    (out / "history.json").write_text(json.dumps(hist))
    (out / "models" / "model.pt").write_bytes(b"weights")
    (out / "models" / "model.json").write_text("{}")
    return out


def test_run_params(tmp_path):
    p = T.run_params(_fake_run(tmp_path / "r"))
    assert p["max_epochs"] == "2" and p["learning_rate"] == "0.001" and p["network_name"] == "resnet18"
    assert p["class_names"] == '["no", "yes"]' and p["time_limit_s"] == "null"
    assert p["input_spec.channels"] == "1" and p["input_spec.window"] == "[40.0, 80.0]"
    assert p["datalist_sha256"] == "abc" and p["version.monai"] == "1.6.1"
    # repeated groups, the tracking's own plumbing and over-long values stay in run_config.json only
    assert not any(k.startswith("model_settings") for k in p)
    assert "mlflow_artifacts" not in p and "long" not in p and "config.big" not in p
    assert T.run_params(tmp_path / "nothing") == {}


def test_log_finished_run_reads_back(tmp_path):
    pytest.importorskip("mlflow", reason="the tracking extra is not installed (pip install -e '.[tracking]')")
    from mlflow import MlflowClient

    out = _fake_run(tmp_path / "run_a")
    store = tmp_path / "store"
    rid = T.log_finished_run(str(out), str(store), "sich_det", None,
                             ["history.json", "models/model.pt", "models/model.json", "eval/absent.png"])
    client = MlflowClient(T.resolve_store(str(store))[0])
    run = client.get_run(rid)
    assert run.info.run_name == "run_a" and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "sich_det"
    assert run.data.params["max_epochs"] == "2"
    assert [(m.step, m.value) for m in client.get_metric_history(rid, "loss")] == [(1, 1.0), (2, 0.5)]
    assert [(m.step, m.value) for m in client.get_metric_history(rid, "val_f1")] == [(1, 0.5)]  # None: not a point
    assert {f.path for f in client.list_artifacts(rid)} == {"history.json", "models"}
    assert {f.path for f in client.list_artifacts(rid, "models")} == {"models/model.pt", "models/model.json"}
    assert (store / "mlflow.db").is_file() and (store / "artifacts").is_dir()
