"""Group-level predictions from item-level ones: e.g. slice probabilities averaged per CT volume.

A scan is diagnosed as a whole: the decision per volume is the class of the mean of its slices'
probabilities. :func:`aggregate_by` is generic (any grouping key of the rows); the multiclass metrics
of the groups are then computed exactly as for the items.
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def aggregate_by(rows: list[dict], key: str, scores: str = "scores", label: str = "label",
                 keep: tuple[str, ...] = ("patient",)) -> list[dict]:
    """One row per distinct ``row[key]``: the mean of its rows' ``scores`` and their label.

    Args:
        rows: item rows with ``key``, ``scores`` (a vector, e.g. softmax probabilities) and, when known,
            ``label`` (int).
        key: the grouping key (e.g. ``volume``); rows without it (None or "") are left out.
        scores: the key of the score vectors.
        label: the key of the labels; a group's label is the most common one of its rows (all rows of a
            volume share the volume's label; ties go to the first seen).
        keep: keys copied from the group's first row (e.g. ``patient``).

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
        row[scores] = np.mean(np.asarray([np.asarray(r[scores], dtype=np.float64) for r in rs]), axis=0).tolist()
        labels = [r[label] for r in rs if r.get(label) is not None]
        if labels:
            row[label] = Counter(labels).most_common(1)[0][0]
        out.append(row)
    return out
