"""Readers of ChestX-ray14's text files: the label file, the box list and the split lists.

All three are parsed explicitly with the ``csv`` module rather than with pandas, because pandas
misreads each of them: the label file's bracketed names (``OriginalImage[Width,Height]``) hold two
values under one name, the 2017 original ends every line with a comma (an ``Unnamed: 11`` column)
and the box list's header (``Image Index,Finding Label,Bbox [x,y,w,h],,,``) names three columns for
six values. Columns are found by name, values by position, so a copy re-written by pandas (split
bracket names, an extra index column) reads the same. Parsing all 112,120 rows takes well under a
second.

Every reader returns what it parsed plus an ``info`` dict for the report (quirks met, rows dropped
and why); only a file that cannot be this file at all raises :class:`~medpipe.errors.DataError`,
naming it.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.cxr14 import layout as L
from medpipe.errors import DataError
from medpipe.io.dicom import parse_age  # ages as DICOM AS strings ("058Y"); the label file writes them so

#: at most this many examples of each problem are kept for the report
EXAMPLES = 5


def _norm(name: str) -> str:
    return re.sub(r"[\s_]", "", name).lower()


_COLUMNS = {_norm(c): c for c in (L.COL_IMAGE, L.COL_FINDINGS, L.COL_FOLLOW_UP, L.COL_PATIENT, L.COL_AGE,
                                  L.COL_SEX, L.COL_VIEW, L.COL_ORIGINAL_SIZE, L.COL_SPACING)}


@dataclass(slots=True)
class Row:
    """One label-file row: the image's labels and metadata (``findings`` canonical, ``unknown`` not)."""

    image: str
    finding_labels: str
    findings: tuple[str, ...]
    unknown: tuple[str, ...]
    patient: str
    follow_up: int | None
    age: int | None
    sex: str | None
    view: str | None
    original_size: tuple[int, int] | None
    line: int


@dataclass
class LabelTable:
    """The parsed label file: ``rows`` by Image Index, and ``info`` for the report."""

    path: str
    rows: dict[str, Row] = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def _note(info: dict, key: str, example) -> None:
    c = info.setdefault(key, {"count": 0, "examples": []})
    c["count"] += 1
    if len(c["examples"]) < EXAMPLES:
        c["examples"].append(example)


def logical_columns(header: list[str]) -> list[tuple[str, list[int]]]:
    """Group header fields into named columns: ``OriginalImage[Width`` + ``Height]`` -> one name, two positions.

    Example:
        >>> logical_columns(["Image Index", "OriginalImage[Width", "Height]", ""])
        [('Image Index', [0]), ('OriginalImage[Width,Height]', [1, 2]), ('', [3])]
    """
    out, i = [], 0
    while i < len(header):
        name, pos = header[i].strip(), [i]
        if "[" in name and "]" not in name:
            j = i + 1
            while j < len(header) and "]" not in name:
                name += "," + header[j].strip()
                pos.append(j)
                j += 1
            i = j
        else:
            i += 1
        out.append((name, pos))
    return out


