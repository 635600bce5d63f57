"""``reads.csv``: the three readers' findings per scan, checked column by column, and the majority read.

The file is read by column name (:data:`~data_prep.cq500.layout.COLUMNS`; their order and extra
columns do not matter). Every row is accounted for:

- a row whose ``name`` is not ``CQ500-CT-N`` is set aside (``bad_name``);
- a row with a read other than 0/1 (``1.0`` reads as 1) is set aside (``bad_value``, naming the
  line and the column): a guessed read would be a wrong label;
- a scan given on several rows: identical rows count once (``repeated_row``), rows that differ make
  the scan unusable (``conflicting_rows``, naming the lines);
- readers who mark a hemorrhage subtype but not ``ICH`` (the real file has two such reads, by R1)
  are counted (``subtype_without_ich``); the reads are kept as written.

Example:
    >>> reads = read_reads("/data/CQ500/reads.csv", "reads.csv")  # doctest: +SKIP
    >>> len(reads.scans), reads.scans["CQ500-CT-427"].reads["R1"]["ICH"]  # doctest: +SKIP
    (491, 1)
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.cq500 import layout as L
from medpipe.errors import DataError

#: at most this many examples of each problem are kept for the report
EXAMPLES = 5


@dataclass(frozen=True)
class ScanReads:
    """One scan's row: name, number, ``Category``, line (1 = the header), and reader -> finding -> 0/1."""

    name: str
    number: int
    category: str
    line: int
    reads: dict

    def matrix(self, findings=L.FINDINGS) -> list[list[int]]:
        """The reads as rows per reader (:data:`~data_prep.cq500.layout.READERS` order), columns per finding."""
        return [[self.reads[r][f] for f in findings] for r in L.READERS]


@dataclass
class ReadsTable:
    """A parsed reads file: usable scans by name (file order), problems by kind, counts for the report."""

    file: str
    scans: dict[str, ScanReads] = field(default_factory=dict)
    problems: dict[str, dict] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def note(self, kind: str, line: int, what: str, scan: str | None = None) -> None:
        p = self.problems.setdefault(kind, {"count": 0, "examples": [], "scans": []})
        p["count"] += 1
        if len(p["examples"]) < EXAMPLES:
            p["examples"].append(f"line {line}: {what}")
        if scan is not None:
            p["scans"].append(scan)


def _value(text: str) -> int | None:
    s = text.strip()
    if s in ("0", "1"):
        return int(s)
    try:
        f = float(s)
    except ValueError:
        return None
    return int(f) if f in (0.0, 1.0) else None


