"""medpipe synth cxr14: the real layout and quirks, visible findings under their boxes, synth -> prepare."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from data_prep import cxr14, get_spec
from data_prep.cxr14 import layout as L
from data_prep.cxr14 import tables as T
from data_prep.cxr14.synth import _draw, _make_patient, synthesize
from medpipe.cli import main as cli_main
from medpipe.prepare.synthetic import MARKER

ARGS = dict(patients=60, size=96, seed=0)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("cxr") / "nih"
    t0 = time.perf_counter()
    summary = synthesize(root, chexnet_lists=True, **ARGS)
    return root, summary, time.perf_counter() - t0


@pytest.fixture(scope="module")
def prepared(synth, tmp_path_factory):
    root, _, _ = synth
    out = tmp_path_factory.mktemp("prep") / "official"
    rep = cxr14.prepare(root, out, {"split": "official", "folds": 3}, workers=1)
    return out, rep


def test_registry_and_help():
    spec = get_spec("cxr14")
    assert spec.synthesizer == "data_prep.cxr14.synth:synthesize"
    assert [o.default for o in spec.synth_options[:3]] == [40, 128, 0]


def test_fast_and_in_the_real_layout(synth):
    root, s, took = synth
    assert took < 10  # a few seconds on 2 cores (checked loosely: shared CI machines vary)
    assert (root / MARKER).is_file() and s["images"] == len(list(root.glob("images_*/images/*.png")))
    assert (root / "images_001/images").is_dir() and (root / "images_002/images").is_dir()
    head = (root / "Data_Entry_2017.csv").read_text().splitlines()
    assert head[0] == L.DATA_ENTRY_2017_HEADER and all(line.endswith(",") for line in head)
    assert any(",0" in line and "Y," in line for line in head[1:])  # some ages like 058Y
    bbox = (root / L.BBOX_FILE).read_text().splitlines()
    assert bbox[0] == "Image Index,Finding Label,Bbox [x,y,w,h],,," and any(",Infiltrate," in b for b in bbox)
    rgba = [p for p in root.glob("images_*/images/*.png") if Image.open(p).mode == "RGBA"]
    assert len(rgba) == s["rgba"] >= 1


def test_labels_and_lists_are_consistent(synth):
    root, s, _ = synth
    table = T.read_label_file(root / "Data_Entry_2017.csv")
    assert len(table.rows) == s["images"] and not table.info.get("unknown_findings")
    assert table.info["age_formats"]["suffixed"] > 0
    tv = T.read_name_list(root / "train_val_list.txt")
    te = T.read_name_list(root / "test_list.txt")
    assert sorted(tv + te) == sorted(table.rows) and not {n[:8] for n in tv} & {n[:8] for n in te}
    assert sorted({n[:8] for n in te}) == s["test_patients"]
    parts = {p: T.read_chexnet_list(root / "labels" / f"{p}_list.txt") for p in ("train", "val", "test")}
    assert not (root / "labels/val_list.txt").read_text().endswith("\n")
    for lst in parts.values():
        for name, labs in lst.items():
            assert labs == T.labels_text(L.findings_vector(table.rows[name].findings))
    boxes, info = T.read_bbox_file(root / L.BBOX_FILE)
    assert info["boxes"] == s["boxes"] and set(boxes) <= set(table.rows)
    for name, bl in boxes.items():
        for b in bl:
            assert b.finding in table.rows[name].findings and 0 <= b.x and b.x + b.w <= 1024


def test_every_finding_has_positives(synth):
    _, s, _ = synth
    assert min(s["patients_with"].values()) >= 4, s["patients_with"]
    assert 0 < s["no_finding"] < s["images"]


def test_deterministic(synth, tmp_path):
    root, s, _ = synth
    again = synthesize(tmp_path / "again", chexnet_lists=True, **ARGS)
    assert again == {**s, "out": str(tmp_path / "again")}
    for rel in ("Data_Entry_2017.csv", L.BBOX_FILE, "images_001/images/00000001_000.png", "labels/test_list.txt"):
        assert (root / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes()
    assert synthesize(root, chexnet_lists=True, **ARGS)["images"] == s["images"]  # same args: nothing to do
    with pytest.raises(FileExistsError, match="different arguments"):
        synthesize(root, patients=61, size=96)


def test_v2020_variant(tmp_path):
    s = synthesize(tmp_path / "v", patients=5, size=64, variant="v2020")
    text = (tmp_path / "v" / L.LABEL_FILES[0]).read_text().splitlines()
    assert s["label_file"] == L.LABEL_FILES[0] and not text[0].endswith(",") and "Y," not in "".join(text)


@pytest.mark.parametrize("finding", ["Cardiomegaly", "Mass", "Nodule", "Effusion", "Pneumothorax", "Consolidation"])
def test_finding_is_visible_inside_its_box(finding):
    """Drawn with and without the finding, the same patient differs inside the box, barely outside."""
    size = 128
    p = _make_patient(3, 0, [finding])
    with_f, boxes = _draw(p, {finding}, size, np.random.default_rng(1))
    without, none = _draw(_make_patient(3, 0, []), set(), size, np.random.default_rng(1))
    assert finding in boxes and finding not in none
    x0, y0, x1, y1 = boxes[finding][0]
    diff = np.abs(with_f.astype(float) - without.astype(float))
    inside = diff[y0:y1, x0:x1].mean()
    mask = np.ones_like(diff, bool)
    mask[max(0, y0 - 4):y1 + 4, max(0, x0 - 4):x1 + 4] = False
    assert inside > 12 and inside > 6 * diff[mask].mean(), (inside, diff[mask].mean())


def test_cardiomegaly_widens_the_heart():
    big = _make_patient(1, 0, ["Cardiomegaly"]).anatomy["ctr"]
    normal = _make_patient(1, 0, []).anatomy["ctr"]
    assert big >= 0.56 and normal <= 0.48


def test_round_trip_official_split(synth, prepared):
    root, s, _ = synth
    out, rep = prepared
    assert rep["records"] == s["images"] and rep["patients"] == 60 and rep["source"]["synthetic"]
    assert rep["test_patients"] == s["test_patients"]
    assert rep["nih_boxes"]["placed"] == s["boxes"] and rep["nih_boxes"]["adds_up"]
    assert rep["gray_conversion"]["by_source_mode"] == {"RGBA": s["rgba"]}
    assert rep["accounting"]["adds_up"] and rep["skipped_counts"] == {"unused_list": 3}
    dl = json.loads((out / "datalist.json").read_text())
    assert dl["synthetic"] is True and dl["split"] == "official"
    r = next(r for r in dl["training"] + dl["test"] if r["nih_boxes"])
    for b in r["nih_boxes"]:
        x0, y0, x1, y1 = b["box"]
        assert 0 <= x0 < x1 <= r["width"] and 0 <= y0 < y1 <= r["height"]
    assert "## Train:test bias" in (out / "prepare_report.md").read_text()


def test_round_trip_chexnet_split_and_cache(synth, tmp_path):
    root, s, _ = synth
    rep = cxr14.prepare(root, tmp_path / "c", {"split": "chexnet", "folds": 3, "cache_size": 64}, workers=2)
    assert rep["records"] == s["images"] and rep["split_lists"]["label_disagreements"] == 0
    assert rep["cache"]["stored_sizes"] == {"64x64": s["images"]}
    assert {s_["path"] for s_ in rep["skipped"]} == {"train_val_list.txt", "test_list.txt"}


def test_cli_synth_then_prepare(tmp_path, capsys):
    assert cli_main(["synth", "cxr14", "--out", str(tmp_path / "raw"), "--patients", "8", "--size", "64"]) == 0
    assert "synthetic cxr14: 8 patients" in capsys.readouterr().out
    assert cli_main(["prepare", "cxr14", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "p"),
                     "--folds", "2", "--quiet"]) == 0
    assert "records:" in capsys.readouterr().out
