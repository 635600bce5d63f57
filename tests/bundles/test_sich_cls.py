"""Model-zoo-style smoke test of bundles/sich_cls: train -> evaluate -> infer -> export, on tiny data."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch

from tests.bundles.conftest import bundle_env, read_json, run_bundle, start_then_kill, train_tiny
from tests.conftest import REPO

B = "bundles/sich_cls/configs"
FAST = ["--image_size", "32", "--batch_size", "8", "--num_workers", "0", "--device", "cpu"]
CLASSIFICATION_KEYS = {"accuracy", "precision", "recall", "f1", "specificity", "auroc", "confusion_matrix", "per_class"}


@pytest.fixture(scope="module")
def trained(tiny_phe, tmp_path_factory):
    return train_tiny(B, tiny_phe, tmp_path_factory.mktemp("sich_cls_run"), FAST)


def test_train_outputs(trained):
    state = torch.load(trained / "models/model.pt", map_location="cpu", weights_only=True)
    assert isinstance(state, dict) and "conv1.weight" in state  # a plain state_dict
    ckpt = torch.load(trained / "models/checkpoint_last.pt", map_location="cpu", weights_only=True)
    assert set(ckpt) == {"model", "optimizer", "trainer"}
    hist = read_json(trained / "history.json")
    assert hist["epoch"] == [1, 2] and len(hist["loss"]) == 2 and "val_f1" in hist and "lr" in hist
    assert list((trained / "tb").glob("events.out.tfevents.*"))
    run_cfg = read_json(trained / "run_config.json")
    assert run_cfg["settings"]["max_epochs"] == 2 and run_cfg["datalist_sha256"]
    assert (trained / "eval/training_curves.png").stat().st_size > 1000


def test_tensorboard_has_scalars_and_images(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {"scalars": set(), "images": set()}
    for f in (trained / "tb").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(f))
        acc.Reload()
        for k in tags:
            tags[k] |= set(acc.Tags().get(k, []))
    assert {"epoch/loss", "epoch/lr", "epoch/val_f1"} <= tags["scalars"]
    assert "train/images" in tags["images"]


def test_evaluate(trained):
    run_bundle(["monai.bundle", "run", "--config_file", f"['{B}/train.json','{B}/evaluate.json']",
                "--dataset_dir", str(_dataset_of(trained)), "--output_dir", str(trained), *FAST])
    m = read_json(trained / "eval/metrics.json")
    assert CLASSIFICATION_KEYS <= set(m)
    assert all(0.0 <= m[k] <= 1.0 for k in ("accuracy", "precision", "recall", "f1", "specificity"))
    assert sum(map(sum, m["confusion_matrix"])) == m["n"]
    for png in ("confusion_matrix.png", "roc.png", "training_curves.png"):
        assert (trained / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (trained / "eval/classification_report.txt").read_text().startswith("binary slice classification")
    assert list((trained / "eval/gradcam").glob("*.png"))
    rows = list(csv.DictReader(open(trained / "predictions.csv")))
    assert len(rows) == m["n"] and set(rows[0]) == {"patient", "slice", "image", "probability", "prediction", "label"}


def _dataset_of(run_dir):
    return read_json(run_dir / "run_config.json")["dataset_dir"]


@pytest.mark.parametrize("source", ["folder", "nifti"])
def test_infer(trained, tmp_path, source):
    ds = _dataset_of(trained)
    if source == "folder":
        inp = f"{ds}/images"
    else:
        inp = str(sorted((REPO / ds).parent.glob("raw/SubdatasetA_NIFIT/NIFIT/set/*.nii.gz"))[0])
    run_bundle(["monai.bundle", "run", "--config_file", f"{B}/inference.json", "--ckpt_path",
                str(trained / "models/model.pt"), "--input", inp, "--output_dir", str(tmp_path), *FAST])
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    assert rows and set(rows[0]) == {"patient", "slice", "image", "probability", "prediction"}
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)
    if source == "nifti":
        assert [int(r["slice"]) for r in rows] == list(range(len(rows)))


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_matches_eager(trained, tmp_path, fmt):
    out = tmp_path / ("model.ts" if fmt == "torchscript" else "model.onnx")
    proc = run_bundle(["medpipe", "export", "sich_cls", "--ckpt_path", str(trained / "models/model.pt"),
                       "--format", fmt, "--output", str(out), "--image_size", "32"])
    assert "running: python -m monai.bundle" in proc.stdout
    assert "OK, tolerance 0.0001" in proc.stdout and out.is_file()


def test_reproducible_and_resumable(tiny_phe, tmp_path):
    """Same seed -> same losses; a run killed after its first epoch resumes and finishes the plan."""
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["monai.bundle", "run", "--config_file", f"{B}/train.json", "--dataset_dir", str(tiny_phe),
            "--max_epochs", "3", *FAST]
    run_bundle(args + ["--output_dir", str(a)])
    # b: start, kill as soon as the first epoch's checkpoint exists, then run again
    start_then_kill(args + ["--output_dir", str(b)], b / "models/checkpoint_last.pt")
    killed_epochs = len(read_json(b / "history.json")["epoch"])
    assert killed_epochs < 3, "the run finished before it could be killed; the test proves nothing"
    second = run_bundle(args + ["--output_dir", str(b)])
    assert "resuming from" in second.stdout + second.stderr
    ha, hb = read_json(a / "history.json"), read_json(b / "history.json")
    assert hb["epoch"] == [1, 2, 3]
    assert hb["loss"][:killed_epochs] == pytest.approx(ha["loss"][:killed_epochs], abs=1e-6)  # same seed, same run


def test_metadata_valid_offline():
    proc = run_bundle(["monai.bundle", "verify_metadata", "--meta_file", f"{B}/metadata.json",
                       "--filepath", "bundles/meta_schema.json"])
    assert "metadata is verified with no error" in (proc.stdout + proc.stderr).lower()


def test_multi_gpu_config_with_torchrun_on_cpu(tiny_phe, tmp_path):
    """multi_gpu_train.json under torchrun, 2 processes, gloo backend on CPU: trains and saves once."""
    env = bundle_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
         "run", "--config_file", f"['{B}/train.json','{B}/multi_gpu_train.json']", "--dataset_dir", str(tiny_phe),
         "--output_dir", str(tmp_path), "--max_epochs", "2", *FAST],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = torch.load(tmp_path / "models/model.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state)  # saved unwrapped, loadable by the eager network
    hist = read_json(tmp_path / "history.json")
    assert hist["epoch"] == [1, 2] and "val_f1" in hist
    assert (proc.stdout + proc.stderr).count("epoch 2/2") == 1  # rank 0 reports, rank 1 stays quiet
