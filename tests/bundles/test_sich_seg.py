"""Model-zoo-style smoke test of bundles/sich_seg: train -> evaluate -> infer (PNG and NIfTI) -> export, DDP."""

from __future__ import annotations

import csv
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.bundles.conftest import bundle_env, read_json, run_bundle, train_tiny
from tests.conftest import REPO

B = "bundles/sich_seg/configs"
FAST = ["--image_size", "64", "--batch_size", "4", "--num_workers", "0", "--device", "cpu"]
SEG_KEYS = {"dice", "iou", "sensitivity", "specificity", "dice_per_case_mean", "pixel_confusion"}


@pytest.fixture(scope="module")
def trained(tiny_phe, tmp_path_factory):
    return train_tiny(B, tiny_phe, tmp_path_factory.mktemp("sich_seg_run"), FAST)


def test_train_outputs(trained):
    state = torch.load(trained / "models/model.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("input_block") for k in state)  # DynUNet state_dict
    stats = read_json(trained / "models/dataset_stats.json")
    assert stats["std"] > 0 and stats["p_low"] < stats["p_high"]  # computed from the training folds
    hist = read_json(trained / "history.json")
    assert hist["epoch"] == [1, 2] and "val_dice" in hist and hist["lr"][1] < hist["lr"][0]  # poly schedule


def test_evaluate_writes_metrics_plots_and_seg_to_cls(trained, tiny_phe):
    cls_csv = trained / "fake_cls_predictions.csv"
    dl = read_json(tiny_phe / "datalist.json")
    with open(cls_csv, "w", newline="") as f:  # a slice classifier's output, to exercise the side-by-side table
        w = csv.writer(f)
        w.writerow(["patient", "slice", "image", "probability", "prediction", "label"])
        for r in dl["training"]:
            w.writerow([r["patient"], r["slice"], r["image"], 0.9 if r["label"] else 0.1, r["label"], r["label"]])
    run_bundle(["monai.bundle", "run", "--config_file", f"['{B}/train.json','{B}/evaluate.json']", "--dataset_dir",
                str(tiny_phe), "--output_dir", str(trained), "--cls_predictions", str(cls_csv), *FAST])
    m = read_json(trained / "eval/metrics.json")
    assert SEG_KEYS <= set(m) and set(m["pixel_confusion"]) == {"tp", "fp", "fn", "tn"}
    pc = m["pixel_confusion"]
    assert m["dice"] == pytest.approx(2 * pc["tp"] / max(1, 2 * pc["tp"] + pc["fp"] + pc["fn"])) or \
        (2 * pc["tp"] + pc["fp"] + pc["fn"] == 0)
    rows = list(csv.DictReader(open(trained / "predictions.csv")))
    assert len(rows) == m["n_cases"] and {"patient", "slice", "pred_area", "target_area", "dice", "label"} <= set(rows[0])
    for name in ("pixel_confusion.png", "seg_to_cls_sweep.png", "training_curves.png"):
        assert (trained / "eval" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    s2c = read_json(trained / "eval/seg_to_cls_metrics.json")
    assert {"area_threshold", "accuracy", "f1", "confusion_matrix"} <= set(s2c)
    table = (trained / "eval/slice_classifiers.md").read_text()
    assert "sich_cls" in table and "sich_seg" in table


def test_infer_png_folder(trained, tiny_phe, tmp_path):
    run_bundle(["monai.bundle", "run", "--config_file", f"{B}/inference.json", "--ckpt_path",
                str(trained / "models/model.pt"), "--input", str(tiny_phe / "images"), "--output_dir", str(tmp_path),
                *FAST])
    masks = sorted((tmp_path / "masks").glob("*.png"))
    assert len(masks) == len(list((tiny_phe / "images").glob("*.png")))
    from PIL import Image

    m = np.asarray(Image.open(masks[0]))
    assert m.shape == (64, 64) and set(np.unique(m)) <= {0, 255}  # native size, 0/255


def test_infer_nifti_keeps_geometry(trained, tiny_phe, tmp_path):
    vol = sorted((tiny_phe.parent / "raw/SubdatasetA_NIFIT/NIFIT/set").glob("*.nii.gz"))[0]
    run_bundle(["monai.bundle", "run", "--config_file", f"{B}/inference.json", "--ckpt_path",
                str(trained / "models/model.pt"), "--input", str(vol), "--output_dir", str(tmp_path), *FAST])
    out = nib.load(tmp_path / "masks" / vol.name.replace(".nii.gz", "_phe.nii.gz"))
    ref = nib.load(vol)
    assert out.shape == ref.shape and np.allclose(out.affine, ref.affine)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_matches_eager(trained, tmp_path, fmt):
    out = tmp_path / ("model.ts" if fmt == "torchscript" else "model.onnx")
    proc = run_bundle(["medpipe", "export", "sich_seg", "--ckpt_path", str(trained / "models/model.pt"),
                       "--format", fmt, "--output", str(out), "--image_size", "64"])
    assert "OK, tolerance 0.0001" in proc.stdout and out.is_file()


def test_multi_gpu_config_with_torchrun_on_cpu(tiny_phe, tmp_path):
    env = bundle_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
         "run", "--config_file", f"['{B}/train.json','{B}/multi_gpu_train.json']", "--dataset_dir", str(tiny_phe),
         "--output_dir", str(tmp_path), "--max_epochs", "1", *FAST],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "models/model.pt").is_file() and read_json(tmp_path / "history.json")["epoch"] == [1]


def test_metadata_valid_offline():
    proc = run_bundle(["monai.bundle", "verify_metadata", "--meta_file", f"{B}/metadata.json",
                       "--filepath", "bundles/meta_schema.json"])
    assert "metadata is verified with no error" in (proc.stdout + proc.stderr).lower()
