"""Filesystem helpers: atomic output folders, locks, links or copies, safe tree scans, fingerprints."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
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


def link_or_copy(src: str | Path, dst: str | Path, mode: str = "copy", data: bytes | None = None) -> str:
    """Make ``dst`` show the content of ``src``: a copy by default, a link only when asked.

    A link shares the file with ``src``: editing ``dst`` in place would edit ``src`` too, which is why
    ``copy`` is the default.

    Args:
        src: existing file (never modified).
        dst: new path.
        mode: ``copy``, ``hardlink``, ``symlink`` or ``auto`` (hard link, else symbolic link, else copy).
        data: ``src``'s bytes when already read: a copy writes them instead of reading ``src`` again.

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
    if data is not None:
        with open(dst, "wb") as f:
            f.write(data)
    else:
        shutil.copyfile(src, dst)
    return "copy"


def link_inside(src: str | Path, dst: str | Path) -> str:
    """Second name for a file of the same output tree (hard link, else copy); symlinks are recreated.

    ``src`` is a file this run wrote. When it is itself a symbolic link (``--link symlink``) the
    link is duplicated rather than followed, so ``dst`` never becomes a hard link to the source data.
    """
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return "symlink"
    try:
        os.link(src, dst, follow_symlinks=False)
        return "hardlink"
    except OSError:
        shutil.copyfile(src, dst)
        return "copy"


@dataclass
class TreeScan:
    """What :func:`scan_tree` found.

    ``files``: sorted ``(relative posix path, size, mtime_ns)`` of regular files (symlinks to files
    followed). ``problems``: ``{"path", "kind", "reason"}`` for entries that are not usable files:
    ``broken_symlink`` (dangling), ``symlink_loop``, ``symlink_duplicate`` (a link to a folder already
    scanned), ``not_a_file`` (device, FIFO, socket), ``unreadable`` (cannot be listed or stat'ed).
    """

    files: list[tuple[str, int, int]] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)


def scan_tree(root: str | Path, skip_hidden: bool = False) -> TreeScan:
    """Walk ``root`` without reading files, safely: symbolic links are followed at most once.

    Real folders are walked first; a symbolic link to a folder is followed afterwards only when that
    folder was not reached already, so a link to an ancestor (a loop) or to a folder of the tree is
    reported instead of walked forever or twice. Dangling links and special files are reported too;
    nothing is silently dropped.

    Example:
        >>> scan = scan_tree("PHE-SICH-CT-IDS")  # doctest: +SKIP
        >>> len(scan.files), scan.problems[:1]  # doctest: +SKIP
        (5389, [])
    """
    root = os.path.abspath(str(root))
    out = TreeScan()
    st = os.stat(root)
    seen: dict[tuple[int, int], str] = {(st.st_dev, st.st_ino): ""}

    cut = len(root.rstrip(os.sep)) + 1

    def rel(path: str) -> str:  # every path below starts with root (scandir joins onto it)
        r = path[cut:] if len(path) >= cut else ""
        return r.replace(os.sep, "/") if os.sep != "/" else r

    def problem(path, kind, reason):
        out.problems.append({"path": rel(path), "kind": kind, "reason": reason})

    stack, linked = [root], []
    while stack or linked:
        if stack:
            d = stack.pop()
        else:
            d, st = linked.pop(0)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                target, here = seen[key], rel(d)
                loop = target == "" or here.startswith(target + "/")
                problem(d, "symlink_loop" if loop else "symlink_duplicate",
                        f"symbolic link to {'the dataset root' if target == '' else target + '/'}, "
                        f"{'one of its own parent folders (a loop)' if loop else 'a folder already scanned'}; not followed")
                continue
            seen[key] = rel(d)
        try:
            it = os.scandir(d)
        except OSError as e:
            problem(d, "unreadable", f"folder cannot be listed ({e.strerror or e})")
            continue
        with it:
            for e in it:
                if skip_hidden and e.name.startswith("."):
                    continue
                try:
                    is_link = e.is_symlink()
                    if is_link:
                        try:
                            est = os.stat(e.path)
                        except FileNotFoundError:
                            problem(e.path, "broken_symlink",
                                    f"dangling symbolic link to {os.readlink(e.path)} (the target does not exist)")
                            continue
                        except OSError as err:
                            if err.errno == errno.ELOOP:
                                problem(e.path, "symlink_loop", "symbolic link that points to itself (a loop)")
                            else:
                                problem(e.path, "unreadable", f"symbolic link cannot be followed ({err.strerror or err})")
                            continue
                    else:
                        est = e.stat(follow_symlinks=False)
                except OSError as err:
                    problem(e.path, "unreadable", f"cannot be read ({err.strerror or err})")
                    continue
                if stat.S_ISDIR(est.st_mode):
                    if is_link:
                        linked.append((e.path, est))
                    else:
                        seen.setdefault((est.st_dev, est.st_ino), rel(e.path))
                        stack.append(e.path)
                elif stat.S_ISREG(est.st_mode):
                    out.files.append((rel(e.path), est.st_size, est.st_mtime_ns))
                else:
                    problem(e.path, "not_a_file", "not a regular file (a device, FIFO or socket)")
    out.files.sort()
    out.problems.sort(key=lambda p: p["path"])
    return out


def scan_files(root: str | Path, skip_hidden: bool = True) -> list[tuple[str, int, int]]:
    """All regular files under ``root`` as sorted ``(relative posix path, size, mtime_ns)`` (see :func:`scan_tree`)."""
    return scan_tree(root, skip_hidden=skip_hidden).files


def file_manifest(root: str | Path, exclude: Iterable[str] = ()) -> dict[str, int]:
    """``{relative posix path: size}`` of every file under ``root`` (a written output), minus ``exclude``."""
    skip = set(exclude)
    return {p: size for p, size, _ in scan_tree(root).files if p not in skip}


def check_manifest(root: str | Path, manifest: dict[str, int], limit: int = 5) -> list[str]:
    """Files of ``manifest`` missing under ``root`` or with another size (at most ``limit``, as readable strings)."""
    root = str(root)
    bad = []
    for rel, size in manifest.items():
        try:
            now = os.stat(os.path.join(root, rel)).st_size
        except OSError:
            bad.append(f"{rel} is missing")
        else:
            if now != size:
                bad.append(f"{rel} has {now} bytes instead of {size}")
        if len(bad) >= limit:
            break
    return bad


class LockBusyError(OSError):
    """Another process holds the lock; ``pid`` is its process id when known."""

    def __init__(self, path: Path, pid: int | None):
        super().__init__(errno.EBUSY, f"{path} is locked by process {pid or '?'}")
        self.path, self.pid = path, pid


@contextmanager
def exclusive_lock(path: str | Path):
    """Hold an exclusive, non-blocking ``flock`` on ``path`` (created, holding our pid) for the block.

    Raises :class:`LockBusyError` at once when another process holds it. The lock file is removed on
    exit; a run that finds the file replaced while it waited re-locks the new one, so two processes
    can never both believe they hold the lock.
    """
    import fcntl

    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            try:
                pid = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
            except (OSError, ValueError):
                pid = None
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LockBusyError(path, pid) from None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed it between our open and our lock: lock the new file
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


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
