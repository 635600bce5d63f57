"""benchmarks/gpu_check.sh: refuses clearly without CUDA, builds the right trainings, reads the runs' records.

The whole script is run on CPU by hand (MEDPIPE_GPU_CHECK_ALLOW_CPU=1 MEDPIPE_GPU_CHECK_SCALE=tiny
MEDPIPE_GPU_CHECK_TIME_S=3 MEDPIPE_GPU_CHECK_BUNDLES=sich_cls,sich_det: about a minute), not here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from benchmarks import gpu_check as G
from tests.conftest import REPO


def test_without_cuda_it_exits_2_with_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDPIPE_GPU_CHECK")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU even on a CUDA machine
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", str(tmp_path / "out")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "no CUDA GPU is visible" in proc.stderr and "MEDPIPE_GPU_CHECK_ALLOW_CPU=1" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize("env, message", [
    ({"MEDPIPE_GPU_CHECK_TIME_S": "soon"}, "MEDPIPE_GPU_CHECK_TIME_S='soon': expected a positive number"),
    ({"MEDPIPE_GPU_CHECK_BUNDLES": "sich_cls,sich_segg"}, "unknown bundle(s) sich_segg"),
    ({"MEDPIPE_GPU_CHECK_SCALE": "huge"}, "expected one of medium, tiny"),
])
def test_bad_settings_are_refused(env, message):
    with pytest.raises(G.CheckError) as e:
        G.options([], env)
    assert message in str(e.value)


def test_options_defaults():
    from medpipe.bundle import BUNDLES

    o = G.options([], {})
    assert o["time_s"] == 120 and o["bundles"] == list(BUNDLES) and o["scale"] == "medium"
    assert not o["compile"] and not o["allow_cpu"] and o["out"] == Path("runs/gpu_check").absolute()
    assert G.options(["/x"], {"MEDPIPE_GPU_CHECK_COMPILE": "1"})["compile"] is True
    assert set(G.SCALES["medium"]) == set(G.SCALES["tiny"]) >= {s.dataset for s in BUNDLES.values()}


def test_train_args_turn_the_gpu_path_on():
    o = G.options([], {"MEDPIPE_GPU_CHECK_TIME_S": "60", "MEDPIPE_GPU_CHECK_COMPILE": "1",
                       "MEDPIPE_GPU_CHECK_EXTRA": "--batch_size 64"})
    a = G.train_args("sich_cls", "monai", Path("/d"), Path("/r"), o, {"device": "cuda"})
    text = " ".join(a)
    for part in ("-m medpipe train sich_cls", "--time_limit_s 60", "--device cuda", "--amp true",
                 "--channels_last true", "--cudnn_benchmark true", "--pin_memory true", "--compile true"):
        assert part in text, part
    assert a[-2:] == ["--batch_size", "64"]
    y = " ".join(G.train_args("sich_det", "ultralytics", Path("/d"), Path("/r"), o, {"device": "cuda"}))
    assert "--channels_last" not in y and "--amp" not in y and "--patience 0" in y


def test_summaries_read_the_runs_records(tmp_path):
    (tmp_path / "history.json").write_text(json.dumps({
        "epoch": [1, 2, 3, 4], "loss": [1, 0.9, 0.8, 0.7], "images_per_s": [50.0, 300.0, 320.0, 310.0],
        "val_f1": [0.2, 0.5, 0.4, 0.45], "val_auroc": [0.6, 0.7, 0.7, 0.8]}))
    s = G.summarize_monai(tmp_path, "val_f1")
    assert s["images_per_s"] == 310.0 and s["images_per_s_first_epoch"] == 50.0  # median after the warm-up epoch
    assert s["best"] == 0.5 and s["last"] == {"val_f1": 0.45, "val_auroc": 0.8} and s["epochs"] == 4
    (tmp_path / "train").mkdir()
    (tmp_path / "train/results.csv").write_text("epoch, time, metrics/mAP50(B)\n1, 10, 0.1\n2, 20, 0.3\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data/train.txt").write_text("a.png\nb.png\nc.png\nd.png\n")
    (tmp_path / "history.json").write_text(json.dumps({"epoch": [1, 2], "map50": [0.1, 0.3]}))
    y = G.summarize_yolo(tmp_path)
    assert y["images_per_s"] == 0.4 and y["images_per_s_first_epoch"] == 0.4 and y["best"] == 0.3
    assert "validation" in y["throughput_basis"]
    rows = G.table([{"bundle": "sich_cls", "engine": "monai", "ok": True, **s},
                    {"bundle": "sich_det", "engine": "ultralytics", "ok": False, "error": "boom"}])
    assert "310.0" in rows and "FAILED: boom" in rows
