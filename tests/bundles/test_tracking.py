"""`medpipe train BUNDLE --tracking mlflow`: a real tiny training writes a store that MLflow reads back."""

from __future__ import annotations

import json

import pytest

from medpipe.engines.tracking import SETTINGS_FILE, resolve_store
from tests.bundles.conftest import BUNDLE_ROWS, RUNTIME, run_bundle
from tests.conftest import REPO


def _args(tiny_phe, out, *extra):
    return ["medpipe", "train", "sich_cls", "--dataset_dir", str(tiny_phe), "--output_dir", str(out),
            "--max_epochs", "2", *BUNDLE_ROWS["sich_cls"]["train"], *RUNTIME, *extra]


@pytest.mark.parametrize("tracking,expected", [("mlflow", f"--tracking {SETTINGS_FILE}"), ("tensorboard", None)])
def test_printed_command(tiny_phe, tmp_path, tracking, expected):
    proc = run_bundle([*_args(tiny_phe, tmp_path / "r", "--tracking", tracking), "--dry-run"])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("running: python -m monai.bundle run"))
    assert (expected in line) if expected else ("--tracking" not in line)
    assert not (tmp_path / "r").exists()


def test_train_with_mlflow_writes_a_store_mlflow_reads(tiny_phe, tmp_path):
    pytest.importorskip("mlflow", reason="the tracking extra is not installed (pip install -e '.[tracking]')")
    from mlflow import MlflowClient

    out, store = tmp_path / "cls_run", tmp_path / "store"
    stray = [REPO / "mlflow.db", REPO / "mlruns", REPO / "runs" / "mlruns"]  # defaults of MLflow and of medpipe
    before = {p for p in stray if p.exists()}
    proc = run_bundle(_args(tiny_phe, out, "--tracking", "mlflow", "--tracking_uri", str(store)), timeout=300)
    assert f"mlflow ui --backend-store-uri sqlite:///{store}/mlflow.db" in proc.stdout
    client = MlflowClient(resolve_store(str(store))[0])
    exp = client.get_experiment_by_name("sich_cls")  # experiment = bundle name
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "cls_run" and run.info.status == "FINISHED"  # run = the output folder's name
    params = run.data.params
    assert params["max_epochs"] == "2" and params["image_size"] == "32" and params["batch_size"] == "8"
    assert params["network_name"] == "resnet18" and params["fold"] == "0"
    hist = json.loads((out / "history.json").read_text())
    for key in ("loss", "val_f1", "val_auroc"):  # the numbers of history.json, one point per epoch
        points = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in points] == [1, 2], key
        assert [m.value for m in points] == pytest.approx(hist[key]), key
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    files |= {f.path for d in ("models", "eval") for f in client.list_artifacts(run.info.run_id, d)}
    assert {"history.json", "run_config.json", "models/model.pt", "models/model.json",
            "eval/training_curves.png"} <= files
    assert {p for p in stray if p.exists()} == before  # --tracking_uri is the only store written
