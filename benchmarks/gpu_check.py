"""GPU check: train every registered bundle for a fixed time on synthetic data, print images/s and metrics.

Meant for the day a CUDA machine is available: one command gives comparable numbers for every bundle
with the GPU path on (mixed precision, channels-last, cuDNN autotuning, pinned memory; torch.compile
optional). For each bundle of the registry (``medpipe.bundle.BUNDLES``) it synthesizes and prepares
its registered dataset (once per dataset, as ``medpipe synth`` / ``medpipe prepare`` do), trains it
with ``medpipe train ... --time_limit_s N`` in a process of its own, and reads the run's own records:
``history.json`` (throughput, validation metrics) and ``run_config.json`` (the settings in force).

Usage (from the repository root, with the .venv; ``benchmarks/gpu_check.sh`` is the same):

    bash benchmarks/gpu_check.sh [OUT_DIR]          # default OUT_DIR: runs/gpu_check

Environment:
    MEDPIPE_GPU_CHECK_TIME_S      training budget per bundle in seconds (default 120)
    MEDPIPE_GPU_CHECK_BUNDLES     comma-separated bundles (default: every registered bundle)
    MEDPIPE_GPU_CHECK_COMPILE     1: also --compile true (torch.compile, inductor) for the MONAI bundles
    MEDPIPE_GPU_CHECK_YOLO_AMP    1: --amp true for the ultralytics bundles (ultralytics' AMP check wants a
                                  download; offline it warns and goes on)
    MEDPIPE_GPU_CHECK_SCALE       medium (default: a few hundred images per dataset) or tiny (the test sizes)
    MEDPIPE_GPU_CHECK_EXTRA       extra ``medpipe train`` arguments for every bundle (e.g. "--batch_size 64")
    MEDPIPE_GPU_CHECK_ALLOW_CPU   1: run on CPU when no GPU is visible (tests the script; numbers mean nothing)

Throughput: for the MONAI-engine bundles, ``images_per_s`` of ``history.json`` (samples fed to the
network per second of training, validation excluded); the median over epochs after the first (which
pays for cuDNN autotuning and compilation) is reported, the first epoch beside it. For the
ultralytics bundles, training images x epochs / ultralytics' elapsed time (``results.csv``; it
includes the per-epoch validation, so it understates training speed).

The last line printed is one JSON object with everything in the table (and ``rc`` 0 when every
bundle trained).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: synthetic dataset sizes: ``medium`` gives each epoch enough batches to time, ``tiny`` is the test size
SCALES = {
    "medium": {
        "phe-sich": {"synth": {"patients": 40, "size": 256, "slices": (12, 16), "subsets": ("png", "nifti")},
                     "prepare": {"folds": 5}},
        "cxr14": {"synth": {"patients": 150, "size": 256}, "prepare": {"folds": 5}},
        "rsna-pneumonia": {"synth": {"patients": 150, "size": 256}, "prepare": {"folds": 5, "test_size": 10}},
        "ankle-ct": {"synth": {"patients": 30, "size": 128, "slices": 24}, "prepare": {"folds": 5}},
        "rsna-ich": {"synth": {"patients": 60, "size": 256}, "prepare": {"folds": 5}},
    },
    "tiny": {
        "phe-sich": {"synth": {"patients": 6, "size": 64, "slices": (8, 10), "subsets": ("png",)},
                     "prepare": {"folds": 3}},
        "cxr14": {"synth": {"patients": 15, "size": 64}, "prepare": {"folds": 3}},
        "rsna-pneumonia": {"synth": {"patients": 15, "size": 64}, "prepare": {"folds": 3, "test_size": 3}},
        "ankle-ct": {"synth": {"patients": 10, "size": 64, "slices": 8}, "prepare": {"folds": 3}},
        "rsna-ich": {"synth": {"patients": 10, "size": 64}, "prepare": {"folds": 3}},
    },
}
#: training arguments of the ``tiny`` scale (small inputs: a CPU run of the script stays short)
TINY_TRAIN = ["--image_size", "64", "--batch_size", "4", "--num_workers", "0"]


class CheckError(Exception):
    """A problem with how the check was started (exit status 2, one paragraph)."""


def env_flag(name: str, environ=os.environ) -> bool:
    return environ.get(name, "").strip().lower() in ("1", "true", "yes")


def options(argv: list[str], environ=os.environ) -> dict:
    """The check's options from the command line (``[OUT_DIR]``) and the environment (see the module doc)."""
    from medpipe.bundle import BUNDLES

    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        raise CheckError("usage: bash benchmarks/gpu_check.sh [OUT_DIR]  (settings through MEDPIPE_GPU_CHECK_* "
                         "environment variables; see benchmarks/gpu_check.py)")
    try:
        budget = float(environ.get("MEDPIPE_GPU_CHECK_TIME_S", "120"))
    except ValueError:
        budget = -1.0
    if budget <= 0:
        raise CheckError(f"MEDPIPE_GPU_CHECK_TIME_S={environ.get('MEDPIPE_GPU_CHECK_TIME_S')!r}: expected a positive "
                         f"number of seconds (the training budget of each bundle; default 120).")
    names = [b.strip() for b in environ.get("MEDPIPE_GPU_CHECK_BUNDLES", "").split(",") if b.strip()] or list(BUNDLES)
    unknown = [b for b in names if b not in BUNDLES]
    if unknown:
        raise CheckError(f"MEDPIPE_GPU_CHECK_BUNDLES: unknown bundle(s) {', '.join(unknown)}; registered: "
                         f"{', '.join(BUNDLES)}.")
    scale = environ.get("MEDPIPE_GPU_CHECK_SCALE", "medium")
    if scale not in SCALES:
        raise CheckError(f"MEDPIPE_GPU_CHECK_SCALE={scale!r}: expected one of {', '.join(SCALES)}.")
    return {"out": Path(argv[0] if argv else "runs/gpu_check").absolute(), "time_s": budget, "bundles": names,
            "compile": env_flag("MEDPIPE_GPU_CHECK_COMPILE", environ),
            "yolo_amp": env_flag("MEDPIPE_GPU_CHECK_YOLO_AMP", environ),
            "scale": scale, "extra": environ.get("MEDPIPE_GPU_CHECK_EXTRA", "").split(),
            "allow_cpu": env_flag("MEDPIPE_GPU_CHECK_ALLOW_CPU", environ)}


