"""The prepare engine on a toy dataset: output folder safety, locking, symlinks, damage, schema, splits."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from medpipe.errors import DataError, UserError
from medpipe.prepare.engine import MARKER, prepare
from medpipe.prepare.records import RecordError
from medpipe.prepare.spec import OptionError
from medpipe.utils.fs import exclusive_lock
from tests.conftest import tree_digest
from tests.prepare.toy import TOY, TOY_ML, make_toy


def run(src, out, spec=TOY, **opts):
    return prepare(spec, src, out, opts, workers=1, progress=None)


def load(out):
    return json.loads((out / "datalist.json").read_text()), json.loads((out / "prepare_report.json").read_text())


@pytest.fixture
def toy(tmp_path):
    return make_toy(tmp_path / "src")


def test_binary_end_to_end(toy, tmp_path):
    before = tree_digest(toy)
    out = tmp_path / "out"
    rep = run(toy, out, folds=3)
    dl, rj = load(out)
    assert dl["dataset"] == "toy" and dl["tasks"] == {"label": {"kind": "binary", "class_names": ["neg", "pos"]}}
    assert dl["input"] == {"modality": "XR", "channels": 1, "window": None, "orientation": None,
                           "slice_pattern": None, "patient_format": "{}"}
    assert dl["labels"] == {"0": "neg", "1": "pos"} and dl["num_folds"] == 3 and dl["numTraining"] == 18
    assert {r["fold"] for r in dl["training"]} == {0, 1, 2}
    assert rep["accounting"] == {"files_seen": 19, "files_in_records": 19, "files_skipped": 0, "adds_up": True,
                                 "ignored_medpipe_files": 0}
    assert json.loads((out / MARKER).read_text())["dataset"] == "toy"
    assert rj["outputs"]["files"] == len(rj["outputs"]["manifest"]) and "datalist.json" in rj["outputs"]["manifest"]
    assert tree_digest(toy) == before
    # copied by default: the output is independent of the source
    img = out / dl["training"][0]["image"]
    assert img.stat().st_ino != (toy / "p00/0.png").stat().st_ino and rep["link_methods"] == {"copy": 18}


def test_multilabel_split_and_schema(tmp_path):
    src = make_toy(tmp_path / "src", patients=9, multilabel=True)
    rep = run(src, tmp_path / "out", spec=TOY_ML, folds=3, test_fraction=0.2)
    dl, _ = load(tmp_path / "out")
    assert dl["tasks"]["labels"]["kind"] == "multilabel"
    fold_of = {}
    for r in dl["training"]:
        assert len(r["labels"]) == 3
        assert fold_of.setdefault(r["patient"], r["fold"]) == r["fold"]
    assert {r["patient"] for r in dl["test"]}.isdisjoint(fold_of)
    assert rep["per_class"]["labels"] == {"a": 13, "b": 9, "c": 9}
    again = run(src, tmp_path / "again", spec=TOY_ML, folds=3, test_fraction=0.2)
    assert again["test_patients"] == rep["test_patients"]  # deterministic per seed


def test_record_schema_is_checked(toy, tmp_path):
    with pytest.raises(RecordError, match=r"record 0 \(image 'images/p00_0.png'.*label = 'yes': expected 0 or 1"):
        run(toy, tmp_path / "out", bad_label="yes")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no temp folder, no lock file left


# ------------------------------------------------------------------------------------- options


@pytest.mark.parametrize("opts, match", [
    ({"folds": 0}, r"--folds 0: must be >= 2"),
    ({"folds": 1}, r"--folds 1: must be >= 2"),
    ({"test_fraction": 1.5}, r"--test-fraction 1.5: must be >= 0 and < 1"),
    ({"test_fraction": -0.1}, r"--test-fraction -0.1: must be"),
    ({"link": "hard"}, r"--link hard: expected one of copy, hardlink, symlink, auto; did you mean hardlink"),
    ({"fold": 3}, r"unknown option 'fold'; did you mean 'folds'"),
])
def test_bad_options_named(toy, tmp_path, opts, match):
    with pytest.raises(OptionError, match=match):
        run(toy, tmp_path / "out", **opts)
    assert not (tmp_path / "out").exists()


def test_too_few_patients_for_the_folds(tmp_path):
    src = make_toy(tmp_path / "src", patients=3)
    with pytest.raises(UserError, match=r"--folds 5: 3 patients found .* use --folds 3 or fewer"):
        run(src, tmp_path / "out", folds=5)


# ------------------------------------------------------------------------------------- the output folder


@pytest.mark.parametrize("case", ["foreign", "file", "cwd"])
def test_refuses_an_out_it_did_not_write(toy, tmp_path, monkeypatch, case):
    out = tmp_path / "mine"
    if case == "file":
        out.write_text("my notes")
        match = "is a file"
    else:
        out.mkdir()
        (out / "notes.txt").write_text("my notes")
        match = "did not write \\(notes.txt\\)"
    before = tree_digest(tmp_path)
    if case == "cwd":
        monkeypatch.chdir(out)
        out = Path(".")
    with pytest.raises(UserError, match=match) as e:
        run(toy, out, folds=2)
    assert "Traceback" not in str(e.value)
    assert tree_digest(tmp_path) == before  # nothing deleted, renamed or added


def test_fills_an_empty_folder_and_replaces_its_own(toy, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run(toy, out, folds=2)
    (out / "datalist.json").stat()
    rep = run(toy, out, folds=3)  # other options: its own earlier output is replaced
    assert not rep.get("up_to_date") and load(out)[0]["num_folds"] == 3
    # a folder from before markers existed (report + datalist) is recognised as prepare's
    (out / MARKER).unlink()
    assert run(toy, out, folds=2)["records"] == 18


def test_files_added_to_a_prepared_folder_are_never_deleted(toy, tmp_path):
    out = tmp_path / "out"
    run(toy, out, folds=2)
    (out / "images" / "my_notes.txt").write_text("mine")
    assert run(toy, out, folds=2)["up_to_date"]  # nothing to replace: fine
    with pytest.raises(UserError, match=r"files were added to this prepared folder .*\(images/my_notes.txt\)"):
        run(toy, out, folds=3)
    assert (out / "images" / "my_notes.txt").read_text() == "mine" and load(out)[0]["num_folds"] == 2


def test_second_prepare_into_the_same_folder_is_refused(toy, tmp_path):
    out = tmp_path / "out"
    with exclusive_lock(tmp_path / ".out.lock"):
        with pytest.raises(UserError, match=rf"another `medpipe prepare` \(process {os.getpid()}\) is writing"):
            run(toy, out, folds=2)
    assert not out.exists()
    run(toy, out, folds=2)  # free again
    assert not (tmp_path / ".out.lock").exists()


def test_unwritable_out_is_one_paragraph(toy, tmp_path, monkeypatch):
    parent = tmp_path / "ro"
    parent.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, *a, **k: False if Path(p) == parent else real(p, m, *a, **k))
    with pytest.raises(UserError, match=r"cannot write in .*ro \(permission denied\)"):
        run(toy, parent / "out", folds=2)
    assert list(parent.iterdir()) == []


def test_write_failure_inside_out_is_one_paragraph_and_leaves_no_temp(toy, tmp_path, monkeypatch):
    from tests.prepare import toy as toy_module

    def denied(self, out):
        raise PermissionError(errno.EACCES, "Permission denied", str(out / "images"))

    monkeypatch.setattr(toy_module.ToyConverter, "setup", denied)
    with pytest.raises(UserError, match=r"cannot write .*images \(Permission denied\)"):
        run(toy, tmp_path / "out", folds=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unwritable_parent_for_real(toy, tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        with pytest.raises(UserError, match="permission denied"):
            run(toy, parent / "out", folds=2)
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)


# ------------------------------------------------------------------------------------- source quirks


def test_symlink_loop_dangling_link_and_fifo_are_skipped_not_fatal(toy, tmp_path):
    (toy / "p00" / "loop").symlink_to("..")
    (toy / "p01" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (toy / "p02" / "self").symlink_to("self")
    os.mkfifo(toy / "p03" / "pipe")
    (toy / ".medpipe-synth.json").write_text("{}")
    rep = run(toy, tmp_path / "out", folds=2)
    kinds = {s["path"]: s["kind"] for s in rep["skipped"]}
    assert kinds == {"p00/loop": "symlink_loop", "p01/gone.png": "broken_symlink", "p02/self": "symlink_loop",
                     "p03/pipe": "not_a_file"}
    assert "target does not exist" in next(s["reason"] for s in rep["skipped"] if s["path"] == "p01/gone.png")
    assert rep["records"] == 18 and rep["accounting"]["adds_up"] and rep["accounting"]["files_seen"] == 23
    assert rep["ignored"] == [{"path": ".medpipe-synth.json", "reason": "medpipe synth marker, not a dataset file"}]


def test_symlinked_folder_is_followed_once(toy, tmp_path):
    extra = make_toy(tmp_path / "elsewhere", patients=1)
    (toy / "p99").symlink_to(extra / "p00", target_is_directory=True)
    (toy / "p98").symlink_to(toy / "p01", target_is_directory=True)  # a second name of a folder of the tree
    rep = run(toy, tmp_path / "out", folds=2)
    assert {s["path"]: s["kind"] for s in rep["skipped"]} == {
        "p98": "symlink_duplicate", "p99/0.png": "no_label", "p99/1.png": "no_label", "p99/2.png": "no_label"}
    assert rep["accounting"]["adds_up"]


# ------------------------------------------------------------------------------------- re-runs


def test_damaged_output_is_rebuilt_then_up_to_date(toy, tmp_path):
    out = tmp_path / "out"
    run(toy, out, folds=2)
    assert run(toy, out, folds=2)["up_to_date"]
    first = load(out)[0]["training"][0]["image"]
    (out / first).unlink()
    rep = run(toy, out, folds=2)
    assert not rep.get("up_to_date") and f"{first} is missing" in rep["rebuilt_because"]
    assert (out / first).is_file()
    assert run(toy, out, folds=2)["up_to_date"]
    (out / "datalist.json").write_text((out / "datalist.json").read_text() + " ")  # size changed
    assert "datalist.json has" in run(toy, out, folds=2)["rebuilt_because"]


def test_strict_refuses_skipped_files(toy, tmp_path):
    (toy / "p00" / "stray.png").write_bytes(b"x")
    with pytest.raises(DataError, match="--strict: 0 anomalies .* 1 skipped entries; first: p00/stray.png"):
        run(toy, tmp_path / "out", folds=2, strict=True)
    assert not (tmp_path / "out").exists()


def test_corrupt_pixel_data_is_skipped_with_the_file_named(toy, tmp_path):
    from tests.conftest import corrupt_png_pixels

    corrupt_png_pixels(toy / "p00" / "1.png")
    rep = run(toy, tmp_path / "out", folds=2)
    entry = next(s for s in rep["skipped"] if s["path"] == "p00/1.png")
    assert "p00/1.png" in entry["reason"] and "cannot be decoded" in entry["reason"]
    assert rep["records"] == 17 and rep["accounting"]["adds_up"]


def test_cli_paragraphs(toy, tmp_path, capsys, monkeypatch):
    """A dataset in the registry gets its own sub-command; user errors exit 2 without a traceback."""
    import data_prep
    from medpipe.cli import main

    monkeypatch.setitem(data_prep.DATASETS, "toy", "tests.prepare.toy:TOY")
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    assert main(["prepare", "toy", "--src", str(toy), "--out", str(foreign), "--folds", "2"]) == 2
    err = capsys.readouterr().err
    assert "did not write (thesis.tex)" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["prepare", "toy", "--src", str(toy), "--out", str(tmp_path / "o"), "--folds", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "records: 18 from 6 patients" in out and "files in --src: 19 = 19 used + 0 skipped" in out
    with pytest.raises(SystemExit) as e:
        main(["prepare", "toy", "--src", str(toy), "--out", str(tmp_path / "o"), "--folds", "0"])
    assert e.value.code == 2 and "argument --folds: 0: must be >= 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["prepare", "toi", "--src", str(toy), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "did you mean 'toy'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- a converter's own split


@pytest.mark.parametrize("case", ["by_patient", "leak", "bad_part"])
def test_a_converter_may_assign_the_parts_and_the_engine_audits_them(toy, tmp_path, monkeypatch, case):
    """``Converter.assign_parts``: datasets that ship their own split (e.g. official lists) give each record's part."""
    from tests.prepare.toy import ToyConverter

    def parts(self, records, folds, seed, test_fraction):
        out = []
        for i, r in enumerate(records):
            n = int(r["patient"][1:])
            if case == "bad_part" and i == 0:
                out.append(folds)
            elif n == 5 or (case == "leak" and n == 0 and r["image"].endswith("_0.png")):
                out.append("test")
            else:
                out.append(n % folds)
        return out

    monkeypatch.setattr(ToyConverter, "assign_parts", parts)
    if case == "leak":
        with pytest.raises(DataError, match=r"patient 'p00' is in training \(folds \[0\]\) and in test"):
            run(toy, tmp_path / "out", folds=2)
        assert not (tmp_path / "out").exists()
        return
    if case == "bad_part":
        with pytest.raises(RuntimeError, match=r"was given part 2; expected a fold in 0..1 or 'test'"):
            run(toy, tmp_path / "out", folds=2)
        return
    rep = run(toy, tmp_path / "out", folds=2)
    dl, _ = load(tmp_path / "out")
    assert {r["patient"]: r["fold"] for r in dl["training"]} == {"p00": 0, "p01": 1, "p02": 0, "p03": 1, "p04": 0}
    assert {r["patient"] for r in dl["test"]} == {"p05"} and rep["test_patients"] == ["p05"]
    assert dl["patients"]["p05"]["fold"] == "test" and dl["patients"]["p01"]["fold"] == 1


def test_a_converter_may_define_what_counts_as_positive(toy, tmp_path, monkeypatch):
    from tests.prepare.toy import ToyConverter

    monkeypatch.setattr(ToyConverter, "positive", lambda self, r, tasks: 1)
    rep = run(toy, tmp_path / "out", folds=2)
    assert rep["positives"] == rep["records"] == 18 and rep["positive_patients"] == 6
