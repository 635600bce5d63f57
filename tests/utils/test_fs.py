"""Filesystem helpers: safe scans, links vs copies, locks, manifests, atomic output folders."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from medpipe.utils.fs import (
    LockBusyError,
    atomic_output_dir,
    check_manifest,
    clean_stale_temps,
    exclusive_lock,
    file_manifest,
    link_inside,
    link_or_copy,
    scan_tree,
)
from tests.conftest import REPO


def _tree(root):
    (root / "a/b").mkdir(parents=True)
    (root / "a/b/f.txt").write_text("f")
    (root / "top.txt").write_text("t")
    return root


def test_scan_tree_plain(tmp_path):
    scan = scan_tree(_tree(tmp_path / "r"))
    assert [f[0] for f in scan.files] == ["a/b/f.txt", "top.txt"] and scan.problems == []
    assert scan.files[0][1] == 1


@pytest.mark.parametrize("make, path, kind", [
    (lambda r: (r / "a/b/up").symlink_to("../.."), "a/b/up", "symlink_loop"),
    (lambda r: (r / "a/me").symlink_to("me"), "a/me", "symlink_loop"),
    (lambda r: (r / "again").symlink_to("a/b"), "again", "symlink_duplicate"),
    (lambda r: (r / "dead.png").symlink_to("missing.png"), "dead.png", "broken_symlink"),
    (lambda r: os.mkfifo(r / "pipe"), "pipe", "not_a_file"),
])
def test_scan_tree_reports_what_it_cannot_use(tmp_path, make, path, kind):
    root = _tree(tmp_path / "r")
    make(root)
    scan = scan_tree(root)
    assert [(p["path"], p["kind"]) for p in scan.problems] == [(path, kind)]
    assert [f[0] for f in scan.files] == ["a/b/f.txt", "top.txt"]  # nothing walked twice


def test_scan_tree_follows_a_link_to_a_folder_outside_once(tmp_path):
    root = _tree(tmp_path / "r")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.txt").write_text("x")
    (root / "link").symlink_to(outside)
    (root / "link2").symlink_to(outside)
    scan = scan_tree(root)
    assert "link/x.txt" in [f[0] for f in scan.files]
    assert [(p["path"], p["kind"]) for p in scan.problems] == [("link2", "symlink_duplicate")]


def test_link_or_copy_copies_by_default(tmp_path):
    src = tmp_path / "s.bin"
    src.write_bytes(b"abc")
    assert link_or_copy(src, tmp_path / "c") == "copy"
    assert (tmp_path / "c").stat().st_ino != src.stat().st_ino
    assert link_or_copy(src, tmp_path / "h", "hardlink") == "hardlink"
    assert (tmp_path / "h").stat().st_ino == src.stat().st_ino
    assert link_or_copy(src, tmp_path / "l", "symlink") == "symlink" and (tmp_path / "l").is_symlink()


def test_link_inside_never_links_through_a_symlink(tmp_path):
    src = tmp_path / "s.bin"
    src.write_bytes(b"abc")
    (tmp_path / "out").mkdir()
    os.symlink(src, tmp_path / "out/a")
    assert link_inside(tmp_path / "out/a", tmp_path / "out/b") == "symlink"
    assert os.readlink(tmp_path / "out/b") == str(src)
    (tmp_path / "out/c").write_bytes(b"xyz")
    assert link_inside(tmp_path / "out/c", tmp_path / "out/d") == "hardlink"


def test_manifest_finds_missing_and_changed_files(tmp_path):
    root = _tree(tmp_path / "r")
    man = file_manifest(root, exclude=("top.txt",))
    assert man == {"a/b/f.txt": 1}
    assert check_manifest(root, man) == []
    (root / "a/b/f.txt").write_text("ff")
    assert check_manifest(root, man) == ["a/b/f.txt has 2 bytes instead of 1"]
    (root / "a/b/f.txt").unlink()
    assert check_manifest(root, man) == ["a/b/f.txt is missing"]


def test_exclusive_lock_refuses_a_second_holder_and_cleans_up(tmp_path):
    lock = tmp_path / ".out.lock"
    code = ("import sys, time\nfrom medpipe.utils.fs import exclusive_lock\n"
            f"with exclusive_lock({str(lock)!r}):\n    print('HELD', flush=True)\n    time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "HELD"
        with pytest.raises(LockBusyError) as e:
            with exclusive_lock(lock):
                pass
        assert e.value.pid == proc.pid
    finally:
        proc.kill()
        proc.wait()
    with exclusive_lock(lock):  # a dead holder's file is reused
        assert lock.read_text().strip() == str(os.getpid())
    assert not lock.exists()


def test_atomic_output_dir_and_stale_temps(tmp_path):
    out = tmp_path / "out"
    with atomic_output_dir(out) as tmp:
        (tmp / "a").write_text("1")
        assert not out.exists()
    assert (out / "a").read_text() == "1"
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out) as tmp:
            (tmp / "a").write_text("2")
            raise RuntimeError("boom")
    assert (out / "a").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # a run killed between the two renames: the last complete output comes back
    os.replace(out, tmp_path / ".out.old-1-2")
    (tmp_path / ".out.tmp-1-3").mkdir()
    clean_stale_temps(out)
    assert (out / "a").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
