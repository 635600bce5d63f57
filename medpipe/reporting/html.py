"""One report per pipeline run: a self-contained HTML file (images embedded) and its Markdown twin.

The report reads only what the stages wrote: ``prepare_report.json``, and per bundle
``eval/metrics.json``, ``run_config.json``, ``history.json``, the PNG plots and the per-slice CSVs
(``predictions.csv``, ``slice_predictions.csv``, ``eval/seg_to_cls_predictions.csv``). On top of
those numbers it adds what a reader needs to judge them:

* whether the data is synthetic (``source.synthetic`` of ``prepare_report.json``; for datasets
  prepared before the flag existed, the ``medpipe synth`` marker at the recorded source), in a
  banner at the top and in the header of every column of published numbers;
* the evaluated set (records, fold, slices, patients, positives) above each metrics table;
* 95 % confidence intervals of the headline metrics, from a patient-level bootstrap of the
  per-slice CSVs (:mod:`medpipe.metrics.bootstrap`);
* the slice classifiers side by side on the validation slices they share, the segmenter with the
  same cross-fitted area threshold as in its own section (and, labelled, the in-sample one).
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np

from medpipe.utils.fs import atomic_write_text

#: most example images shown per glob of a bundle's ``plots``
MAX_PER_GLOB = 8
#: bootstrap resamples per interval
N_BOOT = 1000
#: below this many patients, intervals come with a warning
FEW_PATIENTS = 10
#: file-name prefixes of example images, in the order the picker visits them
OUTCOMES = ("TP", "FP", "FN", "TN", "correct", "wrong", "hit", "miss")
#: the binary classification keys with an interval
CLS_KEYS = ("accuracy", "precision", "recall", "f1", "specificity", "auroc")
DASH = "—"
#: shown beside a metric whose denominator is 0 on the evaluated set (metrics.json reports 0 there)
UNDEFINED = "0/0"

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.15em}
h3{margin:1em 0 .3em;font-size:1.02em}
table{border-collapse:collapse;margin:.5em 0 .8em}
td,th{border:1px solid #ccc;padding:3px 9px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
td.group{background:#fafafa;font-style:italic;color:#444}table.cmp td:first-child{min-width:260px}
.note{color:#555;font-size:.9em}.ref{color:#777}small{color:#666}
.banner{background:#fff4d6;border:2px solid #e0a800;border-radius:6px;padding:.7em 1em;margin:1em 0;font-size:1.05em}
.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:2px 18px;margin:.4em 0 .8em;
font-size:.93em}
.kv div{border-bottom:1px dotted #ddd;padding:1px 0}.kv b{font-weight:600;color:#444}
.figs{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start;margin:.4em 0}
figure{margin:0}figcaption{font-size:.8em;color:#666}img{border:1px solid #ddd;display:block}
.wide img{width:100%;height:auto}.plots img{height:270px;width:auto;max-width:100%}
.examples img{height:250px;width:auto;max-width:100%}.large img{height:520px;width:auto;max-width:100%}
.cams img{height:380px;width:auto;max-width:100%}code{background:#f5f5f5}
"""


# ---------------------------------------------------------------- reading what the stages wrote
def _read_json(p: Path):
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except ValueError:
        return None


def _read_csv(p: Path) -> list[dict]:
    if not p.is_file():
        return []
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _is_synthetic(rep: dict | None) -> bool | None:
    """True/False from the prepare report; for reports written before the flag, the synth marker at the source."""
    src = (rep or {}).get("source") or {}
    if "synthetic" in src:
        return bool(src["synthetic"])
    if src.get("path") and Path(src["path"]).is_dir():
        from medpipe.prepare.engine import synthetic_marker

        return synthetic_marker(Path(src["path"])) is not None
    return None


# ---------------------------------------------------------------- formatting
def _text(v) -> str:
    """A value as people read it: no Python ``None``/``True``/``False``, numbers without noise."""
    if v is None:
        return DASH
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            return " × ".join(_text(x) for x in v)
        return ", ".join(_text(x) for x in v) or DASH
    if isinstance(v, dict):
        return ", ".join(f"{k} {_text(x)}" for k, x in v.items()) or DASH
    return str(v)


def _value(v, ci=None) -> str:
    """``0.812 (0.70–0.90)``: a metric and its interval (``—`` when undefined)."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return DASH
    s = f"{float(v):.3f}"
    if ci and ci[0] is None:
        return s + f" ({UNDEFINED})"  # undefined in every resample: the data's own 0/0
    return s + (f" ({_ci(ci)})" if _ci(ci) else "")


def _ci(ci) -> str | None:
    """``0.70–0.90`` (three decimals when two would show one number for two), or None."""
    if not ci or ci[0] is None:
        return None
    lo, hi = ci
    d = 3 if round(lo, 2) == round(hi, 2) and lo != hi else 2
    return f"{lo:.{d}f}–{hi:.{d}f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------- the document (HTML and Markdown at once)
class _Doc:
    def __init__(self, img_dir: Path):
        self.H: list[str] = []
        self.M: list[str] = []
        self.img_dir = img_dir
        self.n_img = 0

    def both(self, h: str, m: str) -> None:
        self.H.append(h)
        self.M.append(m)

    def heading(self, level: int, text: str) -> None:
        self.both(f"<h{level}>{html.escape(text)}</h{level}>", f"{'#' * level} {text}\n")

    def para(self, text: str, cls: str | None = None) -> None:
        c = f' class="{cls}"' if cls else ""
        self.both(f"<p{c}>{html.escape(text)}</p>", text + "\n")

    def banner(self, title: str, text: str) -> None:
        self.both(f'<div class="banner"><b>{html.escape(title)}</b> {html.escape(text)}</div>',
                  f"> **{title}** {text}\n")

    def kv(self, pairs: list[tuple[str, str]]) -> None:
        """Settings as a compact grid of ``key: value`` (a two-column table in Markdown)."""
        if not pairs:
            return
        h = '<div class="kv">' + "".join(f"<div><b>{html.escape(k)}</b>: {html.escape(v)}</div>" for k, v in pairs)
        m = "| setting | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in pairs)
        self.both(h + "</div>", m)

    def table(self, rows: list, header: list[str], ref_cols: tuple[int, ...] = (), cls: str = "") -> None:
        """Rows are lists of cells (strings or ``(text, small note)``) or a string: a group heading across the table."""
        def cell_h(c, j):
            text, sub = c if isinstance(c, tuple) else (c, None)
            cls = []
            if text[:1].isdigit() or text == DASH:
                cls.append("num")
            if j in ref_cols:
                cls.append("ref")
            attr = f' class="{" ".join(cls)}"' if cls else ""
            small = f"<br><small>{html.escape(sub)}</small>" if sub else ""
            return f"<td{attr}>{html.escape(text)}{small}</td>"

        def cell_m(c):
            text, sub = c if isinstance(c, tuple) else (c, None)
            return (text + (f" ({sub})" if sub else "")).replace("|", "/")

        def row_h(r):
            if isinstance(r, str):
                return f'<tr><td class="group" colspan="{len(header)}">{html.escape(r)}</td></tr>'
            return "<tr>" + "".join(cell_h(c, j) for j, c in enumerate(r)) + "</tr>"

        def row_m(r):
            if isinstance(r, str):
                return f"| **{r}** |" + " |" * (len(header) - 1) + "\n"
            return "| " + " | ".join(cell_m(c) for c in r) + " |\n"

        h = f'<table class="{cls}"><tr>' if cls else "<table><tr>"
        h += "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>"
        h += "".join(row_h(r) for r in rows) + "</table>"
        m = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n" + "".join(row_m(r) for r in rows)
        self.both(h, m)

    def figures(self, items: list[tuple[Path, str]], kind: str) -> None:
        """Embed PNGs in one wrapping row (``wide``: full width; ``plots``, ``examples``: fixed height)."""
        if not items:
            return
        hs, ms = [], []
        for p, caption in items:
            name = f"{self.n_img:02d}_{p.parent.name}_{p.name}"
            self.n_img += 1
            data = p.read_bytes()
            (self.img_dir / name).write_bytes(data)
            b64 = base64.b64encode(data).decode()
            hs.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(caption)}">'
                      f"<figcaption>{html.escape(caption)}</figcaption></figure>")
            ms.append(f"![{caption}](images/{name})")
        self.both(f'<div class="figs {kind}">' + "".join(hs) + "</div>", "\n".join(ms) + "\n")


# ---------------------------------------------------------------- figures
def _example_key(p: Path) -> tuple[str, str]:
    """``(outcome, patient)`` of an example file (``TP_0001_03.png``; ``0001_03.png`` has no outcome)."""
    parts = p.stem.split("_")
    if parts[0] in OUTCOMES:
        return parts[0], parts[1] if len(parts) > 1 else ""
    return "", parts[0]


def _example_caption(p: Path) -> str:
    """``TP · patient 0031 · slice 17`` from ``TP_0031_17.png`` (the file name when it has another form)."""
    parts = p.stem.split("_")
    if len(parts) == 3 and parts[0] in OUTCOMES:
        return f"{parts[0]} · patient {parts[1]} · slice {parts[2].lstrip('0') or '0'}"
    return p.name


def _pick_examples(files: list[Path], n: int) -> list[Path]:
    """Up to ``n`` files, round-robin over the outcome prefixes, each from a patient not shown yet when possible."""
    groups: dict[str, list[Path]] = {}
    for f in sorted(files):
        groups.setdefault(_example_key(f)[0], []).append(f)
    order = [k for k in OUTCOMES if k in groups] + sorted(k for k in groups if k not in OUTCOMES)
    picked, shown = [], set()
    while len(picked) < n and any(groups.values()):
        for k in order:
            if groups[k] and len(picked) < n:
                f = next((f for f in groups[k] if _example_key(f)[1] not in shown), groups[k][0])
                groups[k].remove(f)
                picked.append(f)
                shown.add(_example_key(f)[1])
    return picked


def _png_width(path: Path) -> int:
    """Pixel width of a PNG from its header (0 when unreadable): a many-class confusion matrix is shown large."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
        return int.from_bytes(head[16:20], "big") if head[:8] == b"\x89PNG\r\n\x1a\n" else 0
    except OSError:
        return 0


