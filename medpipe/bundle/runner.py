"""Build, print and run the ``python -m monai.bundle`` command behind each ``medpipe`` bundle command.

The printed command is exactly what runs (as a subprocess, from the repository root), so users can
copy it and run the bundle the MONAI way.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from medpipe.bundle import BUNDLES
from medpipe.errors import UserError

#: override keys holding paths: made absolute so they mean what the user meant from their own folder
PATH_KEYS = {"dataset_dir", "output_dir", "ckpt_path", "input", "pretrained_path", "stats_path"}


def repo_root() -> Path:
    """The folder holding ``bundles/``: the checkout medpipe is installed from, else the current folder."""
    here = Path(__file__).resolve().parents[2]
    if (here / "bundles").is_dir():
        return here
    cwd = Path.cwd()
    if (cwd / "bundles").is_dir():
        return cwd
    raise UserError("cannot find the bundles/ folder: run medpipe from the repository root "
                    "(or install it with `pip install -e .` from the checkout).")


def bundle_dir(name: str) -> Path:
    """``bundles/NAME`` relative to the repository root, checked."""
    if name not in BUNDLES:
        raise UserError(f"unknown bundle {name!r}; available: {', '.join(BUNDLES)}")
    d = Path("bundles") / name
    if not (repo_root() / d / "configs" / "train.json").is_file():
        raise UserError(f"{d}/configs/train.json is missing; this bundle is not available in this checkout.")
    return d


def parse_overrides(extra: list[str]) -> dict[str, str]:
    """``["--max_epochs", "2", "--fold=1"]`` -> ``{"max_epochs": "2", "fold": "1"}`` with paths made absolute."""
    out, i = {}, 0
    while i < len(extra):
        tok = extra[i]
        if not tok.startswith("--"):
            raise UserError(f"unexpected argument {tok!r}: overrides are --KEY VALUE pairs, e.g. --max_epochs 5")
        key, eq, val = tok[2:].partition("=")
        if not eq:
            if i + 1 >= len(extra):
                raise UserError(f"--{key} needs a value")
            val = extra[i + 1]
            i += 1
        i += 1
        if key in PATH_KEYS and val and not val.startswith(("$", "@", "%")):
            val = str(Path(val).expanduser().absolute())
        out[key] = val
    return out


def monai_command(action: str, bundle: str, overrides: dict[str, str], configs: list[str] | None = None,
                  extra: list[str] | None = None) -> list[str]:
    """The argv of the monai.bundle command for ``action`` in ``run``, ``ckpt_export``, ``onnx_export``."""
    b = bundle_dir(bundle)
    files = [str(b / "configs" / c) for c in (configs or ["train.json"])]
    cfg = files[0] if len(files) == 1 else "[" + ",".join(f'"{f}"' for f in files) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", action]
    if action != "run":
        cmd.append("network_def")
    cmd += ["--config_file", cfg, "--bundle_root", str(b)]
    if action != "run":
        cmd += ["--meta_file", str(b / "configs" / "metadata.json")]
    for k, v in overrides.items():
        cmd += [f"--{k}", str(v)]
    return cmd + list(extra or [])


def show_and_run(cmd: list[str], dry_run: bool = False) -> int:
    """Print the command as a user would type it (python instead of the venv path) and run it."""
    shown = ["python"] + cmd[1:]
    print("running: " + " ".join(shlex.quote(c) for c in shown), flush=True)
    if dry_run:
        return 0
    from medpipe.utils.env import offline_env

    env = offline_env(dict(os.environ))
    return subprocess.call(cmd, cwd=repo_root(), env=env)
