"""Segmentation-to-classification evaluation: a slice is positive when its predicted area >= A.

A segmentation model becomes a slice classifier by thresholding the predicted foreground area.
Choosing ``A`` on the very slices it is then scored on would be optimistic, so
:func:`evaluate_seg_to_cls` either takes ``A`` from separate ``threshold_rows`` (e.g. the
validation split) or cross-fits it: patients are split into two halves, ``A`` is chosen on one half
and applied to the other, and vice versa. Patients never straddle the halves, so slices of one
patient never both pick and judge a threshold. The threshold to deploy (chosen on all rows) is
reported too.

:func:`compare_slice_classifiers` puts several slice classifiers (e.g. this one and a CNN slice
classifier) side by side on the slices they all scored.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from medpipe.metrics.classification import classification_metrics
from medpipe.metrics.segmentation import area_threshold_sweep, choose_area_threshold
from medpipe.utils.fs import atomic_write_text, write_json

__all__ = ["evaluate_seg_to_cls", "compare_slice_classifiers", "split_patients", "TABLE_METRICS"]

#: metric columns of the comparison table
TABLE_METRICS = ("accuracy", "precision", "recall", "f1", "specificity", "auroc", "average_precision")
_ROW_KEYS = ("patient", "slice", "label", "pred_area")


def _patient_sort_key(p):
    """Numeric ids sort numerically (``"0002" < "0010"``, ``2 < 10``), anything else as text after."""
    try:
        return (0, int(str(p)), str(p))
    except ValueError:
        return (1, 0, str(p))


def split_patients(patients, positive=None) -> tuple[list, list]:
    """Deterministic two-way patient split.

    Without ``positive``: sorted ids, first half (the larger when odd) and the rest. With
    ``positive`` (the ids of patients that have lesion slices), positive and negative patients are
    each dealt alternately to the two halves, so both halves can choose a threshold (a half without
    positive patients would pick A = 0 and make the cross-fitted numbers meaningless).

    Example:
        >>> split_patients([5, 1, 3, 2, 4])
        ([1, 2, 3], [4, 5])
        >>> split_patients([1, 2, 3, 4], positive={1, 2})
        ([1, 3], [2, 4])
    """
    ids = sorted(set(patients), key=_patient_sort_key)
    if positive is None:
        half = (len(ids) + 1) // 2
        return ids[:half], ids[half:]
    halves: tuple[list, list] = ([], [])
    i = 0
    for group in ([p for p in ids if p in positive], [p for p in ids if p not in positive]):
        for p in group:
            halves[i % 2].append(p)
            i += 1
    return sorted(halves[0], key=_patient_sort_key), sorted(halves[1], key=_patient_sort_key)


def _check_rows(rows: Sequence[Mapping], name: str) -> list[dict]:
    if not rows:
        raise ValueError(f"{name} is empty")
    out, seen = [], set()
    for i, r in enumerate(rows):
        missing = [k for k in _ROW_KEYS if k not in r]
        if missing:
            raise ValueError(f"{name}[{i}] lacks {missing}; each row needs {list(_ROW_KEYS)}")
        key = (r["patient"], r["slice"])
        if key in seen:
            raise ValueError(f"{name}[{i}]: duplicate (patient, slice) {key}")
        seen.add(key)
        area = float(r["pred_area"])
        if not math.isfinite(area) or area < 0:
            raise ValueError(f"{name}[{i}]: pred_area must be a finite number >= 0, got {r['pred_area']!r}")
        label = int(r["label"])
        if label not in (0, 1) or label != float(r["label"]):
            raise ValueError(f"{name}[{i}]: label must be 0 or 1, got {r['label']!r}")
        out.append({"patient": r["patient"], "slice": r["slice"], "label": label,
                    "pred_area": r["pred_area"]})
    return out


def _areas(rows) -> np.ndarray:
    a = np.asarray([r["pred_area"] for r in rows])
    return a if np.issubdtype(a.dtype, np.integer) else a.astype(np.float64)


def _labels(rows) -> np.ndarray:
    return np.asarray([r["label"] for r in rows], dtype=np.int64)


def _choose(rows, metric: str) -> tuple:
    sweep = area_threshold_sweep(_areas(rows), _labels(rows))
    return choose_area_threshold(sweep, metric=metric), sweep


def _metrics(labels, predictions, scores, class_names) -> dict:
    """Classification keys of hard 0/1 predictions, with the ranking metrics taken from ``scores``."""
    m = classification_metrics(labels, predictions, threshold=0.5, class_names=class_names)
    ranked = classification_metrics(labels, scores, threshold=0.5, class_names=class_names)
    m["auroc"], m["average_precision"] = ranked["auroc"], ranked["average_precision"]
    del m["threshold"]  # 0.5 on hard predictions says nothing; the area threshold is reported
    return m


def _csv_text(header: Sequence[str], rows: Sequence[Mapping]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(header), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def evaluate_seg_to_cls(rows: Sequence[Mapping], threshold_rows: Sequence[Mapping] | None = None,
                        metric: str = "f1", out_dir=None,
                        class_names: Sequence[str] = ("negative", "positive")) -> dict:
    """Slice classification metrics of the rule "positive when predicted area >= A".

    Args:
        rows: one dict per evaluated slice: ``patient``, ``slice``, ``label`` (0/1: the slice has a
            lesion) and ``pred_area`` (predicted foreground pixels).
        threshold_rows: rows of the same form from a separate split (e.g. validation) on which ``A``
            is chosen. ``None``: 2-fold patient-level cross-fitting within ``rows`` (patients sorted
            by id, split in two halves; each half is classified with the ``A`` chosen on the other).
        metric: the sweep metric that ``A`` maximizes (``f1``, ``accuracy``, ``precision``,
            ``recall`` or ``specificity``); ties go to the smallest ``A``.
        out_dir: when given, writes ``seg_to_cls_metrics.json``, ``seg_to_cls_sweep.csv``,
            ``seg_to_cls_sweep.png`` and ``seg_to_cls_predictions.csv`` (patient, slice, pred_area,
            prediction, label, area_threshold: the ``A`` that decided the row -- when cross-fitted,
            the one chosen on the other half of the patients) there.
        class_names: names of label 0 and 1 in ``per_class``.

    Returns:
        A JSON-ready dict: ``area_threshold`` (the ``A`` to deploy: chosen on ``threshold_rows``, or
        on all ``rows`` when cross-fitted), ``selection`` (``"threshold_rows"`` or
        ``"cross-fitted"``), ``metric``, the keys of
        :func:`medpipe.metrics.classification.classification_metrics` (``accuracy``, ``precision``,
        ``recall``, ``f1``, ``specificity``, ``confusion_matrix``, ``per_class``, ``n``,
        ``positives``; no ``threshold``) for the hard predictions, with
        ``auroc``/``average_precision`` computed from the raw areas as scores, ``sweep`` (the rows
        of :func:`medpipe.metrics.segmentation.area_threshold_sweep` on the rows the deployed ``A``
        was chosen on) and ``sweep_source`` (``"threshold_rows"`` or ``"all_rows"``).
        Cross-fitted results add ``area_threshold_all`` (same as ``area_threshold``) and
        ``folds``: for each half its ``patients``, the ``area_threshold`` applied to it (chosen on
        the other half) and its ``n``. The metrics are those of the out-of-fold predictions.

    Raises:
        ValueError: empty or malformed rows, duplicate slices, or fewer than 2 patients to
            cross-fit.

    Example:
        >>> rows = [{"patient": p, "slice": s, "label": y, "pred_area": a} for p, s, y, a in
        ...         [(1, 0, 0, 0), (1, 1, 1, 40), (1, 2, 0, 5), (2, 0, 0, 3), (2, 1, 1, 60), (2, 2, 1, 30)]]
        >>> res = evaluate_seg_to_cls(rows)
        >>> res["area_threshold_all"], [f["area_threshold"] for f in res["folds"]], res["f1"]
        (30, [30, 40], 0.8)
    """
    rows = _check_rows(rows, "rows")
    labels, areas = _labels(rows), _areas(rows)
    result: dict = {}
    if threshold_rows is not None:
        threshold_rows = _check_rows(threshold_rows, "threshold_rows")
        area_threshold, sweep = _choose(threshold_rows, metric)
        applied = np.full(len(rows), area_threshold, dtype=np.float64)
        result.update(area_threshold=area_threshold, selection="threshold_rows", metric=metric,
                      sweep_source="threshold_rows")
    else:
        half_a, half_b = split_patients([r["patient"] for r in rows],
                                        positive={r["patient"] for r in rows if int(r["label"])})
        if not half_b:
            raise ValueError("cross-fitting needs rows of at least 2 patients; pass threshold_rows "
                             "(e.g. the validation split) to choose the area threshold instead")
        area_threshold, sweep = _choose(rows, metric)
        applied = np.zeros(len(rows), dtype=np.float64)
        folds = []
        for chosen_on, applied_to in ((half_b, half_a), (half_a, half_b)):
            on, to = set(chosen_on), set(applied_to)
            a_fold, _ = _choose([r for r in rows if r["patient"] in on], metric)
            idx = [i for i, r in enumerate(rows) if r["patient"] in to]
            applied[idx] = a_fold
            folds.append({"patients": list(applied_to), "area_threshold": a_fold, "n": len(idx)})
        result.update(area_threshold=area_threshold, selection="cross-fitted", metric=metric,
                      sweep_source="all_rows", area_threshold_all=area_threshold, folds=folds)
    predictions = (areas >= applied).astype(np.int64)
    result.update(_metrics(labels, predictions, areas, class_names))
    result["sweep"] = sweep

    if out_dir is not None:
        from medpipe.visualization.plots import plot_threshold_sweep

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "seg_to_cls_metrics.json", result, atomic=True)
        atomic_write_text(out / "seg_to_cls_sweep.csv", _csv_text(list(sweep[0]), sweep))
        plot_threshold_sweep(sweep, area_threshold, out / "seg_to_cls_sweep.png", x_key="area",
                             title="Slice classification by predicted area: sweep on "
                                   + ("the threshold rows" if threshold_rows is not None else "all rows"))
        pred_rows = [{**r, "prediction": int(p), "area_threshold": _plain(a)}
                     for r, p, a in zip(rows, predictions, applied)]
        atomic_write_text(out / "seg_to_cls_predictions.csv",
                          _csv_text(["patient", "slice", "pred_area", "prediction", "label", "area_threshold"],
                                    pred_rows))
    return result


def _plain(v):
    """An area threshold as written: ``12`` rather than ``12.0`` when it is whole."""
    v = float(v)
    return int(v) if v.is_integer() else v


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def compare_slice_classifiers(tables: Mapping[str, Sequence[Mapping]], thresholds: Mapping[str, float] | None = None,
                              class_names: Sequence[str] = ("negative", "positive")) -> tuple[str, dict]:
    """Side-by-side slice classification metrics of several classifiers on their common slices.

    Rows are joined on ``(patient, slice)``; only slices present in every table are scored, so the
    numbers are comparable. The hard decision of a row is its ``prediction`` (0/1) when present,
    else ``probability >= threshold``; the ranking metrics (``auroc``, ``average_precision``) use
    ``probability`` when present (any score, e.g. a predicted area, works), else the prediction.

    Args:
        tables: classifier name -> rows with ``patient``, ``slice``, ``label`` and ``probability``
            and/or ``prediction``.
        thresholds: optional per-classifier probability thresholds (default 0.5).
        class_names: names of label 0 and 1 in ``per_class``.

    Returns:
        ``(markdown, result)``: a Markdown table (one line per classifier: n and
        :data:`TABLE_METRICS`) and ``{"n_common": int, "excluded": {name: rows left out},
        "metrics": {name: classification metrics}}``.

    Raises:
        ValueError: no tables, rows lacking keys, duplicate slices, no common slice, or tables that
            disagree on a slice's label.

    Example:
        >>> seg = [{"patient": 1, "slice": 0, "label": 1, "prediction": 1},
        ...        {"patient": 1, "slice": 1, "label": 0, "prediction": 0}]
        >>> cnn = [{"patient": 1, "slice": 0, "label": 1, "probability": 0.9},
        ...        {"patient": 1, "slice": 1, "label": 0, "probability": 0.7}]
        >>> md, res = compare_slice_classifiers({"seg": seg, "cnn": cnn})
        >>> res["metrics"]["seg"]["accuracy"], res["metrics"]["cnn"]["accuracy"]
        (1.0, 0.5)
    """
    if not tables:
        raise ValueError("tables is empty: give at least one classifier")
    thresholds = dict(thresholds or {})
    indexed: dict[str, dict] = {}
    for name, rows in tables.items():
        idx = {}
        for i, r in enumerate(rows):
            missing = [k for k in ("patient", "slice", "label") if k not in r]
            if missing or ("probability" not in r and "prediction" not in r):
                raise ValueError(f"tables[{name!r}][{i}] needs patient, slice, label and probability "
                                 f"or prediction; has {sorted(r)}")
            key = (r["patient"], r["slice"])
            if key in idx:
                raise ValueError(f"tables[{name!r}][{i}]: duplicate (patient, slice) {key}")
            idx[key] = r
        indexed[name] = idx
    names = list(indexed)
    common = set.intersection(*(set(v) for v in indexed.values()))
    if not common:
        raise ValueError(f"the classifiers {names} share no (patient, slice)")
    keys = sorted(common, key=lambda k: (_patient_sort_key(k[0]), _patient_sort_key(k[1])))
    labels = np.asarray([int(indexed[names[0]][k]["label"]) for k in keys], dtype=np.int64)
    for name in names[1:]:
        other = np.asarray([int(indexed[name][k]["label"]) for k in keys], dtype=np.int64)
        bad = np.flatnonzero(other != labels)
        if bad.size:
            k = keys[bad[0]]
            raise ValueError(f"classifiers {names[0]!r} and {name!r} disagree on the label of "
                             f"(patient, slice) {k} ({bad.size} slices differ)")
    metrics, excluded = {}, {}
    for name in names:
        rs = [indexed[name][k] for k in keys]
        thr = float(thresholds.get(name, 0.5))
        if all("prediction" in r for r in rs):
            pred = np.asarray([int(r["prediction"]) for r in rs])
        elif all("probability" in r for r in rs):
            pred = (np.asarray([float(r["probability"]) for r in rs]) >= thr).astype(np.int64)
        else:
            raise ValueError(f"tables[{name!r}]: rows mix probability-only and prediction-only entries")
        if all("probability" in r for r in rs):
            scores = np.asarray([float(r["probability"]) for r in rs])
        else:
            scores = pred
        m = _metrics(labels, pred, scores, class_names)
        if not all("prediction" in r for r in rs):
            m["threshold"] = thr
        metrics[name] = m
        excluded[name] = len(indexed[name]) - len(keys)

    head = "| classifier | n | " + " | ".join(TABLE_METRICS) + " |"
    sep = "|---|---:|" + "---:|" * len(TABLE_METRICS)
    lines = [head, sep]
    for name in names:
        m = metrics[name]
        lines.append(f"| {name} | {m['n']} | " + " | ".join(_fmt(m[k]) for k in TABLE_METRICS) + " |")
    return "\n".join(lines) + "\n", {"n_common": len(keys), "excluded": excluded, "metrics": metrics}