#: example folders -> (heading, note) in the report; folders not listed: outcome examples
EXAMPLE_GROUPS = {
    "cam": ("Heat maps with the reference boxes",
            "One image per class with reference boxes, named by class and image; each title gives the probability "
            "and how the map's box (red) overlaps the reference box (green): IoU, IoBB."),
    "gradcam": ("Grad-CAM examples",
                "The most confident correct and wrong predictions (each from another patient where possible); the map "
                "is the Grad-CAM of the class named in the title, on one scale per class (1 = the strongest of these "
                "examples)."),
    "attention": ("Attention maps",
                  "The network's own spatial attention map (sigmoid, 0-1, at stride 32, upsampled) over the most "
                  "confident correct and wrong image of every class present; file names give true class, outcome, "
                  "patient and slice."),
}


def _images(run: Path, patterns) -> tuple[list[Path], list[Path], list[Path], list[tuple[str, list[Path]]]]:
    """The bundle's plots as ``(training curves, large plots, other plots, example groups)``; globs are
    example images, one ``(folder name, files)`` group per glob.

    ROC figures are large: with one curve per class (14 for ChestX-ray14) they are unreadable at the
    height of the other plots.
    """
    curves, large, plots, examples = [], [], [], []
    for pat in patterns:
        if "*" in pat:
            files = _pick_examples([f for f in run.glob(pat) if f.is_file()], MAX_PER_GLOB)
            if files:
                examples.append((Path(pat).parent.name, files))
        elif (run / pat).is_file():
            stem = Path(pat).stem
            big = stem.startswith("roc") or (stem.startswith("confusion") and _png_width(run / pat) > 1600)
            (curves if "curves" in stem else large if big else plots).append(run / pat)
    return curves, large, plots, examples


# ---------------------------------------------------------------- per-slice tables and intervals
def _binary_rows(rows: list[dict], score: str = "probability") -> dict[str, np.ndarray] | None:
    """patient, label, prediction, score arrays of a per-slice CSV with labels (None when unusable)."""
    rows = [r for r in rows if r.get("label") not in (None, "") and r.get("prediction") not in (None, "")]
    if not rows:
        return None
    try:
        return {"patient": np.array([str(r["patient"]) for r in rows]),
                "slice": np.array([int(float(r.get("slice") or 0)) for r in rows]),
                "label": np.array([int(float(r["label"])) for r in rows]),
                "prediction": np.array([int(float(r["prediction"])) for r in rows]),
                "score": np.array([_float(r.get(score)) for r in rows])}
    except (KeyError, ValueError):
        return None


def _cls_cis(t: dict | None) -> dict:
    from medpipe.metrics.bootstrap import classification_cis

    if t is None or not set(np.unique(t["label"])) <= {0, 1} or not set(np.unique(t["prediction"])) <= {0, 1}:
        return {}
    scores = t["score"] if np.all(np.isfinite(t["score"])) else None
    return classification_cis(t["patient"], t["label"], t["prediction"], scores, n_boot=N_BOOT)


def _seg_cis(rows: list[dict]) -> dict:
    from medpipe.metrics.bootstrap import segmentation_cis

    if not rows or not all(k in rows[0] for k in ("tp", "fp", "fn")):
        return {}
    patients = [r["patient"] for r in rows]
    tp, fp, fn = (np.array([_float(r[k]) for r in rows]) for k in ("tp", "fp", "fn"))
    dice = np.array([_float(r.get("dice")) if _float(r.get("target_area")) > 0 else np.nan for r in rows])
    return segmentation_cis(patients, tp, fp, fn, dice=dice, n_boot=N_BOOT)


def _evaluated_set(rows: list[dict], m: dict) -> dict:
    """n slices, patients and positives of the evaluated set, from the per-slice CSV (metrics.json as fallback)."""
    n = len(rows) or m.get("n") or m.get("n_cases") or m.get("n_slices") or (m.get("slice_level") or {}).get("n")
    patients = sorted({str(r["patient"]) for r in rows if "patient" in r})
    if m.get("kind") == "multilabel":
        pos = None  # one count per class: the per-class table gives it
    else:
        pos = sum(1 for r in rows if str(r.get("label", "")).strip() in ("1", "1.0")) if rows else \
            m.get("positives", m.get("n_positive_cases", (m.get("slice_level") or {}).get("positives")))
    return {"n": n, "patients": patients, "positives": pos, "records": m.get("records"), "fold": m.get("fold")}


def _unit(rep: dict | None) -> str:
    """What one record is, in words: ``slices`` of a CT/MR volume, else ``images``."""
    return "slices" if ((rep or {}).get("input") or {}).get("modality", "CT") in ("CT", "MR") else "images"


def _set_sentence(ev: dict, rep: dict | None, epochs: int) -> str:
    rec, fold = ev["records"], ev["fold"]
    unit = _unit(rep)
    where = {"val": f"validation fold {fold}", "test": "the test split", "all": "all records"}.get(
        rec, f"records {rec}" if rec else f"fold {fold}")
    pats = ev["patients"]
    who = f" of {_plural(len(pats), 'patient')}" if pats else ""
    if pats and len(pats) <= 6:
        who += f" ({', '.join(pats)})"
    pos = f", {ev['positives']} positive" if ev["positives"] is not None else ""
    s = f"Evaluated on {where}: {ev['n']} {unit}{who}{pos}."
    folds = (rep or {}).get("folds") or []
    trained = f"Trained {_plural(epochs, 'epoch')}" if epochs else "Trained"
    if rec == "val" and folds and fold is not None:
        train = [f for f in folds if f.get("fold") != fold]
        s += (f" {trained} on the other folds ({sum(f['records'] for f in train)} {unit} of "
              f"{sum(f['patients'] for f in train)} patients).")
    elif epochs:
        s += f" Trained {_plural(epochs, 'epoch')}."
    return s


_UNDEFINED_TEXT = ("the metric's denominator is zero on this set (e.g. precision when no slice is predicted "
                   "positive); metrics.json reports it as 0.")


def _ci_note(n_patients: int) -> str:
    s = (f"In brackets: 95 % confidence interval, patient-level bootstrap ({N_BOOT} resamples of the "
         f"{_plural(n_patients, 'patient')}, all slices of a drawn patient kept together).")
    if 0 < n_patients < FEW_PATIENTS:
        distinct = math.comb(2 * n_patients - 1, n_patients)  # multisets of n patients drawn from n
        s += (f" With {_plural(n_patients, 'patient')} the interval is crude (only {distinct} distinct resamples); "
              f"read it as a warning, not a bound.")
    return s


# ---------------------------------------------------------------- settings
def _device(cfg: dict, run_cfg: dict) -> str | None:
    d = cfg.get("device")
    if d is None:
        return None
    d = str(d)
    name = run_cfg.get("cuda")
    return f"{d} ({name})" if d.startswith("cuda") and name else d


