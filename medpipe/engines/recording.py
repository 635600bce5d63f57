"""Runs record themselves: settings, versions, seed and the data fingerprint next to the outputs."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path


def record_run(output_dir: str, settings: dict, dataset_dir: str | None = None, name: str = "run_config.json") -> str:
    """Write ``output_dir/run_config.json`` and return its path.

    Args:
        output_dir: the run folder (created).
        settings: the resolved top-level config values (epochs, sizes, fold, seed, network, ...).
        dataset_dir: the prepared dataset; its datalist fingerprint is recorded.
        name: file name.
    """
    import monai
    import torch

    from medpipe import __version__
    from medpipe.data.datalist import datalist_fingerprint
    from medpipe.utils.fs import write_json

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rec = {
        "settings": {k: (str(v) if not isinstance(v, (int, float, str, bool, list, dict, type(None))) else v)
                     for k, v in settings.items()},
        "dataset_dir": str(Path(dataset_dir).resolve()) if dataset_dir else None,
        "datalist_sha256": datalist_fingerprint(dataset_dir) if dataset_dir and
        (Path(dataset_dir) / "datalist.json").exists() else None,
        "versions": {"medpipe": __version__, "monai": monai.__version__, "torch": torch.__version__,
                     "python": sys.version.split()[0], "platform": platform.platform()},
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "argv": sys.argv,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    path = out / name
    write_json(path, rec, atomic=True)
    return str(path)
