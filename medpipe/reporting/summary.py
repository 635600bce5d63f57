"""Print a terminal summary of a prepared dataset and bundle runs: ``python -m medpipe.reporting.summary DATA RUN...``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from medpipe.bundle.registry import BUNDLES


def _spec_of(run):
    """The registry entry of a run folder, from the bundle its checkpoint settings name."""
    side = Path(run) / "models" / "model.json"
    if side.is_file():
        return BUNDLES.get(json.loads(side.read_text()).get("bundle"))
    return None


def summarize(dataset_dir: str, runs: list[str]) -> str:
    """A few lines per item: dataset counts, then each run's evaluation metrics and where its files are."""
    lines = []
    rep = Path(dataset_dir) / "prepare_report.json"
    if rep.exists():
        r = json.loads(rep.read_text())
        pos = f", {r['positives']} positive" if isinstance(r.get("positives"), int) else ""
        lines.append(f"dataset {Path(dataset_dir).resolve()}: {r['records']} records, {r['patients']} patients{pos}; "
                     f"{len(r['folds'])} patient-level folds")
    for run in runs:
        m_path = Path(run) / "eval" / "metrics.json"
        if not m_path.exists():
            lines.append(f"{run}: no eval/metrics.json (not evaluated yet)")
            continue
        m = json.loads(m_path.read_text())
        spec = BUNDLES.get(Path(run).name) or _spec_of(run)
        keys = spec.headline if spec else ("accuracy", "precision", "recall", "f1", "specificity", "auroc", "dice", "map50")
        vals = ", ".join(f"{k} {m[k]:.3f}" for k in keys if isinstance(m.get(k), (int, float)))
        lines.append(f"{Path(run).name} ({m.get('records', 'val')} fold {m.get('fold', '?')}): {vals}")
        if isinstance(m.get("slice_level"), dict):
            sl = m["slice_level"]
            lines.append("  slice level (any box >= conf): " + ", ".join(
                f"{k} {sl[k]:.3f}" for k in ("accuracy", "precision", "recall", "f1") if isinstance(sl.get(k), (int, float))))
        if "seg_to_cls" in m:
            s = m["seg_to_cls"]
            lines.append(f"  seg->cls (area >= {s['area_threshold']} px, {s['selection']}): accuracy "
                         f"{s['accuracy']:.3f}, recall {s['recall']:.3f}, f1 {s['f1']:.3f}")
        lines.append(f"  outputs: {Path(run).resolve()}/eval (metrics.json, PNG plots), predictions.csv, models/")
        table = Path(run) / "eval" / "slice_classifiers.md"
        if table.exists():
            lines.append("  slice classifiers on the same slices:")
            lines += ["    " + t for t in table.read_text().strip().splitlines()]
    lines.append("TensorBoard: tensorboard --logdir_spec " + ",".join(f"{Path(r).name}:{Path(r).resolve()}/tb" for r in runs)
                 + " --host 127.0.0.1 --port 6006")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m medpipe.reporting.summary DATASET_DIR RUN_DIR [RUN_DIR ...]")
        return 2
    print(summarize(argv[0], argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
