"""Print a terminal summary of a prepared dataset and bundle runs: ``python -m medpipe.reporting.summary DATA RUN...``.

``--tensorboard`` adds the command that watches the runs (``medpipe run`` prints that one already,
so ``make demo`` does not ask for it twice).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from medpipe.bundle.registry import BUNDLES


def _spec_of(run):
    """The registry entry of a run folder, from the bundle its checkpoint settings name."""
    side = Path(run) / "models" / "model.json"
    if side.is_file():
        return BUNDLES.get(json.loads(side.read_text()).get("bundle"))
    return None


def tensorboard_command(runs: Sequence[tuple[str, str | os.PathLike]]) -> str:
    """The command that serves the ``(name, tb folder)`` pairs on loopback, runnable from a plain shell.

    The ``tensorboard`` script installed next to this interpreter (``<venv>/bin/tensorboard``), by its
    absolute path, so no virtual environment needs to be active; ``<python> -m tensorboard.main``
    when there is no such script. TensorBoard keeps only 10 images per tag unless told: the command
    keeps up to 200, so every validation's overlay grid can be stepped through.

    Example:
        >>> tensorboard_command([("my_bundle", "/r/my_bundle/tb")]).split(" --logdir_spec ")[1]
        'my_bundle:/r/my_bundle/tb --samples_per_plugin images=200 --host 127.0.0.1 --port 6006'
    """
    py = Path(sys.executable).absolute()  # not resolved: a venv's python is a link to the base interpreter
    exe = py.parent / "tensorboard"
    head = [str(exe)] if exe.is_file() and os.access(exe, os.X_OK) else [str(py), "-m", "tensorboard.main"]
    spec = ",".join(f"{name}:{Path(p).absolute()}" for name, p in runs)
    return shlex.join(head + ["--logdir_spec", spec, "--samples_per_plugin", "images=200", "--host", "127.0.0.1",
                              "--port", "6006"])


def summarize(dataset_dir: str, runs: list[str], tensorboard: bool = False) -> str:
    """A few lines per item: dataset counts, then each run's evaluation metrics and where its files are;
    with ``tensorboard``, the command that watches the runs' ``tb/`` folders."""
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
        vals = ", ".join(f"{k} {m[k]:.4g}" for k in keys if isinstance(m.get(k), (int, float)))
        lines.append(f"{Path(run).name} ({m.get('records', 'val')} fold {m.get('fold', '?')}): {vals}")
        if isinstance(m.get("slice_level"), dict):
            sl = m["slice_level"]
            lines.append("  slice level (any box >= conf): " + ", ".join(
                f"{k} {sl[k]:.4g}" for k in ("accuracy", "precision", "recall", "f1") if isinstance(sl.get(k), (int, float))))
        if "seg_to_cls" in m:
            s = m["seg_to_cls"]
            lines.append(f"  seg->cls (area >= {s['area_threshold']} px, {s['selection']}): accuracy "
                         f"{s['accuracy']:.4g}, recall {s['recall']:.4g}, f1 {s['f1']:.4g}")
        lines.append(f"  outputs: {Path(run).resolve()}/eval (metrics.json, PNG plots), predictions.csv, models/")
        table = Path(run) / "eval" / "slice_classifiers.md"
        if table.exists():
            lines.append("  slice classifiers on the same slices:")
            lines += ["    " + t for t in table.read_text().strip().splitlines()]
    if tensorboard:
        lines.append("TensorBoard: " + tensorboard_command([(Path(r).name, Path(r).resolve() / "tb") for r in runs]))
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tensorboard = "--tensorboard" in argv
    argv = [a for a in argv if a != "--tensorboard"]
    if not argv:
        print("usage: python -m medpipe.reporting.summary [--tensorboard] DATASET_DIR RUN_DIR [RUN_DIR ...]")
        return 2
    print(summarize(argv[0], argv[1:], tensorboard=tensorboard))
    return 0


if __name__ == "__main__":
    sys.exit(main())