def read_label_file(path: str | Path, name: str | None = None) -> LabelTable:
    """Parse ``Data_Entry_2017.csv`` / ``Data_Entry_2017_v2020.csv`` (either header, any pandas re-write).

    Args:
        path: the label file.
        name: how to name it in messages (default: the path).

    Returns:
        A :class:`LabelTable`. ``info`` holds ``rows``, ``columns`` (the named columns found),
        ``header_fields``, ``trailing_comma``, ``age_formats``, and, when met, ``duplicate_rows``,
        ``malformed_rows``, ``unknown_findings``, ``no_finding_with_findings``, ``patient_mismatch``
        and ``age_problems`` (each ``{"count", "examples"}``).

    Raises:
        DataError: the file cannot be read or has no ``Image Index`` / ``Finding Labels`` column.
    """
    path = Path(path)
    shown = name or str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            table = LabelTable(path=shown)
            if header is None:
                raise DataError(f"{shown}: the label file is empty. Expected the NIH Data_Entry_2017.csv "
                                f"(header starting 'Image Index,Finding Labels,...'); re-download it.")
            cols = logical_columns(header)
            where: dict[str, list[int]] = {}
            for cname, pos in cols:
                key = _COLUMNS.get(_norm(cname))
                if key and key not in where:
                    where[key] = pos
            missing = [c for c in L.REQUIRED_COLUMNS if c not in where]
            if missing:
                raise DataError(
                    f"{shown}: not a ChestX-ray14 label file: no {' / '.join(repr(m) for m in missing)} column in "
                    f"its header ({','.join(header)[:160]!r}). Expected the NIH Data_Entry_2017.csv or "
                    f"Data_Entry_2017_v2020.csv; give the right file with --label-file.")
            info = table.info
            info.update({"file": shown, "header_fields": len(header),
                         "columns": [c for c, _ in cols if c],
                         "trailing_comma": bool(header) and header[-1].strip() == "",
                         "bracketed_columns": [c for c, p in cols if len(p) > 1]})
            p_img, p_fl = where[L.COL_IMAGE][0], where[L.COL_FINDINGS][0]
            p_pid = where.get(L.COL_PATIENT, [None])[0]
            p_fu = where.get(L.COL_FOLLOW_UP, [None])[0]
            p_age = where.get(L.COL_AGE, [None])[0]
            p_sex = where.get(L.COL_SEX, [None])[0]
            p_view = where.get(L.COL_VIEW, [None])[0]
            p_size = where.get(L.COL_ORIGINAL_SIZE)
            need = max(p for p in (p_img, p_fl, p_pid, p_fu) if p is not None)
            finding_cache: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {}
            rows, n, age_formats = table.rows, 0, Counter()
            for line, rec in enumerate(reader, start=2):
                if not rec or (len(rec) == 1 and not rec[0].strip()):
                    continue
                n += 1
                if len(rec) <= need:
                    _note(info, "malformed_rows", {"line": line, "fields": len(rec)})
                    continue
                img = rec[p_img].strip()
                fl = rec[p_fl].strip()
                if not img:
                    _note(info, "malformed_rows", {"line": line, "fields": len(rec)})
                    continue
                if img in rows:
                    _note(info, "duplicate_rows", {"line": line, "image": img,
                                                   "first_line": rows[img].line})
                    continue
                cached = finding_cache.get(fl)
                if cached is None:
                    names = [s.strip() for s in fl.split("|") if s.strip()]
                    canon = [L.canonical_finding(s) for s in names]
                    unknown = tuple(s for s, c in zip(names, canon) if c is None)
                    found = tuple(sorted({c for c in canon if c and c != L.NO_FINDING}, key=L.FINDINGS.index))
                    mixed = bool(found) and L.NO_FINDING in canon
                    cached = finding_cache[fl] = (found, unknown, mixed or not names)
                found, unknown, odd = cached
                if unknown:
                    _note(info, "unknown_findings", {"line": line, "image": img, "names": list(unknown)})
                elif odd:
                    _note(info, "odd_finding_labels", {"line": line, "image": img, "finding_labels": fl})
                pid = _int(rec[p_pid]) if p_pid is not None else None
                pid = None if pid is None else f"{pid:08d}"
                if pid is None or img[:8] != pid:  # rare: parse the file name
                    parsed = L.parse_image_index(img)
                    if pid is None:
                        if parsed is None:
                            _note(info, "malformed_rows", {"line": line, "fields": len(rec), "why": "no patient id"})
                            continue
                        pid = parsed[0]
                    elif parsed is not None and parsed[0] != pid:
                        _note(info, "patient_mismatch", {"line": line, "image": img, "patient_id": pid})
                follow_up = _int(rec[p_fu]) if p_fu is not None else None
                age = None
                if p_age is not None and p_age < len(rec):
                    a = rec[p_age]
                    if a.isdigit() and len(a) < 4:
                        age, how = int(a), "years"
                    else:
                        age, how = parse_age(a)
                    if age is not None and age > 120:
                        age, how = None, "implausible"
                    age_formats[how] += 1
                    if age is None and how != "missing":
                        _note(info, "age_problems", {"line": line, "image": img, "age": a, "why": how})
                sex = rec[p_sex].strip().upper() or None if p_sex is not None and p_sex < len(rec) else None
                view = rec[p_view].strip().upper() or None if p_view is not None and p_view < len(rec) else None
                size = None
                if p_size and p_size[-1] < len(rec):
                    w, h = _int(rec[p_size[0]]), _int(rec[p_size[1]])
                    size = (w, h) if w is not None and h is not None else None
                rows[img] = Row(img, fl, found, unknown, pid, follow_up, age, sex, view, size, line)
            info["rows"] = n
            info["age_formats"] = dict(age_formats)
            info["patients"] = len({r.patient for r in rows.values()})
            return table
    except OSError as e:
        raise DataError(f"{shown}: the label file cannot be read ({e.strerror or e}).") from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{shown}: not a readable CSV label file ({e}). Expected the NIH Data_Entry_2017.csv; "
                        f"give the right file with --label-file.") from e


@dataclass
class Box:
    """One NIH box: the finding (canonical name), ``x, y, w, h`` in the 1024-px space, its line."""

    finding: str
    x: float
    y: float
    w: float
    h: float
    line: int
    label: str  # as written (``Infiltrate``)


