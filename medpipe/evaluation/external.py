"""Internal vs external: a model's evaluation on another set, side by side with its own validation fold.

After ``medpipe evaluate BUNDLE --ckpt_path RUN/models/model.pt --dataset_dir OTHER --records test``
(output in ``RUN/eval-<dataset>-<records>/``), :func:`compare_with_internal` writes
``eval/internal_vs_external.{json,md}`` there: each headline metric on the run's validation fold
(``RUN/eval/metrics.json``, the internal estimate) and on the evaluated set, with the difference,
the decision threshold each used (the external set is scored with the threshold chosen on the
validation fold, never re-tuned), and a warning when the evaluated set may share images with the
training source (the training dataset's datalist declares such sources in ``overlaps_with``).
"""

from __future__ import annotations

import json
from pathlib import Path

from medpipe.utils.fs import atomic_write_text, write_json

#: the metrics compared, per label kind, in the order shown
KEYS = {"binary": ("auroc", "accuracy", "recall", "specificity", "precision", "f1"),
        "multiclass": ("accuracy", "balanced_accuracy", "f1_macro", "auroc_macro"),
        "multilabel": ("auroc_mean", "auprc_mean", "f1_macro", "f1_micro")}
NAMES = {"recall": "sensitivity (recall)", "auroc": "AUROC", "f1": "F1"}


def _read(p: Path) -> dict | None:
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except ValueError:
        return None


def _dataset(dataset_dir) -> dict:
    dl = _read(Path(str(dataset_dir)) / "datalist.json") or {}
    return {"name": dl.get("dataset"), "dir": str(Path(str(dataset_dir)).resolve()),
            "overlaps_with": dl.get("overlaps_with") or {}, "synthetic": dl.get("synthetic")}


def compare_with_internal(output_dir, run_dir, ckpt_path, dataset_dir, records: str = "test") -> dict | None:
    """Write ``output_dir/eval/internal_vs_external.{json,md}`` (see the module docstring).

    Args:
        output_dir: this evaluation's output folder (``eval/metrics.json`` written).
        run_dir: the training run (its ``eval/metrics.json`` is the validation-fold evaluation).
        ckpt_path: the evaluated checkpoint (its ``models/model.json`` names the training dataset).
        dataset_dir: the evaluated prepared dataset.
        records: the evaluated records (``test``, ``all``, ``fold:N``).

    Returns:
        The comparison, or None when this *is* the run's own validation evaluation.

    Example:
        >>> compare_with_internal("runs/p/eval-hospital-test", "runs/p", "runs/p/models/model.pt",
        ...                       "data/hospital")["rows"][0]  # doctest: +SKIP
        {'metric': 'auroc', 'internal': 0.86, 'external': 0.71, 'difference': -0.15}
    """
    from medpipe.bundle.checkpoint import read_sidecar

    out, run = Path(output_dir).resolve(), Path(run_dir).resolve()
    if out == run:
        return None
    this = _read(out / "eval" / "metrics.json")
    if this is None:
        return None
    internal = _read(run / "eval" / "metrics.json")
    side = read_sidecar(ckpt_path)
    trained_dir = (side.get("dataset") or {}).get("dir")
    trained = _dataset(trained_dir) if trained_dir else {"name": None, "dir": None, "overlaps_with": {}}
    evaluated = _dataset(dataset_dir)
    same = trained["dir"] is not None and trained["dir"] == evaluated["dir"]
    kind = this.get("kind", "binary")
    rows = []
    for k in KEYS.get(kind, ()):
        a, b = (internal or {}).get(k), this.get(k)
        if a is None and b is None:
            continue
        diff = b - a if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        rows.append({"metric": k, "internal": a, "external": b, "difference": diff})
    notes = []
    if same:
        notes.append(f"Same dataset as training ({trained['name']}), records {records}: an internal held-out "
                     f"set, not an external one.")
    overlap = trained["overlaps_with"].get(evaluated["name"]) if evaluated["name"] else None
    if overlap:
        notes.append(f"May overlap the training source: {overlap}")
    if internal is None:
        notes.append(f"{run / 'eval' / 'metrics.json'} is missing: evaluate the run's validation fold first "
                     f"(medpipe evaluate with --records val) for the internal column.")
    result = {"internal": {"dataset": trained["name"], "records": f"validation fold {(internal or {}).get('fold')}",
                           "n": (internal or {}).get("n"), "threshold": (internal or {}).get("threshold")},
              "external": {"dataset": evaluated["name"], "dir": evaluated["dir"], "records": str(records),
                           "n": this.get("n"), "threshold": this.get("threshold"),
                           "threshold_source": this.get("threshold_source")},
              "same_dataset": same, "kind": kind, "rows": rows, "notes": notes}
    ev = out / "eval"
    write_json(ev / "internal_vs_external.json", result, atomic=True)
    atomic_write_text(ev / "internal_vs_external.md", to_markdown(result))
    return result


def _f(v) -> str:
    return "—" if v is None else f"{v:+.3f}" if isinstance(v, float) and v < 0 else \
        (f"{v:.3f}" if isinstance(v, (int, float)) else str(v))


def _t(v) -> str:
    return "—" if v is None else f"{v:.4g}"


def to_markdown(c: dict) -> str:
    """The comparison as a Markdown table with its notes."""
    i, e = c["internal"], c["external"]
    lines = [f"| metric | internal: {i['dataset']}, {i['records']} (n={i['n']}) | "
             f"{'held-out' if c['same_dataset'] else 'external'}: {e['dataset']}, {e['records']} (n={e['n']}) "
             f"| difference |", "|---|---:|---:|---:|"]
    for r in c["rows"]:
        d = r["difference"]
        lines.append(f"| {NAMES.get(r['metric'], r['metric'])} | {_f(r['internal'])} | {_f(r['external'])} | "
                     f"{'—' if d is None else f'{d:+.3f}'} |")
    if e.get("threshold") is not None:
        lines.append(f"| decision threshold | {_t(i.get('threshold'))} | {_t(e['threshold'])} | |")
    lines.append("")
    if e.get("threshold_source"):
        lines.append(f"Threshold of the evaluated set: {e['threshold_source']}.")
    lines += c["notes"]
    return "\n".join(lines) + "\n"
