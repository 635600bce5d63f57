"""Benchmark: the training input pipeline of sich_cls and sich_seg, cached vs decoding every epoch.

For each bundle, built from its own ``train.json`` (sich_seg with a preset overlay, default
``cpu_budget``, the configuration it is trained with on a CPU), side by side in one run:

* **naive**: the same transform chain in a plain MONAI ``Dataset`` with MONAI's defaults (metadata
  tracking on): every slice is decoded, resized, normalized (and, for segmentation, its foreground
  index map computed) every epoch, then augmented;
* **bundle**: the bundle's loader as configured: a ``CacheDataset`` holding the deterministic part
  once (no per-item copy, ``copy_cache=False``), only the random augmentation per epoch, metadata
  tracking off (:func:`medpipe.transforms.io.training_chain`).

Both run with ``--num_workers`` (default 0: the work itself, no parallelism) over the same records and
epochs. Then, where the time goes: per-sample milliseconds of each stage (decode, resize, normalize,
foreground indices, augmentation, collate). Last, whether the loader limits a CPU epoch: a training
step's throughput on batches already in memory vs the same steps fed by the bundle loader with 2
workers (``loader share`` = 1 - ratio; near 0: the loader keeps up).

The last line printed is one JSON object; ``ratio_*`` keys hold the measured speed-ups.

Usage:
    python benchmarks/bench_loaders.py --dataset_dir /tmp/phe [--bundles sich_cls sich_seg] [--epochs 2]
        [--limit 400] [--seg_preset cpu_budget] [--steps 12]

``--dataset_dir`` defaults to data/phe-sich (``make demo``); the real sample:
``medpipe prepare phe-sich --src ../shared/data/PHE-SICH-CT-IDS --out /tmp/phe``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build(bundle: str, overrides: dict, preset: str | None):
    """The bundle's train config (plus a preset overlay) with ``overrides``, intensity statistics ready."""
    from monai.bundle import ConfigParser

    os.chdir(REPO)
    files = [f"bundles/{bundle}/configs/train.json"]
    if preset:
        files.append(f"bundles/{bundle}/configs/presets/{preset}.json")
    p = ConfigParser()
    p.read_config(files)
    p.update(overrides)
    if "intensity_stats" in p.config:  # the seg preprocessing needs the training folds' intensity statistics
        p.get_parsed_content("intensity_stats")
    return p


def time_epochs(loader, epochs: int) -> tuple[float, int]:
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            n += batch["image"].shape[0]
    return time.perf_counter() - t0, n


def stage_times(p, data: list, n: int) -> dict[str, float]:
    """Milliseconds per sample of each stage of the chain, applied one after the other on ``n`` records."""
    from monai.data import list_data_collate
    from monai.transforms import Compose

    pre = list(p.get_parsed_content("preprocessing").transforms)
    aug = list(p.get_parsed_content("train#augmentation"))
    names = {"LoadGrayd": "decode", "LoadStackd": "decode", "Resized": "resize", "ClipZScored": "normalize",
             "IntensityModed": "normalize", "EnsureTyped": "normalize", "FgBgToIndicesd": "foreground indices"}
    stages: list[tuple[str, list]] = []
    for t in pre + aug:
        name = names.get(type(t).__name__, "augmentation")
        if stages and stages[-1][0] == name:
            stages[-1][1].append(t)
        else:
            stages.append((name, [t]))
    out: dict[str, float] = {}
    items = [dict(d) for d in data[:n]]
    for name, ts in stages:
        chain = Compose(ts, lazy=False)
        t0 = time.perf_counter()
        items = [chain(d) for d in items]
        if items and isinstance(items[0], list):  # a cropper returning several samples per record
            items = [s for group in items for s in group]
        out[name] = out.get(name, 0.0) + (time.perf_counter() - t0) * 1000 / n
    bs = int(p.get_parsed_content("batch_size"))
    t0 = time.perf_counter()
    for i in range(0, len(items), bs):
        list_data_collate(items[i:i + bs])
    out["collate"] = (time.perf_counter() - t0) * 1000 / n
    return out