def check_device(allow_cpu: bool) -> dict:
    """The machine: ``{"device", "gpu", "gpus", "torch", "cuda"}``; without CUDA a :class:`CheckError` unless allowed."""
    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        return info | {"device": "cuda", "gpu": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count()}
    if not allow_cpu:
        raise CheckError(f"gpu_check: no CUDA GPU is visible to torch {torch.__version__} "
                         f"(torch.cuda.is_available() is False), so there is nothing to measure. Run it on a CUDA "
                         f"machine (check nvidia-smi and CUDA_VISIBLE_DEVICES), or set MEDPIPE_GPU_CHECK_ALLOW_CPU=1 "
                         f"to run the same steps on CPU (to test the script; its numbers mean nothing).")
    return info | {"device": "cpu", "gpu": None, "gpus": 0}


def child_env(out: Path) -> dict:
    """The environment of the trainings: offline, caches under ``out``."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "MPLCONFIGDIR": str(out / ".cache/matplotlib"),
                "YOLO_CONFIG_DIR": str(out / ".cache/ultralytics"), "XDG_CACHE_HOME": str(out / ".cache/xdg")})
    return env


def prepared_dataset(name: str, out: Path, scale: str) -> Path:
    """``out/data/<name>``: the dataset synthesized and prepared (reused when already there)."""
    from data_prep import get_spec
    from medpipe.prepare.engine import prepare

    row = SCALES[scale][name]
    raw, prepared = out / "data" / f"{name}-raw", out / "data" / name
    if (prepared / "datalist.json").is_file():
        return prepared
    spec = get_spec(name)
    if not raw.is_dir():
        print(f"[gpu_check] synthesizing {name} ({scale}) in {raw}", flush=True)
        spec.load_synthesizer()(raw, progress=None, seed=1, **row["synth"])
    print(f"[gpu_check] preparing {name} in {prepared}", flush=True)
    prepare(spec, raw, prepared, row["prepare"], progress=None)
    return prepared


def train_args(bundle: str, engine: str, dataset: Path, run: Path, opts: dict, device: dict) -> list[str]:
    """The ``medpipe train`` command of one bundle (long max_epochs: the time limit decides)."""
    args = [sys.executable, "-m", "medpipe", "train", bundle, "--dataset_dir", str(dataset), "--output_dir", str(run),
            "--time_limit_s", f"{opts['time_s']:g}", "--max_epochs", "1000", "--device", device["device"]]
    if engine == "monai":
        args += ["--amp", "true", "--channels_last", "true", "--cudnn_benchmark", "true", "--pin_memory", "true"]
        args += ["--compile", "true"] if opts["compile"] else []
        args += ["--patience", "1000"]  # early stopping must not end a timing run
    else:
        args += ["--amp", "true"] if opts["yolo_amp"] else []
        args += ["--patience", "0"]  # ultralytics: 0 disables early stopping
    if opts["scale"] == "tiny":
        args += TINY_TRAIN
    return args + opts["extra"]


def _median(values: list) -> float | None:
    vals = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None


def summarize_monai(run: Path, key_metric: str | None) -> dict:
    """Throughput and metrics of a MONAI-engine run from its ``history.json``."""
    hist = json.loads((run / "history.json").read_text())
    speed = hist.get("images_per_s") or []
    metrics = {k: v[-1] for k, v in hist.items() if k.startswith("val_") and v and v[-1] is not None}
    key = hist.get(key_metric) or []
    return {"epochs": len(hist.get("epoch", [])), "images_per_s": _median(speed[1:] or speed),
            "images_per_s_first_epoch": speed[0] if speed else None, "throughput_basis": "training only",
            "key_metric": key_metric, "best": max((v for v in key if v is not None), default=None),
            "last": metrics}


def summarize_yolo(run: Path) -> dict:
    """Throughput and metrics of an ultralytics run from ``train/results.csv`` and the fold's ``train.txt``."""
    import csv

    rows = list(csv.DictReader((run / "train" / "results.csv").open()))
    rows = [{k.strip(): v for k, v in r.items() if k} for r in rows]
    n_train = sum(1 for line in (run / "data" / "train.txt").read_text().splitlines() if line.strip())
    elapsed = float(rows[-1]["time"]) if rows and rows[-1].get("time") else None
    hist = json.loads((run / "history.json").read_text()) if (run / "history.json").is_file() else {}
    last = {k: v[-1] for k, v in hist.items() if k in ("map50", "map50_95", "precision", "recall") and v}
    return {"epochs": len(rows), "images_per_s": n_train * len(rows) / elapsed if elapsed else None,
            "images_per_s_first_epoch": n_train / float(rows[0]["time"]) if rows and float(rows[0]["time"]) else None,
            "throughput_basis": "training + validation (ultralytics' elapsed time)", "key_metric": "map50",
            "best": max((v for v in hist.get("map50", []) if v is not None), default=None), "last": last}