def _bundle_settings(cfg: dict, run_cfg: dict, epochs: int) -> list[tuple[str, str]]:
    """The settings worth reading, as ``(name, value)``: unset options and internals left out."""
    out: list[tuple[str, str]] = []

    def add(name, v, unit=""):
        if v is not None and v != "" and v != []:
            out.append((name, _text(v) + unit))

    add("network", cfg.get("network_name") or cfg.get("model"))
    add("pretrained weights", cfg.get("pretrained_path"))
    add("image size", cfg.get("image_size"), " px")
    add("patch size", cfg.get("patch_size"), " px")
    add("batch size", cfg.get("batch_size"))
    if cfg.get("max_epochs") is not None:
        out.append(("epochs", f"{epochs} trained (max {cfg['max_epochs']})" if epochs else f"max {cfg['max_epochs']}"))
    if cfg.get("patience") and cfg.get("early_stop_metric"):
        out.append(("early stopping", f"after {cfg['patience']} epochs without a better {cfg['early_stop_metric']}"))
    add("learning rate", cfg.get("learning_rate"))
    add("weight decay", cfg.get("weight_decay"))
    add("class imbalance", cfg.get("imbalance"))
    add("intensity normalization", cfg.get("normalization"))
    add("decision threshold", cfg.get("threshold"))
    if cfg.get("conf") is not None:
        out.append(("slice positive when a box has confidence", f">= {_text(cfg['conf'])}"))
    add("NMS IoU", cfg.get("iou"))
    if cfg.get("context"):
        out.append(("input", f"2.5D: the slice and {_text(cfg['context'])} neighbour(s) on each side"))
    add("foreground oversampling", cfg.get("foreground_oversample"))
    add("network filters", cfg.get("filters"))
    if cfg.get("lr_power") is not None:
        out.append(("learning-rate schedule", f"poly decay, power {_text(cfg['lr_power'])}, to 0 at the last epoch or "
                    "the time limit" if cfg["lr_power"] else "constant"))
    add("training samples per epoch", cfg.get("samples_per_epoch"))
    for key, name in (("deep_supervision", "deep supervision"), ("mirror_tta", "mirror TTA in training validations"),
                      ("amp", "mixed precision")):
        if key in cfg:
            add(name, bool(cfg[key]))
    add("seed", cfg.get("seed"))
    add("device", _device(cfg, run_cfg))
    if cfg.get("distributed"):
        out.append(("distributed", "yes"))
    if cfg.get("time_limit_s"):
        out.append(("time limit", f"{_text(cfg['time_limit_s'])} s per training"))
    if cfg.get("limit"):
        out.append(("record limit", _text(cfg["limit"])))
    return out


def _pipeline_settings(params: dict, devices: set[str]) -> list[tuple[str, str]]:
    """The pipeline parameters in words; the synthetic-data ones only when the data was synthesized."""
    synthesized = params.get("src") is None
    out = []
    for k, v in params.items():
        if not synthesized and (k.startswith("synth_") or k == "download_dir"):
            continue  # not used when --src is given
        if k == "src" and v is None:
            text = "none: synthetic data made by medpipe synth"
        elif k == "device" and v is None:
            text = "auto" + (f" (used: {', '.join(sorted(devices))})" if devices else "")
        elif k.endswith("time_limit_s") and v is None:
            text = "none"
        else:
            text = _text(v)
        out.append((k, text))
    return out


# ---------------------------------------------------------------- metric tables
def _ref_header(spec, synthetic: bool | None) -> str:
    who = "seed project" if all("seed" in src for _, src in spec.references.values()) else "published"
    if synthetic:
        return f"{who}, REAL data: not comparable"
    return f"{who} (reference)"


def _ref_source(spec) -> str:
    return "; ".join(sorted({s for _, s in spec.references.values()}))


def _ref(spec, key: str) -> str:
    v = spec.references.get(key, (None,))[0]
    return DASH if v is None else f"{v:.4g}"


#: row labels of metrics.json keys
_LABELS = {"weighted_log_loss": "weighted log loss", "map50": "box mAP@0.5", "map50_95": "box mAP@0.5:0.95",
           "dice_per_case_mean": "Dice, mean over positive slices",
           "dice": "Dice (global)", "iou": "IoU (global)", "sensitivity": "sensitivity (pixels)",
           "specificity": "specificity", "auroc": "AUROC", "auroc_mean": "AUROC, mean over classes",
           "auprc_mean": "AUPRC, mean over classes", "f1_macro": "F1, macro average", "f1_micro": "F1, micro average",
           "subset_accuracy": "subset accuracy (all labels right)", "hamming_loss": "Hamming loss",
           "challenge_map": "RSNA challenge score (mean AP at IoU 0.40-0.75)", "balanced_accuracy": "balanced accuracy",
           "kappa": "Cohen's kappa"}


def _multiclass_cis(rows: list[dict], class_names) -> dict:
    """Patient-level intervals of the multiclass keys from a CSV with ``patient``, ``label`` and ``prediction``
    (class indices, or class names as ``volume_predictions.csv`` writes them); {} when unusable."""
    from medpipe.metrics.bootstrap import multiclass_cis

    index = {str(c): i for i, c in enumerate(class_names or [])}

    def cls(v):
        v = str(v)
        return index[v] if v in index else int(float(v))

    rows = [r for r in rows if r.get("label") not in (None, "") and r.get("prediction") not in (None, "")]
    try:
        y = [cls(r["label"]) for r in rows]
        p = [cls(r["prediction"]) for r in rows]
        patients = [str(r["patient"]) for r in rows]
    except (KeyError, ValueError):
        return {}
    if not rows:
        return {}
    return multiclass_cis(patients, y, p, len(class_names) if class_names else None, n_boot=N_BOOT)


def _cls_section(spec, run: Path, m: dict) -> dict:
    rows = _read_csv(run / "predictions.csv")
    t = _binary_rows(rows) if m.get("kind", "binary") == "binary" else None
    cis = _cls_cis(t)
    names = list((m.get("per_class") or {}).keys()) if isinstance(m.get("per_class"), dict) else []
    vol_cis: dict = {}
    if m.get("kind") == "multiclass":
        cis = _multiclass_cis(rows, names)
        vol_cis = _multiclass_cis(_read_csv(run / "eval" / "volume_predictions.csv"), names)
    per_class_ci = m.get("auroc_ci_per_class") or {}
    if m.get("auroc_mean_ci"):  # multi-label: patient-level intervals computed by the evaluation
        cis = {**cis, "auroc_mean": m["auroc_mean_ci"]}
    labels = dict(_LABELS)
    if m.get("kind") == "multiclass":  # macro averages over the classes present in the evaluated set
        labels.update({"sensitivity": "sensitivity, macro over present classes",
                       "specificity": "specificity, macro over present classes",
                       "precision": "precision, macro over present classes", "f1": "F1, macro over present classes"})
    table = [[labels.get(k, k), _value(m.get(k), cis.get(k)), _ref(spec, k)] for k in spec.headline]
    if isinstance(m.get("auroc_per_class"), dict):
        table += [[f"AUROC {c}", _value(v, per_class_ci.get(c)), _ref(spec, f"auroc_per_class.{c}")]
                  for c, v in m["auroc_per_class"].items()]
    vol = m.get("volume_level")
    if isinstance(vol, dict) and vol:  # slice probabilities averaged per volume: the decision per scan
        table.append(f"volume level: slice probabilities averaged per volume ({vol.get('n', '?')} volumes)")
        table += [[labels.get(k, k), _value(vol.get(k), vol_cis.get(k)), DASH] for k in spec.headline if k in vol]
    note = "" if cis else ("No interval: the per-slice predictions (predictions.csv with labels) are needed."
                           if m.get("kind") == "multiclass" else
                           "No interval: per-slice probabilities of a binary classifier are needed.")
    if cis and m.get("kind") == "multiclass":
        note = ("Macro averages in each bootstrap resample are over the classes present in that resample, as in the "
                "point estimate." + (" Volume-level intervals resample the same patients' volumes." if vol_cis else ""))
    if m.get("absent_classes"):
        note += (f" Absent from the evaluated set: {', '.join(map(str, m['absent_classes']))}: left out of every macro "
                 f"average and reported as null, never counted as 0 (counting them as 0 is how a published average "
                 f"sensitivity can understate a model; `medpipe metrics confusion` prints both).")
    return {"rows": rows, "table": table, "cis": bool(cis), "note": note.strip()}


def _det_section(spec, run: Path, m: dict) -> dict:
    rows = _read_csv(run / "slice_predictions.csv")
    cis = _cls_cis(_binary_rows(rows))
    sl = m.get("slice_level") or {}
    conf = m.get("conf")
    table = ["box level: no interval (pooled over boxes by ultralytics' validator)"]
    table += [[_LABELS.get(k, f"box {k}"), _value(m.get(k)), _ref(spec, k)] for k in spec.headline]
    if sl:
        table.append(f"slice level: positive when any box has confidence >= {_text(conf)}")
        table += [[_LABELS.get(k, k), _value(sl.get(k), cis.get(k)), _ref(spec, f"slice_level.{k}")]
                  for k in CLS_KEYS if k in sl]
    note = ("Box-level metrics (mAP; box precision and recall, ultralytics' values at the confidence that "
            "maximizes their F1) are pooled over all boxes without per-patient parts, so they have no bootstrap "
            "interval.")
    return {"rows": rows, "table": table, "cis": bool(cis), "note": note}


