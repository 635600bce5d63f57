"""The ``monai.bundle`` runs behind ``medpipe train|evaluate|infer BUNDLE``.

Each command checks what it was given (override keys with a suggestion for typos, values,
checkpoint and dataset) before anything starts, prints the equivalent ``python -m monai.bundle``
command, and runs that same workflow in this process (``monai.bundle.scripts.run``), from the
repository root: a mistake found inside the workflow (a :class:`~medpipe.errors.UserError` raised
by medpipe code a config calls) reaches the CLI as one paragraph, and killing ``medpipe train``
kills the training with it (there is no child to orphan). A run that fails before writing a
checkpoint removes the output folder it created.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from medpipe.bundle.registry import get_bundle
from medpipe.errors import UserError

#: override keys holding paths: made absolute so they mean what the user meant from their own folder
PATH_KEYS = {"dataset_dir", "output_dir", "ckpt_path", "input", "pretrained_path", "stats_path", "cls_predictions",
             "yolo_config_dir"}
#: override keys naming files that must exist when given (a missing one is not silently ignored)
MUST_EXIST = {"cls_predictions": "a slice classifier's predictions.csv (e.g. runs/sich_cls/predictions.csv after "
                                 "`medpipe evaluate sich_cls`)",
              "pretrained_path": "a local state_dict file"}
#: config files of each action, in merge order
ACTION_CONFIGS = {"train": ["train.json"], "evaluate": ["train.json", "evaluate.json"], "infer": ["inference.json"],
                  "export": ["inference.json"]}


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
    get_bundle(name)
    d = Path("bundles") / name
    if not (repo_root() / d / "configs" / "train.json").is_file():
        raise UserError(f"{d}/configs/train.json is missing; this bundle is not available in this checkout.")
    return d


def parse_overrides(extra: list[str]) -> dict[str, str]:
    """``["--max_epochs", "2", "--fold=1"]`` -> ``{"max_epochs": "2", "fold": "1"}`` with paths made absolute."""
    out, i = {}, 0
    while i < len(extra):
        tok = extra[i]
        if not tok.startswith("--") or len(tok) == 2:
            raise UserError(f"unexpected argument {tok!r}: overrides are --KEY VALUE pairs, e.g. --max_epochs 5")
        key, eq, val = tok[2:].partition("=")
        if not eq:
            if i + 1 >= len(extra) or (extra[i + 1].startswith("--") and len(extra[i + 1]) > 2):
                raise UserError(f"--{key} needs a value, e.g. --{key} VALUE")
            val = extra[i + 1]
            i += 1
        i += 1
        if key in PATH_KEYS and val and not val.startswith(("$", "@", "%")):
            val = str(Path(val).expanduser().absolute())
        out[key] = val
    return out


def config_files(bundle: str, action: str, preset: str | None = None) -> list[str]:
    """The config files (relative to the repository root) an action merges, a preset overlay last."""
    b = bundle_dir(bundle)
    files = [str(b / "configs" / c) for c in ACTION_CONFIGS[action]]
    if preset and action != "train":
        raise UserError(f"--preset {preset}: presets choose how a model is trained; `medpipe {action}` reads "
                        f"every setting from the checkpoint (models/model.json). Leave --preset out.")
    if preset:
        p = b / "configs" / "presets" / f"{preset}.json"
        if not (repo_root() / p).is_file():
            have = sorted(f.stem for f in (repo_root() / b / "configs" / "presets").glob("*.json"))
            raise UserError(f"--preset {preset}: {bundle} has no such preset"
                            + (f" (presets: {', '.join(have)})." if have else " (it has no presets)."))
        files.append(str(p))
    return files


def raw_config(files: list[str]) -> dict:
    """The merged raw config of ``files`` (no expression evaluated), read from the repository root."""
    from monai.bundle import ConfigParser

    root = repo_root()
    return ConfigParser.load_config_files([str(root / f) for f in files])


def monai_command(action: str, bundle: str, overrides: dict[str, str], configs: list[str] | None = None,
                  extra: list[str] | None = None) -> list[str]:
    """The argv of the monai.bundle command for ``action`` in ``run``, ``ckpt_export``, ``onnx_export``."""
    b = bundle_dir(bundle)
    files = [c if "/" in c else str(b / "configs" / c) for c in (configs or ["train.json"])]
    cfg = files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", action]
    if action != "run":
        cmd.append("network_def")
    cmd += ["--config_file", cfg, "--bundle_root", str(b)]
    if action != "run":
        cmd += ["--meta_file", str(b / "configs" / "metadata.json")]
    for k, v in overrides.items():
        cmd += [f"--{k}", str(v)]
    return cmd + list(extra or [])


def shown(cmd: list[str]) -> str:
    """The command as a user would type it (``python`` instead of the interpreter's path)."""
    return " ".join(shlex.quote(c) for c in ["python"] + cmd[1:])


def _default_output_dir(raw: dict, values: dict) -> Path | None:
    out = values.get("output_dir", raw.get("output_dir"))
    if isinstance(out, str) and not out.startswith(("$", "@", "%")):
        return (repo_root() / out).resolve() if not Path(out).is_absolute() else Path(out)
    return None


def prepare_run(action: str, bundle: str, overrides: dict[str, str]) -> tuple[list[str], dict[str, str], dict]:
    """Check an action's inputs and complete its overrides; returns ``(config files, overrides, facts)``.

    Everything a user can get wrong is checked here, before anything runs or is written: unknown keys
    (with a suggestion), typed values, the dataset, the checkpoint and its settings (an override that
    conflicts with them is refused), the inference input. ``facts`` holds the checkpoint's settings
    record (``sidecar``) when there is one.
    """
    from medpipe.bundle import overrides as O
    from medpipe.bundle.checkpoint import conflict_message, conflicts, read_sidecar

    spec = get_bundle(bundle)
    ov = dict(overrides)
    preset = ov.pop("preset", None)
    files = config_files(bundle, action, preset)
    raw = raw_config(files)
    tracking_keys = check_tracking(action, ov)
    O.check_keys([k for k in ov if k not in tracking_keys], raw, f"{bundle} {' + '.join(Path(f).name for f in files)}")
    values = {k: O.parse_value(v) for k, v in ov.items()}
    for key, what in MUST_EXIST.items():
        if values.get(key) not in (None, "None") and not Path(str(values[key])).is_file():
            raise UserError(f"--{key} {values[key]}: no such file; give {what}, or leave --{key} out.")
    facts: dict = {}
    if action in ("evaluate", "infer", "export"):
        if "ckpt_path" not in values:
            raise UserError(f"--ckpt_path is required: the checkpoint to {action} (a run's models/model.pt).")
        side = read_sidecar(values["ckpt_path"], bundle)
        facts["sidecar"] = side
        keys = O.model_keys(raw_config(config_files(bundle, "train")))
        rows = conflicts(side["settings"], {k: values[k] for k in keys if k in values})
        if rows:
            raise UserError(conflict_message(values["ckpt_path"], rows))
    if action == "evaluate":
        trained_ds = (facts["sidecar"].get("dataset") or {}).get("dir")
        if "dataset_dir" not in ov and trained_ds and Path(trained_ds).is_dir():
            ov["dataset_dir"] = values["dataset_dir"] = trained_ds
        records = str(values.get("records", "val"))
        if "output_dir" not in ov:
            ov["output_dir"] = values["output_dir"] = O.output_dir_for_evaluation(
                str(values["ckpt_path"]), values.get("dataset_dir"), trained_ds, records)
    dataset_dir = values.get("dataset_dir", raw.get("dataset_dir"))
    if isinstance(dataset_dir, str) and not Path(dataset_dir).is_absolute():
        dataset_dir = str(repo_root() / dataset_dir)
    checked = {k: values[k] for k in ("max_epochs", "batch_size", "image_size", "fold", "device", "num_workers",
                                      "learning_rate", "time_limit_s") if k in values}
    label_key = values.get("label_key", raw.get("label_key")) if action == "train" else \
        (facts.get("sidecar") or {}).get("settings", {}).get("label_key")
    O.check_settings(bundle, action, checked, dataset_dir if action in ("train", "evaluate") else None,
                     label_key if isinstance(label_key, str) and not label_key.startswith(("$", "@")) else None)
    if action == "evaluate":
        from medpipe.data.datalist import check_same_labels, load_datalist, parse_records

        side = facts["sidecar"]
        parse_records(values.get("records", "val"), int(load_datalist(dataset_dir).get("num_folds") or 0) or None)
        check_same_labels(dataset_dir, side["settings"].get("label_key", spec.label_key), side["settings"],
                          str(values["ckpt_path"]))
    if action == "infer" and spec.engine == "monai":
        from medpipe.data.inference import list_inputs

        if "input" not in values:
            raise UserError("--input is required: a folder of slices, one slice, or a .nii/.nii.gz volume.")
        settings = facts["sidecar"]["settings"]
        list_inputs(values["input"], settings.get("input_spec"),
                    level="volume" if int(settings.get("spatial_dims", 2) or 2) == 3 else "slice")
    facts["output_dir"] = _default_output_dir(raw, values)
    return files, ov, facts


def check_tracking(action: str, ov: dict[str, str]) -> list[str]:
    """Check ``--tracking`` and the MLflow settings of ``ov`` (a folder ``--tracking_uri`` made absolute, in place).

    Returns:
        The override keys that are tracking settings (``tracking_uri``, ``experiment_name``, ``run_name``...),
        which the bundle's own configs do not define.
    """
    from medpipe.engines.tracking import require_mlflow, resolve_store, settings_file, settings_keys

    settings = settings_file(ov.get("tracking"))
    keys = settings_keys()
    given = [k for k in ov if k in keys]
    if "tracking" in ov and action != "train":
        raise UserError(f"--tracking: an option of `medpipe train` (the run's parameters, per-epoch numbers and "
                        f"files go to the tracker); `medpipe {action}` writes its results to its output folder.")
    if given and not settings:
        raise UserError(f"--{given[0]}: an MLflow setting; add --tracking mlflow to record the run in MLflow "
                        f"(or leave --{given[0]} out).")
    if not settings:
        return []
    uri = ov.get("tracking_uri")
    if uri and "://" not in uri and not uri.startswith(("$", "@", "%")) and uri != "None":
        ov["tracking_uri"] = uri = str(Path(uri).expanduser().absolute())
    require_mlflow(resolve_store(uri)[0])
    return given


def execute(cmd: list[str]) -> None:
    """Run a ``python -m monai.bundle ACTION ...`` argv in this process, reading its values as fire does.

    The printed command and what runs are the same argv; running it here (rather than in a child
    process) means a user error inside the workflow reaches the CLI as one paragraph, killing the
    command kills the work, and torch/MONAI are imported once.
    """
    from monai.bundle import scripts

    from medpipe.bundle.overrides import parse_value
    from medpipe.utils.env import offline_env

    if cmd[1:3] != ["-m", "monai.bundle"]:
        raise ValueError(f"not a monai.bundle command: {cmd[:4]}")
    action, rest = cmd[3], cmd[4:]
    args, kwargs, i = [], {}, 0
    while i < len(rest):
        if rest[i].startswith("--"):
            kwargs[rest[i][2:]] = parse_value(rest[i + 1])
            i += 2
        else:
            args.append(rest[i])
            i += 1
    offline_env()
    from medpipe.utils.logs import quiet_third_party

    quiet_third_party()
    cwd = os.getcwd()
    os.chdir(repo_root())
    try:
        getattr(scripts, action)(*args, **kwargs)
    finally:
        os.chdir(cwd)


def run_bundle(action: str, bundle: str, overrides: dict[str, str], dry_run: bool = False) -> int:
    """``medpipe train|evaluate|infer BUNDLE``: check, print the monai.bundle command, run it here.

    Args:
        action: ``train``, ``evaluate`` or ``infer``.
        bundle: a registered bundle.
        overrides: ``--KEY VALUE`` pairs as text (paths already absolute).
        dry_run: check and print only.

    Returns:
        0 on success (errors raise; the CLI turns user errors into one paragraph, exit 2).
    """
    from medpipe.engines.tracking import settings_file, store_command

    files, ov, facts = prepare_run(action, bundle, overrides)
    tracking = settings_file(ov.pop("tracking", None))  # mlflow: MONAI's --tracking with medpipe's settings file
    cmd = monai_command("run", bundle, ov, files) + (["--tracking", tracking] if tracking else [])
    print("running: " + shown(cmd), flush=True)
    if dry_run:
        return 0
    out = facts.get("output_dir")
    existed = out is not None and out.exists()
    try:
        execute(cmd)
    except BaseException:
        if out is not None and not existed and out.exists() and not any((out / "models").glob("*.pt")):
            shutil.rmtree(out, ignore_errors=True)  # a failed start leaves no half-made run folder
        raise
    if tracking:
        print(f"MLflow: the run is in experiment {ov.get('experiment_name', bundle)!r}; to browse it (needs "
              f"`pip install mlflow`): {store_command(ov.get('tracking_uri'))}", flush=True)
    return 0
