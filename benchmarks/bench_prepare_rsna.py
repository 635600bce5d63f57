"""Benchmark: `medpipe prepare rsna-pneumonia` converts DICOMs to the PNG cache in worker processes.

Side by side in one run, on synthesized 1024x1024 chest radiographs in the real layout (8-bit JPEG
Baseline DICOMs like the real download; ``--mixed`` adds the synthesizer's 12-bit MONOCHROME1,
rescaled and 10-bit encodings):

(a) the conversion step alone (read the DICOM, map it to 8 bit, resize to ``--cache-size``, write
    the PNG, scale the boxes): the converter's own ``convert`` over every file in a plain serial
    loop, then through the shared worker pool (:func:`medpipe.prepare.pool.map_units`) with
    ``--workers`` processes. Target: >= 1.8x on 2 cores.
(b) whole ``prepare`` runs with ``--workers 1`` and ``--workers N`` (fixed costs included: CSV
    parsing, the split, the YOLO export, the reports).

Usage:
    python benchmarks/bench_prepare_rsna.py [--files 200] [--size 1024] [--cache-size 256] [--workers N] [--repeat 3]

The last line is one JSON object; its ``ratio_*`` keys: ``ratio_workers_vs_serial`` (conversion
step, serial loop time / worker-pool time; >= 1.8 meets the target) and
``ratio_prepare_workers_vs_serial`` (whole runs).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def busy_cores(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes over ``seconds`` (from /proc/stat while this one sleeps; 0 elsewhere)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except OSError:
        return 0.0
    return (1 - (i1 - i0) / max(1, t1 - t0)) * (os.cpu_count() or 1)


def make_download(root: Path, files: int, size: int, mixed: bool, distinct: int = 8) -> dict:
    """``files`` training DICOMs (+ label CSVs) in the real layout; ``distinct`` drawings, cycled (drawing a
    1024-px radiograph takes ~1 s; reading it back is what is measured)."""
    from data_prep.rsna_pneumonia import layout as L
    from data_prep.rsna_pneumonia.synth import _patient_id, dicom_bytes, draw_patient, variant_of

    (root / L.TRAIN_DIR).mkdir(parents=True)
    drawn = [draw_patient(0, i, L.CLASSES[i % 3], size) for i in range(distinct)]
    labels, classes = [",".join(L.LABEL_COLUMNS)], [",".join(L.CLASS_COLUMNS)]
    for i in range(files):
        img, boxes, view, sex, age = drawn[i % distinct]
        pid = _patient_id(1, i)
        head = {"patient_id": pid, "view": view, "sex": sex, "age": str(age), "spacing": 0.143,
                "study": f"1.2.826.0.1.{i}.1", "series": f"1.2.826.0.1.{i}.2", "instance": f"1.2.826.0.1.{i}.3"}
        (root / L.TRAIN_DIR / f"{pid}.dcm").write_bytes(dicom_bytes(img, head, variant_of(i) if mixed else "jpeg"))
        cls = L.CLASSES[(i % distinct) % 3]
        rows = [f"{pid},{x},{y},{w},{h},1" for x, y, w, h in boxes] or [f"{pid},,,,,0"]
        labels += rows
        classes += [f"{pid},{cls}"] * len(rows)
    (root / L.LABELS_FILE).write_text("\n".join(labels) + "\n")
    (root / L.CLASS_FILE).write_text("\n".join(classes) + "\n")
    dcms = sorted((root / L.TRAIN_DIR).glob("*.dcm"))
    return {"files": len(dcms), "mb": sum(p.stat().st_size for p in dcms) / 1e6}


def conversion_step(src: Path, work: Path, workers: int, cache_size: int, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` seconds of the converter's ``convert`` over every unit: serial loop, then worker pool."""
    from data_prep import get_spec
    from medpipe.prepare.pool import map_units
    from medpipe.utils.fs import scan_files

    spec = get_spec("rsna-pneumonia")
    opts = spec.resolve_options({"cache_size": cache_size})
    conv = spec.load_converter()(spec, opts)
    plan = conv.plan(src, scan_files(src), {})

    def fresh(name: str) -> Path:
        out = work / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        conv.setup(out)
        return out

    def serial() -> None:
        out = fresh("serial")
        results = [conv.convert(u, str(src), str(out)) for u in plan.units]
        assert sum(r.used for r in results) == len(plan.units)

    def pooled() -> None:
        out = fresh("pool")
        fn = functools.partial(conv.convert, src=str(src), out=str(out))
        results = map_units(fn, plan.units, workers)
        assert sum(r.used for r in results) == len(plan.units)

    serial()  # warm-up: imports, page cache
    times = {"serial": [], "pool": []}
    for _ in range(repeat):  # interleaved, so a busy moment on the machine hits both sides
        for name, fn in (("serial", serial), ("pool", pooled)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return min(times["serial"]), min(times["pool"])


def whole_runs(src: Path, work: Path, workers: int, cache_size: int, repeat: int) -> tuple[float, float]:
    from data_prep import rsna_pneumonia

    best = {}
    for w in (1, workers):
        ts = []
        for i in range(repeat):
            out = work / f"prep-{w}-{i}"
            t0 = time.perf_counter()
            rep = rsna_pneumonia.prepare(src, out, {"cache_size": cache_size, "folds": 5}, workers=w, progress=None)
            ts.append(time.perf_counter() - t0)
            assert rep["accounting"]["adds_up"] and not rep["skipped"]
            shutil.rmtree(out)
        best[w] = min(ts)
    return best[1], best[workers]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=200, help="synthesized training DICOMs")
    ap.add_argument("--size", type=int, default=1024, help="DICOM width and height (the real: 1024)")
    ap.add_argument("--cache-size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=None, help="default: all cores, at most 8")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mixed", action="store_true", help="also 12-bit MONOCHROME1 / rescaled / 10-bit DICOMs")
    args = ap.parse_args()
    from medpipe.prepare.pool import default_workers

    workers = args.workers or default_workers()
    work = Path(tempfile.mkdtemp(prefix="bench-rsna-"))
    res: dict = {"cores": os.cpu_count(), "workers": workers, "size": args.size, "cache_size": args.cache_size,
                 "encoding": "mixed" if args.mixed else "jpeg_baseline"}
    try:
        t0 = time.perf_counter()
        d = make_download(work / "raw", args.files, args.size, args.mixed)
        print(f"made {d['files']} {args.size}x{args.size} DICOMs ({res['encoding']}, {d['mb'] / d['files']:.2f} MB "
              f"each) in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} cores, {workers} workers")
        for p in (work / "raw").rglob("*"):  # page cache warm for both sides
            if p.is_file():
                p.read_bytes()
        busy0 = busy_cores()
        t_serial, t_pool = conversion_step(work / "raw", work, workers, args.cache_size, args.repeat)
        n = d["files"]
        print(f"(a) DICOM -> {args.cache_size}-px PNG cache, {n} files: serial loop {t_serial:.2f} s "
              f"({1000 * t_serial / n:.1f} ms/file, {n / t_serial:.0f} files/s); {workers} worker processes "
              f"{t_pool:.2f} s ({n / t_pool:.0f} files/s); {t_serial / t_pool:.2f}x  (target >= 1.8x)")
        p_serial, p_workers = whole_runs(work / "raw", work, workers, args.cache_size, args.repeat)
        print(f"(b) whole prepare runs: --workers 1 {p_serial:.2f} s, --workers {workers} {p_workers:.2f} s; "
              f"{p_serial / p_workers:.2f}x (fixed costs included)")
        busy1 = busy_cores()
        if max(busy0, busy1) > 0.3:
            print(f"note: other processes kept {busy0:.1f} core(s) busy before and {busy1:.1f} after the timed runs; "
                  f"the worker processes compete with them, so these ratios understate the speed-up")
        res.update({"other_busy_cores_before": round(busy0, 2), "other_busy_cores_after": round(busy1, 2)})
        res.update({"files": n, "mb_per_file": round(d["mb"] / n, 3), "serial_s": round(t_serial, 3),
                    "workers_s": round(t_pool, 3), "ms_per_file_serial": round(1000 * t_serial / n, 2),
                    "prepare_serial_s": round(p_serial, 3), "prepare_workers_s": round(p_workers, 3)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.update({"ratio_workers_vs_serial": round(res["serial_s"] / res["workers_s"], 3),
                "ratio_prepare_workers_vs_serial": round(res["prepare_serial_s"] / res["prepare_workers_s"], 3)})
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
