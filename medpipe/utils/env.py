"""Offline-safe process environment (see ENVIRONMENT.md): no hub downloads, nothing under HOME."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_root() -> Path:
    """Where medpipe points tool caches when the user has not: ``$MEDPIPE_CACHE`` or a temp folder."""
    root = os.environ.get("MEDPIPE_CACHE") or os.path.join(tempfile.gettempdir(), f"medpipe-cache-{os.getuid()}")
    return Path(root)


def offline_env(env: dict | None = None) -> dict:
    """Fill in the offline/cache variables that are not already set, in ``env`` (default ``os.environ``).

    ``YOLO_CONFIG_DIR``, ``MPLCONFIGDIR``, ``XDG_CACHE_HOME`` and ``TORCH_HOME`` go to
    :func:`cache_root`; ``HF_HUB_OFFLINE`` and ``YOLO_OFFLINE`` are set to 1. Values the user set win.
    """
    env = os.environ if env is None else env
    root = cache_root()
    defaults = {
        "YOLO_CONFIG_DIR": str(root / "ultralytics"),
        "MPLCONFIGDIR": str(root / "matplotlib"),
        "XDG_CACHE_HOME": str(root / "xdg"),
        "TORCH_HOME": str(root / "torch"),
        "HF_HUB_OFFLINE": "1",
        "YOLO_OFFLINE": "1",
    }
    for k, v in defaults.items():
        env.setdefault(k, v)
    return env
