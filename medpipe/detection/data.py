"""YOLO data: class names of a prepared dataset, label paths, and the per-fold ultralytics data.yaml.

The prepared dataset (``medpipe prepare``) holds a YOLO export: ``yolo/images/{train,val[,test]}``,
``yolo/labels/...`` (one ``cls xc yc w h`` line per box) and ``yolo/data.yaml``, whose ``names``
are the one source of the box classes (:func:`class_names`). The export's own train/val cut (at
prepare's ``--val-fold``) only supplies the files: :func:`fold_data_yaml` writes a data.yaml whose
train/val lists are chosen from ``datalist.json`` by the bundle's ``fold``.

Nothing here imports ultralytics.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from medpipe.errors import DataError

log = logging.getLogger("medpipe")

__all__ = ["class_names", "data_yaml_names", "names_list", "check_same_classes", "label_path", "yolo_index",
           "fold_data_yaml", "YOLO_SPLITS"]

#: the split folders of a YOLO export (``yolo/images/<split>``)
YOLO_SPLITS = ("train", "val", "test")


def names_list(names, source: str = "names") -> list[str]:
    """Box class names as a list indexed by class id, from ultralytics' ``{id: name}`` or a list.

    Args:
        names: a list of names, or a mapping with the ids ``0 .. n-1`` as keys.
        source: where ``names`` came from, for the error message.

    Raises:
        DataError: not a non-empty list/mapping, or ids that are not ``0 .. n-1``.

    Example:
        >>> names_list({1: "b", 0: "a"})
        ['a', 'b']
    """
    if isinstance(names, Mapping):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            ids = None
        if ids != list(range(len(names))):
            raise DataError(f"{source}: class ids {list(names)} are not 0 .. {len(names) - 1}.")
        out = [names[k] if k in names else names[str(k)] for k in ids]
    elif isinstance(names, Sequence) and not isinstance(names, (str, bytes)):
        out = list(names)
    else:
        raise DataError(f"{source}: expected a list of class names or a mapping id -> name, got {names!r}.")
    if not out:
        raise DataError(f"{source}: no class names.")
    return [str(n) for n in out]


def data_yaml_names(path: str | os.PathLike) -> list[str]:
    """The ``names`` of an ultralytics data.yaml, as a list indexed by class id.

    Raises:
        DataError: the file is missing, not YAML, or has no usable ``names``.
    """
    import yaml

    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: not found. It is written by `medpipe prepare` (the dataset's YOLO export) or by "
                        f"fold_data_yaml; re-run prepare (or pass --dataset_dir).")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DataError(f"{p}: not valid YAML ({e}); re-run prepare.") from None
    if not isinstance(doc, dict) or doc.get("names") is None:
        raise DataError(f"{p}: no `names` (the box class names); re-run prepare.")
    return names_list(doc["names"], f"{p}: names")


def class_names(dataset_dir: str | os.PathLike) -> list[str]:
    """The box classes of a prepared dataset: ``dataset_dir/yolo/data.yaml``'s ``names``, in id order.

    Example:
        >>> class_names("data/phe-sich")  # doctest: +SKIP
        ['phe']
    """
    return data_yaml_names(Path(dataset_dir).expanduser() / "yolo" / "data.yaml")


def check_same_classes(model_names: Sequence[str], data_yaml: str | os.PathLike) -> list[str]:
    """``model_names`` (a checkpoint's classes) when they equal ``data_yaml``'s ``names``; else a DataError."""
    data = data_yaml_names(data_yaml)
    if list(model_names) != data:
        raise DataError(f"the checkpoint's classes {list(model_names)} differ from {data_yaml}'s names {data}: "
                        f"evaluate a model on data prepared with the classes it was trained on.")
    return data


def label_path(image_path: str | os.PathLike) -> Path:
    """Where ultralytics looks for an image's labels: the last ``/images/`` -> ``/labels/``, suffix ``.txt``.

    Example:
        >>> str(label_path("/d/yolo/images/val/0001_02.png"))
        '/d/yolo/labels/val/0001_02.txt'
    """
    s = os.fspath(image_path)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa not in s:
        raise DataError(f"{s}: not inside an images/ folder, so ultralytics cannot find its labels.")
    head, _, tail = s.rpartition(sa)
    return Path(head + sb + os.path.splitext(tail)[0] + ".txt")


def yolo_index(yolo_dir: str | os.PathLike) -> dict[str, Path]:
    """File name -> path of every image of a YOLO export (a name in two split folders is an error)."""
    yolo_dir = Path(yolo_dir)
    index: dict[str, Path] = {}
    for split in YOLO_SPLITS:
        d = yolo_dir / "images" / split
        if d.is_dir():
            for p in d.iterdir():
                if p.name in index:
                    raise DataError(f"{yolo_dir}/images: {p.name} is in two splits; re-run `medpipe prepare` for this dataset.")
                index[p.name] = p
    return index


def _label_classes(lab: Path) -> list[int]:
    """The class id of each box line of a YOLO label file."""
    out = []
    for i, line in enumerate(lab.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(int(float(line.split()[0])))
            except ValueError:
                raise DataError(f"{lab}, line {i}: {line!r} is not `cls xc yc w h`; re-run prepare.") from None
    return out


def fold_data_yaml(dataset_dir: str | os.PathLike, fold: int, out_dir: str | os.PathLike,
                   records: str | None = None) -> str:
    """Write a ultralytics data.yaml for one medpipe fold; return its path.

    ``val`` lists the datalist records with ``fold == fold``, ``train`` all other folds, ``test`` the
    held-out patients when the datalist has them. The lists are TXT files of absolute image paths
    under ``dataset_dir/yolo/images/*`` (whichever of prepare's train/val/test folders holds the
    file); ultralytics finds each label by replacing ``/images/`` with ``/labels/``, which is checked
    here for every image, together with the number of boxes against the datalist and each box's
    class id against the class names. ``names`` (and ``nc``) are the dataset's :func:`class_names`.
    The file is written with ``yaml.safe_dump``, so any folder or class name survives quoting.

    Args:
        dataset_dir: the folder ``medpipe prepare`` wrote.
        fold: the validation fold.
        out_dir: where ``data.yaml``, ``train.txt``, ``val.txt`` (and ``test.txt``) go.
        records: for evaluation: the records to put in ``val`` (``val``, ``test``, ``all`` or
            ``fold:N``, see :func:`medpipe.data.datalist.select_records`); None for training folds.

    Returns:
        The path of ``out_dir/data.yaml``.

    Raises:
        DataError: no YOLO export, an image or label missing from it, or labels that disagree with
            the datalist or the class names (a stale export: re-run prepare).

    Example:
        >>> fold_data_yaml("data/phe-sich", 1, "runs/sich_det/data")  # doctest: +SKIP
        'runs/sich_det/data/data.yaml'
    """
    import yaml

    from medpipe.data.datalist import load_datalist, load_split
    from medpipe.utils.fs import atomic_write_text

    base = Path(dataset_dir).expanduser().absolute()
    yolo_dir = base / "yolo"
    if not (yolo_dir / "images").is_dir():
        raise DataError(f"{yolo_dir}/images: not found. The detection bundle reads the YOLO export that "
                        f"`medpipe prepare` writes for datasets with boxes; re-run prepare (or pass --dataset_dir).")
    dl = load_datalist(base)
    names = class_names(base)
    index = yolo_index(yolo_dir)
    if records is not None:
        from medpipe.data.datalist import select_records

        chosen = select_records(base, records, fold, label_key="boxes")
        splits = {"train": chosen, "val": chosen}
    else:
        splits = {"train": load_split(base, fold, "train", scalars_only=False),
                  "val": load_split(base, fold, "val", scalars_only=False)}
        if dl.get("test"):
            splits["test"] = load_split(base, fold, "test", scalars_only=False)
    out = Path(out_dir).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    for split, recs in splits.items():
        lines = []
        for r in recs:
            img = index.get(Path(r["image"]).name)
            if img is None:
                raise DataError(f"{yolo_dir}/images: {Path(r['image']).name} (datalist record of patient "
                                f"{r.get('patient')}) is missing; re-run `medpipe prepare` for this dataset.")
            lab = label_path(img)
            if not lab.is_file():
                raise DataError(f"{lab}: label file missing for {img}; re-run `medpipe prepare` for this dataset.")
            classes = _label_classes(lab)
            if len(classes) != len(r.get("boxes") or []):
                raise DataError(f"{lab}: {len(classes)} boxes but datalist.json has {len(r.get('boxes') or [])} for "
                                f"{r['image']}; the YOLO export is stale, re-run `medpipe prepare` for this dataset.")
            bad = [c for c in classes if not 0 <= c < len(names)]
            if bad:
                raise DataError(f"{lab}: class id {bad[0]}, but {yolo_dir / 'data.yaml'} names {len(names)} "
                                f"class(es) {names}; the YOLO export is stale, re-run prepare.")
            lines.append(str(img))
        atomic_write_text(out / f"{split}.txt", "\n".join(lines) + "\n")
    doc = {"path": str(out), **{s: str(out / f"{s}.txt") for s in splits},
           "nc": len(names), "names": dict(enumerate(names))}
    source = str(base / "datalist.json").replace("\n", " ")
    header = (f"# ultralytics data for medpipe fold {int(fold)}: val = datalist fold {int(fold)}, train = the other "
              f"folds (written by medpipe.detection.data.fold_data_yaml from {source})\n")
    path = out / "data.yaml"
    # safe_dump quotes whatever needs it ('#', ':', leading '-' ...); ASCII output (escapes) for any locale;
    # no line folding of long paths
    atomic_write_text(path, header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=False, width=1 << 20))
    log.info("fold %d: %s (%s)", int(fold), path, ", ".join(f"{s} {len(r)} slices" for s, r in splits.items()))
    return str(path)
