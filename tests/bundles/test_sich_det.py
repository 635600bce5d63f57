"""Model-zoo-style smoke test of bundles/sich_det (YOLOv8 through ultralytics) on tiny data.

train -> evaluate -> infer (folder, NIfTI) -> export (ONNX, TorchScript; ultralytics' exporter and
MONAI's ckpt_export of network_def), every subprocess under a socket guard: a ``sitecustomize``
module on PYTHONPATH makes any network attempt (TCP/UDP connect, DNS lookup) fail and records it,
and each run asserts that nothing was recorded.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.bundles.conftest import RUNTIME, bundle_env, read_json, run_bundle
from tests.conftest import REPO

B = "bundles/sich_det/configs"
FAST = ["--threads", "1", *RUNTIME]
FOLD = 1  # the table trains sich_det on fold 1, not prepare's YOLO val fold (0): the bundle's fold decides
CLASSIFICATION_KEYS = {"accuracy", "precision", "recall", "f1", "specificity", "auroc", "confusion_matrix", "per_class"}
BOX_COLUMNS = ["patient", "slice", "image", "box_index", "xmin", "ymin", "xmax", "ymax", "confidence", "label"]


@pytest.fixture(scope="module")
def trained(trained_bundle):
    return trained_bundle("sich_det")


def test_guard_catches_network_attempts(net_guard, tmp_path):
    """Positive control: the guard is active in subprocesses and records what it refuses."""
    env = bundle_env()
    env["MEDPIPE_NET_GUARD_LOG"] = str(tmp_path / "log")
    code = textwrap.dedent("""
        import socket, urllib.request
        for f in (lambda: socket.create_connection(("203.0.113.1", 80), timeout=1),
                  lambda: socket.getaddrinfo("example.com", 443),
                  lambda: urllib.request.urlopen("https://github.com", timeout=1)):
            try:
                f()
            except OSError:
                pass
    """)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    text = (tmp_path / "log").read_text()
    assert "create_connection" in text and "getaddrinfo 'example.com'" in text and "github.com" in text


def test_train_outputs(trained, tiny_phe):
    from medpipe.detection.network import build_network

    log = (trained / "train_log.txt").read_text()
    assert log.count("epoch 1/2:") == 1 and log.count("epoch 2/2:") == 1  # medpipe's line per epoch, once
    ckpt = trained / "models/model.pt"
    with pytest.raises(Exception):  # an ultralytics checkpoint (pickled network), not a plain state_dict
        torch.load(ckpt, map_location="cpu", weights_only=True)
    state = torch.load(trained / "models/model_state_dict.pt", map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    build_network(str(trained / "models/model.yaml")).load_state_dict(state)  # strict
    assert (trained / "train/weights/best.pt").is_file() and (trained / "train/results.csv").is_file()
    hist = read_json(trained / "history.json")
    assert hist["epoch"] == [1, 2] and {"box_loss", "cls_loss", "dfl_loss", "map50", "map50_95", "precision",
                                        "recall", "lr"} <= set(hist)
    run_cfg = read_json(trained / "run_config.json")
    assert run_cfg["settings"]["max_epochs"] == 2 and run_cfg["settings"]["fold"] == FOLD and run_cfg["datalist_sha256"]
    assert (trained / "eval/training_curves.png").stat().st_size > 1000
    recs = read_json(tiny_phe / "datalist.json")["training"]
    val = [Path(p).name for p in (trained / "data/val.txt").read_text().split()]
    assert val == [Path(r["image"]).name for r in recs if r["fold"] == FOLD]


def test_tensorboard_has_epoch_scalars_and_overlays(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list((trained / "tb").glob("events.out.tfevents.*"))
    assert len(files) == 1  # one writer
    acc = EventAccumulator(str(files[0]), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert {"train/box_loss", "train/cls_loss", "train/dfl_loss", "val/map50", "val/map50_95",
            "val/precision", "val/recall"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("val/map50")] == [1, 2]
    assert [e.step for e in acc.Images("val/overlays")] == [1, 2]


def test_evaluate(trained, tiny_phe):
    run_bundle(["monai.bundle", "run", "--config_file", f"['{B}/train.json','{B}/evaluate.json']",
                "--dataset_dir", str(tiny_phe), "--output_dir", str(trained), "--ckpt_path",
                str(trained / "models/model.pt"), *FAST])
    m = read_json(trained / "eval/metrics.json")
    assert {"map50", "map50_95", "precision", "recall"} <= set(m)
    assert all(0.0 <= m[k] <= 1.0 for k in ("map50", "map50_95", "precision", "recall"))
    assert CLASSIFICATION_KEYS <= set(m["slice_level"]) and m["conf"] == 0.25 and m["fold"] == FOLD
    n = m["n_slices"]
    assert sum(map(sum, m["slice_level"]["confusion_matrix"])) == n
    sweep = m["conf_sweep"]
    assert [r["conf"] for r in sweep] == sorted(r["conf"] for r in sweep) and any(r["conf"] == 0.25 for r in sweep)
    assert all(r["tp"] + r["fp"] + r["fn"] + r["tn"] == n for r in sweep)
    for png in ("confusion_matrix.png", "conf_sweep.png", "training_curves.png"):
        assert (trained / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    boxes = list((trained / "eval/boxes").glob("*.png"))
    assert 1 <= len(boxes) <= 8 and all(p.name.split("_")[0] in ("TP", "FP", "FN", "TN") for p in boxes)

    rows = list(csv.DictReader(open(trained / "predictions.csv")))
    assert list(rows[0]) == BOX_COLUMNS
    slices = list(csv.DictReader(open(trained / "slice_predictions.csv")))
    assert list(slices[0]) == ["patient", "slice", "image", "probability", "prediction", "label"] and len(slices) == n
    assert {(r["patient"], r["slice"]) for r in rows} == {(s["patient"], s["slice"]) for s in slices}
    for s in slices:
        mine = [r for r in rows if (r["patient"], r["slice"]) == (s["patient"], s["slice"])]
        if mine[0]["box_index"] == "none":
            assert len(mine) == 1 and mine[0]["xmin"] == "" and float(s["probability"]) == 0.0
        else:
            assert [int(r["box_index"]) for r in mine] == list(range(len(mine)))
            assert float(s["probability"]) == pytest.approx(max(float(r["confidence"]) for r in mine))
        assert int(s["prediction"]) == int(float(s["probability"]) >= 0.25) and mine[0]["label"] == s["label"]


def test_monai_ckpt_export_of_network_def(trained, tmp_path):
    """CONTRACT path: MONAI's ckpt_export traces network_def loaded with model_state_dict.pt."""
    from medpipe.detection.export import yolo_parity

    out = tmp_path / "net.ts"
    ckpt = str(trained / "models/model.pt")
    run_bundle(["monai.bundle", "ckpt_export", "network_def", "--filepath", str(out), "--ckpt_file",
                str(trained / "models/model_state_dict.pt"), "--ckpt_path", ckpt, "--meta_file", f"{B}/metadata.json",
                "--config_file", f"{B}/inference.json", "--bundle_root", "bundles/sich_det", "--use_trace", "True",
                "--input_shape", "[1,3,64,64]"])
    assert yolo_parity(ckpt, str(out), 64) <= 1e-4


def test_nothing_written_to_the_repository_root(trained):
    assert not (REPO / "runs" / "detect").exists() and not list(REPO.glob("yolov8*.pt"))
