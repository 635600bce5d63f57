"""The record schema of a prepared datalist, checked against the tasks a dataset declares.

Every record has ``image`` (a path relative to the output folder) and ``patient`` (a string); each
declared task adds its key (see :data:`medpipe.prepare.spec.RECORD_KEYS`):

- ``label``: int, 0/1 (binary) or ``0..K-1`` (multiclass);
- ``labels``: list of K ints 0/1 (multilabel);
- ``mask``: path of the mask image, relative to the output folder (segmentation);
- ``boxes``: list of ``[xmin, ymin, xmax, ymax]`` in pixels of the stored image, min <= max,
  inside ``width`` x ``height`` when the record gives them (detection); with more than one
  detection class, ``box_labels`` gives each box's class index.

Extra keys are free (``slice``, ``width``, ``height``, ``spacing``, ``source``, ...).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping


class RecordError(RuntimeError):
    """A converter produced a record that breaks the schema: a bug in the converter, not in the data."""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _rel_file(v, out: str | None) -> str | None:
    """Why ``v`` is not a relative path of an existing output file (None when it is)."""
    if not isinstance(v, str) or not v:
        return "expected a non-empty string path"
    if os.path.isabs(v) or v.replace("\\", "/").split("/")[0] == ".." or "/../" in v.replace("\\", "/"):
        return "expected a path relative to the output folder"
    if out is not None and not os.path.exists(os.path.join(out, v)):
        return "no such file in the output folder"
    return None


def check_record(r: Mapping, tasks: Mapping, out: str | None = None) -> str | None:
    """The first schema problem of record ``r`` as ``"key = value: why"``, or None when it is valid.

    Example:
        >>> from medpipe.prepare.spec import Task
        >>> check_record({"image": "a.png", "patient": "1", "label": 2}, {"label": Task("binary", ("n", "p"))})
        'label = 2: expected 0 or 1 (binary task)'
    """
    why = _rel_file(r.get("image"), out)
    if why:
        return f"image = {r.get('image')!r}: {why}"
    if not isinstance(r.get("patient"), str) or not r["patient"]:
        return f"patient = {r.get('patient')!r}: expected a non-empty string"
    for key, task in tasks.items():
        if key not in r:
            return f"{key}: missing (the dataset declares a {task.kind} task)"
        v, n = r[key], len(task.class_names)
        if task.kind == "binary" and not (_is_int(v) and v in (0, 1)):
            return f"{key} = {v!r}: expected 0 or 1 (binary task)"
        if task.kind == "multiclass" and not (_is_int(v) and 0 <= v < n):
            return f"{key} = {v!r}: expected an int in 0..{n - 1} (multiclass task)"
        if task.kind == "multilabel" and not (isinstance(v, list) and len(v) == n
                                              and all(_is_int(x) and x in (0, 1) for x in v)):
            return f"{key} = {v!r}: expected a list of {n} ints 0/1 (multilabel task)"
        if task.kind == "segmentation":
            why = _rel_file(v, out)
            if why:
                return f"{key} = {v!r}: {why}"
        if task.kind == "detection":
            why = _check_boxes(v, r, n)
            if why:
                return f"{key} = {v!r}: {why}"
    return None


def _check_boxes(boxes, r: Mapping, n_classes: int) -> str | None:
    if not isinstance(boxes, list):
        return "expected a list of [xmin, ymin, xmax, ymax]"
    w, h = r.get("width"), r.get("height")
    for b in boxes:
        if not (isinstance(b, list) and len(b) == 4 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                             and math.isfinite(x) for x in b)):
            return f"box {b!r}: expected 4 finite numbers"
        if b[0] > b[2] or b[1] > b[3]:
            return f"box {b!r}: min greater than max"
        if b[0] < 0 or b[1] < 0 or (_is_int(w) and b[2] > w) or (_is_int(h) and b[3] > h):
            return f"box {b!r}: outside the {w}x{h} image"
    if n_classes > 1:
        bl = r.get("box_labels")
        if not (isinstance(bl, list) and len(bl) == len(boxes) and all(_is_int(x) and 0 <= x < n_classes for x in bl)):
            return f"box_labels = {bl!r}: expected one class index in 0..{n_classes - 1} per box"
    return None


def validate_records(records, tasks: Mapping, out: str | os.PathLike | None, dataset: str) -> None:
    """Check every record against the declared tasks; :class:`RecordError` naming the first bad one."""
    out = None if out is None else os.fspath(out)
    for i, r in enumerate(records):
        why = check_record(r, tasks, out)
        if why:
            raise RecordError(
                f"internal error: the {dataset} converter wrote record {i} (image {r.get('image')!r}, "
                f"patient {r.get('patient')!r}) that breaks the prepared-dataset schema: {why}. This is a "
                f"bug in the converter, not a problem with your data; please report it.")


def link_slice_neighbors(records: list[dict], group: str = "patient", order: str = "slice") -> int:
    """Give every slice record ``neighbors``: the images of the slices just before and after it (2.5D input).

    Slices are grouped by ``record[group]`` and ordered by ``record[order]``; a neighbour is the record
    whose index differs by exactly one. At a stack's ends, or where a slice is missing from the stack,
    the slice's own image stands in (so a 2.5D model never sees a slice from further away as if it were
    adjacent). Records that already have ``neighbors`` are left alone.

    Args:
        records: prepared records (``image``, ``group``, ``order`` keys), modified in place.
        group: the key that identifies one stack (a patient, or a series).
        order: the integer slice index within the stack.

    Returns:
        How many records got a real neighbour on at least one side.

    Example:
        >>> rs = [{"image": f"i{k}.png", "patient": "1", "slice": k} for k in (0, 1, 3)]
        >>> link_slice_neighbors(rs), [r["neighbors"] for r in rs]
        (2, [['i0.png', 'i1.png'], ['i0.png', 'i1.png'], ['i3.png', 'i3.png']])
    """
    stacks: dict = {}
    for r in records:
        if "neighbors" not in r and _is_int(r.get(order)):
            stacks.setdefault(r.get(group), {})[int(r[order])] = r
    linked = 0
    for by_index in stacks.values():
        for k, r in by_index.items():
            prev, nxt = by_index.get(k - 1), by_index.get(k + 1)
            r["neighbors"] = [(prev or r)["image"], (nxt or r)["image"]]
            linked += int(prev is not None or nxt is not None)
    return linked
