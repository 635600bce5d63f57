"""ankle_ct_cls beyond the generic smoke table: whole volumes (``--spatial_dims 3``) from training to an
exported, parity-checked model, and inference that reports per-slice and per-volume predictions."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from medpipe.bundle.export import check_parity
from tests.bundles.conftest import RUNTIME, dataset_of, read_json, run_bundle

NAME = "ankle_ct_cls"


@pytest.fixture(scope="module")
def volume_run(net_guard, tiny_dataset, tmp_path_factory):
    """ResNet18 + attention in 3-D on the tiny ankles' stored volumes (8 slices of 32 px)."""
    out = tmp_path_factory.mktemp("ankle3d")
    run_bundle(["medpipe", "train", NAME, "--dataset_dir", str(dataset_of(NAME, tiny_dataset)), "--output_dir",
                str(out), "--max_epochs", "1", "--spatial_dims", "3", "--image_depth", "8", "--image_size", "32",
                "--batch_size", "4", *RUNTIME])
    return out


def test_volume_model_trains_on_one_record_per_volume(volume_run, tiny_dataset):
    settings = read_json(volume_run / "models/model.json")["settings"]
    assert settings["spatial_dims"] == 3 and settings["image_depth"] == 8
    dl = read_json(dataset_of(NAME, tiny_dataset) / "datalist.json")
    vols = {r["volume_image"] for r in dl["training"]}
    stack = np.load(dataset_of(NAME, tiny_dataset) / sorted(vols)[0])["volume"]
    assert stack.dtype == np.uint8 and stack.ndim == 3  # (slices, rows, columns) as stored
    run_bundle(["medpipe", "evaluate", NAME, "--ckpt_path", str(volume_run / "models/model.pt"), *RUNTIME])
    m = read_json(volume_run / "eval/metrics.json")
    val_volumes = len({r["volume_image"] for r in dl["training"] if r["fold"] == settings["fold"]})
    assert m["n"] == val_volumes == m["volume_level"]["n"]  # one prediction per volume: both levels agree
    assert m["volume_level"]["accuracy"] == pytest.approx(m["accuracy"])
    assert any((volume_run / "eval/attention").glob("*.png"))


def test_volume_model_exports_with_parity_and_infers_on_a_nifti(volume_run, tiny_dataset, tmp_path):
    ckpt = str(volume_run / "models/model.pt")
    onnx = tmp_path / "m.onnx"
    run_bundle(["medpipe", "export", NAME, "--ckpt_path", ckpt, "--format", "onnx", "--output", str(onnx)])
    assert check_parity(NAME, ckpt, str(onnx), "onnx") <= 1e-4
    scans = dataset_of(NAME, tiny_dataset).parent / "raw" / "scans"
    volumes = sorted(scans.rglob("*.nii.gz"))
    run_bundle(["medpipe", "infer", NAME, "--ckpt_path", ckpt, "--input", str(scans), "--output_dir",
                str(tmp_path / "inf"), *RUNTIME])
    rows = list(csv.DictReader(open(tmp_path / "inf/predictions.csv")))
    assert len(rows) == len(volumes) and {r["image"] for r in rows} == {str(v) for v in volumes}


def test_slice_model_infers_per_slice_and_per_volume(trained_bundle, tiny_dataset, tmp_path):
    run = trained_bundle(NAME)
    volume = sorted((dataset_of(NAME, tiny_dataset).parent / "raw" / "scans").rglob("*.nii.gz"))[0]
    run_bundle(["medpipe", "infer", NAME, "--ckpt_path", str(run / "models/model.pt"), "--input", str(volume),
                "--output_dir", str(tmp_path / "inf"), *RUNTIME])
    slices = list(csv.DictReader(open(tmp_path / "inf/predictions.csv")))
    (vol,) = list(csv.DictReader(open(tmp_path / "inf/volume_predictions.csv")))
    assert int(vol["n_slices"]) == len(slices) > 1
    names = [k for k in slices[0] if k.startswith("p_")]
    for k in names:  # the volume's probabilities are the mean of its slices'
        assert float(vol[k]) == pytest.approx(np.mean([float(r[k]) for r in slices]), abs=1e-5)
    assert vol["prediction"] == max(names, key=lambda k: float(vol[k]))[2:]


def test_volume_model_refuses_slice_files(volume_run, tiny_dataset):
    images = dataset_of(NAME, tiny_dataset) / "images"
    proc = run_bundle(["medpipe", "infer", NAME, "--ckpt_path", str(volume_run / "models/model.pt"), "--input",
                       str(images), *RUNTIME], check=False)
    assert proc.returncode != 0 and "reads whole volumes" in proc.stdout + proc.stderr