def _seg_protocol(run: Path, m: dict) -> dict:
    """The segmentation-derived classifier's protocol: cross-fitted thresholds per half, the deployed A."""
    s2c = m.get("seg_to_cls") or {}
    full = _read_json(run / "eval" / "seg_to_cls_metrics.json") or {}
    return {"selection": s2c.get("selection") or full.get("selection"),
            "A": s2c.get("area_threshold", full.get("area_threshold")),
            "folds": full.get("folds") or [], "metric": full.get("metric", "f1")}


def _protocol_text(p: dict, n: int | None) -> str:
    if p["selection"] == "cross-fitted":
        halves = "; ".join(f"A = {f['area_threshold']} px for patients {', '.join(map(str, f['patients']))}"
                           for f in p["folds"]) or "per half"
        return (f"cross-fitted: the patients are split in two halves; A (maximizing {p['metric']}) is chosen on one "
                f"half and applied to the other ({halves}). The A to deploy, chosen on all "
                f"{n if n is not None else 'the'} evaluated slices, is {p['A']} px; scoring those same slices with it "
                f"would be in-sample (optimistic).")
    if p["selection"] == "threshold_rows":
        return f"A = {p['A']} px, chosen on separate threshold rows, not on the evaluated slices."
    return f"A = {p['A']} px."


def _seg_section(spec, run: Path, m: dict) -> dict:
    rows = _read_csv(run / "predictions.csv")
    cis = _seg_cis(rows)
    table: list = ["pixels, over the evaluated slices"]
    table += [[_LABELS.get(k, k), _value(m.get(k), cis.get(k)), _ref(spec, k)] for k in spec.headline]
    p = _seg_protocol(run, m)
    s2c = m.get("seg_to_cls") or {}
    s2c_rows = _read_csv(run / "eval" / "seg_to_cls_predictions.csv")
    s2c_cis = _cls_cis(_binary_rows(s2c_rows, score="pred_area"))
    if s2c:
        tag = "A cross-fitted over patients" if p["selection"] == "cross-fitted" else f"A = {p['A']} px"
        table.append(f"slices: positive when the predicted area >= A ({tag}; see below)")
        table += [[_LABELS.get(k, k), _value(s2c.get(k), s2c_cis.get(k)), _ref(spec, f"seg_to_cls.{k}")]
                  for k in CLS_KEYS if k in s2c]
    note = ("Pixel specificity has no interval (the per-slice CSV has no true-negative counts). "
            if cis else "No interval for the pixel metrics: this run's predictions.csv has no per-slice tp/fp/fn "
                        "columns (written by medpipe evaluate since they were added; re-run evaluate). ")
    if s2c:
        note += ("Slice rows: the segmentation-derived slice classifier, a slice is positive when the predicted "
                 "area >= A; " + _protocol_text(p, m.get("n_cases")))
    if "mirror_tta" in m:
        note += f" Evaluated {'with' if m['mirror_tta'] else 'without'} mirroring test-time augmentation."
    note += _postprocessing_text(m.get("postprocessing") or {})
    return {"rows": rows, "table": table, "cis": bool(cis or s2c_cis), "note": note}


def _postprocessing_text(pp: dict) -> str:
    """One sentence on the post-processing an evaluation applied and the one it learned (empty without).

    Example:
        >>> _postprocessing_text({"applied_fg_threshold": 0.5, "applied_min_component_px": 0, "kept": False,
        ...     "dice_raw": 0.25, "dice_postprocessed_crossfit": 0.2})[:60]
        ' Post-processing applied: none. Learned on these slices: off'
    """
    if not pp:
        return ""
    t, mpx = pp.get("applied_fg_threshold", 0.5), pp.get("applied_min_component_px", 0)
    applied = "none" if (t == 0.5 and not mpx) else f"foreground probability > {t}, components < {mpx} px removed"
    out = f" Post-processing applied: {applied}."
    if "dice_raw" in pp:
        learned = (f"probability > {pp.get('fg_threshold')}, components < {pp.get('min_component_px')} px "
                   f"(Dice {_text(pp.get('dice_raw'))} -> {_text(pp.get('dice_postprocessed'))}, cross-fitted "
                   f"{_text(pp.get('dice_postprocessed_crossfit'))}), stored with the checkpoint"
                   if pp.get("kept") else
                   f"off (no gain that holds cross-fitted: Dice {_text(pp.get('dice_raw'))} without, "
                   f"{_text(pp.get('dice_postprocessed_crossfit'))} with the other half's best choice)")
        out += f" Learned on these slices: {learned}."
    return out


_SECTIONS = {"classification": _cls_section, "detection": _det_section, "segmentation": _seg_section}


# ---------------------------------------------------------------- recipes of one bundle, side by side
#: settings never worth a column when recipes are compared (paths, derived values, internals)
_RECIPE_SKIP = {"bundle_root", "dataset_dir", "output_dir", "ckpt_dir", "ckpt_path", "stats_path", "tb_dir",
                "resume", "label_task", "task", "class_names", "input_spec", "intensity_stats", "model_settings",
                "network_args", "training_only_weights", "performance", "in_channels", "sw_roi_size", "val_interval",
                "num_workers", "max_epochs", "patience"}


def recipe_runs(work: Path, bundle: str) -> list[Path]:
    """The runs of ``bundle`` trained as alternative recipes: ``work/recipes/<bundle>/<name>/`` with an evaluation.

    Example:
        >>> recipe_runs(Path("runs/none"), "any_bundle")
        []
    """
    root = work / "recipes" / bundle
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if (d / "eval" / "metrics.json").is_file())


def _recipe_diff(settings: list[dict]) -> list[str]:
    """The top-level settings whose values differ between recipes (in the first run's order)."""
    keys = []
    for k in settings[0]:
        if k in _RECIPE_SKIP or any(isinstance(s.get(k), dict) for s in settings):
            continue
        if len({json.dumps(s.get(k), sort_keys=True) for s in settings}) > 1:
            keys.append(k)
    return keys


def _recipe_value(key: str, v) -> str:
    """A setting in words: unset is the bundle's default, sizes read 64 × 64, other lists 16, 32, 64."""
    if v is None:
        return "default"
    if isinstance(v, list) and not key.endswith("_size"):
        return ", ".join(_text(x) for x in v)
    return _text(v)


def _recipes_section(doc: _Doc, spec, work: Path, main_run: Path | None = None) -> None:
    """Alternative recipes of one bundle on the same validation patients: what differs, time, headline metrics.

    The section's own run (``main_run``, evaluated) is the first row, named ``this section's run``.
    """
    runs = recipe_runs(work, spec.name)
    if not runs:
        return
    names = [r.name for r in runs]
    if main_run is not None and (main_run / "eval" / "metrics.json").is_file():
        runs, names = [main_run] + runs, ["this section's run"] + names
    rows, settings = [], []
    for run in runs:
        cfg = (_read_json(run / "run_config.json") or {}).get("settings") or {}
        settings.append(cfg)
    known = [c for c in settings if c]
    diff = _recipe_diff(known) if known else []
    folds = {str(c.get("fold")) for c in known}
    limits = {str(c.get("time_limit_s")) for c in known}
    metrics = [_read_json(r / "eval" / "metrics.json") or {} for r in runs]
    s2c_keys = [k for k in ("accuracy", "recall", "f1") if any(k in (m.get("seg_to_cls") or {}) for m in metrics)]
    for run, name, cfg, m in zip(runs, names, settings, metrics):
        h = _read_json(run / "history.json") or {}
        epochs = len(h.get("epoch", []))
        train_s = sum(float(x) for x in h.get("train_s", []) if x is not None)
        what = (("; ".join(f"{k} {_recipe_value(k, cfg.get(k))}" for k in diff) or "(same settings)") if cfg
                else "(settings not recorded: no run_config.json)")
        row = [(name, what), str(epochs), f"{train_s / 60:.1f} min" if train_s else DASH]
        row += [_value(m.get(k)) for k in spec.headline]
        s2c = m.get("seg_to_cls") or {}
        row += [_value(s2c.get(k)) for k in s2c_keys]
        rows.append(row)
    doc.heading(3, "Recipes compared")
    same = (f"validation fold {folds.pop()}" if len(folds) == 1 else
            "DIFFERENT validation folds (not comparable)" if folds else "validation folds not recorded")
    budget = f", each with a {limits.pop()}-s training limit" if len(limits) == 1 and "None" not in limits else ""
    doc.para(f"{len(runs)} recipes of {spec.name} ({work / 'recipes' / spec.name} and this section's run), trained "
             f"on the same prepared dataset and evaluated on {same}{budget}; the settings column lists only what "
             f"differs between them. Training minutes exclude validation and caching.", cls="note")
    header = (["recipe (what differs)", "epochs", "training"] + [_LABELS.get(k, k) for k in spec.headline]
              + [f"seg->cls {k}" for k in s2c_keys])
    doc.table(rows, header, cls="cmp")


