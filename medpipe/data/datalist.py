"""Reading a prepared dataset: the datalist ``medpipe prepare`` wrote is the only source of splits,
label kinds and names, and of how inputs are fed (window, channels, slice naming).

Bundles call :func:`load_split` (training/validation folds) or :func:`select_records`
(evaluation: ``val``, ``test``, ``all`` or ``fold:N``) to get records with absolute paths, and
:func:`label_task` / :func:`input_spec` for what the datalist header declares; nothing re-splits and
no config types a class name.

The header a prepared dataset carries (written by :mod:`medpipe.prepare`)::

    "dataset": "phe-sich",
    "tasks": {"label": {"kind": "binary", "class_names": ["no_phe", "phe"]},
              "mask": {"kind": "segmentation", "class_names": ["background", "phe"]},
              "boxes": {"kind": "detection", "class_names": ["phe"]}},
    "input": {"channels": 1, "window": [40.0, 80.0], "slice_pattern": "...", ...}
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from medpipe.errors import DataError

SPLITS = ("train", "val", "test", "all", "trainval")
#: label kinds a record key can hold
KINDS = ("binary", "multiclass", "multilabel", "segmentation", "detection")


def load_datalist(dataset_dir: str | os.PathLike) -> dict:
    """Read ``dataset_dir/datalist.json`` with a clear error when it is missing or unreadable."""
    d = Path(dataset_dir)
    path = d / "datalist.json"
    if not path.is_file():
        hint = ""
        if d.is_dir() and any(d.iterdir()):
            hint = (f" {d} exists but holds no datalist: if it is a dataset as downloaded, prepare it first "
                    f"(`medpipe prepare DATASET --src {d} --out data/DATASET`) and pass the prepared folder.")
        elif not d.exists():
            hint = f" {d} does not exist."
        raise DataError(
            f"--dataset_dir {d}: no datalist.json found.{hint} Prepare a dataset first, e.g. `make demo` "
            f"(synthetic data into data/) or `medpipe prepare DATASET --src DOWNLOAD --out {d}` (`medpipe "
            f"prepare --help` lists the datasets; `medpipe synth DATASET` makes a synthetic download)."
        )
    try:
        dl = json.loads(path.read_text())
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON ({e}); re-run `medpipe prepare`.") from e
    if not isinstance(dl, dict) or not isinstance(dl.get("training"), list):
        raise DataError(f"{path}: not a medpipe datalist (no 'training' list); re-run `medpipe prepare`.")
    return dl


def label_task(dataset_dir: str | os.PathLike, key: str = "label") -> dict:
    """``{"key", "kind", "class_names"}`` of the record key ``key``, as the datalist header declares it.

    Raises:
        DataError: the datalist has no such labels (e.g. a classification dataset given to a
            segmentation bundle) or predates label declarations.

    Example:
        >>> label_task("data/phe-sich", "label")  # doctest: +SKIP
        {'key': 'label', 'kind': 'binary', 'class_names': ['no_phe', 'phe']}
    """
    dl = load_datalist(dataset_dir)
    tasks = dl.get("tasks")
    path = Path(dataset_dir) / "datalist.json"
    if not isinstance(tasks, dict):
        raise DataError(f"{path}: declares no label kinds ('tasks'); it was prepared by an older medpipe. "
                        f"Re-run `medpipe prepare` to update it.")
    if key not in tasks:
        have = ", ".join(f"{k} ({v.get('kind')})" for k, v in tasks.items()) or "none"
        raise DataError(f"{path}: has no {key!r} labels (it has: {have}); this bundle needs a dataset with "
                        f"{key!r} labels. Check --dataset_dir (dataset {dl.get('dataset', dl.get('name', '?'))!r}).")
    t = tasks[key]
    if t.get("kind") not in KINDS or not t.get("class_names"):
        raise DataError(f"{path}: tasks[{key!r}] must give a kind in {', '.join(KINDS)} and class_names.")
    return {"key": key, "kind": t["kind"], "class_names": [str(c) for c in t["class_names"]]}


def check_datalist(dataset_dir: str | os.PathLike, label_key: str) -> dict:
    """Check a prepared dataset before a run: it declares ``label_key`` labels and every record has a fold.

    Returns:
        The label task (:func:`label_task`).
    """
    task = label_task(dataset_dir, label_key)
    dl = load_datalist(dataset_dir)
    _records(dl, "trainval", 0, dataset_dir)
    missing = next((r for r in dl["training"] if label_key not in r), None)
    if missing is not None:
        raise DataError(f"{dataset_dir}/datalist.json: record {missing.get('image', '?')} has no {label_key!r}; "
                        f"re-run `medpipe prepare`.")
    return task


def input_spec(dataset_dir: str | os.PathLike) -> dict:
    """How inputs are fed: ``channels``, ``window`` (level, width) for volumes, ``slice_pattern``, ... ."""
    spec = {"channels": 1, "window": None, "slice_pattern": None, "patient_format": None}
    spec.update(load_datalist(dataset_dir).get("input") or {})
    return spec


def _records(dl: dict, split: str, fold: int, dataset_dir) -> list[dict]:
    train = dl.get("training", [])
    bad = next((r for r in train if not isinstance(r.get("fold"), int)), None)
    if bad is not None and split != "test":
        raise DataError(f"{dataset_dir}/datalist.json: record {bad.get('image', '?')} has no integer 'fold'; "
                        f"this is not a datalist written by `medpipe prepare`. Re-run it.")
    if split == "train":
        return [r for r in train if r["fold"] != int(fold)]
    if split == "val":
        return [r for r in train if r["fold"] == int(fold)]
    if split == "trainval":
        return list(train)
    if split == "test":
        recs = list(dl.get("test", []))
        if not recs:
            raise DataError(f"{dataset_dir}/datalist.json has no test split; prepare with --test-fraction, or "
                            f"evaluate --records val / fold:N / all.")
        return recs
    return list(train) + list(dl.get("test", []))


#: what a record stands for: one 2D image, or one whole volume (a 3-D model's input)
LEVELS = ("slice", "volume")


def volume_records(records: list[dict], dataset_dir="the dataset") -> list[dict]:
    """Slice records grouped into one record per volume, for 3-D models.

    A volume record is the first slice record of its volume (``volume`` key: the source image)
    with ``image`` replaced by the slice record's ``volume_image`` (the stored ``(slices, rows,
    columns)`` array ``medpipe prepare`` wrote) and ``slices`` its number of stored slices; the
    slice-only keys (``slice``, ``width``, ``height``) are dropped. Order: first appearance.

    Raises:
        DataError: records with no ``volume_image`` (2D slice input, or a dataset prepared before
            volumes were stored), naming the first and the count.

    Example:
        >>> recs = [{"image": "a0.png", "volume": "a.nii", "volume_image": "volumes/a.npz", "slice": k,
        ...          "label": 2} for k in range(3)]
        >>> volume_records(recs)
        [{'image': 'volumes/a.npz', 'volume': 'a.nii', 'label': 2, 'slices': 3}]
    """
    missing = [r for r in records if not r.get("volume_image")]
    if missing:
        raise DataError(f"{dataset_dir}: {len(missing)} of {len(records)} records (e.g. {missing[0].get('image', '?')}) "
                        f"have no stored volume: they come from 2D slice files, or the dataset was prepared "
                        f"before volumes were stored. Re-run `medpipe prepare` on volumes (NIfTI or DICOM "
                        f"series), or train on slices (--spatial_dims 2).")
    out: dict[str, dict] = {}
    for r in records:
        key = r["volume_image"]
        if key not in out:
            v = {k: val for k, val in r.items() if k not in ("image", "volume_image", "slice", "width", "height")}
            out[key] = {"image": key, **v, "slices": 0}
        out[key]["slices"] += 1
    return list(out.values())


def load_split(dataset_dir, fold: int = 0, split: str = "train", task: str | None = None,
               limit: int | None = None, scalars_only: bool = True, label_key: str | None = None,
               level: str = "slice") -> list[dict]:
    """Records of one split of a prepared dataset, with absolute paths and the engine's ``label``.

    Args:
        dataset_dir: the folder ``medpipe prepare`` wrote.
        fold: the validation fold.
        split: ``train`` (every fold but ``fold``), ``val`` (fold ``fold``), ``test`` (held-out patients),
            ``trainval`` (all folds) or ``all`` (folds and test).
        task: legacy alias: ``segmentation`` = ``label_key="mask"``, ``classification`` = ``"label"``.
        limit: keep only the first N records (smoke tests).
        scalars_only: drop list/dict/None values (boxes, source paths, spacing) and keys that not
            every record has, so that batches collate (the learned label is always kept).
        level: ``slice`` (the prepared records as they are) or ``volume`` (one record per stored
            volume: :func:`volume_records`; ``limit`` then counts volumes).
        label_key: the record key the bundle learns: ``label`` (int class), ``labels`` (multi-label
            0/1 list, given to the engine as a float32 vector under ``label``, the original list
            kept as ``labels``), ``mask`` (the mask path becomes ``label``; the slice's class goes
            to ``slice_label``) or None to leave records as they are.

    Returns:
        A list of record dicts (copies; the datalist is not modified).

    Example:
        >>> train = load_split("data/phe-sich", fold=0, split="train", label_key="label")  # doctest: +SKIP
    """
    if split not in SPLITS:
        raise DataError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    if task is not None and label_key is None:
        label_key = {"segmentation": "mask", "classification": "label"}.get(task, task)
    dl = load_datalist(dataset_dir)
    k = int(dl.get("num_folds", 0) or 0)
    if k and not 0 <= int(fold) < k:
        raise DataError(f"--fold {fold}: {dataset_dir}/datalist.json has folds 0..{k - 1}; pass --fold in that range.")
    recs = _records(dl, split, fold, dataset_dir)
    if level not in LEVELS:
        raise DataError(f"level {level!r}: expected one of {', '.join(LEVELS)}")
    if level == "volume":
        recs = volume_records(recs, f"{dataset_dir}/datalist.json")
    base = Path(dataset_dir).resolve()
    out = []
    for r in recs[:limit] if limit else recs:
        if label_key and label_key not in r:
            raise DataError(f"{dataset_dir}/datalist.json: record {r.get('image', '?')} has no {label_key!r}; "
                            f"this bundle needs {label_key!r} labels. Check --dataset_dir.")
        keep = {key: v for key, v in r.items()
                if not scalars_only or isinstance(v, (str, int, float, bool)) or key == label_key}
        for key in ("image", "mask"):
            if key in keep and isinstance(keep[key], str):
                keep[key] = str(base / keep[key])
        nb = r.get("neighbors")  # 2.5D: the slices before and after (the slice itself at a series' ends)
        if isinstance(nb, (list, tuple)) and len(nb) == 2 and all(isinstance(v, str) for v in nb):
            keep["image_prev"], keep["image_next"] = (str(base / v) for v in nb)
        if label_key == "mask":
            if "label" in keep:
                keep["slice_label"] = keep.pop("label")
            keep["label"] = keep.pop("mask")
        elif label_key == "labels":
            import numpy as np

            keep["label"] = np.asarray(keep["labels"], dtype=np.float32)
        out.append(keep)
    if not out:
        raise DataError(f"{dataset_dir}: split {split!r} of fold {fold} is empty.")
    if scalars_only:  # a key some records lack (e.g. an age missing from one DICOM header) would not collate
        common = set.intersection(*(set(r) for r in out))
        out = [{k: v for k, v in r.items() if k in common} for r in out]
    return out


def parse_records(records: str | int, num_folds: int | None = None) -> tuple[str, int | None]:
    """``val`` | ``test`` | ``all`` | ``trainval`` | ``fold:N`` -> ``(split, fold)`` (fold None: the run's own).

    Example:
        >>> parse_records("fold:2"), parse_records("test")
        (('val', 2), ('test', None))
    """
    s = str(records).strip()
    if s.startswith("fold:"):
        try:
            n = int(s.split(":", 1)[1])
        except ValueError:
            n = -1
        if n < 0 or (num_folds and n >= num_folds):
            rng = f"0..{num_folds - 1}" if num_folds else "a fold number"
            raise DataError(f"--records {s}: expected fold:N with N in {rng}.")
        return "val", n
    if s in ("val", "test", "all", "trainval"):
        return s, None
    raise DataError(f"--records {s}: expected test, all, val (the run's validation fold) or fold:N.")


def select_records(dataset_dir, records: str = "val", fold: int = 0, label_key: str | None = None,
                   limit: int | None = None, scalars_only: bool = True, level: str = "slice") -> list[dict]:
    """Records to evaluate: ``records`` as in :func:`parse_records` (``val`` = fold ``fold``).

    ``scalars_only=False`` keeps list/dict values (boxes, e.g. the NIH boxes a localisation score
    needs); such records do not collate into batches.
    """
    dl = load_datalist(dataset_dir)
    split, f = parse_records(records, int(dl.get("num_folds", 0) or 0) or None)
    return load_split(dataset_dir, fold if f is None else f, split, limit=limit, label_key=label_key,
                      scalars_only=scalars_only, level=level)


def check_same_labels(dataset_dir, label_key: str, trained: dict, ckpt_path: str = "the checkpoint") -> dict:
    """The dataset's label task, after checking it matches the checkpoint's (kind and class names).

    This is what makes external testing safe: a checkpoint is evaluated on another prepared dataset
    only when that dataset declares the same labels.
    """
    task = label_task(dataset_dir, label_key)
    want = (trained.get("task"), list(trained.get("class_names") or []))
    if want[0] and (task["kind"], task["class_names"]) != want:
        raise DataError(f"--dataset_dir {dataset_dir}: its {label_key!r} labels are {task['kind']} "
                        f"{task['class_names']}, but {ckpt_path} was trained on {want[0]} {want[1]}. "
                        f"Evaluate on a dataset prepared with the same labels.")
    return task


def class_weights(data: list[dict], key: str = "label", num_classes: int = 2):
    """Inverse-frequency class weights (mean 1) as a float tensor, for a weighted cross-entropy.

    For multi-label vectors (a list/array per record) it returns the per-class positive weight
    ``negatives / positives`` for ``BCEWithLogitsLoss(pos_weight=...)``.
    """
    import numpy as np
    import torch

    first = data[0][key] if data else 0
    if np.ndim(first) > 0:  # multi-label
        y = np.stack([np.asarray(r[key], dtype=np.float64) for r in data])
        pos = y.sum(0)
        return torch.as_tensor((len(y) - pos) / np.maximum(pos, 1), dtype=torch.float32)
    counts = torch.zeros(num_classes)
    for r in data:
        counts[int(r[key])] += 1
    w = counts.sum() / (num_classes * counts.clamp(min=1))
    return w / w.mean()


def balanced_sampler(data: list[dict], key: str = "label", seed: int = 0):
    """A ``WeightedRandomSampler`` drawing each class equally often (one epoch = len(data) draws).

    Multi-label records (0/1 vectors) are weighted by their rarest positive label (1 / its count; records
    without any positive label form their own group), so that every label is drawn about equally often.
    """
    import numpy as np
    import torch
    from torch.utils.data import WeightedRandomSampler

    if data and np.ndim(data[0][key]) > 0:
        y = np.asarray([np.asarray(r[key]).reshape(-1) for r in data]) > 0.5
        counts = y.sum(axis=0)
        none = int((~y.any(axis=1)).sum())
        w = [max(1.0 / counts[k] for k in np.flatnonzero(row)) if row.any() else 1.0 / none for row in y]
        weights = torch.tensor(w, dtype=torch.double)
        return WeightedRandomSampler(weights, num_samples=len(w), replacement=True,
                                     generator=torch.Generator().manual_seed(int(seed)))
    labels = [int(r[key]) for r in data]
    counts = {c: labels.count(c) for c in set(labels)}
    weights = torch.tensor([1.0 / counts[c] for c in labels], dtype=torch.double)
    return WeightedRandomSampler(weights, num_samples=len(labels), replacement=True,
                                 generator=torch.Generator().manual_seed(int(seed)))


def foreground_flags(data: list[dict], flag_key: str | None = None, mask_key: str = "label") -> list[bool]:
    """Whether each record's mask has foreground: the record's ``flag_key`` when it has one (a prepared
    dataset may store it, e.g. ``mask_label``), else read from the mask file under ``mask_key``.

    Raises:
        DataError: a mask file that cannot be read (named).
    """
    import numpy as np
    from PIL import Image

    out = []
    for r in data:
        if flag_key and isinstance(r.get(flag_key), (bool, int, float)):
            out.append(bool(r[flag_key]))
            continue
        try:
            with Image.open(r[mask_key]) as im:
                out.append(bool(np.asarray(im).any()))
        except (OSError, KeyError) as e:
            raise DataError(f"{r.get(mask_key, r.get('image', '?'))}: cannot read the mask to know whether it has "
                            f"foreground ({e}); check the prepared dataset.") from None
    return out


def segmentation_sampler(data: list[dict], positive_fraction: float | None = None,
                         samples_per_epoch: int | None = None, flag_key: str | None = None, seed: int = 0):
    """The training sampler of a slice segmenter: which slices an epoch draws, and how many.

    nnU-Net's foreground oversampling forces a third of the patches to contain foreground by drawing
    them from images that have some. With 2-D slices as records most slices of a head CT have none, so a
    per-patch foreground ratio alone gives few foreground patches (1/3 of the ~20 % of slices with a
    lesion); ``positive_fraction`` draws slices with foreground that often instead, and the bundle's
    crop then centres on their foreground.

    Args:
        data: the training records.
        positive_fraction: the share of drawn slices that have foreground (0 < f < 1), drawn with
            replacement; None: every slice once per epoch in random order (or ``samples_per_epoch``
            uniform draws).
        samples_per_epoch: draws per epoch; None: ``len(data)``.
        flag_key: record key holding the foreground flag (see :func:`foreground_flags`).
        seed: the sampler's random seed.

    Returns:
        None (the loader shuffles), a ``RandomSampler`` or a ``WeightedRandomSampler``.

    Raises:
        UserError: a fraction outside (0, 1), or a fraction asked of records that are all positive or all empty.

    Example:
        >>> recs = [{"label": "m.png", "mask_label": int(i < 2)} for i in range(10)]
        >>> s = segmentation_sampler(recs, 0.5, flag_key="mask_label")
        >>> round(float(s.weights[:2].sum() / s.weights.sum()), 3), s.num_samples
        (0.5, 10)
    """
    import torch
    from torch.utils.data import RandomSampler, WeightedRandomSampler

    from medpipe.errors import UserError

    n = int(samples_per_epoch) if samples_per_epoch is not None else len(data)
    gen = torch.Generator().manual_seed(int(seed))
    if positive_fraction is None:
        return None if samples_per_epoch is None else RandomSampler(data, replacement=True, num_samples=n,
                                                                    generator=gen)
    f = float(positive_fraction)
    if not 0.0 < f < 1.0:
        raise UserError(f"--positive_fraction {positive_fraction}: the share of training slices with foreground "
                        "must be between 0 and 1 (e.g. 0.5), or null to draw slices uniformly.")
    flags = foreground_flags(data, flag_key)
    pos = sum(flags)
    if pos in (0, len(flags)):
        raise UserError(f"--positive_fraction {f}: {'none' if pos == 0 else 'all'} of the {len(flags)} training "
                        "slices have foreground, so there is nothing to rebalance; use null.")
    w = [f / pos if x else (1.0 - f) / (len(flags) - pos) for x in flags]
    return WeightedRandomSampler(torch.tensor(w, dtype=torch.double), num_samples=n, replacement=True,
                                 generator=gen)


def datalist_fingerprint(dataset_dir) -> str:
    """SHA-256 of the datalist file: recorded with each run so results name the data they came from."""
    return hashlib.sha256((Path(dataset_dir) / "datalist.json").read_bytes()).hexdigest()


def train_sampler(data: list[dict], sampling: str = "shuffle", key: str = "label", seed: int = 0):
    """The training sampler a ``sampling`` setting asks for: ``shuffle`` (None: the loader shuffles) or
    ``balanced`` (:func:`balanced_sampler`)."""
    from medpipe.errors import UserError

    if sampling == "shuffle":
        return None
    if sampling == "balanced":
        return balanced_sampler(data, key, seed)
    raise UserError(f"--sampling {sampling}: choose shuffle (every record once per epoch) or balanced "
                    f"(records drawn by the rarity of their labels).")
