"""MLflowTracking on real MONAI engines: one MLflow run for trainer + validator, per-epoch points, files, failures."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("mlflow", reason="the tracking extra is not installed (pip install -e '.[tracking]')")

import torch  # noqa: E402
from ignite.engine import Events  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from monai.engines import SupervisedEvaluator, SupervisedTrainer  # noqa: E402
from monai.handlers import ValidationHandler  # noqa: E402

from medpipe.engines.tracking import resolve_store  # noqa: E402
from medpipe.handlers.tracking import MLflowTracking  # noqa: E402


def _mean_pred():
    """A scalar validation metric (the mean prediction), enough to follow it epoch by epoch."""
    from ignite.metrics import Average

    return Average(output_transform=lambda out: torch.stack([o["pred"].mean() for o in out]).mean())


def _engines(tracker, epochs=2):
    data = [{"image": torch.randn(2), "label": torch.randn(1)} for _ in range(4)]
    net = torch.nn.Linear(2, 1)
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    evaluator = SupervisedEvaluator(device="cpu", val_data_loader=loader, network=net,
                                    key_val_metric={"val_mean": _mean_pred()}, val_handlers=[tracker])
    trainer = SupervisedTrainer(device="cpu", max_epochs=epochs, train_data_loader=loader, network=net,
                                optimizer=torch.optim.SGD(net.parameters(), lr=0.1), loss_function=torch.nn.MSELoss(),
                                train_handlers=[ValidationHandler(validator=evaluator, interval=1), tracker])
    return trainer


def _run_folder(tmp_path):
    out = tmp_path / "exp_1"
    (out / "models").mkdir(parents=True)
    (out / "run_config.json").write_text(json.dumps({"settings": {"max_epochs": 2, "learning_rate": 0.1}}))
    (out / "models" / "model.pt").write_bytes(b"w")
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module: creating its database is the slow part (a few seconds)."""
    return tmp_path_factory.mktemp("mlflow") / "store"


def _only_run(store, name):
    client = MlflowClient(resolve_store(str(store))[0])
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_one_run_with_params_epochs_and_files(tmp_path, store):
    out = _run_folder(tmp_path)
    tracker = MLflowTracking(str(out), str(store), "toy", artifacts=["models/model.pt", "history.json"])
    _engines(tracker).run()
    client, run = _only_run(store, "toy")
    assert run.info.run_name == "exp_1" and run.info.status == "FINISHED"
    assert run.data.params["max_epochs"] == "2" and run.data.params["learning_rate"] == "0.1"
    for key in ("loss", "lr", "val_mean"):  # trainer and validator numbers in the one run, one point per epoch
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
    assert [f.path for f in client.list_artifacts(run.info.run_id, "models")] == ["models/model.pt"]


def test_failed_training_marks_the_run_and_still_raises(tmp_path, store):
    out = _run_folder(tmp_path)
    trainer = _engines(MLflowTracking(str(out), str(store), "toy_failing"))

    @trainer.on(Events.ITERATION_COMPLETED(once=3))
    def boom(_):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        trainer.run()
    _, run = _only_run(store, "toy_failing")
    assert run.info.status == "FAILED"
