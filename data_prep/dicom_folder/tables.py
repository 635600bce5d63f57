"""The label CSV of an export: columns found by name, rows grouped by key, every odd row counted.

A site writes its table by hand or with a spreadsheet, so the reader is lenient where the meaning
is clear and loud where it is not:

- UTF-8 (with or without a byte-order mark), else Windows-1252 (noted); ``,`` ``;`` tab or ``|``
  separated (the header line decides);
- the key and label columns are found by name, loosely (``Patient ID``, ``patient_id`` and
  ``PatientID`` are one name; see :data:`~data_prep.dicom_folder.layout.KEY_COLUMN_ALIASES`); a
  missing one is a :class:`~medpipe.errors.DataError` naming the columns the file has;
- a row without a key is counted and ignored; rows are grouped per key, and :func:`resolve` turns
  a key's rows into one label: repeated rows with the same label are one row, an empty label is
  no label, and rows that disagree are a conflict (the key's DICOMs are skipped, naming the lines).

Example:
    >>> table = read_label_table("labels.csv", "labels.csv", "PatientID", None, "pneumonia", ("yes",))  # doctest: +SKIP
    >>> resolve(table.rows["H0001234"], "pneumonia")  # doctest: +SKIP
    Resolved(label=1, kind=None, note='')
"""

from __future__ import annotations

import csv
import difflib
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.dicom_folder import layout as L
from medpipe.errors import DataError

#: at most this many examples of each problem are kept for the report
EXAMPLES = 5
_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class LabelRow:
    """One row of the table: its line number (1 = the header), the raw label value and its label (None: empty)."""

    line: int
    value: str
    label: int | None


@dataclass(frozen=True)
class Resolved:
    """A key's label from its rows: ``label`` (None: unusable), ``kind`` of problem (or None), a note naming lines."""

    label: int | None
    kind: str | None = None
    note: str = ""


@dataclass
class LabelTable:
    """A parsed label table: the columns used, rows per key (file order), and counts for the report."""

    file: str
    key_column: str
    label_column: str
    columns: list[str]
    rows: dict[str, list[LabelRow]] = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def _note(info: dict, key: str, example) -> None:
    c = info.setdefault(key, {"count": 0, "examples": []})
    c["count"] += 1
    if len(c["examples"]) < EXAMPLES:
        c["examples"].append(example)


def _decode(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "windows-1252"


def _find_column(names: list[str], wanted: tuple[str, ...]) -> list[int]:
    """Positions of the columns named like one of ``wanted``: exact names first, else loosely."""
    exact = [i for i, n in enumerate(names) if n in wanted]
    if exact:
        return exact
    loose = {L.normalize_column(w) for w in wanted}
    return [i for i, n in enumerate(names) if L.normalize_column(n) in loose]


def _label_like(text: str, delimiter: str, names: list[str], key_pos: int, positives) -> str | None:
    """The one column whose values all read as labels (positive values or :data:`layout.NEGATIVE_WORDS`), if any."""
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))[1:]
    words = set(positives) | set(L.NEGATIVE_WORDS)
    found = []
    for i, n in enumerate(names):
        vals = {L.normalize_value(r[i]) for r in rows if len(r) > i and r[i].strip()}
        if i != key_pos and vals and vals <= words and vals & set(positives):
            found.append(n)
    return found[0] if len(found) == 1 else None


def normalize_key(value: str, key: str) -> str:
    """A key value as matched: stripped; a file name's ``\\`` written as ``/`` and a leading ``./`` dropped.

    Example:
        >>> normalize_key(" .\\\\ST1\\\\IM0001 ", "filename"), normalize_key(" 1.2.3 ", "StudyInstanceUID")
        ('ST1/IM0001', '1.2.3')
    """
    v = str(value).strip()
    if key == "filename":
        v = v.replace("\\", "/")
        while v.startswith("./"):
            v = v[2:]
    return v