def read_reads(path: str | Path, shown: str) -> ReadsTable:
    """Parse ``reads.csv`` (see the module docstring).

    Args:
        path: the file.
        shown: how messages name it (its path under ``--src``, or as given to ``--reads``).

    Returns:
        A :class:`ReadsTable`; ``info`` has ``file``, ``rows``, ``scans`` (usable), ``categories``
        (per ``Category``), ``rows_used`` (of usable scans, repeats included), ``rows_unusable``,
        ``extra_columns`` and ``problems`` (kind -> ``{"count", "examples"}``).

    Raises:
        DataError: the file cannot be read, is empty, or lacks columns (the message lists them and
            what the file should be).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{shown}: the reads file cannot be read ({e.strerror or e}).") from e
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise DataError(f"{shown}: the reads file is empty; expected CQ500's reads.csv, a header line "
                        f"({', '.join(L.COLUMNS[:4])}, ... {L.COLUMNS[-1]}) and one row per scan.")
    names = [h.strip() for h in header]
    missing = [c for c in L.COLUMNS if c not in names]
    if missing:
        shown_missing = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise DataError(f"{shown}: not CQ500's reads file: {len(missing)} of its {len(L.COLUMNS)} columns are missing "
                        f"({shown_missing}); it has {', '.join(names[:6])}{', ...' if len(names) > 6 else ''}. "
                        f"Give the reads.csv of the CQ500 download with --reads FILE (columns name, Category, "
                        f"R1:ICH ... R3:MidlineShift).")
    pos = {c: names.index(c) for c in L.COLUMNS}
    table = ReadsTable(file=shown)
    rows: dict[str, list[tuple[int, tuple]]] = {}
    parsed: dict[str, ScanReads] = {}
    n_rows = 0
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        line = reader.line_num
        n_rows += 1
        cells = {c: (row[i].strip() if i < len(row) else "") for c, i in pos.items()}
        name = cells[L.COL_NAME]
        number = L.scan_number(name)
        if number is None:
            table.note("bad_name", line, f"name {name!r} is not CQ500-CT-N; row not used")
            continue
        reads, bad = {}, None
        for r in L.READERS:
            reads[r] = {}
            for f in L.FINDINGS:
                v = _value(cells[f"{r}:{f}"])
                if v is None and bad is None:
                    bad = f"{r}:{f} = {cells[f'{r}:{f}']!r} (expected 0 or 1)"
                reads[r][f] = v
        if bad:
            table.note("bad_value", line, f"{name}: {bad}; scan not used", name)
            rows.setdefault(name, []).append((line, None))
            continue
        key = (cells[L.COL_CATEGORY], tuple(tuple(reads[r][f] for f in L.FINDINGS) for r in L.READERS))
        rows.setdefault(name, []).append((line, key))
        parsed.setdefault(name, ScanReads(name, number, cells[L.COL_CATEGORY], line, reads))
    for name, got in rows.items():
        lines = ", ".join(str(ln) for ln, _ in got)
        if any(k is None for _, k in got):
            if len(got) > 1:
                table.note("conflicting_rows", got[0][0],
                           f"{name} on lines {lines}, one with a bad value; scan not used", name)
            continue
        if len({k for _, k in got}) > 1:
            table.note("conflicting_rows", got[0][0], f"{name} on lines {lines} with different reads; scan not used",
                       name)
            continue
        if len(got) > 1:
            table.note("repeated_row", got[0][0], f"{name} on lines {lines}, the same reads; used once")
        table.scans[name] = parsed[name]
    for r in L.READERS:
        sub = [s.name for s in table.scans.values()
               if not s.reads[r]["ICH"] and any(s.reads[r][f] for f in L.SUBTYPE_FINDINGS if f != "ICH")]
        for name in sub:
            table.note("subtype_without_ich", table.scans[name].line, f"{name}: {r} marks a subtype but not ICH; "
                                                                       f"kept as read")
    used = sum(len(rows[name]) for name in table.scans)
    table.info = {"file": shown, "rows": n_rows, "scans": len(table.scans),
                  "categories": dict(sorted(Counter(s.category for s in table.scans.values()).items())),
                  "rows_used": used, "rows_unusable": n_rows - used,
                  "extra_columns": [n for n in names if n not in L.COLUMNS and n],
                  "problems": {k: {"count": v["count"], "examples": v["examples"]} for k, v in table.problems.items()}}
    return table


def majority_findings(scan: ScanReads) -> dict[str, int]:
    """The majority of the readers per finding (:func:`medpipe.metrics.agreement.majority_vote`).

    Example:
        >>> reads = {r: dict.fromkeys(L.FINDINGS, 0) for r in L.READERS}
        >>> reads["R1"]["ICH"] = reads["R2"]["ICH"] = reads["R3"]["SDH"] = 1
        >>> m = majority_findings(ScanReads("CQ500-CT-1", 1, "B1", 2, reads))
        >>> m["ICH"], m["SDH"]
        (1, 0)
    """
    from medpipe.metrics.agreement import majority_vote

    cols = [[scan.reads[r][f] for r in L.READERS] for f in L.FINDINGS]
    return dict(zip(L.FINDINGS, (int(v) for v in majority_vote(cols))))


def reader_subtypes(scan: ScanReads) -> dict[str, list[int]]:
    """Each reader's six labels in :data:`~data_prep.cq500.layout.SUBTYPES` order."""
    return {r: L.to_subtypes(scan.reads[r]) for r in L.READERS}
