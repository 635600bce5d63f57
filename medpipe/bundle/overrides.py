"""Checking what a user asks of a bundle before anything runs: override keys, values, checkpoints.

Used by the ``medpipe train|evaluate|infer|export`` wrappers (before the workflow starts, so a
mistake costs nothing and leaves nothing behind) and, through :func:`check_settings`, by the
bundle configs themselves (first ``initialize`` step), so ``python -m monai.bundle run`` users get
the same one-paragraph messages.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path

from medpipe.errors import UserError

#: monai.bundle arguments the wrappers set themselves, and options handled by the wrappers
RESERVED = {"config_file", "meta_file", "logging_file", "run_id", "init_id", "final_id", "args_file"}
WRAPPER_OPTIONS = {"tracking", "preset"}


def parse_value(text):
    """A command-line value as ``python -m monai.bundle`` (fire) reads it: ``"2"`` -> 2, ``"[1,2]"`` -> list;
    except that ``true``/``false`` in any case are booleans (fire keeps lower-case ``"false"`` as text, which a
    config's ``if @flag`` would read as true).

    Example:
        >>> parse_value("2"), parse_value("[1, 2]"), parse_value("false"), parse_value("True")
        (2, [1, 2], False, True)
    """
    if not isinstance(text, str):
        return text
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    from fire.parser import DefaultParseValue

    return DefaultParseValue(text)


def _paths(cfg, prefix: str = ""):
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            ident = f"{prefix}#{k}" if prefix else str(k)
            yield ident
            yield from _paths(v, ident)
    elif isinstance(cfg, list):
        for i, v in enumerate(cfg):
            ident = f"{prefix}#{i}"
            yield ident
            yield from _paths(v, ident)


def known_ids(raw: dict) -> set[str]:
    """Every id of a raw (merged) config, nested ones as ``a#b#c``."""
    return set(_paths(raw))


def check_keys(keys, raw: dict, where: str) -> None:
    """Refuse override keys the configs do not define, with the closest match as a suggestion.

    Args:
        keys: override keys as given (``max_epochs``, ``train#dataloader#num_workers``...).
        raw: the merged raw config of the action.
        where: what the configs are, for the message (``sich_cls train.json``).
    """
    ids = known_ids(raw)
    top = [k for k in raw if not str(k).startswith("_")]
    for key in keys:
        norm = key.replace("::", "#")
        if norm in ids or key in WRAPPER_OPTIONS:
            continue
        if key in RESERVED:
            raise UserError(f"--{key}: set by medpipe itself; run `python -m monai.bundle run` directly to choose it.")
        pool = top if "#" not in norm else sorted(ids)
        close = difflib.get_close_matches(norm, pool, n=1, cutoff=0.6)
        raise UserError(f"--{key}: not a setting of {where}" + (f"; did you mean --{close[0]}?" if close else "")
                        + f" Settings: {', '.join(sorted(k for k in top if not isinstance(raw[k], dict) or k == 'network_args'))}.")


def _argv_tracking(argv: list[str]) -> str | None:
    """The ``--tracking`` value of a ``monai.bundle run`` argv (after ``run``), None when absent."""
    for i, tok in enumerate(argv):
        key, eq, value = tok[2:].partition("=") if tok.startswith("--") else ("", "", "")
        if key == "tracking":
            return value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
    return None


def check_tracking_argv(tracking: str | None) -> list[str]:
    """Check the ``--tracking`` of ``python -m monai.bundle run``; return the settings it adds (override keys).

    MONAI's built-in ``--tracking mlflow`` looks for ``train#trainer``, which medpipe bundles do not have
    (their engines are in the shared skeleton), so it would silently track nothing: it is refused with
    the settings file that works.
    """
    from medpipe.engines.tracking import SETTINGS_FILE, settings_keys

    if tracking is None:
        return []
    if str(tracking).strip().lower() == "mlflow":
        raise UserError(f"--tracking mlflow: MONAI's default MLflow settings do not fit medpipe bundles (no "
                        f"train#trainer); use --tracking {SETTINGS_FILE} with python -m monai.bundle run, or "
                        f"`medpipe train BUNDLE --tracking mlflow`.")
    return settings_keys(tracking) if Path(str(tracking)).is_file() else []


def _argv_overrides(argv: list[str]) -> tuple[list[str], str | None, bool]:
    """``(override keys, --config_file value, has --args_file)`` of a ``monai.bundle run`` argv (after ``run``)."""
    keys, cfg, args_file, i = [], None, False, 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--") and len(tok) > 2:
            key, eq, value = tok[2:].partition("=")
            if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            if key == "config_file":
                cfg = value
            elif key == "args_file":
                args_file = True
            elif key not in RESERVED and key not in ("tracking", "bundle_root"):
                keys.append(key)
        i += 1
    return keys, cfg, args_file


def check_monai_argv(argv: list[str] | None = None) -> None:
    """Refuse override keys of ``python -m monai.bundle run`` that none of its config files defines.

    MONAI adds an unknown ``--key value`` to the config silently, so ``--epochs 1`` (the setting is
    ``max_epochs``) would train the full schedule without a word. The ``medpipe`` wrappers check
    keys before starting; this gives ``python -m monai.bundle run`` users the same message. It does
    nothing unless this process is ``python -m monai.bundle run`` (or when ``--args_file`` holds
    the overrides).
    """
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] != "run" or not str(argv[0]).replace("\\", "/").endswith("monai/bundle/__main__.py"):
        return
    keys, cfg, args_file = _argv_overrides(argv[2:])
    tracking_keys = check_tracking_argv(_argv_tracking(argv[2:]))
    keys = [k for k in keys if k not in tracking_keys]
    if args_file or cfg is None or not keys:
        return
    files = parse_value(cfg)
    if isinstance(files, str):
        files = [f.strip() for f in files.split(",") if f.strip()]
    if not all(isinstance(f, str) and Path(f).is_file() for f in files):
        return
    from monai.bundle import ConfigParser

    check_keys(keys, ConfigParser.load_config_files(files), " + ".join(Path(f).name for f in files))


