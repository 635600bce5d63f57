"""The settings section of ``medpipe train|evaluate|infer|export BUNDLE --help``.

Defaults come from the bundle's own configs (the files the action merges), meanings from
``settings_help`` in ``bundles/common/configs/metadata.json`` and the bundle's ``metadata.json``:
nothing is typed twice. Reads JSON only, so ``--help`` stays fast (no torch, no MONAI).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

#: the files each action merges (as :data:`medpipe.bundle.runner.ACTION_CONFIGS`)
ACTION_FILES = {"train": ["train.json"], "evaluate": ["train.json", "evaluate.json"], "infer": ["inference.json"],
                "export": ["inference.json"]}
#: settings the wrappers take as their own arguments
WRAPPER_ARGS = {"evaluate": {"ckpt_path"}, "infer": {"ckpt_path", "input"}, "export": {"ckpt_path"}}


#: options of ``medpipe train`` that are not config settings (handled by the wrapper or by monai.bundle)
TRAIN_OPTIONS = [
    ("--tracking tensorboard|mlflow", "tensorboard (default): event files in OUTPUT_DIR/tb. mlflow: also one MLflow "
     "run per training (settings as parameters, per-epoch loss and validation metrics, history.json, "
     "run_config.json and models/model.pt as files) in the store runs/mlruns (needs pip install -e "
     "'.[tracking]'; browse with mlflow ui --backend-store-uri sqlite:///runs/mlruns/mlflow.db)"),
    ("--tracking_uri U", "with --tracking mlflow: another store: a folder, sqlite:///FILE.db or a tracking server "
     "(default: $MLFLOW_TRACKING_URI, else runs/mlruns)"),
    ("--experiment_name N", "with --tracking mlflow: the MLflow experiment (default: the bundle name)"),
    ("--run_name N", "with --tracking mlflow: the MLflow run name (default: the output folder's name)"),
]


def _option_rows(rows, width: int) -> list[str]:
    wk = max(len(k) for k, _ in rows) + 4
    out = []
    for k, h in rows:
        wrapped = textwrap.wrap(h, max(30, width - wk)) or [""]
        out.append(f"  {k:<{wk - 2}}{wrapped[0]}")
        out += [" " * wk + w for w in wrapped[1:]]
    return out


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _default(v) -> str:
    """A readable default: literals as JSON, references and expressions in plain words."""
    if isinstance(v, str) and v.startswith("$@trained"):
        return "from the checkpoint"
    if isinstance(v, str) and v.startswith("$"):
        expr = v[1:].replace("@", "")
        if "default_device" in expr or expr.startswith("'cuda' if"):
            return "cuda if available, else cpu"
        if expr.replace(" ", "") == "'cuda'instr(device)":
            return "on when the device is cuda"
        return expr if len(expr) <= 40 else "computed"
    if isinstance(v, str) and v.startswith("@"):
        return f"= {v[1:]}"
    return json.dumps(v)


def settings_section(root: Path, bundle: str, action: str, width: int = 100) -> str:
    """Text listing the bundle's settings for ``action``: ``--id default  meaning``, then the docs path."""
    cfg: dict = {}
    b = root / "bundles" / bundle
    for f in ACTION_FILES[action]:
        cfg.update({k: v for k, v in _read(b / "configs" / f).items() if "#" not in k})
    helps = dict(_read(root / "bundles" / "common" / "configs" / "metadata.json").get("settings_help", {}))
    helps.update(_read(b / "configs" / "metadata.json").get("settings_help", {}))
    rows = [(k, _default(cfg[k]), helps[k]) for k in helps if k in cfg and k not in WRAPPER_ARGS.get(action, ())]
    lines = [f"settings of {bundle} ({', '.join(f'bundles/{bundle}/configs/{f}' for f in ACTION_FILES[action])}); "
             f"any of them as --KEY VALUE:"]
    wk = max((len(k) for k, _, _ in rows), default=10) + 3
    wd = min(max((len(d) for _, d, _ in rows), default=8), 28) + 2
    for k, d, h in rows:
        head = f"  --{k:<{wk - 2}}{d:<{wd}}"
        if len(d) >= wd:
            head = f"  --{k:<{wk - 2}}{d}\n" + " " * (wk + 2 + wd)
        wrapped = textwrap.wrap(h, max(30, width - wk - wd - 2)) or [""]
        lines.append(head + wrapped[0])
        lines += [" " * (wk + 2 + wd) + w for w in wrapped[1:]]
    if action in ("evaluate", "infer", "export"):
        lines.append("  (settings marked 'from the checkpoint' are rebuilt from models/model.json; "
                     "giving another value is refused)")
    if action == "train":
        lines += ["training options:"] + _option_rows(TRAIN_OPTIONS, width)
    lines.append(f"docs: bundles/{bundle}/docs/README.md")
    return "\n".join(lines)
