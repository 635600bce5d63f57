"""The nnU-Net v2 raw export: nnU-Net's own integrity check accepts it, and its splits are our patient folds.

A tiny synthetic PHE-SICH download (7 patients, 64 px, a held-out test patient) is prepared once per
module; nothing is trained. The checks that need nnU-Net skip with a reason when ``nnunetv2`` (the
``[nnunet]`` extra) is not installed.
"""

from __future__ import annotations

import csv
import json
import multiprocessing.pool
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medpipe.errors import DataError, UserError
from medpipe.prepare.nnunet import CASES_CSV, MARKER, case_id, export_nnunet, read_binary_mask
from tests.conftest import tree_digest

NNUNET_SKIP = "nnunetv2 is not installed (optional extra: pip install -e '.[nnunet]')"


def _prepare(root: Path, seed: int = 12345) -> Path:
    from data_prep import get_spec
    from medpipe.prepare.engine import prepare

    spec = get_spec("phe-sich")
    raw = root / "raw"
    if not raw.exists():
        spec.load_synthesizer()(raw, progress=None, patients=7, size=64, seed=1, slices=(6, 8), subsets=("png",))
    out = root / f"prepared-{seed}"
    prepare(spec, raw, out, {"folds": 3, "test_fraction": 0.15, "seed": seed}, workers=1, progress=None)
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return _prepare(tmp_path_factory.mktemp("nnunet-src"))


@pytest.fixture(scope="module")
def exported(prepared, tmp_path_factory):
    """``(summary, raw dataset folder, preprocessed root, digest of the prepared dataset before the export)``."""
    root = tmp_path_factory.mktemp("nnunet")
    before = tree_digest(prepared)
    rep = export_nnunet(prepared, root / "raw", 501, preprocessed_dir=root / "pre")
    return rep, Path(rep["raw"]), root / "pre", before


def _datalist(prepared: Path) -> dict:
    return json.loads((prepared / "datalist.json").read_text())


def _in_process_pool(monkeypatch, module):
    """Run nnU-Net's checks in threads: a spawned worker re-imports torch, seconds per start on 2 cores."""

    class _Ctx:
        Pool = multiprocessing.pool.ThreadPool

    monkeypatch.setattr(module.multiprocessing, "get_context", lambda *_a, **_k: _Ctx)


def test_nnunet_integrity_check_accepts_the_export(exported, monkeypatch):
    vdi = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity", reason=NNUNET_SKIP)
    _, raw, _, _ = exported
    _in_process_pool(monkeypatch, vdi)
    vdi.verify_dataset_integrity(str(raw), num_processes=1)  # raises on any problem


def test_nnunet_label_check_rejects_unconverted_masks(exported, tmp_path):
    """The check above can fail: nnU-Net refuses a label file with the source's 0/255 values."""
    pytest.importorskip("nnunetv2", reason=NNUNET_SKIP)
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_labels
    from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO

    _, raw, _, _ = exported
    good = next(p for p in sorted((raw / "labelsTr").glob("*.png")) if np.asarray(Image.open(p)).any())
    bad = tmp_path / "bad.png"
    Image.fromarray((np.asarray(Image.open(good)) * 255).astype(np.uint8)).save(bad)
    assert verify_labels(str(good), NaturalImage2DIO, [0, 1])
    assert not verify_labels(str(bad), NaturalImage2DIO, [0, 1])


def test_layout_dataset_json_and_files(exported, prepared):
    rep, raw, _, before = exported
    dl = _datalist(prepared)
    train, test = dl["training"], dl["test"]
    assert test, "the fixture should hold a test split"
    dj = json.loads((raw / "dataset.json").read_text())
    assert dj["channel_names"] == {"0": "CT"} and dj["labels"] == {"background": 0, "phe": 1}
    assert dj["file_ending"] == ".png" and dj["numTraining"] == len(train) == rep["num_training"]
    assert raw.name == "Dataset501_PHESICH" and "dataset" not in dj  # that key means an explicit file list to nnU-Net
    images = sorted(p.name for p in (raw / "imagesTr").iterdir())
    assert images == sorted(f"{case_id(r)}_0000.png" for r in train)
    assert sorted(p.name for p in (raw / "labelsTr").iterdir()) == sorted(f"{case_id(r)}.png" for r in train)
    assert sorted(p.name for p in (raw / "imagesTs").iterdir()) == sorted(f"{case_id(r)}_0000.png" for r in test)
    positives = 0
    for r in train + test:
        cid = case_id(r)
        img = Image.open(raw / ("imagesTr" if "fold" in r else "imagesTs") / f"{cid}_0000.png")
        assert img.mode == "L" and np.array_equal(np.asarray(img), np.asarray(Image.open(prepared / r["image"])))
        lbl = np.asarray(Image.open(raw / ("labelsTr" if "fold" in r else "labelsTs") / f"{cid}.png"))
        assert lbl.dtype == np.uint8 and set(np.unique(lbl)) <= {0, 1}
        assert np.array_equal(lbl, (np.asarray(Image.open(prepared / r["mask"])) > 127).astype(np.uint8))
        positives += int(lbl.any())
    assert positives > 0
    assert tree_digest(prepared) == before  # the prepared dataset is only read


