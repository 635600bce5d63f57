"""Exports several datasets write from their records: a YOLO detection tree and a labels CSV."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

from medpipe.utils.fs import link_inside

#: where :func:`stage_yolo_label` puts label files until :func:`write_yolo` knows their split
STAGED_LABELS = "yolo/.staged-labels"


def yolo_line(box, w: int, h: int, cls: int = 0) -> str:
    """A YOLO label line ``cls xc yc bw bh`` (normalized) for a pixel box ``[xmin, ymin, xmax, ymax]``.

    Example:
        >>> yolo_line([10, 8, 19, 15], 32, 32)
        '0 0.453125 0.359375 0.281250 0.218750'
    """
    x0, y0, x1, y1 = box
    return f"{cls} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"


def _label_text(r: dict) -> str:
    classes = r.get("box_labels") or [0] * len(r["boxes"])
    return "".join(yolo_line(b, r["width"], r["height"], c) + "\n" for b, c in zip(r["boxes"], classes))


def stage_yolo_label(out: str | os.PathLike, record: dict) -> None:
    """Write a record's YOLO label file now, in a worker, for :func:`write_yolo` to move into its split.

    Creating files can be the slowest part of a prepare on some filesystems; made in the workers it
    overlaps with decoding, and :func:`write_yolo` then only renames it. The folder must exist
    (a converter lists :data:`STAGED_LABELS` in its ``folders``).
    """
    name = os.path.splitext(os.path.basename(record["image"]))[0] + ".txt"
    with open(os.path.join(out, STAGED_LABELS, name), "w") as f:
        f.write(_label_text(record))


def write_yolo(out: Path, final_out: Path, train: list[dict], test: list[dict], val_fold: int,
               class_names, title: str = "") -> dict:
    """A YOLO dataset under ``out/yolo``: ``images/{train,val[,test]}``, ``labels/...``, ``data.yaml``.

    Images are second names (hard links, else copies) of the records' output images; training
    records of fold ``val_fold`` form ``val``. Label files staged by :func:`stage_yolo_label` are
    moved into place, the others written here. ``data.yaml`` is written with ``yaml.safe_dump``, so
    any path or class name is quoted as needed; ``path`` is the final location ``final_out/yolo``.

    Args:
        out: the (temporary) output folder the records' paths are relative to.
        final_out: where ``out`` will end up.
        train, test: records with ``image``, ``boxes``, ``width``, ``height`` (``box_labels`` with
            several classes) and, for training records, ``fold``.
        val_fold: the fold used as YOLO's val split.
        class_names: detection class names (``nc`` and ``names``).
        title: a comment for the first line of ``data.yaml``.

    Returns:
        Images per split, e.g. ``{"train": 80, "val": 20}``.
    """
    import yaml

    splits = {"train": [r for r in train if r["fold"] != val_fold], "val": [r for r in train if r["fold"] == val_fold]}
    if test:
        splits["test"] = test
    for split, recs in splits.items():
        img_dir, lbl_dir = out / "yolo/images" / split, out / "yolo/labels" / split
        img_dir.mkdir(parents=True)
        lbl_dir.mkdir(parents=True)
        for r in recs:
            name = os.path.basename(r["image"])
            link_inside(out / r["image"], img_dir / name)
            label = os.path.splitext(name)[0] + ".txt"
            try:
                os.replace(out / STAGED_LABELS / label, lbl_dir / label)
            except FileNotFoundError:
                (lbl_dir / label).write_text(_label_text(r))
    shutil.rmtree(out / STAGED_LABELS, ignore_errors=True)
    data = {"path": str(final_out / "yolo"), "train": "images/train", "val": "images/val"}
    if test:
        data["test"] = "images/test"
    data["nc"] = len(class_names)
    data["names"] = {i: str(n) for i, n in enumerate(class_names)}
    head = f"# YOLO dataset written by {title or 'medpipe prepare'} (val fold {val_fold})".replace("\n", " ")
    (out / "yolo/data.yaml").write_text(head + "\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return {k: len(v) for k, v in splits.items()}


def write_labels_csv(path: Path, train: list[dict], test: list[dict], columns=("image", "label", "patient", "fold")) -> None:
    """One row per record (``fold`` = ``test`` for held-out records); list values are written as ``a;b``."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in list(train) + list(test):
            row = []
            for c in columns:
                v = r.get(c, "test" if c == "fold" else "")
                row.append(";".join(map(str, v)) if isinstance(v, list) else v)
            w.writerow(row)