def step_throughput(p, loader, steps: int) -> tuple[float, float]:
    """Samples/s of ``steps`` training steps on batches held in memory, and fed by ``loader``."""
    import torch

    net = p.get_parsed_content("network_def")
    loss_fn = p.get_parsed_content("loss")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    net.train()

    def step(batch):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(batch["image"]), batch["label"])
        loss.backward()
        opt.step()

    batches = []
    for b in loader:
        batches.append({"image": torch.as_tensor(b["image"]), "label": torch.as_tensor(b["label"])})
        if len(batches) >= steps:
            break
    step(batches[0])  # warm-up
    t0 = time.perf_counter()
    n = 0
    for b in batches:
        step(b)
        n += b["image"].shape[0]
    in_memory = n / (time.perf_counter() - t0)
    t0, n = time.perf_counter(), 0
    for i, b in enumerate(loader):
        step({"image": torch.as_tensor(b["image"]), "label": torch.as_tensor(b["label"])})
        n += b["image"].shape[0]
        if i + 1 >= steps:
            break
    fed = n / (time.perf_counter() - t0)
    return in_memory, fed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset_dir", default=str(REPO / "data/phe-sich"))
    ap.add_argument("--bundles", nargs="+", default=["sich_cls", "sich_seg"])
    ap.add_argument("--seg_preset", default="cpu_budget", help="preset overlay of sich_seg ('' for train.json alone)")
    ap.add_argument("--image_size", type=int, default=None, help="override the bundles' image_size")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--num_workers", type=int, default=0, help="workers of the naive/bundle comparison")
    ap.add_argument("--limit", type=int, default=400, help="first N training records (0: all)")
    ap.add_argument("--stage_samples", type=int, default=48)
    ap.add_argument("--steps", type=int, default=12, help="training steps of the loader-bottleneck check")
    args = ap.parse_args()
    if not (Path(args.dataset_dir) / "datalist.json").is_file():
        print(f"skip: no prepared dataset at {args.dataset_dir} (run `make demo` or medpipe prepare)")
        print(json.dumps({"skipped": "no dataset"}))
        return 0
    import torch
    from monai.data import DataLoader, Dataset, set_track_meta

    # loader work runs in worker processes, where PyTorch uses one thread: time it the same way
    torch.set_num_threads(1)
    out_dir = Path("/tmp/medpipe-bench-loaders")
    print(f"dataset: {args.dataset_dir}; {args.epochs} epochs each; num_workers {args.num_workers}; "
          f"cores {os.cpu_count()}; loader timings with 1 torch thread (as in a loader worker)")
    summary: dict = {"dataset_dir": str(args.dataset_dir), "cores": os.cpu_count()}
    for bundle in args.bundles:
        key = "cls" if bundle.endswith("_cls") else "seg" if bundle.endswith("_seg") else bundle
        ov = {"dataset_dir": str(Path(args.dataset_dir).resolve()), "num_workers": args.num_workers,
              "output_dir": str(out_dir / bundle), "limit": args.limit or None, "device": "cpu"}
        if args.image_size:
            ov["image_size"] = args.image_size
        preset = args.seg_preset if bundle == "sich_seg" and args.seg_preset else None
        p = build(bundle, ov, preset)
        data = p.get_parsed_content("train#data")
        bs = int(p.get_parsed_content("batch_size"))
        chain = p.get_parsed_content("train#preprocessing")  # sets metadata tracking off (training_chain)
        t0 = time.perf_counter()
        cached_ds = p.get_parsed_content("train#dataset")  # CacheDataset: fills its cache here
        t_cache = time.perf_counter() - t0
        cached = DataLoader(cached_ds, batch_size=bs, shuffle=True, num_workers=args.num_workers)
        set_track_meta(True)  # the straightforward baseline: MONAI's defaults
        naive = DataLoader(Dataset(data, transform=chain), batch_size=bs, shuffle=True, num_workers=args.num_workers)
        t_naive, n_naive = time_epochs(naive, args.epochs)
        set_track_meta(False)
        naive_nometa = DataLoader(Dataset(data, transform=chain), batch_size=bs, shuffle=True,
                                  num_workers=args.num_workers)
        t_nm, n_nm = time_epochs(naive_nometa, args.epochs)
        t_cached, n_cached = time_epochs(cached, args.epochs)
        r_naive, r_nm, r_cached = n_naive / t_naive, n_nm / t_nm, n_cached / t_cached
        amort = n_cached / (t_cached + t_cache)
        print(f"\n{bundle}{f' (preset {preset})' if preset else ''}: {len(data)} records, batch {bs}; "
              f"samples/s (a sample = one network input; segmentation crops several per slice)")
        print(f"  naive (decode + transform every epoch, MONAI defaults): {r_naive:8.1f}")
        print(f"  naive without metadata tracking:                         {r_nm:8.1f}")
        print(f"  bundle loader (cache once, augment per epoch):           {r_cached:8.1f}   "
              f"(cache filled once in {t_cache:.1f} s; {amort:.1f}/s over these {args.epochs} epochs including it)")
        print(f"  ratio bundle / naive: {r_cached / r_naive:.2f}x (target >= 3x)")
        stages = stage_times(p, data, min(args.stage_samples, len(data)))
        total = sum(stages.values())
        print("  where the time goes, ms per slice (naive pays every stage each epoch; the bundle only the last two):")
        for name, ms in stages.items():
            print(f"    {name:20s} {ms:8.2f}  ({100 * ms / total:4.1f} %)")
        workers = DataLoader(cached_ds, batch_size=bs, shuffle=True, num_workers=2, persistent_workers=True)
        torch.set_num_threads(os.cpu_count() or 1)  # the training step uses every core, as in training
        mem, fed = step_throughput(p, workers, args.steps)
        torch.set_num_threads(1)
        print(f"  training step on batches in memory: {mem:.1f} samples/s; fed by the bundle loader with 2 workers: "
              f"{fed:.1f} samples/s -> the loader costs {100 * max(0.0, 1 - fed / mem):.0f} % of a CPU epoch")
        summary.update({f"ratio_cached_vs_naive_{key}": round(r_cached / r_naive, 2),
                        f"ratio_cached_vs_naive_nometa_{key}": round(r_cached / r_nm, 2),
                        f"samples_per_s_naive_{key}": round(r_naive, 1),
                        f"samples_per_s_cached_{key}": round(r_cached, 1),
                        f"cache_fill_s_{key}": round(t_cache, 1),
                        f"stage_ms_{key}": {k: round(v, 2) for k, v in stages.items()},
                        f"train_samples_per_s_in_memory_{key}": round(mem, 1),
                        f"train_samples_per_s_loader2_{key}": round(fed, 1),
                        f"loader_share_of_epoch_{key}": round(max(0.0, 1 - fed / mem), 3)})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
