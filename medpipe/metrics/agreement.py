"""Agreement between readers: Fleiss' and Cohen's kappa, the majority read, a per-class table
(plain numpy; scikit-learn for Cohen's kappa).

When several radiologists read the same scans, their agreement bounds what a model can be
expected to reach and says how firm a majority-vote reference standard is.

Conventions:

* ``ratings`` are category ids (any integers or strings), one row per item and one column per
  reader; every item is rated by every reader (no missing ratings).
* Fleiss' kappa (Fleiss 1971) is chance-corrected agreement among any number of readers:
  ``(P_bar - P_e) / (1 - P_e)`` with ``P_bar`` the mean proportion of agreeing reader pairs per item
  and ``P_e`` the sum of the squared overall category proportions. It is ``None`` when undefined:
  every reader gives one and the same category everywhere (``P_e = 1``), or fewer than two readers.
* Cohen's kappa (two readers) is :func:`sklearn.metrics.cohen_kappa_score`, ``None`` when
  undefined (both readers give one and the same category everywhere).
* The majority of binary reads is positive when more than half of the readers say positive; with an
  even number of readers a tie (exactly half) gives ``tie`` (0 by default: a finding needs a strict
  majority). With an odd number of readers there are no ties.
* Everything returned is a plain python ``int``/``float``/``list``/``dict``/``None`` (JSON-ready).

Example:
    >>> round(fleiss_kappa([[1, 1, 1], [0, 0, 0], [1, 1, 0], [0, 0, 0]]), 4)
    0.6571
    >>> majority_vote([[1, 1, 0], [0, 1, 0]]).tolist()
    [1, 0]
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from medpipe.metrics.thresholds import _check_01, _to_numpy

__all__ = ["fleiss_kappa", "fleiss_kappa_from_counts", "cohen_kappa", "majority_vote", "reader_agreement"]


def _ratings(ratings, name: str = "ratings") -> np.ndarray:
    r = _to_numpy(ratings)
    if r.ndim != 2:
        raise ValueError(f"{name} must be a matrix of shape (items, readers), got shape {r.shape}")
    if r.size == 0:
        raise ValueError(f"{name} is empty (shape {r.shape})")
    if np.issubdtype(r.dtype, np.floating) and not np.isfinite(r).all():
        raise ValueError(f"{name} contains NaN or infinite values (missing ratings are not supported)")
    return r


def fleiss_kappa_from_counts(counts) -> float | None:
    """Fleiss' kappa from a table of counts: ``counts[i, j]`` readers put item ``i`` in category ``j``.

    Every row must sum to the same number of readers ``n >= 2``.

    Args:
        counts: non-negative integers, shape ``(items, categories)``.

    Returns:
        Fleiss' kappa as a float, or None when undefined (a single category used throughout, or
        fewer than two readers).

    Raises:
        ValueError: not a 2-D table of non-negative integers, or rows with different sums.

    Example:
        >>> round(fleiss_kappa_from_counts([[3, 0], [0, 3], [1, 2]]), 4)
        0.55
    """
    c = _to_numpy(counts)
    if c.ndim != 2 or c.size == 0:
        raise ValueError(f"counts must be a non-empty table (items, categories), got shape {c.shape}")
    if not np.issubdtype(c.dtype, np.number) or (c < 0).any() or (c != np.round(c)).any():
        raise ValueError("counts must be non-negative integers")
    c = c.astype(np.float64)
    n_per_item = c.sum(axis=1)
    if not (n_per_item == n_per_item[0]).all():
        raise ValueError(f"every item needs the same number of ratings; row sums are e.g. "
                         f"{sorted(set(n_per_item.astype(int).tolist()))[:5]}")
    n = n_per_item[0]
    if n < 2 or (c.sum(axis=0) > 0).sum() < 2:
        return None
    p_item = ((c * c).sum(axis=1) - n) / (n * (n - 1))
    p_cat = c.sum(axis=0) / c.sum()
    p_bar, p_e = float(p_item.mean()), float((p_cat * p_cat).sum())
    return (p_bar - p_e) / (1.0 - p_e)


def fleiss_kappa(ratings) -> float | None:
    """Fleiss' kappa of readers' category ratings (any number of readers and categories).

    Args:
        ratings: category ids, shape ``(items, readers)`` (integers or strings).

    Returns:
        Fleiss' kappa (1: perfect agreement, 0: chance level, negative: below chance), or None when
        undefined (every rating is one category, or fewer than two readers).

    Raises:
        ValueError: not a 2-D matrix, empty, or with NaN.

    Example:
        >>> round(fleiss_kappa([[0, 0], [1, 1], [0, 1]]), 4)
        0.3333
        >>> fleiss_kappa([[1, 1, 1], [1, 1, 1]]) is None
        True
    """
    r = _ratings(ratings)
    _, inverse = np.unique(r, return_inverse=True)
    inverse = inverse.reshape(r.shape)
    k = int(inverse.max()) + 1
    counts = np.zeros((r.shape[0], k), np.int64)
    for j in range(r.shape[1]):
        np.add.at(counts, (np.arange(r.shape[0]), inverse[:, j]), 1)
    return fleiss_kappa_from_counts(counts)


def cohen_kappa(a, b) -> float | None:
    """Cohen's kappa of two readers' ratings of the same items (:func:`sklearn.metrics.cohen_kappa_score`).

    Args:
        a, b: category ids, shape ``(items,)`` each.

    Returns:
        The kappa as a float, or None when undefined (both readers give one and the same category
        to every item).

    Raises:
        ValueError: different lengths, or empty.

    Example:
        >>> cohen_kappa([0, 1, 1, 0], [0, 1, 0, 0])
        0.5
        >>> cohen_kappa([1, 1], [1, 1]) is None
        True
    """
    from sklearn.metrics import cohen_kappa_score

    x, y = _to_numpy(a).ravel(), _to_numpy(b).ravel()
    if x.size != y.size:
        raise ValueError(f"the two readers rated {x.size} and {y.size} items; expected the same items")
    if x.size == 0:
        raise ValueError("no ratings")
    if np.unique(np.concatenate([x, y])).size < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = float(cohen_kappa_score(x, y))
    return None if np.isnan(k) else k


def majority_vote(matrix, tie: int = 0) -> np.ndarray:
    """The majority of binary reads per item: 1 when more than half of the readers say 1.

    Args:
        matrix: 0/1 reads, shape ``(items, readers)``.
        tie: the result when exactly half of the readers say 1 (only possible with an even number of
            readers); 0 by default, so a positive needs a strict majority.

    Returns:
        ``int64`` array of 0/1, shape ``(items,)``.

    Example:
        >>> majority_vote([[1, 0, 1], [0, 0, 1]]).tolist()
        [1, 0]
        >>> majority_vote([[1, 0]]).tolist(), majority_vote([[1, 0]], tie=1).tolist()
        ([0], [1])
    """
    m = _check_01(_ratings(matrix, "matrix"), "matrix")
    if tie not in (0, 1):
        raise ValueError(f"tie must be 0 or 1, got {tie!r}")
    pos, n = m.sum(axis=1), m.shape[1]
    out = (2 * pos > n).astype(np.int64)
    out[2 * pos == n] = tie
    return out


def reader_agreement(readers: Mapping[str, object], class_names: Sequence[str], tie: int = 0) -> dict:
    """Per class: each reader's positives, the majority's, Fleiss' kappa over all readers, Cohen's per pair.

    Args:
        readers: reader name -> 0/1 reads, shape ``(items, classes)``, rows in the same item order
            for every reader (at least two readers).
        class_names: the ``classes`` names in column order.
        tie: see :func:`majority_vote` (even numbers of readers only).

    Returns:
        ``{class name: {"n", "positive": {reader: count}, "majority_positive", "unanimous" (items all
        readers agree on), "fleiss_kappa", "cohen_kappa": {"A-B": kappa per reader pair}}}``;
        kappas None where undefined.

    Raises:
        ValueError: fewer than two readers, shapes that differ or do not match ``class_names``,
            values other than 0/1.

    Example:
        >>> a = reader_agreement({"R1": [[1], [0], [1]], "R2": [[1], [0], [0]], "R3": [[1], [1], [1]]}, ["ich"])
        >>> a["ich"]["positive"], a["ich"]["majority_positive"], a["ich"]["unanimous"]
        ({'R1': 2, 'R2': 1, 'R3': 3}, 2, 1)
        >>> {pair: round(k, 4) for pair, k in a["ich"]["cohen_kappa"].items()}
        {'R1-R2': 0.4, 'R1-R3': 0.0, 'R2-R3': 0.0}
    """
    names = [str(c) for c in class_names]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"class_names must be unique and non-empty, got {names}")
    if len(readers) < 2:
        raise ValueError(f"agreement needs at least two readers, got {list(readers)}")
    mats = {}
    for who, m in readers.items():
        a = _check_01(_ratings(m, f"reads of {who}"), f"reads of {who}")
        if a.shape[1] != len(names):
            raise ValueError(f"reads of {who} have {a.shape[1]} columns but class_names has {len(names)} names")
        mats[str(who)] = a
    shapes = {a.shape for a in mats.values()}
    if len(shapes) != 1:
        raise ValueError(f"every reader must read the same items: shapes {sorted(shapes)}")
    who = list(mats)
    out = {}
    for k, name in enumerate(names):
        cols = np.stack([mats[w][:, k] for w in who], axis=1)
        out[name] = {
            "n": int(cols.shape[0]),
            "positive": {w: int(cols[:, i].sum()) for i, w in enumerate(who)},
            "majority_positive": int(majority_vote(cols, tie).sum()),
            "unanimous": int(((cols == cols[:, :1]).all(axis=1)).sum()),
            "fleiss_kappa": fleiss_kappa(cols),
            "cohen_kappa": {f"{a}-{b}": cohen_kappa(mats[a][:, k], mats[b][:, k])
                            for a, b in itertools.combinations(who, 2)},
        }
    return out