# ---------------------------------------------------------------- the slice-classifier comparison
def _comparison(run_dirs: dict[str, Path], specs) -> list[dict]:
    """Each binary slice classifier's decisions: ``{"name", "rule", "t"}`` (t as in :func:`_binary_rows`)."""
    out = []
    for spec in specs:
        run = run_dirs[spec.name]
        m = _read_json(run / "eval" / "metrics.json") or {}
        if spec.task == "classification" and m.get("kind", "binary") == "binary":
            t = _binary_rows(_read_csv(run / "predictions.csv"))
            if t is not None:
                out.append({"bundle": spec.name, "name": spec.title,
                            "rule": f"probability >= {_text(m.get('threshold', 0.5))}, fixed", "t": t})
        elif spec.task == "detection":
            t = _binary_rows(_read_csv(run / "slice_predictions.csv"))
            if t is not None:
                out.append({"bundle": spec.name, "name": spec.title,
                            "rule": f"any box with confidence >= {_text(m.get('conf'))}, fixed", "t": t})
        elif spec.task == "segmentation":
            p = _seg_protocol(run, m)
            if p["A"] is None:
                continue
            crossed = _binary_rows(_read_csv(run / "eval" / "seg_to_cls_predictions.csv"), score="pred_area")
            if crossed is not None:
                rule = ("A chosen on the other half of the patients (cross-fitted)"
                        if p["selection"] == "cross-fitted" else f"A = {p['A']} px ({p['selection']})")
                out.append({"bundle": spec.name, "name": f"{spec.title}, area >= A", "rule": rule, "t": crossed})
            seg = _read_csv(run / "predictions.csv")
            if seg and (p["selection"] == "cross-fitted" or crossed is None):
                t = _binary_rows([{**r, "prediction": int(_float(r["pred_area"]) >= float(p["A"]))} for r in seg],
                                 score="pred_area")
                if t is not None and p["selection"] == "cross-fitted":
                    out.append({"bundle": spec.name, "name": f"{spec.title}, area >= {p['A']} px, in-sample",
                                "rule": "A chosen on these same slices: optimistic", "t": t})
                elif t is not None:
                    out.append({"bundle": spec.name, "name": f"{spec.title}, area >= {p['A']} px",
                                "rule": f"A = {p['A']} px ({p['selection'] or 'selection not recorded'})", "t": t})
    return out


def _common(tables: list[dict]) -> list[dict]:
    """The tables restricted to the (patient, slice) pairs all of them scored, in one order."""
    keys = [set(zip(t["t"]["patient"].tolist(), t["t"]["slice"].tolist())) for t in tables]
    common = sorted(set.intersection(*keys)) if keys else []
    out = []
    for t in tables:
        idx = {k: i for i, k in enumerate(zip(t["t"]["patient"].tolist(), t["t"]["slice"].tolist()))}
        sel = np.array([idx[k] for k in common], dtype=int)
        out.append({**t, "t": {k: v[sel] for k, v in t["t"].items()}})
    return out


def _point_metrics(t: dict) -> dict:
    """The classification keys of one table's decisions (0/0 := 0, as in metrics.json; AUROC None with one class).

    Plain numpy, so that the report never imports scikit-learn (seconds of start-up).
    """
    from medpipe.metrics.bootstrap import auroc_statistic
    from medpipe.metrics.thresholds import rates_from_counts

    y, p = t["label"], t["prediction"]
    m = rates_from_counts(int(np.sum((y == 1) & (p == 1))), int(np.sum((y == 0) & (p == 1))),
                          int(np.sum((y == 1) & (p == 0))), int(np.sum((y == 0) & (p == 0))))
    auc = float(auroc_statistic(y, t["score"])(np.ones((1, y.size)))[0]) if np.all(np.isfinite(t["score"])) else np.nan
    m["auroc"] = None if np.isnan(auc) else auc
    m["n"] = int(y.size)
    return m


def _comparison_section(doc: _Doc, run_dirs: dict[str, Path], specs, unit: str = "slices") -> None:
    if len(specs) < 2:  # one bundle on this dataset: nothing could be compared
        return
    doc.heading(2, f"{'Slice' if unit == 'slices' else 'Image'} classifiers on the same validation {unit}")
    tables = _comparison(run_dirs, specs)
    if len({t["bundle"] for t in tables}) < 2:
        doc.para("Fewer than two slice classifiers have predictions; nothing to compare.")
        return
    tables = _common(tables)
    n = len(tables[0]["t"]["label"])
    if n == 0:
        doc.para("The slice classifiers share no evaluated slice; nothing to compare.")
        return
    for t in tables[1:]:
        bad = int(np.sum(t["t"]["label"] != tables[0]["t"]["label"]))
        if bad:
            doc.para(f"No comparison: {tables[0]['name']} and {t['name']} disagree on the label of {bad} slices.")
            return
    n_pat = len(set(tables[0]["t"]["patient"].tolist()))
    body = []
    for t in tables:
        mm = _point_metrics(t["t"])
        cis = _cls_cis(t["t"])
        # value above, interval below: seven columns of "0.812 (0.70–0.90)" do not fit the page
        body.append([(t["name"], t["rule"]), str(mm["n"])]
                    + [(_value(mm.get(k)), (_ci(cis.get(k)) or UNDEFINED if cis.get(k) else None)
                        if mm.get(k) is not None else None) for k in CLS_KEYS])
    doc.para(f"{n} {unit} of {_plural(n_pat, 'patient')}, the same for every row; each value with its 95 % "
             f"patient-level bootstrap interval.", cls="note")
    doc.table(body, ["classifier (decision rule)", "n"] + [_LABELS.get(k, k) for k in CLS_KEYS], cls="cmp")
    seg = [t for t in tables if t["name"].endswith("in-sample")]
    text = "Probability and box-confidence thresholds are fixed before evaluation."
    if any(sp.task == "segmentation" for sp in specs):
        text += (" The segmenter needs an area threshold A chosen from data: its first row uses the cross-fitted "
                 "decisions (A chosen on one half of the patients, applied to the other), the protocol of the "
                 "segmenter's own section, so the numbers agree with it.")
    if seg:
        text += (" The in-sample row picks A on these very slices and scores them with it: optimistic, shown so that "
                 "the gap between the two protocols is visible (with few patients it can read 1.000 where the "
                 "cross-fitted row does not).")
    if any(UNDEFINED in str(c) for r in body for c in r):
        text += f" {UNDEFINED}: {_UNDEFINED_TEXT}"
    doc.para(text, cls="note")



# ---------------------------------------------------------------- dataset balance, cross-validation, localisation
def _prevalence_section(doc: _Doc, rep: dict) -> None:
    """Per-class positives and prevalence per part, and the train:test bias table, when prepare wrote them."""
    pv = rep.get("prevalence") or {}
    parts, by = pv.get("parts") or [], pv.get("by_part") or {}
    if not parts or not all(p in by for p in parts):
        return
    names = list(by[parts[0]].get("positives") or {})
    unit = _unit(rep)
    doc.heading(3, "Per-class prevalence per part")
    rows = [[unit] + [str(by[p]["images"]) for p in parts]]
    rows += [[n] + [f"{by[p]['positives'][n]} ({100 * by[p]['prevalence'][n]:.1f} %)" for p in parts] for n in names]
    doc.table(rows, ["class"] + parts)
    b = rep.get("bias")
    if not b:
        doc.para(f"Positive {unit} (prevalence) per part. No test set, so no train:test bias table.", cls="note")
        return
    fr = b.get("findings_ratio")
    doc.heading(3, "Train:test balance")
    doc.para(f"Train (all folds) : test = {b['images_ratio']:.2f} : 1 in {unit}, "
             f"{f'{fr:.2f}' if fr is not None else DASH} : 1 in positive finding labels. A class whose ratio is far "
             f"from the {unit}' ratio is over- or under-represented in the test set, and its test AUROC is measured "
             f"on a population unlike the one trained on.", cls="note")
    rows = []
    for n, c in b["per_class"].items():
        rows.append([n, str(c["train"]), str(c["test"]), _text(c.get("ratio")),
                     f"{100 * c['prevalence_train']:.2f} %", f"{100 * c['prevalence_test']:.2f} %",
                     _text(c.get("prevalence_ratio"))])
    doc.table(rows, ["class", "train", "test", "ratio", "prevalence train", "prevalence test", "prevalence ratio"])


def _kfold(run: Path, fold) -> tuple[dict | None, Path]:
    """``(kfold summary, run shown in detail)``: the model validated on ``fold`` (else the first) of a K-fold step."""
    from medpipe.evaluation.kfold import KFOLD_FILE

    kf = _read_json(run / KFOLD_FILE)
    if not kf or not kf.get("runs"):
        return None, run
    key = str(fold) if str(fold) in kf["runs"] else str(kf["folds"][0])
    kf["shown"] = int(key)
    return kf, run / kf["runs"][key]


