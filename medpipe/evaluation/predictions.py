"""The one ``predictions.csv`` schema of classification outputs, for every label kind.

Columns: ``patient, slice, image`` and then

* binary: ``probability`` (of the positive class, the second class name), ``prediction`` (0/1 at
  the threshold) and ``label`` when known;
* multiclass: ``prediction`` (class index, argmax), ``prediction_name``, ``probability`` (of the
  predicted class), ``p_<class>`` for every class, and ``label`` when known;
* multilabel: for every class ``p_<class>``, ``pred_<class>`` (0/1 at the threshold) and
  ``label_<class>`` when known.

Evaluation (with labels) and inference (without) write the same columns, minus the labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KINDS = ("binary", "multiclass", "multilabel")


def columns(kind: str, class_names: Sequence[str], with_labels: bool) -> list[str]:
    """The CSV columns for ``kind`` (see the module docstring)."""
    head = ["patient", "slice", "image"]
    if kind == "binary":
        return head + ["probability", "prediction"] + (["label"] if with_labels else [])
    if kind == "multiclass":
        return head + ["prediction", "prediction_name", "probability"] + [f"p_{c}" for c in class_names] \
            + (["label"] if with_labels else [])
    if kind == "multilabel":
        cols = head + [f"p_{c}" for c in class_names] + [f"pred_{c}" for c in class_names]
        return cols + ([f"label_{c}" for c in class_names] if with_labels else [])
    raise ValueError(f"unknown label kind {kind!r}; expected one of {', '.join(KINDS)}")


def positive_probability(scores) -> float:
    """The positive-class probability of a binary output: ``(2,)`` softmax -> ``p[1]``; ``(1,)`` -> ``p[0]``."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    return float(s[1] if s.size > 1 else s[0])


def to_row(kind: str, base: dict, scores, class_names: Sequence[str], threshold: float = 0.5, label=None) -> dict:
    """One CSV row from an item's post-activation ``scores`` (and its ``label`` when known).

    Example:
        >>> to_row("multiclass", {"patient": "p1", "slice": 0, "image": "a.png"}, [0.1, 0.7, 0.2], ["a", "b", "c"])["prediction_name"]
        'b'
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    row = dict(base)
    if kind == "binary":
        p = positive_probability(s)
        row.update(probability=p, prediction=int(p >= threshold))
        if label is not None:
            row["label"] = int(np.asarray(label).ravel()[0])
    elif kind == "multiclass":
        k = int(np.argmax(s))
        row.update(prediction=k, prediction_name=class_names[k], probability=float(s[k]))
        row.update({f"p_{c}": float(v) for c, v in zip(class_names, s)})
        if label is not None:
            row["label"] = int(np.asarray(label).ravel()[0])
    elif kind == "multilabel":
        th = np.broadcast_to(np.asarray(threshold, dtype=np.float64), s.shape)
        row.update({f"p_{c}": float(v) for c, v in zip(class_names, s)})
        row.update({f"pred_{c}": int(v >= t) for c, v, t in zip(class_names, s, th)})
        if label is not None:
            row.update({f"label_{c}": int(v) for c, v in zip(class_names, np.asarray(label).ravel())})
    else:
        raise ValueError(f"unknown label kind {kind!r}; expected one of {', '.join(KINDS)}")
    return row


def labels_and_scores(kind: str, rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_score)`` arrays from collected rows (each with ``label`` and ``scores``)."""
    y = np.stack([np.asarray(r["label"]).ravel() for r in rows])
    s = np.stack([np.asarray(r["scores"], dtype=np.float64).ravel() for r in rows])
    if kind != "multilabel":
        y = y[:, 0].astype(np.int64)
    return y, s
