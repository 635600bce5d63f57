"""Group-level predictions from item-level ones: e.g. slice probabilities averaged per CT volume.

A scan is diagnosed as a whole: the decision per volume is the class of the mean of its slices'
probabilities. :func:`aggregate_by` is generic (any grouping key of the rows); the multiclass metrics
of the groups are then computed exactly as for the items.
"""

from __future__ import annotations

from collections import Counter

import numpy as np


#: how item scores become a group's score: ``mean``, ``max`` or ``top<k>`` (the mean of the k highest per class)
AGGREGATIONS = ("mean", "max", "topk")


def pool_scores(scores, method: str = "mean") -> np.ndarray:
    """One score vector from a group's ``(n, C)`` score vectors: ``mean``, ``max`` or ``top<k>`` (per class,
    the mean of its k highest scores; ``top1`` is ``max``; a group of fewer than k items averages them all).

    Example:
        >>> pool_scores([[0.1, 0.9], [0.5, 0.2], [0.3, 0.4]], "top2").round(2).tolist()
        [0.4, 0.65]
    """
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if method == "mean":
        return a.mean(axis=0)
    if method == "max":
        return a.max(axis=0)
    if method.startswith("top") and method[3:].isdigit() and int(method[3:]) >= 1:
        k = min(int(method[3:]), len(a))
        return np.sort(a, axis=0)[-k:].mean(axis=0)
    raise ValueError(f"aggregation {method!r}: expected mean, max or top<k> such as top3")


def aggregate_by(rows: list[dict], key: str, scores: str = "scores", label: str = "label",
                 keep: tuple[str, ...] = ("patient",), method: str = "mean") -> list[dict]:
    """One row per distinct ``row[key]``: its rows' ``scores`` pooled (``method``) and their label.

    Args:
        rows: item rows with ``key``, ``scores`` (a vector, e.g. softmax probabilities) and, when known,
            ``label`` (int).
        key: the grouping key (e.g. ``volume``); rows without it (None or "") are left out.
        scores: the key of the score vectors.
        label: the key of the labels; a group's label is the most common one of its rows (all rows of a
            volume share the volume's label; ties go to the first seen); multi-label 0/1 lists are
            compared whole.
        keep: keys copied from the group's first row (e.g. ``patient``).
        method: how scores are pooled (:func:`pool_scores`): ``mean`` (default), ``max``, ``top<k>``.

    Returns:
        Rows ``{key, "n", scores, label?, *keep}`` in order of first appearance.

    Example:
        >>> rows = [{"volume": "a", "scores": [0.8, 0.2], "label": 0}, {"volume": "a", "scores": [0.4, 0.6], "label": 0},
        ...         {"volume": "b", "scores": [0.1, 0.9], "label": 1}]
        >>> [(r["volume"], r["n"], [round(v, 2) for v in r["scores"]], r["label"]) for r in aggregate_by(rows, "volume")]
        [('a', 2, [0.6, 0.4], 0), ('b', 1, [0.1, 0.9], 1)]
    """
    groups: dict = {}
    for r in rows:
        g = r.get(key)
        if g is None or g == "":
            continue
        groups.setdefault(g, []).append(r)
    out = []
    for g, rs in groups.items():
        row = {key: g, "n": len(rs)}
        for k in keep:
            if k in rs[0]:
                row[k] = rs[0][k]
        row[scores] = pool_scores([np.asarray(r[scores], dtype=np.float64).reshape(-1) for r in rs], method).tolist()
        labels = [tuple(r[label]) if isinstance(r[label], (list, tuple, np.ndarray)) else r[label]
                  for r in rs if r.get(label) is not None]
        if labels:
            top = Counter(labels).most_common(1)[0][0]
            row[label] = list(top) if isinstance(top, tuple) else top
        out.append(row)
    return out