def _mean_sd(st: dict) -> str:
    if st.get("mean") is None:
        return DASH
    return f"{st['mean']:.3f}" + (f" ± {st['sd']:.3f}" if st.get("sd") is not None else "")


def _kfold_section(doc: _Doc, kf: dict) -> None:
    folds = [str(k) for k in kf["folds"]]
    doc.heading(3, f"Cross-validation: {_plural(len(folds), 'model')}, one per validation fold")
    keys = [k for k in ("auroc_mean", "auprc_mean", "f1_macro", "auroc", "f1", "accuracy", "dice", "map50")
            if k in kf.get("metrics", {})]
    rows = [[_LABELS.get(k, k)] + [_value(kf["metrics"][k]["values"].get(f)) for f in folds]
            + [_mean_sd(kf["metrics"][k])] for k in keys]
    per_class = kf.get("auroc_per_class") or {}
    if per_class:
        rows.append("AUROC per class")
        rows += [[c] + [_value(st["values"].get(f)) for f in folds] + [_mean_sd(st)] for c, st in per_class.items()]
    n = kf.get("n_evaluated") or {}
    doc.table(rows, ["metric"] + [f"fold {f}" + (f" (n={n[f]})" if n.get(f) else "") for f in folds]
              + ["mean ± sd"])
    undefined = {c: st["undefined_on"] for c, st in per_class.items() if st.get("undefined_on")}
    text = (f"Each model is trained on the other folds and evaluated on its own validation fold; mean ± sample "
            f"standard deviation over the {len(folds)} folds (the spread between folds is the variation a new split "
            f"would show, not a confidence interval). Selection of each checkpoint used its validation fold, so "
            f"every value is optimistic by the same margin. The sections below show the model validated on fold "
            f"{kf['shown']}.")
    if undefined:
        text += (" Undefined (no positive or no negative on that fold), left out of the mean rather than counted as "
                 "0: " + "; ".join(f"{c} on fold {', '.join(map(str, f))}" for c, f in undefined.items()) + ".")
    doc.para(text, cls="note")


#: the thresholds of IoBB shown in the report's compact table
_LOC_T = "0.5"


def _localization_section(doc: _Doc, run: Path, synthetic: bool | None) -> None:
    """Heat-map boxes scored against reference boxes: CAM vs the control at T(IoBB) = 0.5, then over T."""
    loc = _read_json(run / "eval" / "localization.json")
    if not loc or not loc.get("accuracy_iobb"):
        return
    acc = loc["accuracy_iobb"]
    methods = [m for m in ("cam@0.5", "cam@0.8", "control@0.5", "control@0.8") if m in acc] or list(acc)
    ref = loc.get("reference") or {}
    ref_vals = ref.get(f"accuracy_iobb_{_LOC_T}") or {}
    per_class = loc.get("cases_per_class") or {}
    doc.heading(3, "Localisation against the reference boxes")
    doc.para(f"{loc.get('cases')} boxed findings on {loc.get('images_with_boxes')} evaluated images. "
             f"{loc.get('what', '')}. Map: Grad-CAM on {loc.get('layer')} ({loc.get('cam_input', '')}). "
             f"Control: {loc.get('control', 'a centred Gaussian')}: a map that knows nothing about the image; a "
             f"CAM that does not beat it does not localise.", cls="note")

    def label(m):
        what, _, frac = m.partition("@")
        return f"{'Grad-CAM' if what == 'cam' else 'control'}, {frac} × max"

    ref_head = ("Wang et al. 2017 (REAL data: not comparable)" if synthetic
                else "Wang et al. 2017 (their model and split)")
    rows = []
    for c in list(per_class) + ["all"]:
        if c != "all" and c not in acc[methods[0]]:
            continue
        n = sum(per_class.values()) if c == "all" else per_class[c]
        cells = [_value((acc[m].get(c) or {}).get(_LOC_T)) for m in methods]
        rv = ref_vals.get(c)
        rows.append([c if c != "all" else "all boxed findings", str(n)] + cells + [DASH if rv is None else f"{rv:.2f}"])
    if not ref_vals:  # nothing published to compare with: no empty column
        rows = [r[:-1] for r in rows]
    doc.table(rows, ["finding", "cases"] + [label(m) for m in methods] + ([ref_head] if ref_vals else []),
              ref_cols=(len(methods) + 2,))
    ts = loc.get("thresholds") or []
    rows = [[label(m)] + [_value((acc[m].get("all") or {}).get(str(t))) for t in ts] for m in methods]
    doc.table(rows, ["all boxed findings: accuracy at IoBB > T"] + [f"T = {t}" for t in ts])
    doc.para(f"Accuracy at T = {_LOC_T}: the fraction of boxed findings whose heat-map box (largest connected region "
             f"above the fraction of the map's maximum) has IoBB > {_LOC_T} with a reference box of that finding "
             f"(Wang et al.'s criterion; IoBB = intersection / area of the heat-map box). Per class and per T, with IoU "
             f"too: eval/localization.csv." + (f" Reference: {ref['source']}." if ref.get("source") else ""),
             cls="note")



def _view_label_section(doc: _Doc, rep: dict) -> None:
    """The acquisition view against the label (AP films are more often positive: a shortcut a model can learn)."""
    vl = rep.get("view_vs_label") or {}
    table, names = vl.get("table") or {}, vl.get("label_names") or []
    if not table or not names:
        return
    doc.heading(3, "View against label")
    rate = vl.get("positive_rate") or vl.get("opacity_rate") or {}
    rows = [[v] + [str(c.get(n, 0)) for n in names] + [f"{100 * rate[v]:.0f} %" if v in rate else DASH]
            for v, c in table.items()]
    doc.table(rows, ["view"] + names + [f"{names[-1]} rate"])
    doc.para("When one view is much more often positive, a classifier can score by recognising the view rather than "
             "the finding; the external evaluation below is where such a shortcut shows.", cls="note")


def _external_section(doc: _Doc, spec, run: Path, synthetic: bool | None) -> None:
    """The model on its validation fold beside every other set it was evaluated on (``eval-*/``)."""
    comps = []
    for f in sorted(run.glob("eval-*/eval/internal_vs_external.json")):
        c = _read_json(f)
        if c and c.get("rows"):
            comps.append((f.parent.parent.name, c))
    comps.sort(key=lambda nc: not nc[1].get("same_dataset"))  # held-out patients first, then external sets
    if not comps:
        return
    doc.heading(3, "Internal vs held-out and external")
    first = comps[0][1]
    metrics = [r["metric"] for r in first["rows"]]
    head = [f"internal: {first['internal']['dataset']}, {first['internal']['records']} (n={first['internal']['n']})"]
    cols = []
    for name, c in comps:
        e = c["external"]
        kind = "held-out" if c["same_dataset"] else "external"
        head.append(f"{kind}: {e['dataset']}, {e['records']} (n={e['n']})")
        cols.append({r["metric"]: r for r in c["rows"]})
    ext_refs = getattr(spec, "external_references", {}) or {}
    rows = []
    for k in metrics:
        internal = next((cl[k]["internal"] for cl in cols if k in cl), None)
        row = [_LABELS.get(k, {"recall": "sensitivity (recall)"}.get(k, k)), _value(internal)]
        for cl in cols:
            r = cl.get(k)
            v = _value(r["external"]) if r else DASH
            if r and r.get("difference") is not None:
                v += f" ({r['difference']:+.3f})"
            row.append(v)
        if ext_refs:
            row.append(_text(ext_refs[k][0]) if k in ext_refs else DASH)
        rows.append(row)
    thr = ["decision threshold", _text(first["internal"].get("threshold"))] + \
          [_text(c["external"].get("threshold")) for _, c in comps] + ([""] if ext_refs else [])
    rows.append(thr)
    ref_head = []
    if ext_refs:
        src = "; ".join(sorted({v[1] for v in ext_refs.values()}))
        ref_head = [f"{src}" + (" (REAL data: not comparable)" if synthetic else "")]
    doc.table(rows, ["metric"] + head + ref_head, ref_cols=(len(head) + 1,))
    notes = ["In brackets: the difference from the internal column. Every set is scored with the decision threshold "
             "chosen on the validation fold (never re-tuned on the set itself)."]
    for _, c in comps:
        notes += c.get("notes") or []
    doc.para(" ".join(notes), cls="note")



def _kappa(v) -> str:
    return DASH if v is None else f"{v:.3f}"


