"""The ankle-ct manifest: columns found by name, every row checked, rows grouped per image.

The manifest is CSV/TSV (UTF-8 or Windows-1252, separator from the header line) or an Excel sheet
(``.xlsx``, read with pandas + openpyxl). Columns are matched loosely (``Patient ID`` =
``patient_id`` = ``PatientID``); a missing required column is a :class:`~medpipe.errors.DataError`
listing the columns the file has. Each row becomes a :class:`Row` holding its parsed values or the
kind of its problem (``missing_image``, ``missing_patient``, ``empty_label``, ``unknown_class``,
``label_out_of_range``, ``bad_side``, ``bad_slices``); :func:`group_rows` then joins rows naming one
image and finds conflicts (``conflicting_labels``, ``conflicting_patients``).

Example:
    >>> m = read_manifest("labels.csv", "labels.csv", L.COLUMNS, L.CLASS_NAMES)  # doctest: +SKIP
    >>> m.rows[0].label, m.rows[0].line  # doctest: +SKIP
    (1, 2)
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.ankle_ct import layout as L
from data_prep.dicom_folder.tables import _decode
from medpipe.errors import DataError


@dataclass
class Row:
    """One manifest row: line number (1 = header), raw values, parsed values, and its problem (None: usable)."""

    line: int
    image: str
    raw_label: str
    patient: str
    label: int | None = None
    side: str | None = None
    slices: tuple[int, int] | None = None
    problem: str | None = None
    why: str = ""


@dataclass
class Manifest:
    """A parsed manifest: its file name, the columns used (option -> column name or None) and its rows."""

    file: str
    columns: dict
    all_columns: list[str]
    rows: list[Row] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def _table(path: Path, shown: str) -> tuple[list[str], list[list[str]], dict]:
    """Header and string cells of a CSV/TSV or Excel manifest, plus how it was read."""
    if path.name.lower().endswith(L.EXCEL_SUFFIXES):
        try:
            import openpyxl  # noqa: F401
        except ImportError:
            raise DataError(f"{shown}: an Excel manifest needs the openpyxl package, which is not installed. "
                            f"Install it (pip install openpyxl) or export the sheet as CSV and pass that to "
                            f"--manifest.") from None
        import pandas as pd

        try:
            df = pd.read_excel(path, dtype=str, keep_default_na=False)
        except Exception as e:  # noqa: BLE001 - a damaged workbook raises many types
            raise DataError(f"{shown}: the Excel manifest cannot be read ({type(e).__name__}: {e}); export it "
                            f"as CSV and pass that to --manifest.") from e
        header = [str(c).strip() for c in df.columns]
        cells = [["" if v is None else str(v) for v in row] for row in df.itertuples(index=False)]
        return header, cells, {"format": "xlsx"}
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{shown}: the manifest cannot be read ({e.strerror or e}).") from e
    text, encoding = _decode(data)
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if not first:
        raise DataError(f"{shown}: the manifest is empty; expected a header line (image,label,patient[,side,"
                        f"slices]) and one row per image.")
    delimiter = max((",", ";", "\t", "|"), key=lambda d: (first.count(d), d == ","))
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter)]
    while rows and not any(c.strip() for c in rows[0]):
        rows.pop(0)
    return [h.strip() for h in rows[0]], rows[1:], {"format": "csv", "encoding": encoding, "delimiter": delimiter}


def _column(names: list[str], wanted: str) -> int | None:
    exact = [i for i, n in enumerate(names) if n == wanted]
    if exact:
        return exact[0]
    loose = [i for i, n in enumerate(names) if L.normalize_column(n) == L.normalize_column(wanted)]
    return loose[0] if len(loose) == 1 else None


def read_manifest(path: str | Path, shown: str, columns: dict, class_names) -> Manifest:
    """Parse and check every row of the manifest.

    Args:
        path: the file.
        shown: how messages name it.
        columns: column option -> column name (:data:`~data_prep.ankle_ct.layout.COLUMNS` keys).
        class_names: the class names in label order (``--classes``).

    Raises:
        DataError: unreadable, empty, or without the image/label/patient column (the message lists
            the columns it has and the option that names the column).
    """
    header, cells, how = _table(Path(path), shown)
    pos = {opt: _column(header, name) for opt, name in columns.items()}
    missing = [opt for opt in L.REQUIRED_COLUMNS if pos[opt] is None]
    if missing:
        have = ", ".join(repr(h) for h in header)
        need = "; ".join(f"--{o.replace('_', '-')} (now {columns[o]!r})" for o in missing)
        raise DataError(f"{shown}: no column for {need}; the manifest's columns are {have}. Name the columns with "
                        f"those options, e.g. --{missing[0].replace('_', '-')} \"{header[0] if header else 'NAME'}\".")
    m = Manifest(file=shown, columns={o: (header[i] if i is not None else None) for o, i in pos.items()},
                 all_columns=header, info={"file": shown, **how})

    def cell(row, opt):
        i = pos[opt]
        return row[i].strip() if i is not None and i < len(row) and row[i] is not None else ""

    for n, row in enumerate(cells):
        if not any(str(c).strip() for c in row):
            continue
        r = Row(line=n + 2, image=L.normalize_image_path(cell(row, "image_column")),
                raw_label=cell(row, "label_column"), patient=cell(row, "patient_column"))
        r.label, kind = L.parse_label(r.raw_label, class_names)
        r.side, side_ok = L.parse_side(cell(row, "side_column"))
        r.slices, slices_ok = L.parse_slices(cell(row, "slices_column"))
        lab_col, pat_col = m.columns["label_column"], m.columns["patient_column"]
        if not r.image:
            r.problem, r.why = "missing_image", f"empty {m.columns['image_column']}"
        elif not r.patient:
            r.problem, r.why = "missing_patient", f"empty {pat_col}"
        elif kind == "unknown_class":
            r.problem, r.why = kind, (f"{lab_col} {r.raw_label!r} is neither a class number 0..{len(class_names) - 1}"
                                      f" nor a class name ({', '.join(class_names)}; --classes renames them)")
        elif kind == "label_out_of_range":
            r.problem, r.why = kind, f"{lab_col} {r.raw_label!r} is outside 0..{len(class_names) - 1}"
        elif kind:
            r.problem, r.why = kind, f"empty {lab_col}"
        elif not side_ok:
            r.problem, r.why = "bad_side", f"{m.columns['side_column']} {cell(row, 'side_column')!r}: expected L or R"
        elif not slices_ok:
            r.problem, r.why = "bad_slices", (f"{m.columns['slices_column']} {cell(row, 'slices_column')!r}: expected "
                                              f"an inclusive range such as 40:80")
        m.rows.append(r)
    m.info["rows"] = len(m.rows)
    return m


@dataclass
class Group:
    """The usable rows naming one image, or why that image cannot be used (``problem`` and ``why``)."""

    image: str
    rows: list[Row]
    problem: str | None = None
    why: str = ""


def group_rows(rows: list[Row]) -> dict[str, Group]:
    """Rows per image; an image whose usable rows disagree on label or patient is a conflict.

    Rows with a problem of their own are left out (the caller reports them); an image whose rows all
    have a problem gets the first row's problem. Repeated rows that agree are one image (their slice
    ranges are joined; one row without a range means every slice).

    Example:
        >>> g = group_rows([Row(2, "a.nii", "1", "P1", 1), Row(3, "a.nii", "2", "P1", 2)])
        >>> g["a.nii"].problem
        'conflicting_labels'
    """
    by_image: dict[str, list[Row]] = {}
    for r in rows:
        if r.image:
            by_image.setdefault(r.image, []).append(r)
    out = {}
    for image, rs in by_image.items():
        good = [r for r in rs if r.problem is None]
        if not good:
            out[image] = Group(image, [], rs[0].problem, f"line {rs[0].line}: {rs[0].why}")
            continue
        labels = {r.label for r in good}
        patients = {r.patient for r in good}
        sides = {r.side for r in good if r.side}
        if len(patients) > 1:
            out[image] = Group(image, good, "conflicting_patients",
                               "lines " + ", ".join(f"{r.line} (patient {r.patient!r})" for r in good) + " disagree")
        elif len(labels) > 1:
            out[image] = Group(image, good, "conflicting_labels",
                               "lines " + ", ".join(f"{r.line} (label {r.raw_label!r})" for r in good)
                               + f" give patient {good[0].patient!r} different labels for this image")
        elif len(sides) > 1:
            out[image] = Group(image, good, "conflicting_sides",
                               "lines " + ", ".join(f"{r.line} (side {r.side})" for r in good) + " disagree")
        else:
            out[image] = Group(image, good)
    return out
