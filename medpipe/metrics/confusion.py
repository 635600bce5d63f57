"""Multiclass metrics from a confusion matrix of counts (rows = true class, columns = predicted
class), e.g. one printed in a paper, so that it can be put beside medpipe's own results.

The numbers are those of :func:`medpipe.metrics.multiclass.multiclass_metrics` (same conventions:
an absent class, support 0, has ``None`` sensitivity and is listed in ``absent_classes``; macro
means are over the PRESENT classes). Counts are expanded to label/prediction vectors and handed
to that function, so there is one implementation of every formula. The AUROC needs scores, which
a confusion matrix does not hold, so it is left out.

Some papers (and ``sklearn.metrics.recall_score(..., average="macro", labels=all classes,
zero_division=0)``) instead count an absent class's sensitivity, precision and F1 as 0 and divide
by all classes. That other convention is reported too, under ``macro_absent_as_zero``, so the two
can be told apart: with one class of seven absent, a present-class mean of 0.347 becomes 0.297.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medpipe.errors import UserError

__all__ = ["metrics_from_confusion", "read_confusion_csv", "ABSENT_AS_ZERO_KEYS"]

#: the macro means also reported with absent classes counted as 0 (``macro_absent_as_zero``)
ABSENT_AS_ZERO_KEYS = ("sensitivity", "precision", "f1")

#: most ``samples x classes`` values expanded in memory (~0.8 GB of float64 scores)
_MAX_EXPANDED = 100_000_000
_SEPARATORS = ("\t", ";", ",")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _check_counts(matrix) -> np.ndarray:
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix must be square (C x C), got shape {m.shape}")
    if m.shape[0] < 2:
        raise ValueError(f"a confusion matrix needs at least 2 classes, got {m.shape[0]}")
    if m.dtype == bool or not np.issubdtype(m.dtype, np.number):
        raise ValueError(f"a confusion matrix must hold counts, got dtype {m.dtype}")
    if not np.isfinite(m).all() or (m != np.round(m)).any():
        raise ValueError("a confusion matrix must hold whole-number counts")
    if (m < 0).any():
        raise ValueError("a confusion matrix must not hold negative counts")
    m = m.astype(np.int64)
    if m.sum() == 0:
        raise ValueError("a confusion matrix must hold at least one count")
    return m


def expand_confusion(matrix) -> tuple[np.ndarray, np.ndarray]:
    """Label and prediction vectors (``y_true``, ``y_pred``) whose confusion matrix is ``matrix``.

    Example:
        >>> y, p = expand_confusion([[2, 1], [0, 1]])
        >>> y.tolist(), p.tolist()
        ([0, 0, 0, 1], [0, 0, 1, 1])
    """
    m = _check_counts(matrix)
    c = m.shape[0]
    cells = np.repeat(np.arange(c * c), m.ravel())
    return cells // c, cells % c


def metrics_from_confusion(matrix, class_names: Sequence[str] | None = None) -> dict:
    """Accuracy, balanced accuracy, kappa, per-class and macro rates from a confusion matrix.

    Args:
        matrix: ``C x C`` non-negative whole counts, rows = true class, columns = predicted class
            (numpy array or nested lists).
        class_names: the ``C`` class names in row order; default ``"0" .. "C-1"``.

    Returns:
        The dict of :func:`~medpipe.metrics.multiclass.multiclass_metrics` without the AUROC keys
        (``accuracy``, ``balanced_accuracy``, ``precision``, ``recall``, ``sensitivity``,
        ``specificity``, ``f1`` (macro means over present classes), ``kappa``,
        ``kappa_quadratic``, ``confusion_matrix``, ``per_class``, ``absent_classes``, ``n``,
        ``num_classes``), plus ``macro_absent_as_zero``: ``{sensitivity, precision, f1}`` averaged
        over ALL ``C`` classes with an absent class's ``None`` counted as 0 (the other convention;
        equal to the honest means when no class is absent), and ``convention``, a one-line note.

    Raises:
        ValueError: a matrix that is not square, has fewer than 2 classes, holds negative or
            fractional counts or no count at all; class names that do not fit.

    Example:
        >>> m = metrics_from_confusion([[3, 1, 0], [1, 3, 0], [0, 0, 0]], ["a", "b", "c"])
        >>> m["accuracy"], m["sensitivity"], m["absent_classes"]
        (0.75, 0.75, ['c'])
        >>> m["macro_absent_as_zero"]["sensitivity"]
        0.5
    """
    from medpipe.metrics.multiclass import multiclass_metrics

    m = _check_counts(matrix)
    c = m.shape[0]
    names = [str(k) for k in range(c)] if class_names is None else [str(n) for n in class_names]
    if len(names) != c:
        raise ValueError(f"{len(names)} class names {names} for a {c} x {c} confusion matrix")
    if m.sum() * c > _MAX_EXPANDED:  # the expansion below holds N x C scores in memory
        raise ValueError(f"{int(m.sum())} samples x {c} classes is too large to expand into label vectors "
                         f"(limit {_MAX_EXPANDED:.0e} values); a pixel-level matrix needs a count-based path")
    y, pred = expand_confusion(m)
    # hard predictions only: one-hot "scores" satisfy the API; the AUROC they would give is dropped
    out = multiclass_metrics(y, np.eye(c)[pred], names, y_pred=pred)
    out.pop("auroc", None)
    for row in out["per_class"].values():
        row.pop("auroc", None)
    out["macro_absent_as_zero"] = {
        key: float(np.mean([r[key] or 0.0 for r in out["per_class"].values()])) for key in ABSENT_AS_ZERO_KEYS
    }
    out["convention"] = ("macro means over present classes (support > 0); absent classes are listed and "
                         "their sensitivity is None. macro_absent_as_zero counts absent classes as 0 "
                         "over all classes (the convention some papers use).")
    return out


def _is_number(cell: str) -> bool:
    return bool(_NUMBER.match(cell))


def _split_rows(text: str) -> tuple[list[list[str]], str]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return [], ","
    sep = next((s for s in _SEPARATORS if s in lines[0]), None)
    if sep is None:  # a single column, or numbers separated by spaces only
        return [ln.split() for ln in lines], " "
    return [[cell.strip().strip('"').strip() for cell in ln.split(sep)] for ln in lines], sep


def read_confusion_csv(path: str | Path) -> tuple[np.ndarray, list[str] | None]:
    """Read a confusion matrix (rows = true class) from a CSV file.

    Accepted forms, with ``,``, ``;`` or tab between cells (the first line decides):

    * a plain square of counts;
    * a header row of class names over the columns and/or a first column of class names (when
      both are given they must list the same names in the same order; the top-left cell may be
      empty or hold any label such as ``true\\pred``).

    Blank lines and lines starting with ``#`` are skipped. Counts such as ``12.0`` are read as 12.

    Args:
        path: the CSV file.

    Returns:
        ``(matrix, class_names)``: a ``C x C`` int64 array and the names (``None`` when the file
        has none).

    Raises:
        UserError: the file is missing or unreadable, not square, holds negative, fractional or
            non-numeric counts, or its row and column names disagree (the message names the file
            and what is wrong).

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "cm.csv")
        >>> _ = open(f, "w").write(",a,b\\na,5,1\\nb,2,4\\n")
        >>> m, names = read_confusion_csv(f)
        >>> m.tolist(), names
        ([[5, 1], [2, 4]], ['a', 'b'])
    """
    path = Path(path)

    def fail(what: str) -> UserError:
        return UserError(f"{path}: {what}. Expected a square confusion matrix of counts (rows = true class, "
                         "columns = predicted class), separated by commas, semicolons or tabs, optionally "
                         "with class names as a header row and as the first column.")

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; give the path of a confusion-matrix CSV.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot be read as a text CSV ({e}).") from None
    rows, _ = _split_rows(text)
    if not rows:
        raise fail("the file is empty")

    header = None
    head, rest = rows[0], rows[1:]
    names_after_corner = any(not _is_number(cell) for cell in head[1:])
    # "truth,0,1": a corner label over numeric class names, unless the first column holds names too
    corner_only = (not _is_number(head[0]) if head else False) and all(r and _is_number(r[0]) for r in rest)
    if names_after_corner or corner_only:
        header, rows = head, rest
    if not rows:
        raise fail("there is a header row but no rows of counts")
    row_names = None
    first = [r[0] if r else "" for r in rows]
    numeric_names = (header is not None and all(len(r) == len(rows) + 1 for r in rows)
                     and first == header[-len(rows):])  # classes named 0, 1, 2 ... on both sides
    if numeric_names or any(not _is_number(c) for c in first):
        row_names, rows = first, [r[1:] for r in rows]

    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise fail(f"the rows have different numbers of counts ({', '.join(str(len(r)) for r in rows)})")
    n_rows, n_cols = len(rows), widths.pop()
    if n_rows != n_cols:
        raise fail(f"the counts form {n_rows} rows x {n_cols} columns, not a square")
    if n_rows < 2:
        raise fail("a confusion matrix needs at least 2 classes")

    values = np.zeros((n_rows, n_cols), dtype=np.int64)
    for i, r in enumerate(rows):
        for j, cell in enumerate(r):
            where = f"row {i + 1}, column {j + 1} of the counts"
            if not _is_number(cell):
                raise fail(f"{where} is {cell!r}, not a number")
            v = float(cell)
            if v < 0:
                raise fail(f"{where} is negative ({cell})")
            if v != int(v):
                raise fail(f"{where} is not a whole count ({cell})")
            values[i, j] = int(v)
    if values.sum() == 0:
        raise fail("every count is 0")

    col_names = None
    if header is not None:
        if len(header) == n_cols + 1:
            header = header[1:]  # the top-left corner cell
        if len(header) != n_cols:
            raise fail(f"the header row has {len(header)} cells {header} but there are {n_cols} columns of counts")
        col_names = header
    if col_names is not None and row_names is not None and col_names != row_names:
        raise fail(f"the header row names the classes {col_names} but the first column names {row_names}; "
                   "they must be the same classes in the same order")
    names = col_names if col_names is not None else row_names
    if names is not None and len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise fail(f"the class names {dup} appear more than once")
    return values, names