def _scan_section(doc: _Doc, spec, run: Path, synthetic: bool | None) -> None:
    """Scan-level results of a multi-label slice classifier (slice probabilities pooled per scan), on its
    validation fold and on every other set it was evaluated on, with each reader and the readers' agreement."""
    sets = []
    for d in [run] + sorted(run.glob("eval-*")):
        m = _read_json(d / "eval" / "metrics.json")
        if m and isinstance(m.get("scan_level"), dict) and m["scan_level"].get("aggregations"):
            ext = _read_json(d / "eval" / "internal_vs_external.json") or {}
            name = "validation fold" if d == run else (ext.get("external") or {}).get("dataset") or d.name
            sets.append((name, m, m["scan_level"]))
    if not sets:
        return
    doc.heading(3, "Scan level")
    names = list(sets[0][2]["aggregations"][sets[0][2]["primary"]]["auroc_per_class"])
    head = ["AUROC"]
    for name, m, sl in sets:
        head.append(f"{name}: slices (n={m.get('n', '?')})")
        head.append(f"{name}: scans, {sl['primary']} of the slices (n={sl['n_scans']})")
    ext_refs = getattr(spec, "external_references", {}) or {}
    if ext_refs:
        head.append(sorted({v[1] for v in ext_refs.values()})[0] + (" (REAL data: not comparable)" if synthetic else ""))
    rows = []
    for c in names + ["mean"]:
        row = [c]
        for _, m, sl in sets:
            a = sl["aggregations"][sl["primary"]]
            if c == "mean":
                row += [_value(m.get("auroc_mean"), m.get("auroc_mean_ci")),
                        _value(a.get("auroc_mean"), (a.get("ci") or {}).get("auroc_mean"))]
            else:
                row += [_value((m.get("auroc_per_class") or {}).get(c), (m.get("auroc_ci_per_class") or {}).get(c)),
                        _value(a["auroc_per_class"].get(c), ((a.get("ci") or {}).get("auroc_per_class") or {}).get(c))]
        if ext_refs:
            row.append(_text(ext_refs[f"auroc_per_class.{c}"][0]) if f"auroc_per_class.{c}" in ext_refs else DASH)
        rows.append(row)
    w = {c: v for c, v in (sets[0][1].get("weighted_log_loss_weights") or {}).items() if v != 1}
    row = ["weighted log loss" + (f" ({', '.join(f'{c} x{v:g}' for c, v in w.items())})" if w else "")]
    for _, m, sl in sets:
        row += [_text(m.get("weighted_log_loss")), _text(sl["aggregations"][sl["primary"]].get("weighted_log_loss"))]
    rows.append(row + ([""] if ext_refs else []))
    doc.table(rows, head, ref_cols=(len(head) - 1,) if ext_refs else ())
    agg = ", ".join(f"{k} {_text(v.get('auroc_mean'))}" for k, v in sets[-1][2]["aggregations"].items())
    notes = [f"A scan's probability of each label is the {sets[0][2]['primary']} of its slices' (other rules, mean "
             f"AUROC on {sets[-1][0]}: {agg}). Scan truth: {sets[-1][2]['aggregations'][sets[-1][2]['primary']].get('truth')}."]
    notes += [f"On {name}: {sl['note'][0].upper()}{sl['note'][1:]}" for name, _, sl in sets if sl.get("note")][:1]
    doc.para(" ".join(notes), cls="note")
    for name, _, sl in sets:
        rd = sl["aggregations"][sl["primary"]].get("readers")
        if not rd:
            continue
        doc.heading(3, f"Model and readers on {name}")
        readers = rd["readers"]
        agree = rd.get("reader_agreement") or {}
        pairs = sorted({p for c in names for p in ((agree.get(c) or {}).get("cohen_kappa") or {})})
        head = (["label"] + [f"AUROC vs {r}" for r in readers] + [f"kappa model vs {r}" for r in readers]
                + [f"kappa {p}" for p in pairs] + ["Fleiss kappa (readers)", "positives " + " / ".join(readers)])
        rows = []
        for c in names:
            a = agree.get(c) or {}
            rows.append([c] + [_value(rd["model_vs_reader"][r]["auroc_per_class"].get(c)) for r in readers]
                        + [_kappa(rd["model_vs_reader"][r]["kappa_model_vs_reader"].get(c)) for r in readers]
                        + [_kappa((a.get("cohen_kappa") or {}).get(p)) for p in pairs] + [_kappa(a.get("fleiss_kappa"))]
                        + [" / ".join(str(rd["model_vs_reader"][r]["positives"].get(c, "?")) for r in readers)])
        doc.table(rows, head)
        doc.para("The model is scored against each reader as the readers are against one another: Cohen's kappa "
                 "of the model's decision (validation-chosen threshold) with a reader sits beside the kappa of two "
                 "readers; Fleiss' kappa is the three readers' agreement. A model whose kappa with each reader "
                 "reaches the readers' own agreement reads these scans about as consistently as they do.", cls="note")


#: patients listed at most in a table of an applied model's predictions
N_APPLIED = 40


def _applied_sections(doc: _Doc, work: Path, data_dir: Path | None) -> None:
    """Multi-label models applied to this dataset by an ``infer`` step (``WORK_DIR/<step>/predictions.csv``
    with ``p_<label>``/``pred_<label>`` columns, from a checkpoint trained elsewhere): per patient, the
    highest slice probability of each label and how many slices cross its threshold, beside the dataset's
    own label."""
    import csv

    for pred in sorted(work.glob("*/predictions.csv")):
        d = pred.parent
        if (d / "models").is_dir() or (d / "eval").is_dir():
            continue  # a training or evaluation run, reported elsewhere
        with open(pred, newline="") as f:
            rows = list(csv.DictReader(f))
        names = [c[2:] for c in (rows[0] if rows else {}) if c.startswith("p_")]
        if not rows or not all(f"pred_{c}" in rows[0] for c in names) or len(names) < 2:
            continue
        own: dict = {}
        patient_of: dict = {}  # the dataset's patient of each image file (the model's own naming may not know it)
        dl = _read_json(Path(data_dir) / "datalist.json") if data_dir else None
        for r in (dl or {}).get("training", []) + (dl or {}).get("test", []):
            patient_of[Path(str(r.get("image", ""))).name] = str(r.get("patient"))
            if isinstance(r.get("label"), int):
                own.setdefault(str(r.get("patient")), []).append(r["label"])
        by: dict = {}
        for r in rows:
            by.setdefault(patient_of.get(Path(r.get("image", "")).name, r.get("patient", "")), []).append(r)
        doc.heading(2, f"Applied model: {d.name} ({', '.join(names)})")
        doc.para(f"A multi-label model trained elsewhere, applied by the pipeline to every slice ({len(rows)} slices, "
                 f"{len(by)} patients; {d.name}/predictions.csv). Per patient: the highest slice probability of each "
                 f"label and, in brackets, the slices at or above the label's threshold (chosen on the model's own "
                 f"validation fold). The dataset has no such labels: this is a description, not a score.", cls="note")
        table = []
        for patient, rs in sorted(by.items())[:N_APPLIED]:
            cells = [patient, str(len(rs))]
            if own:
                lab = own.get(patient)
                cells.append(DASH if lab is None else f"{sum(1 for v in lab if v > 0)} / {len(lab)}")
            for c in names:
                cells.append(f"{max(float(r[f'p_{c}']) for r in rs):.2f} ({sum(int(r[f'pred_{c}']) for r in rs)})")
            table.append(cells)
        doc.table(table, ["patient", "slices"] + (["dataset's positive slices"] if own else []) + names)
        if len(by) > N_APPLIED:
            doc.para(f"First {N_APPLIED} of {len(by)} patients; all in {d.name}/predictions.csv.", cls="note")


#: images shown with a classifier's heat map and a detector's boxes together
N_PAIRED = 4


