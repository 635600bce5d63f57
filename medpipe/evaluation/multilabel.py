"""The evaluation summary of a multi-label classifier: metrics, thresholds, intervals, references, per-class table.

:func:`multilabel_summary` turns the evaluated images' labels, probabilities and patients into what
``eval/metrics.json`` and ``eval/per_class.csv`` hold:

* the CONTRACT keys (``auroc_per_class``, ``auroc_mean``, ``f1_micro``, ``f1_macro``) and the rest of
  :func:`medpipe.metrics.multilabel.multilabel_metrics` (``auprc_per_class``, ``per_class``...);
* the decision thresholds the F1 values use and where they come from: chosen here per class
  (maximum F1) when the evaluated records are the run's validation fold (in-sample for these
  records, stored with the checkpoint for later evaluations and inference), else the thresholds
  the validation evaluation stored, else 0.5; F1 at 0.5 beside them;
* the evaluated set: images, patients, positives per class;
* patient-level bootstrap 95 % intervals of each class's AUROC and of the mean;
* published values beside ours (e.g. CheXNet's per-class AUROC), marked as another split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["multilabel_summary", "per_class_rows", "PER_CLASS_COLUMNS"]

#: columns of ``eval/per_class.csv``
PER_CLASS_COLUMNS = ["class", "positives", "positive_patients", "negatives", "prevalence", "auroc", "auroc_ci_low", "auroc_ci_high",
                     "auprc", "threshold", "precision", "recall", "specificity", "f1", "reference_auroc"]


def _pair(v):
    return None if v is None or v[0] is None else [float(v[0]), float(v[1])]


def multilabel_summary(y_true, y_prob, class_names: Sequence[str], patients: Sequence,
                       thresholds: str | Sequence[float] | Mapping[str, float] | None = None,
                       threshold_source: str = "", references: Mapping | None = None, n_boot: int = 1000,
                       seed: int = 0) -> dict:
    """Everything ``eval/metrics.json`` of a multi-label evaluation holds (JSON-ready).

    Args:
        y_true: 0/1 label vectors ``(N, C)``.
        y_prob: per-class probabilities ``(N, C)``.
        class_names: the ``C`` names.
        patients: the patient of each image (the bootstrap resamples patients).
        thresholds: ``"choose"`` (per class, maximum F1 on these records), per-class values (a list
            in class order or a ``{name: t}`` mapping; missing names get 0.5), one number for every
            class, or None (0.5).
        threshold_source: words saying where given thresholds come from (recorded as is).
        references: ``{"source": str, "note": str, "auroc_mean": float, "auroc_per_class": {name: float}}``
            to show beside ours (classes not in it get None).
        n_boot: bootstrap resamples (0: no intervals).
        seed: bootstrap seed.

    Returns:
        The metrics dict: the keys of :func:`~medpipe.metrics.multilabel.multilabel_metrics` plus
        ``thresholds`` ({name: t}), ``thresholds_source``, ``at_threshold_0.5`` (``f1_micro``,
        ``f1_macro``), ``evaluated`` (``images``, ``patients``, ``positives_per_class``),
        ``auroc_ci_per_class`` ({name: [lo, hi] or None}), ``auroc_mean_ci``, ``bootstrap``
        (resamples, unit, seed, level) and, with ``references``, ``reference``.

    Example:
        >>> m = multilabel_summary([[1, 0], [0, 1], [1, 1], [0, 0]], [[.9, .2], [.3, .7], [.6, .8], [.2, .1]],
        ...                        ["a", "b"], ["p1", "p2", "p3", "p4"], thresholds="choose", n_boot=50)
        >>> m["auroc_mean"], m["thresholds"], m["evaluated"]["patients"]
        (1.0, {'a': 0.6, 'b': 0.7}, 4)
    """
    from medpipe.metrics.bootstrap import multilabel_auroc_cis
    from medpipe.metrics.multilabel import best_thresholds_per_class, multilabel_metrics

    names = [str(c) for c in class_names]
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(y_prob, dtype=np.float64)
    if isinstance(thresholds, str):
        if thresholds != "choose":
            raise ValueError(f"thresholds: 'choose', per-class values or None, got {thresholds!r}")
        thr = best_thresholds_per_class(y, p, "f1")
        source = threshold_source or "chosen per class on these records (maximum F1): in-sample for them"
    elif thresholds is None:
        thr, source = [0.5] * len(names), threshold_source or "0.5 (no thresholds chosen on validation)"
    elif isinstance(thresholds, Mapping):
        thr, source = [float(thresholds.get(c, 0.5)) for c in names], threshold_source
    elif np.ndim(thresholds) == 0:
        thr, source = [float(thresholds)] * len(names), threshold_source or f"{float(thresholds):g} for every class"
    else:
        thr, source = [float(t) for t in thresholds], threshold_source
    m = multilabel_metrics(y, p, names, thresholds=thr)
    at_half = multilabel_metrics(y, p, names, thresholds=0.5)
    m["thresholds"] = dict(zip(names, thr))
    m["thresholds_source"] = source
    m["at_threshold_0.5"] = {"f1_micro": at_half["f1_micro"], "f1_macro": at_half["f1_macro"]}
    pats = [str(x) for x in patients]
    pos_patients = [len({pt for pt, v in zip(pats, y[:, k]) if v}) for k in range(len(names))]
    m["evaluated"] = {"images": int(len(y)), "patients": len(set(pats)),
                      "positives_per_class": dict(zip(names, (int(v) for v in y.sum(axis=0)))),
                      "positive_patients_per_class": dict(zip(names, pos_patients))}
    if n_boot:
        ci = multilabel_auroc_cis(pats, y, p, names, n_boot=n_boot, seed=seed)
        m["auroc_ci_per_class"] = {c: _pair(v) for c, v in ci["auroc_per_class"].items()}
        m["auroc_mean_ci"] = _pair(ci["auroc_mean"])
        m["bootstrap"] = {"resamples": int(n_boot), "unit": "patient", "seed": int(seed), "level": 0.95,
                          "method": "percentile"}
    if references:
        ref = dict(references.get("auroc_per_class") or {})
        m["reference"] = {
            "source": references.get("source", ""),
            "note": references.get("note", "their split differs from ours: not a like-for-like comparison"),
            "auroc_mean": references.get("auroc_mean"),
            "per_class": {c: {"ours": m["auroc_per_class"][c], "reference": ref.get(c),
                              "difference": (None if m["auroc_per_class"][c] is None or ref.get(c) is None
                                             else float(m["auroc_per_class"][c] - ref[c]))} for c in names},
        }
    return m


def per_class_rows(m: dict) -> list[dict]:
    """The rows of ``eval/per_class.csv`` (columns :data:`PER_CLASS_COLUMNS`) from a :func:`multilabel_summary`."""
    n = m["n"]
    cis = m.get("auroc_ci_per_class") or {}
    pos_pat = (m.get("evaluated") or {}).get("positive_patients_per_class") or {}
    ref = (m.get("reference") or {}).get("per_class") or {}
    rows = []
    for c, d in m["per_class"].items():
        ci = cis.get(c) or [None, None]
        rows.append({"class": c, "positives": d["support"], "positive_patients": pos_pat.get(c),
                     "negatives": n - d["support"],
                     "prevalence": d["prevalence"], "auroc": d["auroc"], "auroc_ci_low": ci[0], "auroc_ci_high": ci[1],
                     "auprc": d["auprc"], "threshold": d["threshold"], "precision": d["precision"],
                     "recall": d["recall"], "specificity": d["specificity"], "f1": d["f1"],
                     "reference_auroc": (ref.get(c) or {}).get("reference")})
    return rows