def read_label_table(path: str | Path, shown: str, key: str, key_column: str | None, label_column: str,
                     positives) -> LabelTable:
    """Parse the label CSV.

    Args:
        path: the file.
        shown: how messages name it (its path under ``--src``, or as given to ``--labels``).
        key: the ``--key`` (a name of :data:`~data_prep.dicom_folder.layout.KEYS`).
        key_column: the key's column name (``--key-column``); None: the key's own name or an alias.
        label_column: the label column (``--label-column``).
        positives: normalized positive values (:func:`~data_prep.dicom_folder.layout.parse_value_list`).

    Returns:
        A :class:`LabelTable`; ``info`` has ``file``, ``encoding``, ``delimiter``, ``rows``, ``keys``,
        ``values`` (raw value -> ``{"rows", "label"}``), ``positive_rows``, ``negative_rows``,
        ``empty_label_rows`` and, when met, ``rows_without_key``, ``short_rows`` (``{"count", "examples"}``).

    Raises:
        DataError: the file cannot be read, is empty, or lacks the key or label column (the message
            lists the columns it has and the option to pass).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{shown}: the label table cannot be read ({e.strerror or e}).") from e
    text, encoding = _decode(data)
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if not first:
        raise DataError(f"{shown}: the label table is empty; expected a header line naming the key column "
                        f"({key}) and the label column ({label_column}), then one row per {key}.")
    delimiter = max(_DELIMITERS, key=lambda d: (first.count(d), d == ","))
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader)
    while not any(h.strip() for h in header):
        header = next(reader)
    names = [h.strip() for h in header]
    shown_cols = ", ".join(repr(n) for n in names)

    wanted = (key_column,) if key_column else (key, *L.KEY_COLUMN_ALIASES.get(key, ()))
    kpos = _find_column(names, wanted)
    if not kpos:
        how = (f"--key-column {key_column}" if key_column else
               f"--key {key} (a column named {key} or {', '.join(L.KEY_COLUMN_ALIASES.get(key, ()))})")
        raise DataError(f"{shown}: no key column for {how}; its columns are {shown_cols}. Name the key column with "
                        f"--key-column NAME, or choose the --key the table is keyed by "
                        f"({' | '.join(L.KEYS)}).")
    if len(kpos) > 1:
        raise DataError(f"{shown}: several columns could be the key for --key {key} "
                        f"({', '.join(repr(names[i]) for i in kpos)}); pick one with --key-column NAME.")
    lpos = _find_column(names, (label_column,))
    if not lpos:
        rest = [n for i, n in enumerate(names) if i != kpos[0] and n]
        close = difflib.get_close_matches(label_column, rest, n=1, cutoff=0.5)
        hint = close[0] if close else (rest[0] if len(rest) == 1 else _label_like(text, delimiter, names, kpos[0],
                                                                                    positives))
        raise DataError(f"{shown}: no label column {label_column!r} (--label-column); its columns are {shown_cols}. "
                        + (f"Did you mean --label-column {hint}?" if hint else
                           "Pass --label-column NAME with the column holding the reference labels."))
    if len(lpos) > 1:
        raise DataError(f"{shown}: several columns match --label-column {label_column} "
                        f"({', '.join(repr(names[i]) for i in lpos)}); rename one of them or give the exact name.")
    ki, li = kpos[0], lpos[0]
    table = LabelTable(file=shown, key_column=names[ki], label_column=names[li], columns=names)
    info = {"file": shown, "encoding": encoding, "delimiter": delimiter, "key_column": names[ki],
            "label_column": names[li], "rows": 0}
    values: Counter = Counter()
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        line = reader.line_num
        info["rows"] += 1
        if len(row) <= max(ki, li):
            _note(info, "short_rows", {"line": line, "why": f"{len(row)} field(s), fewer than the header's"})
        k = normalize_key(row[ki], key) if len(row) > ki else ""
        if not k:
            _note(info, "rows_without_key", {"line": line, "why": f"empty {names[ki]}"})
            continue
        raw = row[li].strip() if len(row) > li else ""
        lab = L.label_of(raw, positives)
        values[raw] += 1
        table.rows.setdefault(k, []).append(LabelRow(line, raw, lab))
    labels = {raw: L.label_of(raw, positives) for raw in values}
    info["keys"] = len(table.rows)
    info["values"] = {raw: {"rows": n, "label": labels[raw]} for raw, n in values.most_common()}
    info["positive_rows"] = sum(n for raw, n in values.items() if labels[raw] == 1)
    info["negative_rows"] = sum(n for raw, n in values.items() if labels[raw] == 0)
    info["empty_label_rows"] = sum(n for raw, n in values.items() if labels[raw] is None)
    table.info = info
    return table


def resolve(rows: list[LabelRow], column: str) -> Resolved:
    """One key's label from its rows (see the module docstring).

    Example:
        >>> resolve([LabelRow(2, "yes", 1), LabelRow(9, "YES", 1)], "pneumonia")
        Resolved(label=1, kind='duplicate_label_rows', note='lines 2, 9 give the same label; used once')
        >>> resolve([LabelRow(2, "yes", 1), LabelRow(9, "no", 0)], "pneumonia").note
        "lines 2 ('yes'), 9 ('no') of pneumonia disagree"
        >>> resolve([LabelRow(4, "", None)], "pneumonia")
        Resolved(label=None, kind='empty_label', note='line 4: empty pneumonia')
    """
    given = [r for r in rows if r.label is not None]
    if not given:
        return Resolved(None, "empty_label", f"line{'s' if len(rows) > 1 else ''} "
                                             f"{', '.join(str(r.line) for r in rows)}: empty {column}")
    if len({r.label for r in given}) > 1:
        return Resolved(None, "conflicting_labels",
                        f"lines {', '.join(f'{r.line} ({r.value!r})' for r in given)} of {column} disagree")
    if len(rows) > 1:
        empty = [r for r in rows if r.label is None]
        return Resolved(given[0].label, "duplicate_label_rows",
                        f"lines {', '.join(str(r.line) for r in rows)} give the same label; used once"
                        + (f" (empty {column} on line {', '.join(str(r.line) for r in empty)} ignored)" if empty else ""))
    return Resolved(given[0].label)