def _paired_section(doc: _Doc, specs, run_dirs: dict[str, Path]) -> None:
    """A classifier's Grad-CAM and a detector's boxes on the same images (two bundles on one dataset).

    Uses what the stages wrote: the classifier's ``eval/cam/*.npz`` (heat map, image, reference boxes)
    and the detector's ``predictions.csv`` (boxes with confidence) and ``eval/metrics.json`` (``conf``).
    """
    cls = [sp for sp in specs if sp.task == "classification" and list((run_dirs[sp.name] / "eval" / "cam").glob("*.npz"))]
    det = [sp for sp in specs if sp.task == "detection" and (run_dirs[sp.name] / "predictions.csv").is_file()]
    if not cls or not det:
        return
    from medpipe.transforms.io import load_gray
    from medpipe.visualization.plots import overlay_heatmap

    import tempfile

    c, d = cls[0], det[0]
    tmp = Path(tempfile.mkdtemp(prefix="medpipe-report-"))
    conf = float((_read_json(run_dirs[d.name] / "eval" / "metrics.json") or {}).get("conf") or 0.25)
    boxes: dict[str, list] = {}
    for r in _read_csv(run_dirs[d.name] / "predictions.csv"):
        if r.get("xmin") not in (None, "") and _float(r.get("confidence")) >= conf:
            boxes.setdefault(Path(r["image"]).name, []).append(
                [_float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
    items = []
    for f in sorted((run_dirs[c.name] / "eval" / "cam").glob("*.npz"))[:N_PAIRED]:
        z = np.load(f)
        image = str(z["image"])
        if not Path(image).is_file():
            continue
        out = tmp / f"paired_{f.stem}.png"
        found = boxes.get(Path(image).name, [])
        overlay_heatmap(load_gray(image)[0], z["heat"].astype(np.float32), out,
                        title=f"{c.name}: Grad-CAM of {z['finding']} (p = {float(z['probability']):.2f})\n"
                              f"red: {d.name} boxes with confidence >= {conf:g} ({len(found)}); green: reference",
                        value_range=(0.0, float(z["heat"].max()) or 1.0), label="Grad-CAM (1 = this map's maximum)",
                        boxes_true=z["true_boxes"].tolist(), boxes_pred=found)
        items.append((out, f"{Path(image).stem}"))
    if not items:
        return
    doc.heading(2, f"Classifier and detector on the same images ({c.name}, {d.name})")
    doc.para(f"The classifier's heat map (Grad-CAM, as in its section) under the detector's boxes (red, confidence >= "
             f"{conf:g}, the detector's image-level decision) and the reference boxes (green): where the two models "
             f"look, side by side.", cls="note")
    doc.figures(items, "cams")
    shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- the report
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

    Example:
        >>> build_report("runs/demo", "runs/demo/report", data_dir="data/phe-sich")  # doctest: +SKIP
        {'html': 'runs/demo/report/report.html', 'md': 'runs/demo/report/report.md'}
    """
    from medpipe.bundle.registry import BUNDLES, get_bundle

    work, out = Path(work_dir), Path(out_dir)
    img_dir = out / "images"
    if img_dir.exists():
        shutil.rmtree(img_dir)
    img_dir.mkdir(parents=True)
    doc = _Doc(img_dir)

    rep = _read_json(Path(data_dir or work / "data") / "prepare_report.json")
    synthetic = _is_synthetic(rep)
    if bundles is None:
        name = (rep or {}).get("dataset")
        specs = [sp for sp in BUNDLES.values() if name is None or sp.dataset == name]
    else:
        specs = [get_bundle(b) for b in bundles]
    fold = (params or {}).get("fold")
    kfolds = {sp.name: _kfold(work / sp.name, fold) for sp in specs}
    runs = {sp.name: (_read_json(kfolds[sp.name][1] / "run_config.json") or {}) for sp in specs}

    title = f"medpipe report: {pipeline}"
    doc.both(f"<h1>{html.escape(title)}</h1><p class='note'>Generated {time.strftime('%Y-%m-%d %H:%M')} from "
             f"<code>{html.escape(str(work.resolve()))}</code>.</p>",
             f"# {title}\n\nGenerated {time.strftime('%Y-%m-%d %H:%M')} from `{work.resolve()}`.\n")
    if synthetic:
        doc.banner("Synthetic data.", "Every number below describes medpipe's synthetic generator (medpipe synth: "
                   "drawn shapes in the real dataset's layout), not the real dataset. It shows that the pipeline "
                   "runs end to end; it says nothing about how these models do on real images. Published numbers "
                   "are on real data and not comparable.")

    doc.heading(2, "Dataset")
    if rep:
        src = rep.get("source") or {}
        where = f"{src['subset_used']} of " if src.get("subset_used") else ""
        origin = {True: "synthetic data from medpipe synth", False: "the real download"}.get(
            synthetic, "origin not recorded")
        facts = [f"{rep['records']} records from {rep['patients']} patients ({where}{src.get('path', '?')}; {origin})"]
        for key, what in (("positives", "positive records"), ("mask_nonempty", "non-empty masks")):
            if isinstance(rep.get(key), int):
                facts.append(f"{rep[key]} {what}")
        facts.append(f"{len(rep['folds'])} patient-level folds (seed {rep.get('options', {}).get('seed', '?')})")
        doc.para("; ".join(facts) + ".")
        doc.table([[str(f["fold"]), str(f["patients"]), str(f["records"]), _text(f.get("positives"))]
                   for f in rep["folds"]], ["fold", "patients", "records", "positives"])
        a = rep.get("accounting") or {}
        kinds = rep.get("anomaly_counts") or {}
        from medpipe.prepare.report import skipped_breakdown

        why = "; ".join(skipped_breakdown(rep)) if rep.get("skipped") else ""
        doc.para(f"Files in the source: {a.get('files_seen')} = {a.get('files_in_records')} used in records + "
                 f"{a.get('files_skipped')} not used{f' ({why})' if why else ''}. Anomalies (kept, reported in "
                 f"prepare_report.md): {', '.join(f'{k} x{v}' for k, v in kinds.items()) or 'none'}.", cls="note")
        _prevalence_section(doc, rep)
        _view_label_section(doc, rep)
    else:
        doc.para("No prepare_report.json found.")
    if params:
        doc.heading(3, "Pipeline settings")
        devices = {str((r.get("settings") or {}).get("device")) for r in runs.values()
                   if (r.get("settings") or {}).get("device")}
        doc.kv(_pipeline_settings(params, devices))

    for spec in specs:
        kf, run = kfolds[spec.name]
        m = _read_json(run / "eval" / "metrics.json")
        doc.heading(2, spec.title)
        if not m:
            doc.para("Not run (no eval/metrics.json).")
            continue
        cfg = (runs[spec.name].get("settings") or {})
        epochs = len((_read_json(run / "history.json") or {}).get("epoch", []))
        sec = _SECTIONS[spec.task](spec, run, m)
        ev = _evaluated_set(sec["rows"], m)
        doc.para(_set_sentence(ev, rep, epochs))
        ref = bool(spec.references)
        header = ["metric", "medpipe (95 % CI)"] + ([_ref_header(spec, synthetic)] if ref else [])
        doc.table([r if ref or isinstance(r, str) else r[:2] for r in sec["table"]], header, ref_cols=(2,))
        notes = [_ci_note(len(ev["patients"])) if sec["cis"] else "", sec["note"]]
        if any(f"({UNDEFINED})" in str(c) for r in sec["table"] if not isinstance(r, str) for c in r):
            notes.append(f"{UNDEFINED}: {_UNDEFINED_TEXT}")
        if ref:
            notes.append(f"Reference column: {_ref_source(spec)}"
                         + ("; measured on the real dataset, so it cannot be compared with this synthetic run."
                            if synthetic else "; its slice-level split puts slices of one patient in both training "
                                              "and test, so it is optimistic next to patient-level folds."))
        doc.para(" ".join(n for n in notes if n), cls="note")
        if kf:
            _kfold_section(doc, kf)
        _external_section(doc, spec, run, synthetic)
        _scan_section(doc, spec, run, synthetic)
        doc.heading(3, "Training settings")
        doc.kv(_bundle_settings(cfg, runs[spec.name], epochs))
        _recipes_section(doc, spec, work, run)
        curves, large, plots, examples = _images(run, spec.plots)
        doc.figures([(p, f"{spec.name}: {p.relative_to(run)}") for p in curves], "wide")
        doc.figures([(p, f"{spec.name}: {p.relative_to(run)}") for p in large], "large")
        doc.figures([(p, f"{spec.name}: {p.relative_to(run)}") for p in plots], "plots")
        _localization_section(doc, run, synthetic)
        for folder, files in examples:
            by_outcome = any(p.name[:2] in ("TP", "FP", "FN", "TN") for p in files) or folder not in EXAMPLE_GROUPS
            heading, note = ("Examples", "The file name starts with the outcome: TP, FP, FN, TN (true/false "
                             "positive/negative); one example per outcome in turn, each from a patient not shown yet "
                             "where possible.") if by_outcome else EXAMPLE_GROUPS[folder]
            doc.heading(3, heading)
            doc.para(note, cls="note")
            # heat maps carry long titles and a colour bar: shown larger than outcome examples
            doc.figures([(p, _example_caption(p)) for p in files], "examples" if by_outcome else "cams")

    _applied_sections(doc, work, Path(data_dir) if data_dir else work / "data")
    _comparison_section(doc, {n: r for n, (_, r) in kfolds.items()}, specs, _unit(rep))
    _paired_section(doc, specs, {n: r for n, (_, r) in kfolds.items()})
    if synthetic:
        doc.para("Data: synthetic (medpipe synth). Published numbers are on the real dataset and not comparable.",
                 cls="note")

    html_text = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                 f"<style>{_CSS}</style></head><body>" + "\n".join(doc.H) + "</body></html>\n")
    for name, text in (("report.html", html_text), ("report.md", "\n".join(doc.M))):
        atomic_write_text(out / name, text)
    return {"html": str(out / "report.html"), "md": str(out / "report.md")}
