"""Pure helpers that turn per-slice box predictions into medpipe's tables and the slice-level "any finding" summary.

A prediction is ``{"boxes": [[xmin, ymin, xmax, ymax], ...], "scores": [...], "classes": [...]}`` per
slice, in pixels (``classes``, the box class ids, is optional). Two tables come out of it:

* ``predictions.csv`` (:data:`BOX_COLUMNS`): one row per box, highest confidence first.
* ``slice_predictions.csv`` (:data:`SLICE_COLUMNS`): the **any-finding** summary of a slice, whatever
  the number of box classes: its probability is the highest box confidence of any class (0 without
  a box), and it is positive when that reaches ``conf``. Its two classes are named by
  :func:`any_finding_names`; :func:`conf_sweep` gives its metrics against the threshold.

:func:`challenge_summary` scores the same predictions with the RSNA Pneumonia Detection Challenge
metric (:mod:`medpipe.metrics.detection`) and gives the per-slice columns (:data:`CHALLENGE_COLUMNS`)
that let it be recomputed from ``slice_predictions.csv``.

Nothing here imports ultralytics or torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["box_prediction_rows", "slice_prediction_rows", "conf_sweep", "any_finding_names", "write_rows_csv",
           "norm_pred", "challenge_summary", "BOX_COLUMNS", "SLICE_COLUMNS", "CHALLENGE_COLUMNS", "SWEEP_THRESHOLDS"]

#: columns of predictions.csv (one row per predicted box, or one "none" row per slice without a box)
BOX_COLUMNS = ("patient", "slice", "image", "box_index", "xmin", "ymin", "xmax", "ymax", "confidence", "label")
#: columns of slice_predictions.csv (one row per slice; probability = highest box confidence or 0)
SLICE_COLUMNS = ("patient", "slice", "image", "probability", "prediction", "label")
#: default confidence thresholds of the slice-level sweep
SWEEP_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
#: slice_predictions.csv columns added when the evaluation reports the challenge score (:func:`challenge_summary`):
#: true boxes, predicted boxes with confidence >= conf, the slice's challenge precision (empty: skipped)
CHALLENGE_COLUMNS = ("n_true_boxes", "n_pred_boxes", "challenge_precision")


def any_finding_names(box_classes: Sequence[str]) -> tuple[str, str]:
    """Names of the two classes of the slice-level any-finding summary (negative, positive).

    With one box class the summary is that class's presence (``no_<name>``, ``<name>``); with
    several it is the presence of any of them (``no_finding``, ``any_finding``).

    Example:
        >>> any_finding_names(["phe"]), any_finding_names(["phe", "ich"])
        (('no_phe', 'phe'), ('no_finding', 'any_finding'))
    """
    names = [str(n) for n in box_classes]
    if not names:
        raise ValueError("no box class names")
    return (f"no_{names[0]}", names[0]) if len(names) == 1 else ("no_finding", "any_finding")


def norm_pred(p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One slice's prediction as ``(boxes N x 4, scores N, classes N)``, highest confidence first.

    ``p`` is a dict (``boxes``, ``scores``, optional ``classes``) or a ``(boxes, scores[, classes])``
    tuple; missing class ids are -1.
    """
    if isinstance(p, dict):
        b, s, c = p.get("boxes"), p.get("scores"), p.get("classes")
    else:
        b, s, c = p[0], p[1], (p[2] if len(p) > 2 else None)
    boxes = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(s, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    classes = np.full(len(scores), -1, dtype=np.int64) if c is None else np.asarray(c, dtype=np.int64).reshape(-1)
    if len(classes) != len(scores):
        raise ValueError(f"{len(classes)} classes but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    return boxes[order], scores[order], classes[order]


def _image_name(r: dict) -> str:
    return str(r.get("image_path") or r.get("image"))


def box_prediction_rows(records: Sequence[dict], predictions: Sequence, min_conf: float = 0.0) -> list[dict]:
    """predictions.csv rows: one per predicted box (highest confidence first), a ``none`` row for a slice without one.

    Args:
        records: one dict per slice with ``patient``, ``slice``, ``image`` (or ``image_path``) and,
            when known, ``label`` (the slice truth).
        predictions: per slice ``{"boxes": [[xmin, ymin, xmax, ymax], ...], "scores": [...]}`` in pixels.
        min_conf: boxes below this confidence are left out.

    Returns:
        Dicts with the :data:`BOX_COLUMNS` keys (``label`` only when the records have labels).
        ``box_index`` counts from 0 per slice; a ``none`` row has empty coordinates and confidence 0.

    Example:
        >>> box_prediction_rows([{"patient": "0001", "slice": 3, "image": "a.png", "label": 0}],
        ...                     [{"boxes": [], "scores": []}])[0]["box_index"]
        'none'
    """
    if len(records) != len(predictions):
        raise ValueError(f"{len(records)} records but {len(predictions)} predictions")
    rows = []
    for r, p in zip(records, predictions):
        boxes, scores, _ = norm_pred(p)
        keep = scores >= min_conf
        base = {"patient": r.get("patient", ""), "slice": r.get("slice", ""), "image": _image_name(r)}
        if "label" in r and r["label"] is not None:
            base["label"] = int(r["label"])
        if not keep.any():
            rows.append({**base, "box_index": "none", "xmin": "", "ymin": "", "xmax": "", "ymax": "",
                         "confidence": 0.0})
            continue
        for i, (b, s) in enumerate(zip(boxes[keep], scores[keep])):
            rows.append({**base, "box_index": i, "xmin": float(b[0]), "ymin": float(b[1]), "xmax": float(b[2]),
                         "ymax": float(b[3]), "confidence": float(s)})
    return rows


def slice_prediction_rows(records: Sequence[dict], predictions: Sequence, conf: float = 0.25) -> list[dict]:
    """slice_predictions.csv rows, the any-finding summary: probability = highest box confidence of any class
    (0 without a box), prediction = probability >= ``conf``.

    Example:
        >>> slice_prediction_rows([{"patient": "1", "slice": 0, "image": "a.png", "label": 1}],
        ...                       [{"boxes": [[1, 2, 3, 4]], "scores": [0.3]}], conf=0.25)[0]["prediction"]
        1
    """
    if len(records) != len(predictions):
        raise ValueError(f"{len(records)} records but {len(predictions)} predictions")
    rows = []
    for r, p in zip(records, predictions):
        _, scores, _ = norm_pred(p)
        prob = float(scores.max()) if scores.size else 0.0
        row = {"patient": r.get("patient", ""), "slice": r.get("slice", ""), "image": _image_name(r),
               "probability": prob, "prediction": int(prob >= conf)}
        if "label" in r and r["label"] is not None:
            row["label"] = int(r["label"])
        rows.append(row)
    return rows


def conf_sweep(labels: Sequence[int], probs: Sequence[float],
               thresholds: Sequence[float] = SWEEP_THRESHOLDS) -> list[dict]:
    """Any-finding (slice-level) metrics vs confidence threshold: a slice is positive when its best box has ``conf >= t``.

    Returns:
        One row per threshold: ``conf``, ``accuracy``, ``precision``, ``recall``, ``f1``,
        ``specificity``, ``tp``, ``fp``, ``fn``, ``tn``.

    Example:
        >>> [r["recall"] for r in conf_sweep([1, 1, 0], [0.9, 0.3, 0.5], [0.25, 0.6])]
        [1.0, 0.5]
    """
    from medpipe.metrics.classification import rates_from_counts

    y = np.asarray(labels, dtype=np.int64).ravel()
    p = np.asarray(probs, dtype=np.float64).ravel()
    if y.size != p.size:
        raise ValueError(f"{y.size} labels but {p.size} probabilities")
    rows = []
    for t in sorted(float(t) for t in thresholds):
        pred = p >= t
        tp, fp = int(np.sum(pred & (y == 1))), int(np.sum(pred & (y == 0)))
        fn, tn = int(np.sum(~pred & (y == 1))), int(np.sum(~pred & (y == 0)))
        rates = rates_from_counts(tp, fp, fn, tn)
        rows.append({"conf": t, **{k: float(v) for k, v in rates.items()}, "tp": tp, "fp": fp, "fn": fn, "tn": tn})
    return rows


def challenge_summary(records: Sequence[dict], predictions: Sequence, conf: float = 0.25,
                      sweep_thresholds: Sequence[float] = ()) -> tuple[dict, list[dict]]:
    """The RSNA Pneumonia Detection Challenge score of predicted boxes (:func:`medpipe.metrics.detection.challenge_map`).

    The submission is every box with confidence ``>= conf`` (the operating threshold of the
    slice-level summary); the confidences order the matching. A slice with no true box and no such
    box is skipped, as the challenge did.

    Args:
        records: one dict per slice with its true ``boxes`` (``[xmin, ymin, xmax, ymax]`` pixels; none: ``[]``).
        predictions: per slice ``{"boxes": [...], "scores": [...]}`` in the same pixels.
        conf: the box confidence threshold.
        sweep_thresholds: further confidence thresholds to report the score at (``by_conf``).

    Returns:
        ``(metrics, columns)``: ``metrics`` = ``{"challenge_map": float or None, "challenge_map_detail":
        {"iou_thresholds", "conf", "n_slices", "n_scored", "n_skipped", "by_conf", "definition"}}``;
        ``columns``, one dict per slice with the :data:`CHALLENGE_COLUMNS` (``challenge_precision``
        ``""`` for a skipped slice), to add to the slice rows.

    Example:
        >>> m, cols = challenge_summary([{"boxes": [[0, 0, 10, 10]]}, {"boxes": []}],
        ...                             [{"boxes": [[0, 0, 10, 10]], "scores": [0.9]}, {"boxes": [], "scores": []}])
        >>> m["challenge_map"], m["challenge_map_detail"]["n_skipped"], cols[1]["challenge_precision"]
        (1.0, 1, '')
    """
    from medpipe.metrics.detection import CHALLENGE_IOU_THRESHOLDS, challenge_precision_from_ious, iou_matrix

    if len(records) != len(predictions):
        raise ValueError(f"{len(records)} records but {len(predictions)} predictions")
    true = [list(r.get("boxes") or []) for r in records]
    normed = [norm_pred(p) for p in predictions]  # highest confidence first
    scores = [s for _, s, _ in normed]
    # one IoU matrix per slice: the boxes kept at a confidence threshold are a prefix of its rows
    ious = [iou_matrix(b, t) for (b, _, _), t in zip(normed, true)]

    def score_at(c: float) -> tuple[float | None, list]:
        per = [challenge_precision_from_ious(m[:int(np.sum(s >= c))]) for m, s in zip(ious, scores)]
        vals = [v for v in per if v is not None]
        return (float(np.mean(vals)) if vals else None), per

    value, per = score_at(float(conf))
    n_scored = sum(v is not None for v in per)
    by_conf = [{"conf": float(t), "challenge_map": score_at(float(t))[0]}
               for t in sorted({float(t) for t in sweep_thresholds} | {float(conf)})]
    detail = {"iou_thresholds": list(CHALLENGE_IOU_THRESHOLDS), "conf": float(conf), "n_slices": len(records),
              "n_scored": n_scored, "n_skipped": len(records) - n_scored, "by_conf": by_conf,
              "definition": "RSNA Pneumonia Detection Challenge metric: per image, boxes with confidence >= conf in "
                            "decreasing confidence each match the unmatched true box of highest IoU > t; precision "
                            "TP / (TP + FP + FN) averaged over t = 0.40, 0.45, ..., 0.75; images with no true and no "
                            "predicted box skipped; mean over the other images"}
    columns = [{"n_true_boxes": len(t), "n_pred_boxes": int(np.sum(s >= float(conf))),
                "challenge_precision": "" if v is None else v} for t, s, v in zip(true, scores, per)]
    return {"challenge_map": value, "challenge_map_detail": detail}, columns


def write_rows_csv(rows: Sequence[dict], path: str | os.PathLike, columns: Sequence[str]) -> Path:
    """Write ``rows`` as CSV with ``columns`` (see :func:`medpipe.utils.fs.write_csv_atomic`)."""
    from medpipe.utils.fs import write_csv_atomic

    return write_csv_atomic(rows, path, columns)