def run_bundle(bundle: str, opts: dict, device: dict) -> dict:
    """Prepare the data, train, summarize one bundle; a failure is recorded, never raised."""
    from medpipe.bundle import BUNDLES

    spec = BUNDLES[bundle]
    run = opts["out"] / "runs" / bundle
    res: dict = {"bundle": bundle, "engine": spec.engine, "dataset": spec.dataset}
    t0 = time.perf_counter()
    try:
        dataset = prepared_dataset(spec.dataset, opts["out"], opts["scale"])
        if run.exists():  # a timing run starts fresh (this script wrote the folder)
            import shutil

            shutil.rmtree(run)
        args = train_args(bundle, spec.engine, dataset, run, opts, device)
        print(f"[gpu_check] {bundle}: {' '.join(args[2:])}", flush=True)
        log = opts["out"] / "logs" / f"{bundle}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        t1 = time.perf_counter()
        with log.open("w") as f:
            proc = subprocess.run(args, cwd=REPO, env=child_env(opts["out"]), stdout=f, stderr=subprocess.STDOUT,
                                  timeout=3 * opts["time_s"] + 900)
        res["train_wall_s"] = round(time.perf_counter() - t1, 1)
        res["log"] = str(log)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"medpipe train exited with {proc.returncode}: " + " | ".join(tail))
        if spec.engine == "monai":
            key = json.loads((REPO / f"bundles/{bundle}/configs/train.json").read_text()).get("early_stop_metric")
            res |= summarize_monai(run, key if isinstance(key, str) else None)
            cfg = json.loads((run / "run_config.json").read_text())
            res["settings"] = cfg["settings"].get("performance")
        else:
            res |= summarize_yolo(run)
            cfg = json.loads((run / "run_config.json").read_text())
            res["settings"] = {k: cfg["settings"].get(k) for k in ("device", "amp", "batch_size", "image_size")}
        res["ok"] = True
    except Exception as e:  # noqa: BLE001 - one bundle's failure must not hide the others' numbers
        res |= {"ok": False, "error": f"{type(e).__name__}: {e}"}
    res["total_s"] = round(time.perf_counter() - t0, 1)
    return res


def _fmt(v, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec) if isinstance(v, (int, float)) else str(v)


def table(results: list[dict]) -> str:
    """The results as a fixed-width text table."""
    head = f"{'bundle':<18} {'engine':<11} {'epochs':>6} {'img/s':>9} {'img/s 1st':>9} {'metric':<14} {'best':>7}  status"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['bundle']:<18} {r['engine']:<11} {_fmt(r.get('epochs'), 'd'):>6} "
                     f"{_fmt(r.get('images_per_s')):>9} {_fmt(r.get('images_per_s_first_epoch')):>9} "
                     f"{_fmt(r.get('key_metric')):<14} {_fmt(r.get('best'), '.4f'):>7}  "
                     + ("ok" if r.get("ok") else f"FAILED: {r.get('error', '')[:200]}"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts = options(argv)
        device = check_device(opts["allow_cpu"])
    except CheckError as e:
        print(str(e), file=sys.stderr)
        return 2
    opts["out"].mkdir(parents=True, exist_ok=True)
    print(f"[gpu_check] {device['gpu'] or 'CPU (MEDPIPE_GPU_CHECK_ALLOW_CPU)'}, torch {device['torch']}; "
          f"{opts['time_s']:g} s per bundle; {len(opts['bundles'])} bundle(s); outputs in {opts['out']}", flush=True)
    results = [run_bundle(b, opts, device) for b in opts["bundles"]]
    print(table(results))
    rc = 0 if all(r["ok"] for r in results) else 1
    summary = {"gpu_check": 1, "rc": rc, "machine": device, "time_limit_s": opts["time_s"], "scale": opts["scale"],
               "compile": opts["compile"], "out": str(opts["out"]), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "bundles": {r["bundle"]: r for r in results}}
    (opts["out"] / "gpu_check.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, separators=(",", ":")), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
