"""The offline ultralytics environment: config folder, fonts, torch threads and device names.

:func:`prepare_ultralytics_env` must run before ultralytics is imported: it sets ``YOLO_OFFLINE=1``
(no DNS probes), points ``YOLO_CONFIG_DIR`` at a folder medpipe owns, puts a copy of matplotlib's
DejaVuSans as ``Arial.ttf``/``Arial.Unicode.ttf`` there (ultralytics would download them for its
plots and dataset checks), and sets the torch thread count explicitly (ultralytics resets it to
``cpu_count - 1`` on CPU, i.e. 1 on a 2-core machine; :func:`restore_threads` puts it back).

Nothing here imports ultralytics at module level.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger("medpipe")

__all__ = ["prepare_ultralytics_env", "ensure_ultralytics_env", "restore_threads", "ul_device", "FONT_NAMES",
           "THREAD_EVENTS"]

#: font files ultralytics looks for in its config folder (and downloads when missing)
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
#: ultralytics callbacks after which torch's thread count is put back to medpipe's choice
THREAD_EVENTS = ("on_pretrain_routine_start", "on_train_start", "on_val_start", "on_predict_start",
                 "on_export_start")

_STATE: dict = {"threads": None}  # the thread count chosen by the last prepare_ultralytics_env


def prepare_ultralytics_env(config_dir: str | os.PathLike | None = None, threads: int | None = None) -> Path:
    """Make ultralytics safe to import and run offline; idempotent.

    Call it before anything imports ultralytics (the bundle configs do so in ``initialize``).

    Args:
        config_dir: folder for ultralytics' settings and fonts (``YOLO_CONFIG_DIR``). Default: the
            ``YOLO_CONFIG_DIR`` already set, else ``medpipe``'s cache folder (a temp folder unless
            ``MEDPIPE_CACHE`` says otherwise). Ignored with a warning once ultralytics is imported.
        threads: torch CPU threads; default: the value an earlier call chose, else ``OMP_NUM_THREADS``
            when set, else the usable cores minus one (at least 1). On a CPU shared with other busy
            processes, more threads than free cores makes OpenMP spin: one YOLOv8n epoch at 128 px on
            the 2-core demo machine took 2 s with 1 thread and 6-60 s with 2 threads next to another job.

    Returns:
        The config folder ultralytics uses.

    Example:
        >>> prepare_ultralytics_env()  # doctest: +SKIP
        PosixPath('/tmp/medpipe-cache-0/ultralytics')
    """
    import torch

    from medpipe.utils.env import offline_env

    imported = "ultralytics" in sys.modules
    if config_dir and not imported:
        os.environ["YOLO_CONFIG_DIR"] = str(Path(config_dir).expanduser().absolute())
    offline_env()  # YOLO_OFFLINE=1, HF_HUB_OFFLINE=1, cache folders (values already set win)
    # ultralytics keeps its settings and looks for fonts in YOLO_CONFIG_DIR/Ultralytics
    # (utils.get_user_config_dir); the top folder gets a copy too for older releases
    dirs = [Path(os.environ["YOLO_CONFIG_DIR"]), Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"]
    if imported:
        from ultralytics.utils import USER_CONFIG_DIR

        if config_dir and Path(config_dir).absolute() != Path(USER_CONFIG_DIR).absolute():
            log.warning("ultralytics was imported before prepare_ultralytics_env: it keeps its config folder %s "
                        "(asked: %s)", USER_CONFIG_DIR, config_dir)
        dirs = [Path(USER_CONFIG_DIR)]
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        for name in FONT_NAMES:
            dst = d / name
            if not dst.is_file() or dst.stat().st_size == 0:
                tmp = d / f".{name}.tmp-{os.getpid()}"
                shutil.copyfile(font, tmp)
                os.replace(tmp, dst)
    if threads is None:
        threads = _STATE["threads"] or 0
    if not threads:
        env = os.environ.get("OMP_NUM_THREADS")
        threads = int(env) if env and env.isdigit() and int(env) > 0 and not imported else 0
    if not threads:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = cores - 1
    threads = max(1, int(threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # else ultralytics' import sets 1
    torch.set_num_threads(threads)
    _STATE["threads"] = threads
    return dirs[0]


def ensure_ultralytics_env() -> None:
    """:func:`prepare_ultralytics_env` with its defaults, unless an earlier call prepared it already."""
    if _STATE["threads"] is None:
        prepare_ultralytics_env()


def restore_threads(*_) -> None:
    """Ultralytics' device selection sets torch threads to ``cpu_count - 1``: put ours back (a callback)."""
    if _STATE["threads"]:
        import torch

        torch.set_num_threads(_STATE["threads"])


def ul_device(device) -> str:
    """medpipe/torch device (``cpu``, ``cuda``, ``cuda:1``, ``torch.device``) -> ultralytics' (``cpu``, ``0``, ``1``).

    ``None`` or an empty string picks ``0`` when CUDA is available, else ``cpu``; ultralytics'
    own forms (``0``, ``0,1``, ``mps``) pass through.

    Example:
        >>> ul_device("cuda:1"), ul_device("cpu"), ul_device("0,1")
        ('1', 'cpu', '0,1')
    """
    s = str(device).strip().lower() if device is not None else ""
    if s in ("", "none"):
        import torch

        return "0" if torch.cuda.is_available() else "cpu"
    if s.startswith("cuda"):
        return s.partition(":")[2] or "0"
    return s
