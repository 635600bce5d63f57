"""Benchmark: `medpipe prepare phe-sich` against a straightforward serial converter, side by side.

The baseline does what the seed project did: walk the PNG subset, parse each XML, open (decode)
each image and mask, copy image and mask into the output and into a YOLO tree, write the YOLO label.
medpipe does the same decoding and copying (every image decoded fully, PNG chunk CRCs verified,
images copied by default) and more checking (mask value sets, pairing quirks, box order, accounting,
record schema, reports), over all cores.

Usage:
    python benchmarks/bench_prepare_phe_sich.py [--src ../shared/data/PHE-SICH-CT-IDS] [--repeat 3]

Prints the wall time of each (best of --repeat, fresh output folders each time), the ratio, and the
time of an unchanged re-run of medpipe, and the CPU time of each (all processes: a fairer figure on a
shared machine); the last line is one JSON object (``ratio_*`` keys: baseline / medpipe wall time,
baseline / medpipe CPU time, and re-run / full-run time).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_SRC = Path(__file__).resolve().parents[1].parent / "shared/data/PHE-SICH-CT-IDS"


def baseline(src: Path, out: Path, seed: int = 12345) -> int:
    """Seed-project style: serial, decode everything, copy everything."""
    import numpy as np
    from PIL import Image

    root = src / "SubdatasetC_PNG"
    rows = []
    for img_path in sorted((root / "set").glob("image*/*.png")):
        folder = img_path.parent.name.replace("image", "")
        stem = img_path.stem
        mask_path = root / "label" / f"label{folder}" / img_path.name
        xml_path = root / "annotation" / f"annotation{folder}" / f"{stem}.xml"
        if not xml_path.exists():  # patient 13's 3-digit XML names
            xml_path = root / "annotation" / f"annotation{folder}" / f"{stem[1:]}.xml"
        img = np.array(Image.open(img_path).convert("L"))
        mask = np.array(Image.open(mask_path).convert("L"))
        boxes = []
        if xml_path.exists():
            for obj in ET.parse(xml_path).getroot().iter("object"):
                bb = obj.find("bndbox")
                boxes.append([float(bb.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax")])
        rows.append((img_path, mask_path, stem.split("_")[0], boxes, img.shape, int(mask.max() > 0)))
    patients = sorted({r[2] for r in rows})
    random.Random(seed).shuffle(patients)
    val = set(patients[: len(patients) // 5])
    for d in ("images", "masks", "yolo/images/train", "yolo/images/val", "yolo/labels/train", "yolo/labels/val"):
        (out / d).mkdir(parents=True, exist_ok=True)
    for img_path, mask_path, pid, boxes, (h, w), _ in rows:
        split = "val" if pid in val else "train"
        shutil.copy(img_path, out / "images" / img_path.name)
        shutil.copy(mask_path, out / "masks" / mask_path.name)
        shutil.copy(img_path, out / f"yolo/images/{split}" / img_path.name)
        with open(out / f"yolo/labels/{split}" / f"{img_path.stem}.txt", "w") as f:
            for x0, y0, x1, y1 in boxes:
                f.write(f"0 {(x0 + x1) / 2 / w} {(y0 + y1) / 2 / h} {(x1 - x0) / w} {(y1 - y0) / h}\n")
    return len(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    if not (args.src / "SubdatasetC_PNG").is_dir():
        print(f"skip: real sample not found at {args.src} (needs SubdatasetC_PNG)")
        print(json.dumps({"skipped": f"no real sample at {args.src}", "ratio_speedup": None, "ratio_rerun_to_full": None}))
        return 0
    from data_prep import phe_sich

    import resource

    def cpu() -> float:  # this process and its reaped workers: robust to other load on a shared machine
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    work = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    t_base, t_med, c_base, c_med = [], [], [], []
    try:
        for i in range(args.repeat):
            # alternate order so that page-cache warmth favours neither side
            order = ("base", "med") if i % 2 == 0 else ("med", "base")
            for which in order:
                out = work / f"{which}{i}"
                t0, c0 = time.perf_counter(), cpu()
                if which == "base":
                    n_base = baseline(args.src, out)
                    t_base.append(time.perf_counter() - t0)
                    c_base.append(cpu() - c0)
                else:
                    rep = phe_sich.prepare(args.src, out, workers=args.workers, progress=None)
                    t_med.append(time.perf_counter() - t0)
                    c_med.append(cpu() - c0)
        t0 = time.perf_counter()
        again = phe_sich.prepare(args.src, work / "med0", workers=args.workers, progress=None)
        t_rerun = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    b, m = min(t_base), min(t_med)
    print(f"real sample: {args.src}")
    print(f"cores: {os.cpu_count()}, medpipe workers: {rep['workers']}")
    print(f"baseline (serial, decode + copy):  {n_base} slices  best {b:.3f} s  (all: {', '.join(f'{t:.2f}' for t in t_base)})")
    print(f"medpipe prepare phe-sich:          {rep['records']} slices  best {m:.3f} s  (all: {', '.join(f'{t:.2f}' for t in t_med)})")
    print(f"speed-up: {b / m:.2f}x  (target >= 2x)")
    cb, cm = min(c_base), min(c_med)
    print(f"CPU time (all processes): baseline {cb:.2f} s, medpipe {cm:.2f} s  (ratio {cb / cm:.2f})")
    print(f"unchanged re-run: {t_rerun:.3f} s, up_to_date={again.get('up_to_date', False)}  (target < 1 s)")
    print(f"medpipe also checked: {rep['accounting']['files_seen']} files accounted, "
          f"{len(rep['anomalies'])} anomalies, {len(rep['skipped'])} skipped")
    print(json.dumps({"records": rep["records"], "baseline_s": round(b, 3), "medpipe_s": round(m, 3),
                      "rerun_s": round(t_rerun, 3), "up_to_date": bool(again.get("up_to_date")),
                      "workers": rep["workers"], "cores": os.cpu_count(),
                      "baseline_cpu_s": round(cb, 3), "medpipe_cpu_s": round(cm, 3),
                      "ratio_speedup": round(b / m, 3), "ratio_cpu": round(cb / cm, 3),
                      "ratio_rerun_to_full": round(t_rerun / m, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