def _int(name, v, minimum=None, multiple=None, what="") -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise UserError(f"--{name} {v}: expected a whole number{what}.")
    if minimum is not None and v < minimum:
        raise UserError(f"--{name} {v}: must be at least {minimum}{what}.")
    if multiple and v % multiple:
        raise UserError(f"--{name} {v}: must be a multiple of {multiple}{what} (e.g. {max(minimum or 0, v - v % multiple) or multiple}).")
    return v


def check_device(device) -> None:
    """Refuse a device this machine does not have (``cuda`` without a GPU, ``cuda:3`` with two)."""
    import torch

    s = str(device)
    if s.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {s}: no CUDA GPU is available on this machine (torch {torch.__version__}). "
                            f"Use --device cpu, or leave --device out (cuda when available, else cpu).")
        idx = s.split(":", 1)[1] if ":" in s else "0"
        if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
            raise UserError(f"--device {s}: this machine has {torch.cuda.device_count()} GPU(s) "
                            f"(cuda:0..cuda:{torch.cuda.device_count() - 1}).")
    elif s != "cpu":
        try:
            torch.device(s)
        except (RuntimeError, TypeError) as e:
            raise UserError(f"--device {s}: not a device ({e}); use cpu or cuda[:N].") from e
        if s.startswith("mps") and not torch.backends.mps.is_available():
            raise UserError(f"--device {s}: not available here; use cpu or cuda[:N].")


def check_settings(bundle: str, action: str, values: dict, dataset_dir=None, label_key: str | None = None) -> bool:
    """Check the common settings of a bundle run; raise :class:`UserError` naming the first bad one.

    Args:
        bundle: bundle name (the registry gives its size constraints).
        action: ``train``, ``evaluate``, ``infer`` or ``export``.
        values: the settings to check (any of ``max_epochs``, ``batch_size``, ``image_size``, ``fold``,
            ``device``, ``num_workers``, ``learning_rate``, ``time_limit_s``); values are typed as
            the config resolved them.
        dataset_dir: the prepared dataset (checked for train/evaluate: a datalist with this bundle's labels).
        label_key: the record key the run learns (default: the bundle's, from the registry).

    Returns:
        True (so a config can list it as an ``initialize`` step).
    """
    from medpipe.bundle.registry import BUNDLES

    check_monai_argv()
    spec = BUNDLES.get(bundle)
    for name, v in values.items():
        if name in ("max_epochs", "batch_size"):
            _int(name, v, 1)
        elif name == "num_workers":
            _int(name, v, 0)
        elif name == "image_size" and v is not None:
            _int(name, v, spec.min_image_size if spec else 16, spec.image_size_multiple if spec else None,
                 f" for {bundle}" if spec else "")
        elif name == "fold":
            _int(name, v, 0)
        elif name == "device":
            check_device(v)
        elif name in ("learning_rate", "time_limit_s") and v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise UserError(f"--{name} {v}: expected a positive number"
                                + (" of seconds (or leave it out for no limit)." if name == "time_limit_s" else "."))
    if dataset_dir is not None and action in ("train", "evaluate") and spec is not None:
        from medpipe.data.datalist import check_datalist, load_datalist

        check_datalist(dataset_dir, label_key or spec.label_key)
        if "fold" in values and action == "train":
            k = int(load_datalist(dataset_dir).get("num_folds") or 0)
            if k and not 0 <= int(values["fold"]) < k:
                raise UserError(f"--fold {values['fold']}: {dataset_dir}/datalist.json has {k} folds (0..{k - 1}); "
                                f"choose one of them as the validation fold.")
    return True


def crop_size(image_size: int, resize_size: int) -> list[int]:
    """``[image_size, image_size]``, the crop of an image resized to ``resize_size``, after checking it fits.

    Example:
        >>> crop_size(224, 256)
        [224, 224]
    """
    for name, v in (("image_size", image_size), ("resize_size", resize_size)):
        _int(name, v, 1)
    if int(resize_size) < int(image_size):
        raise UserError(f"--resize_size {resize_size}: smaller than --image_size {image_size}; images are resized to "
                        f"resize_size and then cropped to image_size, so resize_size must be at least image_size "
                        f"(e.g. {int(round(int(image_size) * 8 / 7))}, or leave --resize_size out).")
    return [int(image_size), int(image_size)]


def model_keys(raw_train: dict) -> list[str]:
    """The model-defining settings of a bundle: the keys of its ``model_settings`` in train.json."""
    ms = raw_train.get("model_settings")
    return list(ms) if isinstance(ms, dict) else []


def dumps(v) -> str:
    return json.dumps(v, default=str)


def output_dir_for_evaluation(ckpt_path: str, dataset_dir: str | None, trained_dataset: str | None,
                              records: str) -> str:
    """Where ``medpipe evaluate`` writes by default: the training run folder for its own validation
    fold, else ``<run>/eval-<dataset>-<records>`` (an external or other split never overwrites the
    run's own evaluation)."""
    run = Path(ckpt_path).resolve().parent.parent
    same_data = dataset_dir is None or (trained_dataset and Path(dataset_dir).resolve() == Path(trained_dataset).resolve())
    if same_data and str(records) == "val":
        return str(run)
    name = Path(dataset_dir or trained_dataset or "data").resolve().name
    return str(run / f"eval-{name}-{str(records).replace(':', '')}")
