"""Reader of the RSNA ICH label file (``stage_2_train.csv``) and the sample submission, quirks included.

The label file has six rows per image, ``ID_<image>_<subtype>,<0|1>``. :func:`read_labels` pivots
them to one label vector per image in :data:`~data_prep.rsna_ich.layout.SUBTYPES` order and counts
every odd row instead of failing:

- an identical repeated row is kept once (``duplicate_rows``);
- two rows of one image and subtype with different labels: the positive wins (``conflicting_rows``);
- an ``ID`` that is not ``ID_<9 hex>_<subtype>``, or a label that is not 0/1 (``malformed_rows``);
- an image with fewer than six subtypes (``incomplete_images``; a missing subtype is 0, a missing
  ``any`` the OR of the subtypes);
- ``any`` that disagrees with the OR of the five subtypes (``any_disagrees``; the file's values are kept).

Only a file that cannot be the label file at all raises :class:`~medpipe.errors.DataError`, naming
it and saying what to do. The real file's 4.5 million rows take a few seconds.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.rsna_ich import layout as L
from medpipe.errors import DataError

#: at most this many examples of each problem are kept for the report
EXAMPLES = 5
N = len(L.SUBTYPES)


def _note(info: dict, key: str, example) -> None:
    c = info.setdefault(key, {"count": 0, "examples": []})
    c["count"] += 1
    if len(c["examples"]) < EXAMPLES:
        c["examples"].append(example)


def _open_csv(path: Path, shown: str, what: str, todo: str):
    """``(file, rows iterator, column positions)``; DataError naming the file when it is not the expected CSV."""
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise DataError(f"{shown}: the {what} cannot be read ({e.strerror or e}). {todo}") from e
    reader = csv.reader(f)
    try:
        header = next(reader, None)
    except (UnicodeDecodeError, csv.Error) as e:
        f.close()
        raise DataError(f"{shown}: not a readable CSV ({e}). Expected the {what} (ID,Label); {todo}") from e
    if not header:
        f.close()
        raise DataError(f"{shown}: the {what} is empty; expected a header 'ID,Label'. {todo}")
    names = [h.strip() for h in header]
    pos = {c: names.index(c) for c in L.LABEL_COLUMNS if c in names}
    missing = [c for c in L.LABEL_COLUMNS if c not in pos]
    if missing:
        f.close()
        raise DataError(f"{shown}: not the {what}: no {', '.join(repr(m) for m in missing)} column in its header "
                        f"({','.join(header)[:160]!r}); expected 'ID,Label'. {todo}")
    return f, reader, pos


@dataclass
class ImageLabels:
    """One image of the label file: its six labels (``SUBTYPES`` order; None where no row), rows and first line."""

    labels: list = field(default_factory=lambda: [None] * N)
    rows: int = 0
    line: int = 0


def read_labels(path: str | Path, name: str | None = None) -> tuple[dict[str, list[int]], dict]:
    """Parse ``stage_2_train.csv`` into one label vector per image.

    Returns:
        ``(labels, info)``: image id -> six 0/1 ints in ``SUBTYPES`` order; ``info`` has ``file``,
        ``rows``, ``images``, ``positive_images`` (``any`` 1), ``positives`` (images per subtype),
        ``rows_used`` (distinct image/subtype rows) and, when met, ``duplicate_rows``,
        ``conflicting_rows``, ``malformed_rows``, ``incomplete_images``, ``any_disagrees`` (each
        ``{"count", "examples"}``); ``adds_up``: rows = rows_used + duplicates + conflicts + malformed.

    Raises:
        DataError: unreadable, or no ``ID``/``Label`` column.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "l.csv")
        >>> _ = open(p, "w").write("ID,Label\\n" + "".join(f"ID_00000000a_{s},{int(s == 'subdural' or s == 'any')}\\n"
        ...                                                  for s in L.SUBTYPES))
        >>> read_labels(p)[0]
        {'ID_00000000a': [1, 0, 0, 0, 0, 1]}
    """
    path = Path(path)
    shown = name or str(path)
    todo = f"Re-download {L.LABELS_FILE} from the challenge's data page."
    f, reader, pos = _open_csv(path, shown, "label file", todo)
    images: dict[str, ImageLabels] = {}
    info: dict = {"file": shown, "rows": 0}
    col_id, col_label = pos[L.COL_ID], pos[L.COL_LABEL]
    need = max(col_id, col_label)
    index = {s: i for i, s in enumerate(L.SUBTYPES)}
    try:
        for line, rec in enumerate(reader, start=2):
            if not rec or not any(s.strip() for s in rec):
                continue
            info["rows"] += 1
            if len(rec) <= need:
                _note(info, "malformed_rows", {"line": line, "why": f"{len(rec)} fields"})
                continue
            parts = L.split_row_id(rec[col_id])
            if parts is None:
                _note(info, "malformed_rows", {"line": line, "why": f"ID {rec[col_id].strip()!r}"})
                continue
            raw = rec[col_label].strip()
            if raw in ("0", "1"):
                value = int(raw)
            else:
                try:
                    value = int(float(raw))
                    if value not in (0, 1) or float(raw) != value:
                        raise ValueError
                except ValueError:
                    _note(info, "malformed_rows", {"line": line, "why": f"Label {raw!r}"})
                    continue
            image, subtype = parts
            k = index[subtype]
            im = images.get(image)
            if im is None:
                im = images[image] = ImageLabels(line=line)
            im.rows += 1
            old = im.labels[k]
            if old is None:
                im.labels[k] = value
            elif old == value:
                _note(info, "duplicate_rows", {"line": line, "image": image, "subtype": subtype})
            else:
                _note(info, "conflicting_rows", {"line": line, "image": image, "subtype": subtype,
                                                 "first_line": im.line})
                im.labels[k] = 1  # a row saying hemorrhage wins
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{shown}: not a readable CSV ({e}). {todo}") from e
    finally:
        f.close()
    out: dict[str, list[int]] = {}
    for image, im in images.items():
        labs = im.labels
        if any(v is None for v in labs):
            _note(info, "incomplete_images", {"image": image, "missing": [s for s, v in zip(L.SUBTYPES, labs)
                                                                           if v is None]})
            labs = [0 if v is None else v for v in labs]
            if im.labels[0] is None:
                labs[0] = max(labs[1:])
        if labs[0] != max(labs[1:]):
            _note(info, "any_disagrees", {"image": image, "any": labs[0], "subtypes": labs[1:]})
        out[image] = labs
    dup = info.get("duplicate_rows", {}).get("count", 0)
    con = info.get("conflicting_rows", {}).get("count", 0)
    mal = info.get("malformed_rows", {}).get("count", 0)
    used = sum(sum(v is not None for v in im.labels) for im in images.values())
    info.update({"images": len(out), "positive_images": sum(v[0] for v in out.values()),
                 "positives": {s: sum(v[i] for v in out.values()) for i, s in enumerate(L.SUBTYPES)},
                 "rows_used": used, "adds_up": info["rows"] == used + dup + con + mal})
    return out, info


def read_submission_ids(path: str | Path, name: str | None = None) -> set[str]:
    """The image ids of ``stage_2_sample_submission.csv`` (the test set; six rows each)."""
    shown = name or str(path)
    f, reader, pos = _open_csv(Path(path), shown, "sample submission", f"Re-download {L.SUBMISSION_FILE} or remove it.")
    ids = set()
    try:
        for rec in reader:
            if rec and len(rec) > pos[L.COL_ID]:
                parts = L.split_row_id(rec[pos[L.COL_ID]])
                if parts:
                    ids.add(parts[0])
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{shown}: not a readable CSV ({e}). Re-download {L.SUBMISSION_FILE} or remove it.") from e
    finally:
        f.close()
    return ids