def read_bbox_file(path: str | Path, name: str | None = None) -> tuple[dict[str, list[Box]], dict]:
    """Parse ``BBox_List_2017.csv`` (header ``Image Index,Finding Label,Bbox [x,y,w,h],,,``).

    Returns:
        ``(boxes by Image Index, info)``; ``info`` has ``rows``, ``boxes``, ``aliases`` (label as
        written -> count, e.g. ``{"Infiltrate": 123}``) and, when met, ``malformed_rows`` and
        ``unknown_findings``.

    Raises:
        DataError: unreadable, or the first column is not ``Image Index``.
    """
    path = Path(path)
    shown = name or str(path)
    boxes: dict[str, list[Box]] = {}
    info: dict = {"file": shown, "rows": 0, "boxes": 0, "aliases": Counter()}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or _norm(header[0]) != _norm(L.COL_IMAGE):
                raise DataError(f"{shown}: not the NIH box list: its header should start with 'Image Index,"
                                f"Finding Label,Bbox [x,y,w,h]' (found {','.join(header or [])[:120]!r}). "
                                f"Re-download BBox_List_2017.csv or remove it from --src.")
            for line, rec in enumerate(reader, start=2):
                if not rec or not any(s.strip() for s in rec):
                    continue
                info["rows"] += 1
                try:
                    img, label = rec[0].strip(), rec[1].strip()
                    x, y, w, h = (float(v) for v in rec[2:6])
                except (ValueError, IndexError):
                    _note(info, "malformed_rows", {"line": line, "row": ",".join(rec)[:80]})
                    continue
                finding = L.canonical_finding(label)
                if finding is None or finding == L.NO_FINDING:
                    _note(info, "unknown_findings", {"line": line, "image": img, "label": label})
                    continue
                if finding != label:
                    info["aliases"][label] += 1
                if not (w >= 0 and h >= 0) or not all(map(_finite, (x, y, w, h))):
                    _note(info, "malformed_rows", {"line": line, "row": ",".join(rec)[:80]})
                    continue
                boxes.setdefault(img, []).append(Box(finding, x, y, w, h, line, label))
                info["boxes"] += 1
    except OSError as e:
        raise DataError(f"{shown}: the box list cannot be read ({e.strerror or e}).") from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{shown}: not a readable CSV box list ({e}). Re-download BBox_List_2017.csv or "
                        f"remove it from --src.") from e
    info["aliases"] = dict(info["aliases"])
    info["images"] = len(boxes)
    return boxes, info


def _int(text: str) -> int | None:
    """``"12"`` -> 12, ``"12.0"`` -> 12, anything else -> None."""
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            return None


def _finite(v: float) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))


def sniff_list(path: str | Path) -> str | None:
    """``"names"`` (official list: one Image Index per line), ``"chexnet"`` (15 tokens), or None."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                tok = line.split()
                if tok:
                    if len(tok) == 1 and tok[0].lower().endswith(".png"):
                        return "names"
                    if len(tok) == 1 + len(L.FINDINGS) and tok[0].lower().endswith(".png"):
                        return "chexnet"
                    return None
    except (OSError, UnicodeDecodeError):
        return None
    return None


def read_name_list(path: str | Path, name: str | None = None) -> list[str]:
    """An official split list (``train_val_list.txt`` / ``test_list.txt``): Image Index per line."""
    shown = name or str(path)
    out = []
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{shown}: the split list cannot be read ({e}).") from e
    for i, line in enumerate(text.splitlines(), start=1):
        tok = line.split()
        if not tok:
            continue
        if len(tok) != 1 or not tok[0].lower().endswith(".png"):
            raise DataError(f"{shown}, line {i}: expected one image name (e.g. 00000001_000.png), found "
                            f"{line.strip()[:80]!r}. Is this the official NIH split list?")
        out.append(tok[0])
    return out


def read_chexnet_list(path: str | Path, name: str | None = None) -> dict[str, str]:
    """A CheXNet list: ``<Image Index> <14 labels 0/1>`` per line (the last line may lack its newline).

    Returns:
        Image Index -> its labels as written, e.g. ``"0 1 0 0 0 0 0 0 0 0 0 0 0 0"`` (compare with
        :func:`labels_text`; kept as text because 112,120 lines parse several times faster so).
    """
    shown = name or str(path)
    out: dict[str, str] = {}
    ok = {"0", "1"}
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{shown}: the split list cannot be read ({e}).") from e
    n = len(L.FINDINGS)
    for i, line in enumerate(text.splitlines(), start=1):
        tok = line.split()
        if not tok:
            continue
        if len(tok) != n + 1 or not set(tok[1:]) <= ok:
            raise DataError(f"{shown}, line {i}: expected an image name and {n} labels 0/1 (CheXNet list "
                            f"format), found {line.strip()[:80]!r}.")
        out[tok[0]] = " ".join(tok[1:])
    return out


def labels_text(vector) -> str:
    """A 0/1 vector written as in the CheXNet lists: ``[0, 1]`` -> ``"0 1"``."""
    return " ".join(map(str, vector))
