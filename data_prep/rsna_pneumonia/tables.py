"""Readers of the RSNA Pneumonia CSVs: the label file, the detailed class file, the sample submission.

Both label CSVs have one row per box, so a patient has 1-4 rows; a patient without opacity has
one row whose box fields are blank. The readers group rows by patient (all boxes kept, an exact
repeat of a box kept once), find columns by name (a copy re-written by pandas with an index column
reads the same) and count every row that is odd instead of failing: only a file that cannot be the
expected file at all raises :class:`~medpipe.errors.DataError`, naming it and saying what to do.

:func:`merge_classes` joins the two files per patient: ``Target`` decides opacity; the class file
decides ``Normal`` vs ``No Lung Opacity / Not Normal``. Parsing the real 30,227 rows takes ~0.1 s.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.rsna_pneumonia import layout as L
from medpipe.errors import DataError

#: at most this many examples of each problem are kept for the report
EXAMPLES = 5


def _note(info: dict, key: str, example) -> None:
    c = info.setdefault(key, {"count": 0, "examples": []})
    c["count"] += 1
    if len(c["examples"]) < EXAMPLES:
        c["examples"].append(example)


@dataclass
class PatientLabels:
    """One patient of the label file: ``Target``, its boxes ``(x, y, w, h)`` in DICOM pixels, its rows."""

    target: int
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    rows: int = 0
    line: int = 0


def _open_csv(path: Path, shown: str, what: str, columns: tuple[str, ...], todo: str):
    """``(rows iterator, column positions)``; DataError naming the file when it is not the expected CSV."""
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise DataError(f"{shown}: the {what} cannot be read ({e.strerror or e}).") from e
    reader = csv.reader(f)
    try:
        header = next(reader, None)
    except (UnicodeDecodeError, csv.Error) as e:
        f.close()
        raise DataError(f"{shown}: not a readable CSV ({e}). Expected the {what} ({','.join(columns)}); {todo}") from e
    if not header:
        f.close()
        raise DataError(f"{shown}: the {what} is empty; expected a header {','.join(columns)!r}. {todo}")
    names = [h.strip() for h in header]
    pos = {c: names.index(c) for c in columns if c in names}
    missing = [c for c in columns if c not in pos]
    if missing:
        f.close()
        raise DataError(f"{shown}: not the {what}: no {', '.join(repr(m) for m in missing)} column in its header "
                        f"({','.join(header)[:160]!r}); expected {','.join(columns)!r}. {todo}")
    return f, reader, pos


def read_labels(path: str | Path, name: str | None = None) -> tuple[dict[str, PatientLabels], dict]:
    """Parse ``stage_2_train_labels.csv`` into patients.

    Returns:
        ``(patients, info)``: patientId -> :class:`PatientLabels`; ``info`` has ``file``, ``rows``,
        ``patients``, ``positive_patients``, ``boxes``, ``blank_box_rows``, ``rows_per_patient``
        (rows -> patients) and, when met, ``malformed_rows``, ``target_conflicts``,
        ``positive_without_box``, ``negative_with_box``, ``duplicate_boxes``, ``bad_patient_ids``
        (each ``{"count", "examples"}``).

    Raises:
        DataError: unreadable, or a column of ``patientId,x,y,width,height,Target`` is missing.
    """
    path = Path(path)
    shown = name or str(path)
    todo = f"Re-download {L.LABELS_FILE} from the challenge's data page."
    f, reader, pos = _open_csv(path, shown, "label file", L.LABEL_COLUMNS, todo)
    patients: dict[str, PatientLabels] = {}
    info: dict = {"file": shown, "rows": 0, "blank_box_rows": 0}
    need = max(pos.values())
    try:
        for line, rec in enumerate(reader, start=2):
            if not rec or not any(s.strip() for s in rec):
                continue
            info["rows"] += 1
            if len(rec) <= need:
                _note(info, "malformed_rows", {"line": line, "why": f"{len(rec)} fields"})
                continue
            pid = rec[pos[L.COL_PATIENT]].strip()
            try:
                target = int(float(rec[pos[L.COL_TARGET]]))
                if target not in (0, 1):
                    raise ValueError
            except ValueError:
                _note(info, "malformed_rows", {"line": line, "why": f"Target {rec[pos[L.COL_TARGET]]!r}"})
                continue
            if not pid:
                _note(info, "malformed_rows", {"line": line, "why": "no patientId"})
                continue
            if not L.is_patient_id(pid):
                _note(info, "bad_patient_ids", {"line": line, "patientId": pid})
            raw = [rec[pos[c]].strip() for c in (L.COL_X, L.COL_Y, L.COL_W, L.COL_H)]
            box = None
            if any(raw):
                try:
                    box = tuple(float(v) for v in raw)
                except ValueError:
                    box = ()
                if not box or not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
                    _note(info, "malformed_rows", {"line": line, "why": f"box {','.join(raw)!r}"})
                    continue
            else:
                info["blank_box_rows"] += 1
            p = patients.get(pid)
            if p is None:
                p = patients[pid] = PatientLabels(target=target, line=line)
            elif p.target != target:
                _note(info, "target_conflicts", {"line": line, "patientId": pid, "first_line": p.line})
                p.target = max(p.target, target)  # any row saying opacity wins
            p.rows += 1
            if box is None:
                if target == 1:
                    _note(info, "positive_without_box", {"line": line, "patientId": pid})
                continue
            if target == 0:
                _note(info, "negative_with_box", {"line": line, "patientId": pid})
                continue
            if box in p.boxes:
                _note(info, "duplicate_boxes", {"line": line, "patientId": pid})
                continue
            p.boxes.append(box)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{shown}: not a readable CSV ({e}). {todo}") from e
    finally:
        f.close()
    info.update({"patients": len(patients), "positive_patients": sum(p.target for p in patients.values()),
                 "boxes": sum(len(p.boxes) for p in patients.values()),
                 "rows_per_patient": dict(sorted(Counter(p.rows for p in patients.values()).items()))})
    return patients, info


def read_classes(path: str | Path, name: str | None = None) -> tuple[dict[str, Counter], dict]:
    """Parse ``stage_2_detailed_class_info.csv``: patientId -> Counter of its class rows.

    Returns:
        ``(classes, info)``; ``info`` has ``file``, ``rows``, ``patients``, ``by_class`` (patients
        per class) and, when met, ``malformed_rows`` and ``unknown_classes``.

    Raises:
        DataError: unreadable, or no ``patientId``/``class`` column.
    """
    path = Path(path)
    shown = name or str(path)
    todo = f"Re-download {L.CLASS_FILE}, or remove it (--label-set binary needs only {L.LABELS_FILE})."
    f, reader, pos = _open_csv(path, shown, "detailed class file", L.CLASS_COLUMNS, todo)
    classes: dict[str, Counter] = {}
    info: dict = {"file": shown, "rows": 0}
    need = max(pos.values())
    try:
        for line, rec in enumerate(reader, start=2):
            if not rec or not any(s.strip() for s in rec):
                continue
            info["rows"] += 1
            if len(rec) <= need or not rec[pos[L.COL_PATIENT]].strip():
                _note(info, "malformed_rows", {"line": line})
                continue
            pid, cls = rec[pos[L.COL_PATIENT]].strip(), rec[pos[L.COL_CLASS]].strip()
            if cls not in L.CLASSES:
                _note(info, "unknown_classes", {"line": line, "patientId": pid, "class": cls})
                continue
            classes.setdefault(pid, Counter())[cls] += 1
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{shown}: not a readable CSV ({e}). {todo}") from e
    finally:
        f.close()
    by_class = Counter(c for cs in classes.values() for c in cs)
    info.update({"patients": len(classes), "by_class": {c: by_class.get(c, 0) for c in L.CLASSES}})
    return classes, info


def read_submission_ids(path: str | Path, name: str | None = None) -> list[str]:
    """The patientIds of ``stage_2_sample_submission.csv`` (the test set), in file order."""
    shown = name or str(path)
    f, reader, pos = _open_csv(Path(path), shown, "sample submission", (L.COL_PATIENT,),
                               f"Re-download {L.SUBMISSION_FILE} or remove it.")
    try:
        return [rec[pos[L.COL_PATIENT]].strip() for rec in reader if rec and len(rec) > pos[L.COL_PATIENT]
                and rec[pos[L.COL_PATIENT]].strip()]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{shown}: not a readable CSV ({e}). Re-download {L.SUBMISSION_FILE} or remove it.") from e
    finally:
        f.close()


@dataclass
class Merged:
    """A patient's class after joining the two files: ``class_name`` (None when unknown) and the problem, if any."""

    class_name: str | None
    problem: str | None = None  # class_row_missing | class_rows_differ | class_conflict | class_target_disagree
    note: str = ""


