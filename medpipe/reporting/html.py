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


#: nested metric groups shown under a bundle's headline metrics, by task
NESTED = {"detection": ("slice_level", ("accuracy", "precision", "recall", "f1", "specificity", "auroc")),
          "segmentation": ("seg_to_cls", ("accuracy", "precision", "recall", "f1", "specificity"))}


def _metric_rows(spec, m: dict) -> list[tuple[str, object, object]]:
    """``(metric, value, reference)`` rows: the bundle's headline metrics, then its task's nested group."""
    rows = [(k, m.get(k), spec.references.get(k, (None,))[0]) for k in spec.headline]
    if spec.task == "classification" and isinstance(m.get("auroc_per_class"), dict):
        rows += [(f"AUROC {c}", v, spec.references.get(f"auroc_per_class.{c}", (None,))[0])
                 for c, v in m["auroc_per_class"].items()]
    group = NESTED.get(spec.task)
    if group and isinstance(m.get(group[0]), dict):
        sub = m[group[0]]
        label = {"slice_level": "slice level (any box >= conf)",
                 "seg_to_cls": f"seg->cls (area >= {sub.get('area_threshold')} px, {sub.get('selection')})"}[group[0]]
        rows += [(f"{label} {k}", sub.get(k), spec.references.get(f"{group[0]}.{k}", (None,))[0])
                 for k in group[1] if k in sub]
    return rows


def _reference_note(spec) -> str:
    sources = sorted({src for _, src in spec.references.values()})
    return "; ".join(sources)


def _slice_tables(work: Path, specs) -> dict[str, list[dict]]:
    """Each binary slice classifier's per-slice decisions on the validation slices, for the side-by-side table.

    Classification bundles with binary labels contribute their probabilities, detection bundles their
    any-finding slice decisions, segmentation bundles "predicted area >= A" with the A their evaluation chose.
    """
    tables = {}
    for spec in specs:
        run = work / spec.name
        m = _read_json(run / "eval" / "metrics.json") or {}
        if spec.task == "classification" and m.get("kind", "binary") == "binary":
            rows = _read_csv(run / "predictions.csv")
            if rows and "probability" in rows[0]:
                tables[spec.title] = [{"patient": r["patient"], "slice": int(r["slice"]), "label": int(r["label"]),
                                       "probability": float(r["probability"])} for r in rows
                                      if r.get("label") not in (None, "")]
        elif spec.task == "detection":
            rows = _read_csv(run / "slice_predictions.csv")
            if rows:
                tables[spec.title] = [{"patient": r["patient"], "slice": int(r["slice"]), "label": int(r["label"]),
                                       "probability": float(r["probability"]), "prediction": int(r["prediction"])}
                                      for r in rows]
        elif spec.task == "segmentation":
            rows = _read_csv(run / "predictions.csv")
            a = (m.get("seg_to_cls") or {}).get("area_threshold")
            if rows and a is not None:
                tables[f"{spec.title}, area >= A"] = [
                    {"patient": r["patient"], "slice": int(r["slice"]), "label": int(r["label"]),
                     "probability": float(r["pred_area"]), "prediction": int(float(r["pred_area"]) >= float(a))}
                    for r in rows]
    return tables


