"""Cross-validation summaries: one model per validation fold, the spread of their metrics.

A pipeline bundle step with ``each_fold`` trains and evaluates one model per fold in
``OUTPUT_DIR/fold_<k>/``; :func:`summarize_folds` reads their ``eval/metrics.json`` and writes
``OUTPUT_DIR/kfold.json``: per fold the scalar metrics (and ``auroc_per_class`` for multi-label
runs), and per metric the mean and the sample standard deviation over folds (``ddof=1``; None with
one fold). A class whose AUROC is undefined on a fold (no positive or no negative there) is left out
of that class's mean, and the folds it was left out of are listed; it is never averaged as 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from medpipe.utils.fs import write_json

#: file the summary is written to, in the bundle step's output folder
KFOLD_FILE = "kfold.json"


def fold_dir(output_dir: str | Path, fold: int) -> Path:
    """Where the model validated on ``fold`` lives: ``OUTPUT_DIR/fold_<fold>``."""
    return Path(output_dir) / f"fold_{int(fold)}"


def _stats(values: dict[int, float | None]) -> dict:
    ok = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    n = len(ok)
    mean = sum(ok.values()) / n if n else None
    sd = math.sqrt(sum((v - mean) ** 2 for v in ok.values()) / (n - 1)) if n > 1 else None
    return {"mean": mean, "sd": sd, "n_folds": n, "values": {str(k): values[k] for k in values},
            "undefined_on": [k for k in values if k not in ok]}


def summarize_folds(output_dir: str | Path, folds: list[int]) -> dict:
    """Read each fold's ``eval/metrics.json`` under ``output_dir`` and write ``output_dir/kfold.json``.

    Args:
        output_dir: the bundle step's output folder (each fold's run in ``fold_<k>/``).
        folds: the validation folds that were trained.

    Returns:
        The summary: ``{"folds", "runs", "metrics": {key: stats}, "auroc_per_class": {class: stats}}``,
        each ``stats`` being ``{"mean", "sd", "n_folds", "values", "undefined_on"}``.

    Example:
        >>> summarize_folds("runs/chest_xray/cxr14_cls", [0, 1, 2])["metrics"]["auroc_mean"]["mean"]  # doctest: +SKIP
        0.84
    """
    from medpipe.errors import UserError

    out = Path(output_dir)
    per_fold = {}
    for k in folds:
        f = fold_dir(out, k) / "eval" / "metrics.json"
        if not f.is_file():
            raise UserError(f"{f}: missing; the model validated on fold {k} has not been evaluated "
                            f"(re-run the pipeline step).")
        per_fold[k] = json.loads(f.read_text())
    scalar = sorted({key for m in per_fold.values() for key, v in m.items()
                     if isinstance(v, (int, float)) and not isinstance(v, bool) and key not in ("fold", "n")})
    summary = {"folds": list(folds), "runs": {str(k): fold_dir(out, k).name for k in folds},
               "kind": next(iter(per_fold.values())).get("kind"),
               "metrics": {key: _stats({k: m.get(key) for k, m in per_fold.items()}) for key in scalar},
               "n_evaluated": {str(k): m.get("n") for k, m in per_fold.items()}}
    classes = []
    for m in per_fold.values():
        classes += [c for c in (m.get("auroc_per_class") or {}) if c not in classes]
    if classes:
        summary["auroc_per_class"] = {c: _stats({k: (m.get("auroc_per_class") or {}).get(c)
                                                 for k, m in per_fold.items()}) for c in classes}
    write_json(out / KFOLD_FILE, summary, atomic=True)
    return summary
