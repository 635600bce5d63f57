"""Experiment tracking: ``--tracking tensorboard|mlflow`` of ``medpipe train`` and the MLflow store.

TensorBoard is always written (``tb/`` of every run). ``--tracking mlflow`` also records the run
in an MLflow store: MONAI's own mechanism (``monai.bundle run --tracking SETTINGS``) patches the
handlers of :data:`SETTINGS_FILE` into the bundle, which log the run's resolved settings as
parameters, one point per epoch for each number of ``history.json`` (train ``loss``, ``lr``, the
validation metrics) and, at the end, the run's files (:data:`ARTIFACTS` in the settings file:
``history.json``, ``run_config.json``, ``models/model.json``, ``models/model.pt``, the training
curves). MONAI-engine bundles log while they train (:class:`medpipe.handlers.tracking.MLflowTracking`);
the ultralytics-engine bundles log their finished run from its files (:func:`log_finished_run`).

The store: MLflow 3.13+ refuses its old folder-of-files backend, so a store *folder* ``F`` holds a
SQLite database ``F/mlflow.db`` and the files ``F/artifacts/`` (:func:`resolve_store`). The default
folder is ``runs/mlruns`` of the repository; ``--tracking_uri`` or ``MLFLOW_TRACKING_URI`` choose
another folder, a ``sqlite:///`` database or a tracking server. Read it with
``mlflow ui --backend-store-uri sqlite:///runs/mlruns/mlflow.db`` (full ``mlflow`` package).

Nothing here imports mlflow, torch or MONAI at module level.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from medpipe.errors import UserError

log = logging.getLogger("medpipe")

__all__ = ["TRACKERS", "SETTINGS_FILE", "DEFAULT_STORE", "INSTALL_HINT", "settings_file", "settings_keys",
           "resolve_store", "require_mlflow", "run_params", "log_files", "open_run", "log_finished_run",
           "store_command"]

#: values of ``--tracking``
TRACKERS = ("tensorboard", "mlflow")
#: MONAI tracking settings of ``--tracking mlflow`` (relative to the repository root)
SETTINGS_FILE = "bundles/common/configs/mlflow.json"
#: the store folder when neither ``--tracking_uri`` nor ``MLFLOW_TRACKING_URI`` says otherwise (repository-relative)
DEFAULT_STORE = "runs/mlruns"
#: what to install when the MLflow client is missing
INSTALL_HINT = "pip install -e '.[tracking]'"
#: the database file and artifact folder inside a store folder
DB_NAME, ARTIFACT_DIR = "mlflow.db", "artifacts"
#: longest parameter value logged (MLflow allows 6000 characters; longer settings are left to run_config.json)
MAX_PARAM_CHARS = 500
#: settings not logged as parameters: groups repeating top-level settings, and the tracking's own plumbing
#: (all stay in run_config.json, which is logged as a file)
PARAM_SKIP = {"model_settings", "network_args", "label_task", "save_execute_config", "mlflow_artifacts"}


def settings_file(tracking: str | None) -> str | None:
    """The ``monai.bundle run --tracking`` value for ``medpipe train --tracking VALUE`` (None: TensorBoard only).

    Example:
        >>> settings_file("mlflow"), settings_file("tensorboard"), settings_file(None)
        ('bundles/common/configs/mlflow.json', None, None)
    """
    if tracking is None or str(tracking).strip().lower() in ("", "tensorboard", "none"):
        return None
    if str(tracking).strip().lower() == "mlflow":
        return SETTINGS_FILE
    raise UserError(f"--tracking {tracking}: not a tracker; use --tracking tensorboard (the default: TensorBoard "
                    f"event files in the run's tb/ folder) or --tracking mlflow (also an MLflow run in "
                    f"{DEFAULT_STORE}/, needs `{INSTALL_HINT}`).")


def settings_keys(path: str | os.PathLike | None = None) -> list[str]:
    """The settings a tracking settings file adds (for :data:`SETTINGS_FILE`, the default: ``tracking_uri``,
    ``experiment_name``, ``run_name``...): the non-handler entries of its ``configs``, which a command line
    may override."""
    path = Path(path) if path is not None else _repo_root() / SETTINGS_FILE
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        spec = yaml.safe_load(path.read_text()) or {}
    else:
        spec = json.loads(path.read_text())
    handlers = set(spec.get("handlers_id", {}))
    return [k for k in spec.get("configs", {}) if k not in handlers]


def _repo_root() -> Path:
    from medpipe.bundle.runner import repo_root

    return repo_root()


def _file_uri(path: Path) -> str:
    return path.absolute().as_uri()


def resolve_store(tracking_uri: str | None = None, env: dict | None = None,
                  root: str | os.PathLike | None = None) -> tuple[str, str | None]:
    """``(tracking URI, artifact location)`` of a ``--tracking_uri`` value; None: ``MLFLOW_TRACKING_URI``, else
    the default store folder :data:`DEFAULT_STORE` of the repository.

    A folder (a plain path or a ``file:`` URI) means ``sqlite:///FOLDER/mlflow.db`` with the run files in
    ``FOLDER/artifacts``; a ``sqlite:///`` database keeps its files in ``artifacts/`` beside it; any other
    URI (a tracking server) is passed on as it is and decides where files go (location None).

    Args:
        tracking_uri: the value given (``--tracking_uri``), or None.
        env: where ``MLFLOW_TRACKING_URI`` is read (default ``os.environ``).
        root: the repository root a relative folder is taken from (default: the checkout's).

    Example:
        >>> resolve_store("/tmp/store", env={})
        ('sqlite:////tmp/store/mlflow.db', 'file:///tmp/store/artifacts')
        >>> resolve_store(None, env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
        ('http://127.0.0.1:5000', None)
    """
    env = os.environ if env is None else env
    uri = str(tracking_uri).strip() if tracking_uri not in (None, "", "None") else ""
    if not uri:
        uri = str(env.get("MLFLOW_TRACKING_URI") or "").strip()
    if not uri:
        uri = DEFAULT_STORE
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return uri, _file_uri(db.parent / ARTIFACT_DIR)
    if uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        uri = unquote(urlparse(uri).path)
    elif "://" in uri:
        return uri, None
    folder = Path(uri).expanduser()
    if not folder.is_absolute():
        folder = (Path(root) if root is not None else _repo_root()) / folder
    folder = folder.absolute()
    return "sqlite:///" + str(folder / DB_NAME), _file_uri(folder / ARTIFACT_DIR)


def require_mlflow(tracking_uri: str | None = None) -> None:
    """Refuse ``--tracking mlflow`` in one paragraph when the MLflow client (or, for a SQLite store, SQLAlchemy
    and Alembic) is not installed."""
    from importlib.util import find_spec

    needed = ["mlflow"]
    if tracking_uri is None or str(tracking_uri).startswith("sqlite:"):
        needed += ["sqlalchemy", "alembic"]
    missing = [m for m in needed if find_spec(m) is None]
    if missing:
        raise UserError(f"--tracking mlflow: the Python package(s) {', '.join(missing)} are not installed in this "
                        f"environment; install the tracking extra with `{INSTALL_HINT}` (mlflow-skinny, sqlalchemy, "
                        f"alembic), or leave --tracking out (TensorBoard only).")


def _param_value(v) -> str | None:
    s = v if isinstance(v, str) else json.dumps(v, default=str)
    return s if len(s) <= MAX_PARAM_CHARS else None


def run_params(output_dir: str | os.PathLike) -> dict[str, str]:
    """The run's parameters for MLflow, from the ``run_config.json`` the run wrote when it started.

    Every resolved top-level setting (``max_epochs``, ``batch_size``, ``learning_rate``,
    ``image_size``, ``network_name``, ``fold``...; lists as JSON; a dict as ``key.sub`` entries),
    the dataset's datalist fingerprint and the versions (``version.monai``...). Values longer than
    :data:`MAX_PARAM_CHARS` characters are left out (they stay in ``run_config.json``, logged as a file).

    Returns:
        ``{name: text}``; empty when the run folder has no readable ``run_config.json``.
    """
    path = Path(output_dir) / "run_config.json"
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    out: dict[str, str] = {}

    def put(key: str, v) -> None:
        if isinstance(v, dict):
            for k, sub in v.items():
                put(f"{key}.{k}", sub)
            return
        text = _param_value(v)
        if text is not None:
            out[_param_key(key)] = text

    for k, v in (rec.get("settings") or {}).items():
        if k not in PARAM_SKIP:
            put(str(k), v)
    for k in ("dataset_dir", "datalist_sha256", "cuda"):
        if rec.get(k) is not None:
            put(k, rec[k])
    for k, v in (rec.get("versions") or {}).items():
        put(f"version.{k}", v)
    return out


def _param_key(key: str) -> str:
    """MLflow names allow letters, digits, ``_ - . space /``; anything else becomes ``_``."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in key)[:250]


def log_files(client, run_id: str, output_dir: str | os.PathLike, names) -> list[str]:
    """Log the files ``names`` (relative to ``output_dir``) that exist as artifacts of ``run_id``, each in its
    sub-folder (``models/model.pt`` -> ``models/``); returns the names logged."""
    done = []
    for name in names or ():
        f = Path(output_dir) / name
        if f.is_file():
            parent = Path(name).parent.as_posix()
            client.log_artifact(run_id, str(f), artifact_path=None if parent in ("", ".") else parent)
            done.append(str(name))
    return done


def open_run(tracking_uri: str | None, experiment_name: str, run_name: str):
    """An ``(MlflowClient, Run)`` pair: a new run named ``run_name`` in ``experiment_name`` (created with its
    artifact location in the store folder when new)."""
    uri, artifacts = resolve_store(tracking_uri)
    require_mlflow(uri)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment_name)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment_name,
                                                                                artifact_location=artifacts)
    return client, client.create_run(exp_id, run_name=run_name)


