"""One report per pipeline run: a self-contained HTML file (images embedded) and its Markdown twin.

The report reads only what the stages wrote (prepare_report.json, each bundle's eval/metrics.json,
PNG plots and predictions CSVs); it computes nothing new except the side-by-side comparison of the
three slice classifiers on the validation slices they share.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import shutil
import time
from pathlib import Path

from medpipe.utils.fs import atomic_write_text

#: what the seed project reported on the full dataset with a slice-level split (patients leak)
SEED_NUMBERS = {
    "sich_cls": {"accuracy": 0.983, "f1": 0.959},
    "sich_det": {"map50": 0.99, "map50_95": 0.71, "slice recall": 0.993, "slice precision": 0.892},
    "sich_seg": {"dice": 0.394, "iou": 0.245, "sensitivity": 0.588, "specificity": 0.9995},
    "seg_to_cls": {"accuracy": 0.977, "recall": 0.888},
}
BUNDLE_TITLES = {"sich_cls": "Slice classifier (sich_cls)", "sich_det": "Detector (sich_det, YOLOv8)",
                 "sich_seg": "Segmenter (sich_seg, nnU-Net-style DynUNet)"}
PLOTS = {
    "sich_cls": ["eval/training_curves.png", "eval/confusion_matrix.png", "eval/roc.png", "eval/gradcam/*.png"],
    "sich_det": ["eval/training_curves.png", "eval/confusion_matrix.png", "eval/conf_sweep.png", "eval/boxes/*.png"],
    "sich_seg": ["eval/training_curves.png", "eval/pixel_confusion.png", "eval/seg_to_cls_sweep.png", "eval/overlays/*.png"],
}
MAX_PER_GLOB = 4


def _read_json(p: Path):
    return json.loads(p.read_text()) if p.is_file() else None


def _read_csv(p: Path) -> list[dict]:
    if not p.is_file():
        return []
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _images(run: Path, patterns: list[str]) -> list[Path]:
    """Plots to show; for a glob, a few files taken round-robin over their name prefixes (TP_, FP_, ...)."""
    out = []
    for pat in patterns:
        found = sorted(run.glob(pat))
        if "*" not in pat:
            out += found
            continue
        groups: dict[str, list[Path]] = {}
        for f in found:
            groups.setdefault(f.name.split("_")[0], []).append(f)
        picked = []
        while len(picked) < MAX_PER_GLOB and any(groups.values()):
            for key in sorted(groups):
                if groups[key] and len(picked) < MAX_PER_GLOB:
                    picked.append(groups[key].pop(0))
        out += picked
    return [p for p in out if p.is_file()]


def _metric_rows(bundle: str, m: dict) -> list[tuple[str, object]]:
    if bundle == "sich_seg":
        keys = ["dice", "iou", "sensitivity", "specificity", "dice_per_case_mean", "empty_case_false_positive_rate", "n_cases"]
        rows = [(k, m.get(k)) for k in keys]
        s = m.get("seg_to_cls") or {}
        rows += [(f"seg->cls {k} (A = {s.get('area_threshold')} px, {s.get('selection')})", s.get(k))
                 for k in ("accuracy", "precision", "recall", "f1", "specificity") if k in s]
        return rows
    if bundle == "sich_det":
        rows = [(k, m.get(k)) for k in ("map50", "map50_95", "precision", "recall")]
        sl = m.get("slice_level") or {}
        rows += [(f"slice-level {k}", sl.get(k)) for k in ("accuracy", "precision", "recall", "f1", "specificity", "auroc")]
        return rows
    return [(k, m.get(k)) for k in ("accuracy", "precision", "recall", "f1", "specificity", "auroc", "n")]


def _slice_tables(work: Path) -> dict[str, list[dict]]:
    """Each classifier's per-slice decisions on the validation slices, for the side-by-side table."""
    tables = {}
    cls = _read_csv(work / "sich_cls" / "predictions.csv")
    if cls:
        tables["classifier (sich_cls)"] = [{"patient": r["patient"], "slice": int(r["slice"]), "label": int(r["label"]),
                                            "probability": float(r["probability"])} for r in cls if r.get("label") not in (None, "")]
    det = _read_csv(work / "sich_det" / "slice_predictions.csv")
    if det:
        tables["detector (sich_det)"] = [{"patient": r["patient"], "slice": int(r["slice"]), "label": int(r["label"]),
                                          "probability": float(r["probability"]), "prediction": int(r["prediction"])}
                                         for r in det]
    seg = _read_csv(work / "sich_seg" / "predictions.csv")
    seg_m = _read_json(work / "sich_seg" / "eval" / "metrics.json") or {}
    a = (seg_m.get("seg_to_cls") or {}).get("area_threshold")
    if seg and a is not None:
        tables["segmenter (sich_seg, area >= A)"] = [
            {"patient": r["patient"], "slice": int(r["slice"]), "label": int(r["label"]),
             "probability": float(r["pred_area"]), "prediction": int(float(r["pred_area"]) >= float(a))} for r in seg]
    return tables


