"""Benchmark: images/s of the inference engines (eager PyTorch, TorchScript, ONNX Runtime) on CPU.

For the sich_cls network (ResNet18 at its default 256 x 256 input) and the sich_seg network (DynUNet
at its default 128 x 128 patch, the window its sliding-window inferer feeds it), at batch 1 and
batch 16: each network is exported the way ``medpipe export`` does it (MONAI's converters: a traced
TorchScript module; ``torch.onnx.export`` with a dynamic batch axis, and dynamic height/width for the
segmenter), loaded the way ``medpipe infer --engine`` loads it (:mod:`medpipe.inferers.engines`:
onnxruntime CPU provider, all graph optimizations, intra-op threads = torch threads) and timed side
by side: warm-up, then the engines take turns, one call each per round, so a load change on a shared
machine hits them alike; the median of the rounds gives images/s. Eager runs in eval mode under
``torch.inference_mode``. Every engine's output is compared with eager's on the timed input.

Weights are random (He-initialised, as built) unless ``--cls_ckpt``/``--seg_ckpt`` give trained
checkpoints (their ``model.json`` then decides the network and the input size); the speed of a
convolutional network does not depend on its weights' values.

The last line printed is one JSON object: ``ratio_<engine>_vs_eager_<model>_b<batch>`` for every
engine, ``ratio_fastest_vs_eager_<model>_b<batch>`` with ``fastest_<model>_b<batch>`` naming the
engine, images/s and max abs differences.

Usage:
    python benchmarks/bench_inference.py [--quick] [--models cls seg] [--batches 1 16] [--repeats 9]
        [--threads N] [--optimization all|extended|basic|none] [--cls_ckpt P] [--seg_ckpt P]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ENGINES = ("eager", "torchscript", "onnx")


def _raw(bundle: str) -> dict:
    return json.loads((REPO / "bundles" / bundle / "configs" / "train.json").read_text())


def default_network(model: str, in_channels: int):
    """``(network, input shape, description)`` of a bundle's default network with random weights."""
    from medpipe.networks.classification import build_classifier
    from medpipe.networks.segmentation import build_segmenter

    if model == "cls":
        raw = _raw("sich_cls")
        name, size = raw["network_name"], int(raw["image_size"])
        net = build_classifier(name, in_channels, 2)
        return net, [1, in_channels, size, size], f"sich_cls {name} {size}x{size}, {in_channels} channel(s), 2 classes"
    raw = _raw("sich_seg")
    name, size = raw["network_name"], int(raw["image_size"])
    patch = [size // 2, size // 2]  # train.json: patch_size = image_size // 2 per axis
    net = build_segmenter(name, in_channels, 2, patch, deep_supervision=False)
    return net, [1, in_channels, *patch], f"sich_seg {name}, patch {patch[0]}x{patch[1]} of {size}x{size} slices, " \
                                          f"{in_channels} channel(s), 2 classes"


def checkpoint_network(model: str, ckpt: str):
    from medpipe.bundle.export import inference_network

    bundle = "sich_cls" if model == "cls" else "sich_seg"
    net, shape = inference_network(bundle, ckpt)
    return net, shape, f"{bundle} checkpoint {ckpt}, input {shape[1:]}"


def export_all(net, shape: list[int], seg: bool, folder: Path) -> dict[str, Path]:
    """The network as ``medpipe export`` writes it: a traced ``.ts`` and an ``.onnx`` with dynamic axes."""
    import torch
    from monai.networks.utils import convert_to_onnx, convert_to_torchscript

    x = torch.rand(*shape)
    ts, onnx = folder / "model.ts", folder / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices and the exporter's chatter
        convert_to_torchscript(net, filename_or_obj=str(ts), use_trace=True, inputs=[x])
        # the arguments medpipe.bundle.export gives `monai.bundle onnx_export --converter_kwargs`
        axes = {0: "batch", 2: "height", 3: "width"} if seg else {0: "batch"}
        convert_to_onnx(net, inputs=[x], filename=str(onnx), input_names=["image"], output_names=["pred"],
                        dynamic_axes={"image": axes, "pred": axes})
    return {"torchscript": ts, "onnx": onnx}


def bench(runners: dict, x, warmup: int, repeats: int) -> tuple[dict, dict]:
    """Median seconds per call of each runner (taking turns per round) and max abs diff to eager's output."""
    import torch

    outs = {}
    with torch.inference_mode():
        for name, f in runners.items():
            for _ in range(warmup):
                outs[name] = f(x)
        times = {name: [] for name in runners}
        for _ in range(repeats):
            for name, f in runners.items():
                t0 = time.perf_counter()
                f(x)
                times[name].append(time.perf_counter() - t0)
    diff = {name: float((outs[name].float() - outs["eager"].float()).abs().max()) for name in runners}
    return {name: statistics.median(v) for name, v in times.items()}, diff


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["cls", "seg"], choices=["cls", "seg"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 9; 3 with --quick)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer timed rounds (a smoke run of about a minute)")
    ap.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default: torch's)")
    ap.add_argument("--optimization", default="all", choices=["all", "extended", "basic", "none"],
                    help="onnxruntime graph optimization level (medpipe infer uses all)")
    ap.add_argument("--in_channels", type=int, default=1, help="input channels of the random-weight networks")
    ap.add_argument("--cls_ckpt", help="a trained sich_cls models/model.pt (default: random weights)")
    ap.add_argument("--seg_ckpt", help="a trained sich_seg models/model.pt (default: random weights)")
    args = ap.parse_args()
    repeats = args.repeats or (3 if args.quick else 9)

    import numpy as np
    import onnxruntime
    import torch

    from medpipe.inferers.engines import OnnxModule, load_torchscript

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    load0 = os.getloadavg()[0]
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__} ({threads} threads), onnxruntime "
          f"{onnxruntime.__version__} (CPUExecutionProvider, {threads} intra-op threads, optimization "
          f"{args.optimization}); load average {load0:.2f} at start")
    print(f"{args.warmup} warm-up calls, then median of {repeats} timed rounds (engines take turns)")
    rows, result = [], {}
    weights = {}
    with tempfile.TemporaryDirectory(prefix="medpipe-bench-inference-") as tmp:
        for model in args.models:
            ckpt = args.cls_ckpt if model == "cls" else args.seg_ckpt
            net, shape, what = checkpoint_network(model, ckpt) if ckpt else default_network(model, args.in_channels)
            weights[model] = "checkpoint" if ckpt else "random"
            net = net.eval()
            folder = Path(tmp) / model
            folder.mkdir()
            t0 = time.perf_counter()
            files = export_all(net, shape, model == "seg", folder)
            print(f"\n{model}: {what} ({weights[model]} weights); exported in {time.perf_counter() - t0:.1f} s")
            runners = {"eager": net, "torchscript": load_torchscript(files["torchscript"]),
                       "onnx": OnnxModule(files["onnx"], threads, args.optimization)}
            for b in args.batches:
                x = torch.randn(b, *shape[1:], generator=torch.Generator().manual_seed(b))
                secs, diff = bench(runners, x, args.warmup, repeats)
                for e in ENGINES:
                    ips = b / secs[e]
                    ratio = secs["eager"] / secs[e]
                    rows.append((model, b, e, secs[e] * 1000, ips, ratio, diff[e]))
                    result[f"images_per_s_{e}_{model}_b{b}"] = round(ips, 2)
                    result[f"max_abs_diff_{e}_{model}_b{b}"] = float(f"{diff[e]:.3g}")
                    if e != "eager":
                        result[f"ratio_{e}_vs_eager_{model}_b{b}"] = round(ratio, 3)
                fastest = min((e for e in ENGINES if e != "eager"), key=lambda e: secs[e])
                result[f"fastest_{model}_b{b}"] = fastest
                result[f"ratio_fastest_vs_eager_{model}_b{b}"] = round(secs["eager"] / secs[fastest], 3)
    load1 = os.getloadavg()[0]
    print(f"\n{'model':<6}{'batch':>6}  {'engine':<12}{'ms/call':>10}{'images/s':>10}{'vs eager':>10}{'max|diff|':>11}")
    for model, b, e, ms, ips, ratio, d in rows:
        print(f"{model:<6}{b:>6}  {e:<12}{ms:>10.1f}{ips:>10.1f}{ratio:>9.2f}x{d:>11.1e}")
    worst = min(v for k, v in result.items() if k.startswith("ratio_fastest"))
    print(f"\nfastest engine vs eager: at least {worst:.2f}x (target >= 1.5x); load average {load1:.2f} at the end"
          + ("  [the machine was busy: figures are noisy]" if max(load0, load1) > (os.cpu_count() or 1) else ""))
    summary = {"benchmark": "inference", "cpu": cpu_name(), "cores": os.cpu_count(), "threads": threads,
               "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
               "ort_optimization": args.optimization,
               "repeats": repeats, "weights": weights, "loadavg": [round(load0, 2), round(load1, 2)], **result}
    assert all(np.isfinite(v) for k, v in result.items() if k.startswith("ratio_"))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
