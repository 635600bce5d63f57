"""Reading a prepared dataset: the datalist ``medpipe prepare`` wrote is the only source of splits.

Bundles call :func:`load_split` to get the records of one fold (validation) or of the other folds
(training) with absolute paths; nothing re-splits.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from medpipe.errors import DataError

SPLITS = ("train", "val", "test", "all", "trainval")


def load_datalist(dataset_dir: str | os.PathLike) -> dict:
    """Read ``dataset_dir/datalist.json`` with a clear error when it is missing or unreadable."""
    path = Path(dataset_dir) / "datalist.json"
    if not path.is_file():
        raise DataError(
            f"{path}: not found. Prepare the dataset first, e.g. `make demo` (synthetic data into data/phe-sich) "
            f"or `medpipe prepare phe-sich --src DOWNLOAD --out {dataset_dir}`, or pass --dataset_dir."
        )
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON ({e}); re-run `medpipe prepare`.") from e


def load_split(dataset_dir, fold: int = 0, split: str = "train", task: str = "classification",
               limit: int | None = None, scalars_only: bool = True) -> list[dict]:
    """Records of one split of a prepared dataset, with absolute ``image``/``mask`` paths.

    Args:
        dataset_dir: the folder ``medpipe prepare`` wrote.
        fold: the validation fold.
        split: ``train`` (every fold but ``fold``), ``val`` (fold ``fold``), ``test`` (held-out patients),
            ``trainval`` (all folds) or ``all`` (folds and test).
        task: ``classification`` keeps ``label`` = the slice label; ``segmentation`` moves the slice
            label to ``slice_label`` and puts the mask path in ``label`` (the key MONAI engines train on).
        limit: keep only the first N records (smoke tests).
        scalars_only: drop list/dict values (boxes, source paths, spacing) so that batches collate;
            detection reads boxes from the YOLO export instead.

    Returns:
        A list of record dicts (copies; the datalist is not modified).

    Example:
        >>> train = load_split("data/phe-sich", fold=0, split="train")  # doctest: +SKIP
    """
    if split not in SPLITS:
        raise DataError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    dl = load_datalist(dataset_dir)
    k = int(dl.get("num_folds", 0) or 0)
    if k and not 0 <= int(fold) < k:
        raise DataError(f"fold {fold}: {dataset_dir}/datalist.json has folds 0..{k - 1}; pass --fold in that range.")
    train = dl.get("training", [])
    if split == "train":
        recs = [r for r in train if r["fold"] != int(fold)]
    elif split == "val":
        recs = [r for r in train if r["fold"] == int(fold)]
    elif split == "trainval":
        recs = list(train)
    elif split == "test":
        recs = list(dl.get("test", []))
        if not recs:
            raise DataError(f"{dataset_dir}/datalist.json has no test split; prepare with --test-fraction "
                            f"or evaluate split 'val'.")
    else:
        recs = list(train) + list(dl.get("test", []))
    base = Path(dataset_dir).resolve()
    out = []
    for r in recs[:limit] if limit else recs:
        r = {k: v for k, v in r.items() if not scalars_only or isinstance(v, (str, int, float, bool))}
        for key in ("image", "mask"):
            if key in r and isinstance(r[key], str):
                r[key] = str(base / r[key])
        if task == "segmentation":
            r["slice_label"] = r.pop("label")
            r["label"] = r.pop("mask")
        out.append(r)
    if not out:
        raise DataError(f"{dataset_dir}: split {split!r} of fold {fold} is empty.")
    return out


def class_weights(data: list[dict], key: str = "label", num_classes: int = 2):
    """Inverse-frequency class weights (mean 1) as a float tensor, for a weighted cross-entropy."""
    import torch

    counts = torch.zeros(num_classes)
    for r in data:
        counts[int(r[key])] += 1
    w = counts.sum() / (num_classes * counts.clamp(min=1))
    return w / w.mean()


def balanced_sampler(data: list[dict], key: str = "label", seed: int = 0):
    """A ``WeightedRandomSampler`` drawing each class equally often (one epoch = len(data) draws)."""
    import torch
    from torch.utils.data import WeightedRandomSampler

    labels = [int(r[key]) for r in data]
    counts = {c: labels.count(c) for c in set(labels)}
    weights = torch.tensor([1.0 / counts[c] for c in labels], dtype=torch.double)
    return WeightedRandomSampler(weights, num_samples=len(labels), replacement=True,
                                 generator=torch.Generator().manual_seed(int(seed)))


def datalist_fingerprint(dataset_dir) -> str:
    """SHA-256 of the datalist file: recorded with each run so results name the data they came from."""
    return hashlib.sha256((Path(dataset_dir) / "datalist.json").read_bytes()).hexdigest()