def build_report(work_dir, out_dir, pipeline: str = "phe_sich", params: dict | None = None,
                 data_dir=None, bundles: list[str] | None = None) -> dict:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/report.md`` (+ ``out_dir/images/``).

    Args:
        work_dir: the pipeline's work folder (``sich_cls/``, ``sich_det/``, ``sich_seg/``).
        out_dir: where the report goes.
        pipeline: pipeline name for the title.
        params: the pipeline parameters, listed in the report.
        data_dir: the prepared dataset (default ``work_dir/data``).
        bundles: the bundles to report (registry names, runs in ``work_dir/<name>``); default every
            registered bundle trained on the prepared dataset's dataset.

    Returns:
        ``{"html": path, "md": path}``.
    """
    from medpipe.bundle.registry import BUNDLES, get_bundle
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
        src = rep.get("source") or {}
        where = f"{src['subset_used']} of " if src.get("subset_used") else ""
        facts = [f"{rep['records']} records from {rep['patients']} patients ({where}{src.get('path', '?')})"]
        for key, what in (("positives", "positive records"), ("mask_nonempty", "non-empty masks")):
            if isinstance(rep.get(key), int):
                facts.append(f"{rep[key]} {what}")
        facts.append(f"{len(rep['folds'])} patient-level folds (seed {rep.get('options', {}).get('seed', '?')})")
        both(f"<p>{html.escape('; '.join(facts))}.</p>", "; ".join(facts) + ".\n")
        table([[f["fold"], f["patients"], f["records"], f.get("positives")] for f in rep["folds"]],
              ["fold", "patients", "records", "positives"])
        a = rep.get("accounting") or {}
        kinds = rep.get("anomaly_counts") or {}
        text = (f"Files: {a.get('files_seen')} seen = {a.get('files_in_records')} in records + "
                f"{a.get('files_skipped')} skipped. Anomalies: {', '.join(f'{k} x{v}' for k, v in kinds.items()) or 'none'}. "
                f"Skipped entries: {len(rep.get('skipped') or [])}.")
        both(f"<p>{html.escape(text)}</p>", text + "\n")
    else:
        both("<p>No prepare_report.json found.</p>", "No prepare_report.json found.\n")

    if bundles is None:
        name = (rep or {}).get("dataset")
        specs = [sp for sp in BUNDLES.values() if name is None or sp.dataset == name]
    else:
        specs = [get_bundle(b) for b in bundles]
    for spec in specs:
        run = work / spec.name
        m = _read_json(run / "eval" / "metrics.json")
        both(f"<h2>{html.escape(spec.title)}</h2>", f"## {spec.title}\n")
        if not m:
            both("<p>Not run (no eval/metrics.json).</p>", "Not run (no eval/metrics.json).\n")
            continue
        cfg = (_read_json(run / "run_config.json") or {}).get("settings", {})
        shown_cfg = {k: cfg[k] for k in ("network_name", "model", "image_size", "patch_size", "batch_size",
                                         "max_epochs", "learning_rate", "fold", "seed", "device", "time_limit_s")
                     if k in cfg}
        hist = _read_json(run / "history.json") or {}
        both(f"<p>Validation fold {html.escape(str(m.get('fold', cfg.get('fold', '?'))))}; "
             f"{len(hist.get('epoch', []))} epochs trained; settings: "
             f"{html.escape(', '.join(f'{k}={v}' for k, v in shown_cfg.items()))}.</p>",
             f"Validation fold {m.get('fold', cfg.get('fold', '?'))}; {len(hist.get('epoch', []))} epochs trained; "
             f"settings: {', '.join(f'{k}={v}' for k, v in shown_cfg.items())}.\n")
        rows = _metric_rows(spec, m)
        if spec.references:
            table([[k, v, r] for k, v, r in rows], ["metric", "medpipe (patient-level split)",
                                                    f"reference: {_reference_note(spec)}"])
        else:
            table([[k, v] for k, v, _ in rows], ["metric", "medpipe (patient-level split)"])
        for p in _images(run, list(spec.plots)):
            figure(p, f"{spec.name}: {p.relative_to(run)}")

    both("<h2>Slice classifiers on the same validation slices</h2>",
         "## Slice classifiers on the same validation slices\n")
    tables = _slice_tables(work, specs)
    if len(tables) >= 2:
        label_names = ((rep or {}).get("tasks", {}).get("label") or {}).get("class_names") or ["negative", "positive"]
        md, _ = compare_slice_classifiers(tables, class_names=tuple(label_names))
        lines = [ln for ln in md.strip().splitlines() if ln.startswith("|")]
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        body = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
        table(body, header)
        refs = [(sp, k, v) for sp in specs for k, (v, _src) in sp.references.items()
                if sp.name in {s.name for s in specs} and (k in ("accuracy", "f1") or "." in k)]
        if refs:
            text = "; ".join(f"{sp.name} {k} {v}" for sp, k, v in refs)
            both(f"<p>References, for comparison: {html.escape(text)} ({html.escape(_reference_note(specs[0]))}). "
                 f"medpipe's numbers come from patient-level folds.</p>",
                 f"References, for comparison: {text} ({_reference_note(specs[0])}). medpipe's numbers come from "
                 f"patient-level folds.\n")
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