def log_finished_run(output_dir: str, tracking_uri: str | None = None, experiment_name: str = "medpipe",
                     run_name: str | None = None, artifacts=()) -> str:
    """Record a finished training run from its files: parameters from ``run_config.json``, every epoch of
    ``history.json`` as metric points (step = epoch), then ``artifacts``. The ultralytics-engine bundles' last
    ``run`` step under ``--tracking mlflow`` (their trainer is ultralytics', which medpipe does not hook into).

    Returns:
        The MLflow run id.
    """
    import time

    out = Path(output_dir)
    client, run = open_run(tracking_uri, experiment_name, run_name or out.name)
    rid = run.info.run_id
    try:
        from mlflow.entities import Metric, Param

        params = [Param(k, v) for k, v in run_params(out).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per call
            client.log_batch(rid, params=params[i:i + 100])
        try:
            hist = json.loads((out / "history.json").read_text())
        except (OSError, ValueError):
            hist = {}
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(e)) for k, vals in hist.items() if k != "epoch"
                   for e, v in zip(hist.get("epoch", []), vals) if isinstance(v, (int, float))]
        for i in range(0, len(metrics), 1000):
            client.log_batch(rid, metrics=metrics[i:i + 1000])
        logged = log_files(client, rid, out, artifacts)
    except BaseException:
        client.set_terminated(rid, "FAILED")
        raise
    client.set_terminated(rid, "FINISHED")
    log.info("MLflow: run %s (%d parameters, %d epochs, files: %s) in experiment %r of %s", run_name or out.name,
             len(params), len(hist.get("epoch", [])), ", ".join(logged) or "none", experiment_name,
             resolve_store(tracking_uri)[0])
    return rid


def store_command(tracking_uri: str | None = None) -> str:
    """The ``mlflow ui`` command that shows a store (``--backend-store-uri`` of :func:`resolve_store`)."""
    uri = resolve_store(tracking_uri)[0]
    return f"mlflow ui --backend-store-uri {uri}"