def test_splits_are_our_patient_folds(exported, prepared):
    rep, raw, pre, _ = exported
    dl = _datalist(prepared)
    splits = json.loads((pre / raw.name / "splits_final.json").read_text())
    assert (raw / "splits_final.json").read_text() == (pre / raw.name / "splits_final.json").read_text()
    assert rep["splits_file"] == str(pre / raw.name / "splits_final.json")
    rows = {r["case_id"]: r for r in csv.DictReader(open(raw / CASES_CSV))}
    k = dl["num_folds"]
    assert len(splits) == k == rep["folds"]
    test_patients = {r["patient"] for r in dl["test"]}
    for fold, s in enumerate(splits):
        val_p = {rows[c]["patient"] for c in s["val"]}
        train_p = {rows[c]["patient"] for c in s["train"]}
        assert val_p == {r["patient"] for r in dl["training"] if r["fold"] == fold}
        assert train_p == {r["patient"] for r in dl["training"] if r["fold"] != fold}
        assert not val_p & train_p and not (val_p | train_p) & test_patients
        assert sorted(s["val"]) == sorted(case_id(r) for r in dl["training"] if r["fold"] == fold)
        assert sorted(s["train"] + s["val"]) == sorted(case_id(r) for r in dl["training"])


def test_case_table_traces_every_case(exported, prepared):
    _, raw, _, _ = exported
    dl = _datalist(prepared)
    rows = list(csv.DictReader(open(raw / CASES_CSV)))
    by_image = {r["image"]: r for r in rows}
    assert len(rows) == len(by_image) == len(dl["training"]) + len(dl["test"])
    for r in dl["training"] + dl["test"]:
        row = by_image[r["image"]]
        assert row["case_id"] == case_id(r) and row["patient"] == r["patient"] and int(row["slice"]) == r["slice"]
        assert row["split"] == ("train" if "fold" in r else "test") and row["mask"] == r["mask"]
        assert row["fold"] == str(r.get("fold", ""))


def test_rerun_is_a_no_op_and_conflicts_are_refused(prepared, tmp_path):
    root = tmp_path
    rep = export_nnunet(prepared, root / "raw", 502, preprocessed_dir=root / "pre")
    raw = Path(rep["raw"])
    digest = tree_digest(raw)
    again = export_nnunet(prepared, root / "raw", 502, preprocessed_dir=root / "pre")
    assert again["up_to_date"] and tree_digest(raw) == digest

    with pytest.raises(UserError, match="already taken by Dataset502_PHESICH"):
        export_nnunet(prepared, root / "raw", 502, name="OTHER")
    other = _prepare(prepared.parent, seed=7)  # the same slices, other folds
    with pytest.raises(UserError, match="--overwrite"):
        export_nnunet(other, root / "raw", 502, preprocessed_dir=root / "pre")
    assert tree_digest(raw) == digest  # refused: untouched
    rep2 = export_nnunet(other, root / "raw", 502, preprocessed_dir=root / "pre", overwrite=True)
    new = json.loads((root / "pre" / raw.name / "splits_final.json").read_text())
    dl = _datalist(other)
    assert sorted(new[0]["val"]) == sorted(case_id(r) for r in dl["training"] if r["fold"] == 0)
    assert not rep2["up_to_date"] and json.loads((raw / MARKER).read_text())["dataset_dir"] == str(other)
    assert not list(root.joinpath("raw").glob(".Dataset502*"))  # no temp folder left

    foreign = root / "raw" / "Dataset503_PHESICH"
    foreign.mkdir()
    with pytest.raises(UserError, match="not written by"):
        export_nnunet(prepared, root / "raw", 503, overwrite=True)
    with pytest.raises(UserError, match="outside the prepared dataset"):
        export_nnunet(prepared, prepared / "nnunet", 504)
    with pytest.raises(UserError, match="1..999"):
        export_nnunet(prepared, root / "raw", 1000)


def test_a_dataset_without_masks_is_refused(tmp_path):
    d = tmp_path / "cls"
    d.mkdir()
    (d / "datalist.json").write_text(json.dumps({"dataset": "x", "tasks": {"label": {"kind": "binary",
                                                 "class_names": ["a", "b"]}}, "training": []}))
    with pytest.raises(DataError, match="no 'mask' segmentation labels"):
        export_nnunet(d, tmp_path / "raw")


def test_mask_rule_is_the_evaluation_rule(tmp_path):
    """The export's 0/1 labels use exactly the threshold medpipe's evaluation reads targets with."""
    from medpipe.transforms.io import load_gray

    p = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 100, 127], [128, 200, 255]], np.uint8)).save(p)
    assert np.array_equal(read_binary_mask(p), load_gray(p, binarize=True)[0].astype(np.uint8))
    assert read_binary_mask(p).tolist() == [[0, 0, 0], [1, 1, 1]]


def test_cli_export_nnunet(prepared, tmp_path, capsys, monkeypatch):
    from medpipe.cli import main

    monkeypatch.delenv("nnUNet_raw", raising=False)
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    monkeypatch.delenv("nnUNet_results", raising=False)
    assert main(["export-nnunet", "--dataset_dir", str(prepared)]) == 2
    assert "$nnUNet_raw is not set" in capsys.readouterr().err
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    assert main(["export-nnunet", "--dataset_dir", str(prepared), "--out", str(tmp_path / "raw"), "--id", "7",
                 "--name", "Tiny"]) == 0
    out = capsys.readouterr().out
    assert "Dataset007_Tiny:" in out and "3 folds" in out
    assert (tmp_path / "pre" / "Dataset007_Tiny" / "splits_final.json").is_file()
