"""Runs record themselves: the resolved configuration, versions, seed and data fingerprint next to
the outputs (``run_config.json``), and the model-defining settings next to the checkpoint
(``models/model.json``, see :mod:`medpipe.bundle.checkpoint`).
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

#: top-level ids that are components or programs, not settings (never resolved for the record)
_NOT_SETTINGS = {"imports", "initialize", "run", "finalize", "network", "network_def", "optimizer", "loss",
                 "lr_scheduler", "train", "validate", "engine", "preprocessing", "evaluator", "dataset",
                 "dataloader", "inferer", "postprocessing", "handlers", "trainer", "predictor", "evaluation"}


def current_config_parser():
    """The ``monai.bundle.ConfigParser`` evaluating the calling config expression (None outside one)."""
    import inspect

    from monai.bundle import ConfigParser

    frame = inspect.currentframe()
    try:
        while frame is not None:
            obj = frame.f_locals.get("self")
            if isinstance(obj, ConfigParser):
                return obj
            frame = frame.f_back
    finally:
        del frame
    return None


def _plain(v):
    from medpipe.bundle.checkpoint import _jsonable

    v = _jsonable(v)
    ok = (str, int, float, bool, type(None), list, dict)
    return v if isinstance(v, ok) else None


def resolved_settings(parser=None) -> dict:
    """Every top-level setting of the running config, resolved (``$``/``@`` evaluated), JSON-safe."""
    parser = parser or current_config_parser()
    if parser is None:
        return {}
    raw = parser.get()
    out = {}
    for k, v in raw.items():
        if k in _NOT_SETTINGS or k.startswith("_") or (isinstance(v, dict) and "_target_" in v):
            continue
        try:
            val = parser.get_parsed_content(k)
        except Exception:  # noqa: BLE001 - a setting that cannot be resolved on its own is left out
            continue
        if hasattr(val, "parameters") or callable(val):
            continue
        out[k] = _plain(val)
    return out


def record_run(output_dir: str, settings: dict | None = None, dataset_dir: str | None = None,
               name: str = "run_config.json") -> str:
    """Write ``output_dir/run_config.json``: the fully resolved configuration, versions, data fingerprint.

    Args:
        output_dir: the run folder (created).
        settings: extra facts to record beside the resolved configuration.
        dataset_dir: the prepared dataset; its datalist fingerprint is recorded.
        name: file name.

    Returns:
        The path written.
    """
    import monai
    import torch

    from medpipe import __version__
    from medpipe.data.datalist import datalist_fingerprint
    from medpipe.utils.fs import write_json

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    parser = current_config_parser()
    rec = {
        "settings": resolved_settings(parser) | {k: _plain(v) for k, v in (settings or {}).items()},
        "dataset_dir": str(Path(dataset_dir).resolve()) if dataset_dir else None,
        "datalist_sha256": datalist_fingerprint(dataset_dir) if dataset_dir and
        (Path(dataset_dir) / "datalist.json").exists() else None,
        "versions": {"medpipe": __version__, "monai": monai.__version__, "torch": torch.__version__,
                     "python": sys.version.split()[0], "platform": platform.platform()},
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "argv": sys.argv,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": parser.get() if parser is not None else None,
    }
    path = out / name
    write_json(path, rec, atomic=True)
    return str(path)


def start_run(output_dir: str, ckpt_dir: str, bundle: str, model_settings: dict, network: dict | None = None,
              dataset_dir: str | None = None, performance: dict | None = None) -> dict:
    """The skeleton's training ``initialize`` step: refuse a conflicting re-run, then record the run.

    A folder that already holds a model trained with other model-defining settings (e.g. another
    ``image_size``) is never relabelled: the run is refused in one paragraph. On the main rank it then
    writes ``run_config.json`` (with ``settings.performance``: the GPU-path settings in force, see
    :func:`medpipe.engines.performance.settings`) and ``models/model.json``.

    Returns:
        The model settings as written.
    """
    from medpipe.bundle.checkpoint import SIDECAR, _jsonable, conflicts, read_sidecar, write_model_settings
    from medpipe.engines.distributed import is_main_rank
    from medpipe.errors import UserError

    ckpt_dir = Path(ckpt_dir)
    settings = _jsonable(model_settings)
    side = ckpt_dir / SIDECAR
    existing = [p for p in (ckpt_dir / "model.pt", ckpt_dir / "checkpoint_last.pt") if p.is_file()]
    if side.is_file() and existing:
        old = read_sidecar(existing[0], what="existing run")
        rows = conflicts(old["settings"], settings)
        if old.get("bundle") != bundle or rows:
            what = (f"bundle {old.get('bundle')!r}" if old.get("bundle") != bundle else
                    ", ".join(f"{k} {json_short(t)} (now {json_short(v)})" for k, v, t in rows))
            raise UserError(f"--output_dir {Path(output_dir)}: it already holds a model trained with {what}. "
                            f"Re-running there would resume that model and mislabel it; choose another "
                            f"--output_dir for the new settings (or remove the old run folder yourself).")
    if is_main_rank():
        from medpipe.data.datalist import datalist_fingerprint

        dataset = {}
        if dataset_dir and (Path(dataset_dir) / "datalist.json").is_file():
            dataset = {"dir": str(Path(dataset_dir).resolve()), "datalist_sha256": datalist_fingerprint(dataset_dir)}
        record_run(output_dir, {"performance": performance} if performance is not None else None,
                   dataset_dir=dataset_dir)
        write_model_settings(ckpt_dir, bundle, settings, network=network, dataset=dataset)
    return settings


def json_short(v) -> str:
    import json

    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."
