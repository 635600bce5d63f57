"""MLflow tracking of a MONAI-engine training run (``medpipe train BUNDLE --tracking mlflow``).

:class:`MLflowTracking` is MONAI's :class:`~monai.handlers.MLFlowHandler` with medpipe's store
(:func:`medpipe.engines.tracking.resolve_store`), parameters (the run's ``run_config.json``) and
per-epoch numbers (those of ``history.json``). One instance serves the trainer and its validator
(``bundles/common/configs/mlflow.json`` puts the same object in ``train#handlers`` and
``validate#handlers``), so every number of a training run lands in one MLflow run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from ignite.engine import Engine, Events
from monai.handlers import MLFlowHandler

from medpipe.engines.tracking import log_files, require_mlflow, resolve_store, run_params
from medpipe.handlers.training import _loss_of

log = logging.getLogger("medpipe")

__all__ = ["MLflowTracking"]


@contextlib.contextmanager
def _env_without(name: str):
    """``os.environ`` without ``name`` for the block (MONAI's handler lets the variable beat its argument)."""
    old = os.environ.pop(name, None)
    try:
        yield
    finally:
        if old is not None:
            os.environ[name] = old


def _scalars(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in (metrics or {}).items():
        if hasattr(v, "numel") and v.numel() == 1:
            v = v.item()
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[str(k)] = float(v)
    return out


class MLflowTracking(MLFlowHandler):
    """Record a training run in MLflow: parameters, one point per epoch, the run's files at the end.

    Attached to the trainer it opens (or, after an interrupted run of the same name, reopens) the run
    ``run_name`` in ``experiment_name``, logs the run's settings as parameters (from ``run_config.json``,
    written by the bundle's ``initialize``), then after each epoch the mean training ``loss`` and the
    ``lr`` (as ``history.json`` has them), and at the end the files ``artifacts`` before closing the run
    (FAILED when training raised). Attached to an evaluator it logs that evaluator's scalar metrics
    (``val_f1``, ``val_auroc``...) at the trainer's epoch.

    Args:
        output_dir: the run folder (parameters and files are read there).
        tracking_uri: store folder, ``sqlite:///`` database or server URI; None: ``MLFLOW_TRACKING_URI``,
            else ``runs/mlruns`` of the repository (see :func:`medpipe.engines.tracking.resolve_store`).
        experiment_name: MLflow experiment (the bundle's name in ``mlflow.json``).
        run_name: MLflow run name; None: the run folder's name.
        artifacts: files relative to ``output_dir`` to log when training ends (missing ones are skipped).
        iteration_log: also log the loss of every iteration (``iteration_loss``, step = iteration).
        kwargs: further :class:`~monai.handlers.MLFlowHandler` arguments.

    Example:
        >>> MLflowTracking("runs/my_run", experiment_name="my_bundle").attach(trainer)  # doctest: +SKIP
    """

    def __init__(self, output_dir: str, tracking_uri: str | None = None, experiment_name: str = "medpipe",
                 run_name: str | None = None, artifacts: Sequence[str] = (), iteration_log: bool = False,
                 **kwargs) -> None:
        uri, location = resolve_store(tracking_uri)
        require_mlflow(uri)
        self.output_dir = Path(output_dir)
        with _env_without("MLFLOW_TRACKING_URI"):  # the resolved store, whichever way it was chosen
            super().__init__(tracking_uri=uri, iteration_log=iteration_log, epoch_log=True,
                             experiment_name=experiment_name, run_name=run_name or self.output_dir.name,
                             artifacts=None, artifact_location=location, close_on_complete=True,
                             output_transform=_loss_of, tag_name="iteration_loss", **kwargs)
        self.tracking_uri = uri
        self.files = list(artifacts or ())
        self._losses: list[float] = []

    def attach(self, engine: Engine) -> None:
        """Trainer: run, parameters, per-epoch loss/lr, files. Evaluator: its metrics each validation."""
        from monai.engines import Evaluator

        if isinstance(engine, Evaluator):
            if not engine.has_event_handler(self._validated, Events.EPOCH_COMPLETED):
                engine.add_event_handler(Events.EPOCH_COMPLETED, self._validated)
            return
        engine.add_event_handler(Events.STARTED, self.start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._trained)
        engine.add_event_handler(Events.COMPLETED, self._completed)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self._failed)

    def start(self, engine: Engine) -> None:
        """Open the run, then log the run's settings (a parameter already logged keeps its value: MLflow
        parameters are write-once, which matters when an interrupted run is resumed)."""
        super().start(engine)
        params = run_params(self.output_dir)
        self._delete_exist_param_in_dict(params)
        items = list(params.items())
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per call
            self._log_params(dict(items[i:i + 100]))
        log.info("MLflow: run %r of experiment %r in %s (%d parameters)", self.cur_run.info.run_name,
                 self.experiment_name, self.tracking_uri, len(params))

    def _iteration(self, engine: Engine) -> None:
        loss = _loss_of(engine.state.output)
        if loss is not None and math.isfinite(loss):
            self._losses.append(loss)
        if self.iteration_log:
            self.iteration_completed(engine)

    def _trained(self, engine: Engine) -> None:
        rec = {}
        if self._losses:
            rec["loss"] = sum(self._losses) / len(self._losses)
        self._losses = []
        opt = getattr(engine, "optimizer", None)
        if opt is not None and opt.param_groups:
            rec["lr"] = float(opt.param_groups[0]["lr"])
        if rec and self.cur_run is not None:
            self._log_metrics(rec, step=engine.state.epoch)

    def _validated(self, engine: Engine) -> None:
        values = _scalars(engine.state.metrics)
        if values and self.cur_run is not None:  # no run: an evaluation without a trainer is not tracked
            self._log_metrics(values, step=engine.state.epoch)

    def _completed(self, engine: Engine) -> None:
        if self.cur_run is None:
            return
        logged = log_files(self.client, self.cur_run.info.run_id, self.output_dir, self.files)
        log.info("MLflow: logged %s to run %r", ", ".join(logged) or "no files", self.cur_run.info.run_name)
        self.close()

    def _failed(self, engine: Engine, e: BaseException) -> None:
        """Mark the run FAILED (KILLED on Ctrl-C), then let the exception go on (ignite stops re-raising an
        exception once a handler is registered for it)."""
        try:
            if self.cur_run is not None:
                status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
                self.client.set_terminated(self.cur_run.info.run_id, status)
                self.cur_run = None
            self._dispose_sqlite_store()
        except Exception as err:  # noqa: BLE001 - the training's own error is the one to report
            log.warning("MLflow: could not mark the run as failed: %s", err)
        raise e
