"""Filesystem helpers: atomic output folders, links instead of copies, source fingerprints."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path


def is_within(child: str | Path, parent: str | Path) -> bool:
    """True when ``child`` is ``parent`` or inside it (after resolving symlinks)."""
    c, p = Path(child).resolve(), Path(parent).resolve()
    return c == p or p in c.parents


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (temp file in the same folder, then ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: str | Path, obj, atomic: bool = False) -> None:
    """Write ``obj`` as indented JSON (optionally atomically)."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    if atomic:
        atomic_write_text(path, text)
    else:
        Path(path).write_text(text)


@contextmanager
def atomic_output_dir(out: str | Path):
    """Build an output folder in a sibling temp folder and move it into place only on success.

    Yields the temp folder. On normal exit ``out`` is replaced by it (an existing ``out`` is moved
    aside first and removed after the swap); on any exception, or if the process is killed, ``out``
    is left untouched and the temp folder is removed (or, after a kill, cleaned by the next run via
    :func:`clean_stale_temps`).
    """
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{int(time.time() * 1000)}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{int(time.time() * 1000)}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def clean_stale_temps(out: str | Path) -> list[Path]:
    """Remove temp/old siblings left by a killed :func:`atomic_output_dir`; restore ``out`` if needed.

    If a run was killed between moving the old ``out`` aside and moving the new one in, ``out`` is
    missing and its ``.old-*`` sibling is the last complete output: it is moved back.
    """
    out = Path(out).absolute()
    removed = []
    if not out.parent.exists():
        return removed
    olds = sorted(out.parent.glob(f".{out.name}.old-*"))
    if not out.exists() and olds:
        os.replace(olds[-1], out)
        olds = olds[:-1]
    for p in list(out.parent.glob(f".{out.name}.tmp-*")) + olds:
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def link_or_copy(src: str | Path, dst: str | Path, mode: str = "auto") -> str:
    """Make ``dst`` show the content of ``src`` without copying where the filesystem allows.

    Args:
        src: existing file (never modified).
        dst: new path.
        mode: ``auto`` (hard link, else symbolic link, else copy), ``hardlink``, ``symlink`` or ``copy``.

    Returns:
        The method used: ``"hardlink"``, ``"symlink"`` or ``"copy"``.
    """
    if mode in ("auto", "hardlink"):
        try:
            os.link(src, dst)
            return "hardlink"
        except OSError:
            if mode == "hardlink":
                raise
    if mode in ("auto", "symlink"):
        try:
            os.symlink(os.path.abspath(src), dst)
            return "symlink"
        except OSError:
            if mode == "symlink":
                raise
    shutil.copyfile(src, dst)
    return "copy"


def scan_files(root: str | Path, skip_hidden: bool = True) -> list[tuple[str, int, int]]:
    """All files under ``root`` as sorted ``(relative posix path, size, mtime_ns)`` tuples (no reading)."""
    root = str(root)
    out = []
    stack = [root]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if skip_hidden and e.name.startswith("."):
                    continue
                if e.is_dir(follow_symlinks=True):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=True):
                    st = e.stat(follow_symlinks=True)
                    out.append((os.path.relpath(e.path, root).replace(os.sep, "/"), st.st_size, st.st_mtime_ns))
    out.sort()
    return out


def fingerprint(entries: Iterable, extra=None) -> str:
    """A stable SHA-256 of file entries (path, size, mtime) plus any JSON-serializable ``extra``."""
    h = hashlib.sha256()
    for e in entries:
        h.update(repr(tuple(e)).encode())
        h.update(b"\n")
    if extra is not None:
        h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def write_csv_atomic(rows, path: str | Path, columns) -> Path:
    """Write dict ``rows`` as CSV with ``columns`` (extra keys ignored; floats with 6 decimals), atomically.

    ``label`` is dropped from the columns when no row has one (inference without ground truth).
    """
    path = Path(path)
    cols = [c for c in columns if c != "label" or any("label" in r for r in rows)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    os.replace(tmp, path)
    return path
