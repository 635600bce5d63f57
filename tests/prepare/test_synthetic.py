"""The engine records whether ``--src`` is ``medpipe synth`` output (marker at its root or above it)."""

from __future__ import annotations

import json

import pytest

from medpipe.prepare.engine import SYNTH_MARKER, prepare
from tests.prepare.toy import TOY, make_toy


def run(src, out):
    return prepare(TOY, src, out, {"folds": 2}, workers=1, progress=None)


def flags(out):
    dl = json.loads((out / "datalist.json").read_text())
    rep = json.loads((out / "prepare_report.json").read_text())
    return dl["synthetic"], rep["source"]["synthetic"]


@pytest.mark.parametrize("where", ["none", "src", "parent"])
def test_synthetic_flag_in_datalist_and_report(tmp_path, where):
    root = tmp_path / "download"
    src = make_toy(root / "subset" if where == "parent" else root)
    if where != "none":
        (root / SYNTH_MARKER).write_text(json.dumps({"args": {"patients": 6}}))
    out = tmp_path / "out"
    rep = run(src, out)
    synthetic = where != "none"
    assert flags(out) == (synthetic, synthetic) and rep["source"]["synthetic"] is synthetic
    assert rep["accounting"]["adds_up"]
    md = (out / "prepare_report.md").read_text()
    assert ("synthetic data" in md) is synthetic
    if synthetic:
        assert rep["source"]["synthetic_marker"] == str(root / SYNTH_MARKER)
    else:
        assert "synthetic_marker" not in rep["source"]
    again = run(src, out)  # unchanged: up to date, the flag still there
    assert again["up_to_date"] and again["source"]["synthetic"] is synthetic


def test_marker_appearing_or_vanishing_above_src_rebuilds(tmp_path):
    root = tmp_path / "download"
    src = make_toy(root / "subset")
    out = tmp_path / "out"
    run(src, out)
    assert flags(out) == (False, False)
    (root / SYNTH_MARKER).write_text("{}")  # outside --src: not in its file list, still in the fingerprint
    rep = run(src, out)
    assert not rep.get("up_to_date") and flags(out) == (True, True)
    (root / SYNTH_MARKER).unlink()
    assert not run(src, out).get("up_to_date") and flags(out) == (False, False)
