"""Benchmark: `medpipe prepare cxr14`'s three speed claims, side by side in one run.

(a) Parsing and splitting the full 112,120-row label file (the real ``Data_Entry_2017_v2020.csv``
    when present, else a synthesized file of the same size): the converter's reader, per-patient
    label vectors for all 30,805 patients and the 5-fold multi-label iterative stratification, cold
    (imports included) and warm; a pandas ``read_csv`` + ``get_dummies`` read is shown beside it.
    Target: <= 5 s.
(b) Checking images as prepare does by default (PNG header and end: size, mode, truncation) vs
    decoding every pixel (``--verify decode``), on synthesized 1024x1024 chest X-rays; also both
    as whole ``prepare`` runs. Target: >= 5x.
(c) A training-style loader (the ``cxr14_cls`` bundle's ``LoadGrayd`` + ``Resized(256, area)``)
    over the ``--cache-size 256`` copies vs over the 1024-px originals. Target: >= 5x.

Usage:
    python benchmarks/bench_prepare_cxr14.py [--src ../shared/data/ChestX-ray14] [--images 24] [--repeat 3]

The last line is one JSON object; its ``ratio_*`` keys: ``ratio_parse_split_target`` (5 s / cold
time: >= 1 meets the target), ``ratio_check_vs_decode`` (per image), ``ratio_prepare_header_vs_decode``
(whole runs), ``ratio_cache_loader`` (loader epoch time, originals / cache).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_SRC = Path(__file__).resolve().parents[1].parent / "shared/data/ChestX-ray14"
REAL_ROWS = 112_120


def synth_label_file(path: Path, rows: int = REAL_ROWS, seed: int = 0) -> Path:
    """A label file of ``rows`` rows in the 2017 format (trailing commas, some 058Y ages), ~30.8k patients."""
    import numpy as np

    from data_prep.cxr14 import layout as L

    rng = np.random.default_rng(seed)
    prev = np.array([0.103, 0.025, 0.119, 0.177, 0.052, 0.056, 0.013, 0.047, 0.042, 0.021, 0.022, 0.015, 0.03, 0.002])
    lines, pid, fu = [L.DATA_ENTRY_2017_HEADER], 1, 0
    for i in range(rows):
        if fu and rng.random() < 0.27:  # ~3.6 images per patient, like the real 112,120 / 30,805
            pid, fu = pid + 1, 0
        have = [f for f, p in zip(L.FINDINGS, prev) if rng.random() < p]
        age = int(rng.integers(1, 95))
        lines.append(f"{pid:08d}_{fu:03d}.png,{'|'.join(sorted(have)) or L.NO_FINDING},{fu},{pid},"
                     f"{f'{age:03d}Y' if i % 7 == 0 else age},{'MF'[i % 2]},PA,2500,2048,0.143,0.143,")
        fu += 1
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_and_split(path: Path, folds: int = 5, seed: int = 12345) -> dict:
    """What prepare does with the label file: read it, per-patient label vectors, iterative stratification."""
    from data_prep.cxr14 import layout as L
    from data_prep.cxr14 import tables as T
    from medpipe.data.splits import multilabel_patient_kfold

    t0 = time.perf_counter()
    table = T.read_label_file(path)
    t1 = time.perf_counter()
    vec: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    for r in table.rows.values():
        v = vec.setdefault(r.patient, [0] * len(L.FINDINGS))
        for f in r.findings:
            v[L.FINDINGS.index(f)] = 1
        sizes[r.patient] = sizes.get(r.patient, 0) + 1
    fold_of, _ = multilabel_patient_kfold(vec, sizes, folds=folds, seed=seed)
    t2 = time.perf_counter()
    return {"rows": len(table.rows), "patients": len(vec), "parse_s": t1 - t0, "split_s": t2 - t1,
            "total_s": t2 - t0, "folds": len(set(fold_of.values()))}


def pandas_read(path: Path) -> float:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_csv(path)
    df["Finding Labels"].str.get_dummies("|")
    return time.perf_counter() - t0


def best(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="the real sample (for its label file)")
    ap.add_argument("--images", type=int, default=24, help="about this many synthesized 1024-px images")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cxr14-"))
    res: dict = {"cores": os.cpu_count()}
    try:
        # ---------------------------------------------------------------- (a) parse + split
        real = args.src / "Data_Entry_2017_v2020.csv"
        if real.is_file():
            label_file, res["label_file"] = real, str(real)
        else:
            print(f"note: real label file not found at {real}; synthesizing a {REAL_ROWS}-row one instead")
            label_file = synth_label_file(work / "Data_Entry_2017.csv")
            res["label_file"] = f"synthesized ({REAL_ROWS} rows)"
        cold = parse_and_split(label_file)  # first: includes importing the stratifier (scikit-learn)
        warm = min((parse_and_split(label_file) for _ in range(args.repeat)), key=lambda r: r["total_s"])
        t_pd = best(lambda: pandas_read(label_file), args.repeat)
        print(f"(a) label file {res['label_file']}: {cold['rows']} rows, {cold['patients']} patients")
        print(f"    parse + split into {cold['folds']} folds: cold {cold['total_s']:.2f} s (parse {cold['parse_s']:.2f} s, "
              f"split {cold['split_s']:.2f} s, imports included); warm {warm['total_s']:.2f} s  (target <= 5 s)")
        print(f"    for reference, pandas read_csv + get_dummies alone: {t_pd:.2f} s (no split, no checks)")
        res.update({"rows": cold["rows"], "patients": cold["patients"], "parse_split_cold_s": round(cold["total_s"], 3),
                    "parse_s": round(cold["parse_s"], 3), "split_cold_s": round(cold["split_s"], 3),
                    "parse_split_warm_s": round(warm["total_s"], 3), "pandas_read_s": round(t_pd, 3)})

        # ---------------------------------------------------------------- (b) checking vs decoding
        from data_prep import cxr14
        from data_prep.cxr14.synth import synthesize
        from medpipe.io.images import decode_image, read_image_info

        t0 = time.perf_counter()
        s = synthesize(work / "raw", patients=max(5, args.images // 3), size=1024, seed=1)
        t_synth = time.perf_counter() - t0
        pngs = sorted((work / "raw").glob("images_*/images/*.png"))
        mb = sum(p.stat().st_size for p in pngs) / 1e6
        for p in pngs:  # warm the page cache for both sides
            p.read_bytes()
        t_check = best(lambda: [read_image_info(p) for p in pngs], args.repeat) / len(pngs)
        t_decode = best(lambda: [decode_image(p)[0].close() for p in pngs], args.repeat) / len(pngs)
        print(f"(b) {len(pngs)} synthesized 1024x1024 PNGs ({mb / len(pngs):.2f} MB each; made in {t_synth:.1f} s)")
        print(f"    check (header + end, prepare's default): {1000 * t_check:.3f} ms/image; decode every pixel: "
              f"{1000 * t_decode:.1f} ms/image; {t_decode / t_check:.0f}x  (target >= 5x)")
        runs = {}
        for verify in ("header", "decode"):
            ts = []
            for i in range(args.repeat):
                out = work / f"prep-{verify}-{i}"
                t0 = time.perf_counter()
                cxr14.prepare(work / "raw", out, {"verify": verify, "link": "hardlink", "folds": 2},
                              workers=args.workers, progress=None)
                ts.append(time.perf_counter() - t0)
                shutil.rmtree(out)
            runs[verify] = min(ts)
        print(f"    whole prepare runs (hard links): --verify header {runs['header']:.2f} s, --verify decode "
              f"{runs['decode']:.2f} s; {runs['decode'] / runs['header']:.1f}x (fixed costs included)")
        res.update({"images": len(pngs), "mb_per_image": round(mb / len(pngs), 3), "check_ms": round(1000 * t_check, 4),
                    "decode_ms": round(1000 * t_decode, 2), "prepare_header_s": round(runs["header"], 3),
                    "prepare_decode_s": round(runs["decode"], 3)})

        # ---------------------------------------------------------------- (c) loader: cache vs originals
        from monai.transforms import Compose, Resized

        from medpipe.transforms.io import LoadGrayd

        orig, cached = work / "prep-orig", work / "prep-cache"
        cxr14.prepare(work / "raw", orig, {"link": "hardlink", "folds": 2}, workers=args.workers, progress=None)
        cxr14.prepare(work / "raw", cached, {"cache_size": 256, "folds": 2}, workers=args.workers, progress=None)
        load = Compose([LoadGrayd(keys="image"), Resized(keys="image", spatial_size=(256, 256), mode="area")])

        def epoch(root: Path):
            dl = json.loads((root / "datalist.json").read_text())
            for r in dl["training"] + dl.get("test", []):
                x = load({"image": str(root / r["image"])})["image"]
                assert tuple(x.shape) == (1, 256, 256)

        epoch(orig), epoch(cached)  # warm-up (imports, page cache)
        t_orig = best(lambda: epoch(orig), args.repeat)
        t_cache = best(lambda: epoch(cached), args.repeat)
        print(f"(c) loader (LoadGrayd + Resized(256, area)), one epoch over {len(pngs)} images: originals "
              f"{t_orig:.3f} s, --cache-size 256 copies {t_cache:.3f} s; {t_orig / t_cache:.1f}x  (target >= 5x)")
        res.update({"loader_originals_s": round(t_orig, 4), "loader_cache_s": round(t_cache, 4)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.update({"ratio_parse_split_target": round(5.0 / res["parse_split_cold_s"], 3),
                "ratio_check_vs_decode": round(res["decode_ms"] / res["check_ms"], 1),
                "ratio_prepare_header_vs_decode": round(res["prepare_decode_s"] / res["prepare_header_s"], 3),
                "ratio_cache_loader": round(res["loader_originals_s"] / res["loader_cache_s"], 2)})
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