def build_report(work_dir, out_dir, pipeline: str = "phe_sich", params: dict | None = None,
                 data_dir=None) -> dict:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/report.md`` (+ ``out_dir/images/``).

    Args:
        work_dir: the pipeline's work folder (``sich_cls/``, ``sich_det/``, ``sich_seg/``).
        out_dir: where the report goes.
        pipeline: pipeline name for the title.
        params: the pipeline parameters, listed in the report.
        data_dir: the prepared dataset (default ``work_dir/data``).

    Returns:
        ``{"html": path, "md": path}``.
    """
    from medpipe.evaluation.seg_to_cls import compare_slice_classifiers

    work, out = Path(work_dir), Path(out_dir)
    img_dir = out / "images"
    if img_dir.exists():
        shutil.rmtree(img_dir)
    img_dir.mkdir(parents=True)
    H: list[str] = []
    M: list[str] = []

    def both(h: str, m: str) -> None:
        H.append(h)
        M.append(m)

    def table(rows: list[list], header: list[str]) -> None:
        h = "<table><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in header) + "</tr>"
        h += "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows) + "</table>"
        m = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
        m += "".join("| " + " | ".join(_fmt(c) for c in r) + " |\n" for r in rows)
        both(h, m)

    def figure(p: Path, caption: str) -> None:
        name = f"{len(list(img_dir.iterdir())):02d}_{p.parent.name}_{p.name}"
        shutil.copyfile(p, img_dir / name)
        b64 = base64.b64encode(p.read_bytes()).decode()
        both(f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(caption)}"><figcaption>'
             f"{html.escape(caption)}</figcaption></figure>", f"![{caption}](images/{name})\n")

    title = f"medpipe report: {pipeline}"
    both(f"<h1>{html.escape(title)}</h1><p>Generated {time.strftime('%Y-%m-%d %H:%M')} from "
         f"<code>{html.escape(str(work.resolve()))}</code>.</p>",
         f"# {title}\n\nGenerated {time.strftime('%Y-%m-%d %H:%M')} from `{work.resolve()}`.\n")
    if params:
        both("<h2>Settings</h2>", "## Settings\n")
        table([[k, v] for k, v in params.items()], ["parameter", "value"])

    rep = _read_json(Path(data_dir or work / "data") / "prepare_report.json")
    both("<h2>Dataset</h2>", "## Dataset\n")
    if rep:
        src = rep["source"]
        both(f"<p>{rep['records']} slices from {rep['patients']} patients "
             f"({html.escape(src['subset_used'])} of <code>{html.escape(src['path'])}</code>); "
             f"{rep['positives']} positive slices (VOC box), {rep['mask_nonempty']} non-empty PHE masks; "
             f"{len(rep['folds'])} patient-level folds (seed {rep['options']['seed']}).</p>",
             f"{rep['records']} slices from {rep['patients']} patients ({src['subset_used']} of `{src['path']}`); "
             f"{rep['positives']} positive slices (VOC box), {rep['mask_nonempty']} non-empty PHE masks; "
             f"{len(rep['folds'])} patient-level folds (seed {rep['options']['seed']}).\n")
        table([[f["fold"], f["patients"], f["records"], f["positives"]] for f in rep["folds"]],
              ["fold", "patients", "slices", "positive slices"])
        a = rep["accounting"]
        kinds = rep.get("anomaly_counts") or {}
        both(f"<p>Files: {a['files_seen']} seen = {a['files_in_records']} in records + {a['files_skipped']} skipped. "
             f"Anomalies: {html.escape(', '.join(f'{k} x{v}' for k, v in kinds.items()) or 'none')}. "
             f"Skipped entries: {len(rep['skipped'])}.</p>",
             f"Files: {a['files_seen']} seen = {a['files_in_records']} in records + {a['files_skipped']} skipped. "
             f"Anomalies: {', '.join(f'{k} x{v}' for k, v in kinds.items()) or 'none'}. "
             f"Skipped entries: {len(rep['skipped'])}.\n")
    else:
        both("<p>No prepare_report.json found.</p>", "No prepare_report.json found.\n")

    for bundle in ("sich_cls", "sich_det", "sich_seg"):
        run = work / bundle
        m = _read_json(run / "eval" / "metrics.json")
        both(f"<h2>{BUNDLE_TITLES[bundle]}</h2>", f"## {BUNDLE_TITLES[bundle]}\n")
        if not m:
            both("<p>Not run (no eval/metrics.json).</p>", "Not run (no eval/metrics.json).\n")
            continue
        cfg = (_read_json(run / "run_config.json") or {}).get("settings", {})
        hist = _read_json(run / "history.json") or {}
        both(f"<p>Validation fold {html.escape(str(m.get('fold', cfg.get('fold', '?'))))}; "
             f"{len(hist.get('epoch', []))} epochs trained; settings: "
             f"{html.escape(', '.join(f'{k}={v}' for k, v in cfg.items()))}.</p>",
             f"Validation fold {m.get('fold', cfg.get('fold', '?'))}; {len(hist.get('epoch', []))} epochs trained; "
             f"settings: {', '.join(f'{k}={v}' for k, v in cfg.items())}.\n")
        seed = SEED_NUMBERS.get(bundle, {})
        rows = []
        for k, v in _metric_rows(bundle, m):
            if k.startswith("seg->cls "):
                ref = SEED_NUMBERS["seg_to_cls"].get(k.split()[1])
            else:
                ref = next((sv for sk, sv in seed.items() if sk == k or k == f"slice-level {sk.split()[-1]}" and
                            sk.startswith("slice")), None)
            rows.append([k, v, ref])
        table(rows, ["metric", "medpipe (patient-level split)", "seed project (slice-level split, leaks patients)"])
        for p in _images(run, PLOTS[bundle]):
            figure(p, f"{bundle}: {p.relative_to(run)}")

    both("<h2>Three slice classifiers on the same validation slices</h2>",
         "## Three slice classifiers on the same validation slices\n")
    tables = _slice_tables(work)
    if len(tables) >= 2:
        md, _ = compare_slice_classifiers(tables, class_names=("no_phe", "phe"))
        lines = [ln for ln in md.strip().splitlines() if ln.startswith("|")]
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        body = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
        table(body, header)
        s = SEED_NUMBERS
        both(f"<p>Seed project, for reference (full dataset, slice-level split that puts slices of the same patient "
             f"in training and validation, so optimistic): classifier accuracy {s['sich_cls']['accuracy']} / F1 "
             f"{s['sich_cls']['f1']}; detector slice recall {s['sich_det']['slice recall']} / precision "
             f"{s['sich_det']['slice precision']}; segmentation-derived accuracy {s['seg_to_cls']['accuracy']} / recall "
             f"{s['seg_to_cls']['recall']}. medpipe's numbers come from patient-level folds.</p>",
             f"Seed project, for reference (full dataset, slice-level split that puts slices of the same patient in "
             f"training and validation, so optimistic): classifier accuracy {s['sich_cls']['accuracy']} / F1 "
             f"{s['sich_cls']['f1']}; detector slice recall {s['sich_det']['slice recall']} / precision "
             f"{s['sich_det']['slice precision']}; segmentation-derived accuracy {s['seg_to_cls']['accuracy']} / recall "
             f"{s['seg_to_cls']['recall']}. medpipe's numbers come from patient-level folds.\n")
    else:
        both("<p>Fewer than two slice classifiers have predictions; nothing to compare.</p>",
             "Fewer than two slice classifiers have predictions; nothing to compare.\n")

    css = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.45}"
           "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}"
           "th{background:#f2f2f2}figure{display:inline-block;margin:8px;vertical-align:top;max-width:520px}"
           "img{max-width:100%;border:1px solid #ddd}figcaption{font-size:0.85em;color:#555}code{background:#f5f5f5}")
    html_text = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                 f"<style>{css}</style></head><body>" + "\n".join(H) + "</body></html>\n")
    for name, text in (("report.html", html_text), ("report.md", "\n".join(M))):
        atomic_write_text(out / name, text)
    return {"html": str(out / "report.html"), "md": str(out / "report.md")}
