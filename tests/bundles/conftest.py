"""Tiny prepared PHE-SICH dataset and helpers to run bundles exactly as users do (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def bundle_env(tmp_path: Path | None = None) -> dict:
    env = dict(os.environ)
    cache = REPO / ".cache"
    env.update({"HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "MPLCONFIGDIR": str(cache / "matplotlib"),
                "YOLO_CONFIG_DIR": str(cache / "ultralytics"), "XDG_CACHE_HOME": str(cache / "xdg"),
                "OMP_NUM_THREADS": "2"})
    return env


def run_bundle(args: list[str], timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle ...`` (or ``-m medpipe ...``) from the repository root."""
    proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=bundle_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_phe(tmp_path_factory) -> Path:
    """synth (6 patients, 64 px) -> prepare (3 folds): a prepared dataset folder."""
    from data_prep import phe_sich
    from data_prep.synth.phe_sich import synthesize

    root = tmp_path_factory.mktemp("tiny_phe")
    synthesize(root / "raw", patients=6, size=64, seed=1, slices=(8, 10), subsets=("png", "nifti"))
    phe_sich.prepare(root / "raw", root / "prepared", phe_sich.PrepareOptions(folds=3), workers=1, progress=None)
    return root / "prepared"


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def train_tiny(bundle_configs: str, dataset: Path, out: Path, fast: list[str], epochs: int = 2) -> Path:
    """Train a bundle on the tiny dataset for ``epochs`` epochs into ``out`` (as a user would)."""
    run_bundle(["monai.bundle", "run", "--config_file", f"{bundle_configs}/train.json", "--dataset_dir", str(dataset),
                "--output_dir", str(out), "--max_epochs", str(epochs), *fast])
    return out


def start_then_kill(args: list[str], marker: Path, timeout: float = 300) -> None:
    """Start ``python -m *args``; SIGKILL it as soon as ``marker`` exists (or it exits / times out)."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=bundle_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + timeout
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