def merge_classes(label: PatientLabels, rows: Counter | None) -> Merged:
    """Join one patient's label-file entry with its class-file rows.

    ``Target`` 1 means ``Lung Opacity`` whatever the class file says; for ``Target`` 0 the class
    file decides between ``Normal`` and ``No Lung Opacity / Not Normal``, and without a usable
    class row the class is unknown (None).

    Example:
        >>> merge_classes(PatientLabels(1, rows=2), Counter({"Lung Opacity": 1}))
        Merged(class_name='Lung Opacity', problem='class_rows_differ', note='2 rows in the label file, 1 in the class file')
        >>> merge_classes(PatientLabels(0, rows=1), None).class_name is None
        True
    """
    if not rows:
        if label.target == 1:
            return Merged(L.LUNG_OPACITY, "class_row_missing", "class inferred from Target 1")
        return Merged(None, "class_row_missing", "class unknown (Target 0 is Normal or Not Normal)")
    names = set(rows)
    if label.target == 1:
        if names != {L.LUNG_OPACITY}:
            return Merged(L.LUNG_OPACITY, "class_target_disagree" if L.LUNG_OPACITY not in names else "class_conflict",
                          f"class file says {', '.join(sorted(names))}; Target 1 -> Lung Opacity")
    else:
        other = names - {L.LUNG_OPACITY}
        if len(other) != 1 or L.LUNG_OPACITY in names:
            kind = "class_target_disagree" if L.LUNG_OPACITY in names else "class_conflict"
            return Merged(None, kind, f"class file says {', '.join(sorted(names))} for a Target 0 patient; "
                                      f"class unknown")
    cls = L.LUNG_OPACITY if label.target == 1 else next(iter(names))
    n = sum(rows.values())
    if n != label.rows:
        return Merged(cls, "class_rows_differ", f"{label.rows} rows in the label file, {n} in the class file")
    return Merged(cls)
