"""Benchmark: samples/s of each bundle's training loader (as configured) vs a naive loader.

The bundles cache every deterministic transform (decode, resize, intensity normalization) in a
MONAI ``CacheDataset`` and run only the random augmentations each epoch. The naive baseline is the
same transform chain in a plain ``Dataset``: every image is decoded and transformed every epoch.
Both loaders are built from the bundle's own ``train.json`` (same data, transforms, batch size and
workers) and timed side by side over the same number of epochs.

Usage:
    python benchmarks/bench_loaders.py [--dataset_dir /tmp/phe] [--bundles sich_cls sich_seg]
                                       [--image_size 256] [--epochs 2] [--num_workers 0]

``--dataset_dir`` defaults to data/phe-sich (``make demo``); prepare the real sample with
``medpipe prepare phe-sich --src ../shared/data/PHE-SICH-CT-IDS --out /tmp/phe`` to measure on it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build(bundle: str, overrides: dict):
    from monai.bundle import ConfigParser

    os.chdir(REPO)
    p = ConfigParser()
    p.read_config(f"bundles/{bundle}/configs/train.json")
    p.update(overrides)
    if bundle == "sich_seg":  # the seg preprocessing needs the training folds' intensity statistics
        import medpipe.data.stats as st

        st.load_or_compute_stats(p.get_parsed_content("stats_path"), [d["image"] for d in p.get_parsed_content("train#data")])
    return p


def time_epochs(loader, epochs: int) -> tuple[float, int]:
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            n += batch["image"].shape[0]
    return time.perf_counter() - t0, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset_dir", default=str(REPO / "data/phe-sich"))
    ap.add_argument("--bundles", nargs="+", default=["sich_cls", "sich_seg"])
    ap.add_argument("--image_size", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--num_workers", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training records")
    args = ap.parse_args()
    if not (Path(args.dataset_dir) / "datalist.json").is_file():
        print(f"skip: no prepared dataset at {args.dataset_dir} (run `make demo` or medpipe prepare)")
        return 0
    import torch
    from monai.data import DataLoader, Dataset

    torch.set_num_threads(os.cpu_count() or 1)
    out_dir = Path("/tmp/medpipe-bench-loaders")
    print(f"dataset: {args.dataset_dir}; image_size {args.image_size}; {args.epochs} epochs each; "
          f"num_workers {args.num_workers}; cores {os.cpu_count()}")
    for bundle in args.bundles:
        ov = {"dataset_dir": str(Path(args.dataset_dir).resolve()), "image_size": args.image_size,
              "num_workers": args.num_workers, "output_dir": str(out_dir / bundle), "limit": args.limit}
        p = build(bundle, ov)
        data = p.get_parsed_content("train#data")
        bs = p.get_parsed_content("batch_size")
        t0 = time.perf_counter()
        cached_ds = p.get_parsed_content("train#dataset")  # CacheDataset: fills its cache here
        t_cache = time.perf_counter() - t0
        cached = DataLoader(cached_ds, batch_size=bs, shuffle=True, num_workers=args.num_workers)
        naive = DataLoader(Dataset(data, transform=p.get_parsed_content("train#preprocessing")), batch_size=bs,
                           shuffle=True, num_workers=args.num_workers)
        t_naive, n_naive = time_epochs(naive, args.epochs)
        t_cached, n_cached = time_epochs(cached, args.epochs)
        r_naive, r_cached = n_naive / t_naive, n_cached / t_cached
        amort = n_cached / (t_cached + t_cache)
        print(f"{bundle}: {len(data)} records, batch {bs}")
        print(f"  naive loader (decode + transform every epoch): {r_naive:8.1f} samples/s")
        print(f"  bundle loader (CacheDataset):                 {r_cached:8.1f} samples/s "
              f"(cache filled once in {t_cache:.1f} s; {amort:.1f} samples/s including it)")
        print(f"  ratio: {r_cached / r_naive:.1f}x per epoch after caching (target >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
