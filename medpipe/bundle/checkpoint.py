"""Checkpoints that carry their own settings: ``models/model.json`` beside ``models/model.pt``.

``model.pt`` stays a plain ``state_dict`` (the MONAI convention); the run writes, when training
starts, a small JSON file next to it with everything needed to rebuild and feed the network: the
bundle, the model-defining settings (network arguments, image/patch size, normalisation and its
statistics, label kind and names, how inputs are windowed and named), the dataset fingerprint and
the medpipe version. ``evaluate.json`` and ``inference.json`` read those settings through
:func:`load_settings`, so ``--ckpt_path`` is all a user passes; an explicit override that disagrees
is refused by :func:`check_consistent` (and, before anything runs, by the ``medpipe`` wrappers).

Layout of the file::

    {"format": "medpipe-model/1", "bundle": "BUNDLE", "medpipe_version": "0.2.0",
     "settings": {"image_size": 64, "network_name": "dynunet", "class_names": [...], ...},
     "network": {"name": "dynunet", "in_channels": 1, ...},
     "dataset": {"dir": "...", "datalist_sha256": "..."}, "written": "2026-11-30T12:00:00"}
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from medpipe.errors import UserError

FORMAT = "medpipe-model/1"
SIDECAR = "model.json"


def sidecar_path(ckpt_path: str | os.PathLike) -> Path:
    """The settings file of a checkpoint: ``<stem>.json`` when present, else ``model.json`` beside it."""
    p = Path(ckpt_path)
    own = p.with_suffix(".json")
    return own if own.is_file() else p.parent / SIDECAR


def _jsonable(v):
    """Plain JSON types (tuples -> lists, numpy/torch scalars -> python, paths -> str)."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return v.item()
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def write_model_settings(ckpt_dir: str | os.PathLike, bundle: str, settings: dict, network: dict | None = None,
                         dataset: dict | None = None) -> Path:
    """Write ``ckpt_dir/model.json`` atomically and return its path (rank 0 only under DDP)."""
    from medpipe import __version__
    from medpipe.utils.fs import write_json

    d = Path(ckpt_dir)
    d.mkdir(parents=True, exist_ok=True)
    rec = {"format": FORMAT, "bundle": bundle, "medpipe_version": __version__,
           "settings": _jsonable(settings), "network": _jsonable(network or {}),
           "dataset": _jsonable(dataset or {}), "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = d / SIDECAR
    write_json(path, rec, atomic=True)
    return path


def _check_checkpoint_file(path: Path, what: str) -> None:
    if not path.exists():
        raise UserError(f"{what} {path}: no such file. Point it at a trained run's models/model.pt "
                        f"(written by `medpipe train`).")
    if path.is_dir():
        raise UserError(f"{what} {path}: is a folder; give the checkpoint file inside it, e.g. {path}/model.pt "
                        f"or {path}/models/model.pt.")
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise UserError(f"{what} {path}: not a PyTorch checkpoint (it starts with {head!r}). Give the "
                        f"models/model.pt a training run wrote.")


def read_sidecar(ckpt_path: str | os.PathLike, bundle: str | None = None, what: str = "--ckpt_path") -> dict:
    """The whole settings record of a checkpoint, checked (file kind, format, bundle).

    Raises:
        UserError: the checkpoint is missing, not a checkpoint, has no settings file, or was
            trained by another bundle.
    """
    ckpt = Path(ckpt_path).expanduser()
    _check_checkpoint_file(ckpt, what)
    side = sidecar_path(ckpt)
    if not side.is_file():
        raise UserError(f"{what} {ckpt}: no settings file beside it ({side.name}). A medpipe run writes "
                        f"models/model.json next to models/model.pt; copy it along with the checkpoint "
                        f"(or re-train: runs made before medpipe 0.2 did not write it).")
    try:
        rec = json.loads(side.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{side}: unreadable settings file ({e}); restore it from the training run.") from e
    if not isinstance(rec, dict) or rec.get("format") != FORMAT or not isinstance(rec.get("settings"), dict):
        raise UserError(f"{side}: not a medpipe model settings file (format {FORMAT} expected).")
    if bundle and rec.get("bundle") != bundle:
        raise UserError(f"{what} {ckpt}: this checkpoint was trained by bundle {rec.get('bundle')!r}, not "
                        f"{bundle!r}. Use `medpipe ... {rec.get('bundle')} --ckpt_path {ckpt}` or a {bundle} "
                        f"checkpoint.")
    return rec


def load_settings(ckpt_path: str | os.PathLike, bundle: str | None = None) -> dict:
    """The model-defining settings a checkpoint was trained with (what ``inference.json`` feeds on),
    plus ``decision``: the decision thresholds its evaluation chose (empty before any evaluation).

    Example:
        In ``inference.json``::

            "trained": "$medpipe.bundle.checkpoint.load_settings(@ckpt_path, @engine#bundle_name)",
            "image_size": "$@trained['image_size']",
            "threshold": "$@trained['decision'].get('threshold', 0.5)"
    """
    rec = read_sidecar(ckpt_path, bundle)
    return {**rec["settings"], "decision": dict(rec.get("decision") or {})}


def record_decision(ckpt_path: str | os.PathLike, decision: dict, dataset_dir=None, records: str = "val") -> bool:
    """Store decision thresholds chosen by an evaluation (e.g. the segmenter's area threshold) with the checkpoint.

    Only an evaluation of the run's own validation fold on its own dataset may set them: thresholds
    chosen on a test set or an external dataset would leak it into every later result.

    Returns:
        True when the thresholds were stored.
    """
    from medpipe.utils.fs import write_json

    rec = read_sidecar(ckpt_path, what="checkpoint")
    trained_ds = (rec.get("dataset") or {}).get("dir")
    if str(records) != "val" or (dataset_dir and trained_ds and
                                 Path(dataset_dir).resolve() != Path(trained_ds).resolve()):
        return False
    rec["decision"] = {**(rec.get("decision") or {}), **_jsonable(decision),
                       "chosen_on": f"validation fold {rec['settings'].get('fold')} of {trained_ds or 'the training dataset'}"}
    write_json(sidecar_path(ckpt_path), rec, atomic=True)
    return True


def class_thresholds(trained: dict, default: float = 0.5) -> list[float]:
    """The per-class decision thresholds an evaluation stored with a multi-label checkpoint, in class order.

    ``trained`` is what :func:`load_settings` returns; a class without a stored threshold (or a
    checkpoint never evaluated on its validation fold) gets ``default``.

    Example:
        >>> class_thresholds({"class_names": ["a", "b"], "decision": {"thresholds": {"b": 0.3}}})
        [0.5, 0.3]
    """
    stored = (trained.get("decision") or {}).get("thresholds") or {}
    return [float(stored.get(c, default)) for c in trained.get("class_names") or []]


#: how a binary evaluation of the validation fold may choose its decision threshold
THRESHOLD_RULES = ("youden", "f1")


def binary_threshold(trained: dict, records: str = "val", rule: str = "youden", default: float = 0.5) -> dict:
    """The decision threshold a binary evaluation of ``records`` uses, and where it comes from.

    The run's validation fold (``records`` ``val``) chooses it by ``rule`` (``youden``: maximum
    sensitivity + specificity - 1; ``f1``: maximum F1; a number: fixed) and stores it with the
    checkpoint; any other records (the test split, an external dataset) use the stored one, so the
    threshold is never tuned on the data it is scored on.

    Returns:
        ``{"value": rule name | float, "source": str}`` for
        :class:`~medpipe.handlers.classification.ClassificationReport`'s ``threshold`` and
        ``threshold_source``.

    Example:
        >>> binary_threshold({"decision": {"threshold": 0.31, "chosen_on": "fold 0"}}, "test")["value"]
        0.31
    """
    from medpipe.errors import UserError

    if not isinstance(rule, (int, float)) and rule not in THRESHOLD_RULES:
        raise UserError(f"--threshold_rule {rule}: choose {' or '.join(THRESHOLD_RULES)}, or a number in (0, 1).")
    if isinstance(rule, (int, float)):
        return {"value": float(rule), "source": f"fixed at {float(rule):g}"}
    if str(records) == "val":
        return {"value": rule, "source": f"chosen on these validation records ({rule}); stored for the other sets"}
    decision = trained.get("decision") or {}
    if decision.get("threshold") is not None:
        return {"value": float(decision["threshold"]),
                "source": f"chosen ({rule}) on {decision.get('chosen_on', 'the validation fold')}, stored in "
                          f"models/model.json"}
    return {"value": default, "source": f"{default:g}: no threshold stored with the checkpoint (evaluate its "
                                        f"validation fold first)"}


def evaluation_thresholds(trained: dict, records: str = "val") -> dict:
    """The per-class thresholds a multi-label evaluation of ``records`` decides with, and where they come from.

    The run's validation fold (``records`` ``val``) chooses them (maximum F1 per class; in-sample for
    those records, then stored with the checkpoint); any other records use the stored ones, else 0.5.

    Returns:
        ``{"values": "choose" | {name: t} | None, "source": str}`` for
        :class:`~medpipe.handlers.classification.ClassificationReport`'s ``thresholds`` and
        ``threshold_source``.

    Example:
        >>> evaluation_thresholds({"decision": {}}, "test")
        {'values': None, 'source': '0.5 for every class: no thresholds stored with the checkpoint (evaluate its validation fold first)'}
    """
    if str(records) == "val":
        return {"values": "choose", "source": ""}
    decision = trained.get("decision") or {}
    if decision.get("thresholds"):
        return {"values": dict(decision["thresholds"]),
                "source": f"chosen per class (maximum F1) on {decision.get('chosen_on', 'the validation fold')}, "
                          f"stored in models/model.json"}
    return {"values": None,
            "source": "0.5 for every class: no thresholds stored with the checkpoint (evaluate its validation fold first)"}


def _same(a, b) -> bool:
    a, b = _jsonable(a), _jsonable(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def conflicts(trained: dict, current: dict) -> list[tuple[str, object, object]]:
    """``(key, current value, trained value)`` for every key of ``current`` that disagrees with ``trained``."""
    return [(k, v, trained[k]) for k, v in current.items() if k in trained and not _same(v, trained[k])]


def conflict_message(ckpt_path, rows: list[tuple[str, object, object]]) -> str:
    """One paragraph naming every conflicting key."""
    parts = ", ".join(f"--{k} {json.dumps(_jsonable(v))} (trained with {json.dumps(_jsonable(t))})" for k, v, t in rows)
    keys = " ".join(f"--{k}" for k, _, _ in rows)
    return (f"{parts}: the checkpoint {ckpt_path} was trained with other settings, and its network and "
            f"inputs are rebuilt from them (models/model.json). Drop {keys} to use the trained settings, "
            f"or train a new model with the settings you want.")


def check_consistent(trained: dict, current: dict, ckpt_path: str = "the checkpoint") -> bool:
    """Raise :class:`UserError` when a model-defining setting differs from the checkpoint's; True otherwise.

    Used as the first ``initialize`` step of ``evaluate.json``/``inference.json``: ``current`` is the
    bundle's ``model_settings`` resolved in that config (overrides included).
    """
    rows = conflicts(trained, current)
    if rows:
        raise UserError(conflict_message(ckpt_path, rows))
    return True
