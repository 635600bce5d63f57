"""Reader agreement: Fleiss' kappa against a hand-computed case, Cohen's against sklearn, majority, None cases."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from medpipe.metrics.agreement import (cohen_kappa, fleiss_kappa, fleiss_kappa_from_counts, majority_vote,
                                       reader_agreement)

#: Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa" page: 10 items, 14 raters, 5 categories
WIKI_COUNTS = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]
# by hand: sum_j n_ij^2 - 14 per row = 182, 46, 56, 80, 60, 84, 44, 32, 52, 52 (sum 688), over 14 * 13 each
# -> P_bar = 688 / 1820; category totals 20, 28, 39, 21, 32 of 140 -> P_e = 4170 / 19600
WIKI_P_BAR, WIKI_P_E = Fraction(688, 1820), Fraction(4170, 19600)
WIKI_KAPPA = float((WIKI_P_BAR - WIKI_P_E) / (1 - WIKI_P_E))


def expand(counts) -> np.ndarray:
    """A count table as ratings: row i lists each rater's category."""
    return np.array([[j for j, c in enumerate(row) for _ in range(c)] for row in counts])


def test_fleiss_matches_the_hand_computed_textbook_case():
    assert round(WIKI_KAPPA, 3) == 0.210
    assert fleiss_kappa_from_counts(WIKI_COUNTS) == pytest.approx(WIKI_KAPPA, abs=1e-12)
    ratings = expand(WIKI_COUNTS)
    assert ratings.shape == (10, 14)
    assert fleiss_kappa(ratings) == pytest.approx(WIKI_KAPPA, abs=1e-12)
    # category ids are labels only: strings, other integers, reader order shuffled
    names = np.array(["a", "b", "c", "d", "e"])[ratings]
    assert fleiss_kappa(names) == pytest.approx(WIKI_KAPPA, abs=1e-12)
    assert fleiss_kappa(ratings * 7 + 3) == pytest.approx(WIKI_KAPPA, abs=1e-12)
    rng = np.random.default_rng(0)
    assert fleiss_kappa(np.array([rng.permutation(r) for r in ratings])) == pytest.approx(WIKI_KAPPA, abs=1e-12)


def test_fleiss_matches_statsmodels_when_installed():
    sm = pytest.importorskip("statsmodels.stats.inter_rater", reason="statsmodels is not installed (optional)")
    rng = np.random.default_rng(1)
    r = rng.integers(0, 3, size=(40, 4))
    table, _ = sm.aggregate_raters(r)
    assert fleiss_kappa(r) == pytest.approx(sm.fleiss_kappa(table, method="fleiss"))


@pytest.mark.parametrize("ratings, expected", [
    ([[1, 1, 1], [0, 0, 0]], 1.0),                       # perfect agreement
    ([[0, 1], [1, 0]], -1.0),                            # always disagree, categories balanced
    ([[1, 1, 1], [0, 0, 0], [1, 1, 0], [0, 0, 0]], 1 - Fraction(1, 6) / Fraction(70, 144)),
    ([[1, 1, 1], [1, 1, 1]], None),                      # one category everywhere: undefined
    ([["x", "x"], ["x", "x"], ["x", "x"]], None),
    ([[1], [0], [1]], None),                             # one reader
])
def test_fleiss_cases(ratings, expected):
    k = fleiss_kappa(ratings)
    assert k is None if expected is None else k == pytest.approx(float(expected))


@pytest.mark.parametrize("counts, match", [([[1, 2], [3, 1]], "same number of ratings"), ([[1, -1]], "non-negative"),
                                           ([1, 2], "table")])
def test_fleiss_counts_refused(counts, match):
    with pytest.raises(ValueError, match=match):
        fleiss_kappa_from_counts(counts)


def test_fleiss_refuses_bad_ratings():
    with pytest.raises(ValueError, match="shape"):
        fleiss_kappa([1, 0, 1])
    with pytest.raises(ValueError, match="NaN"):
        fleiss_kappa([[1.0, np.nan]])


@pytest.mark.parametrize("a, b", [
    ([0, 1, 1, 0, 1, 0, 0, 1], [0, 1, 0, 0, 1, 1, 0, 1]),
    ([2, 0, 1, 2, 2, 1, 0, 0, 1], [2, 0, 1, 1, 2, 0, 0, 2, 1]),
    (["x", "y", "y", "x"], ["x", "y", "x", "x"]),
    ([0, 0, 0, 0], [1, 1, 1, 1]),  # defined (chance agreement 0), and 0
    ([1, 1, 1, 0], [1, 1, 1, 1]),  # one reader constant: 0
])
def test_cohen_equals_sklearn(a, b):
    from sklearn.metrics import cohen_kappa_score

    assert cohen_kappa(a, b) == pytest.approx(float(cohen_kappa_score(a, b)))


def test_cohen_undefined_and_refused():
    assert cohen_kappa([1, 1, 1], [1, 1, 1]) is None
    assert cohen_kappa(["n"], ["n"]) is None
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="no ratings"):
        cohen_kappa([], [])


@pytest.mark.parametrize("matrix, tie, expected", [
    ([[1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]], 0, [1, 0, 1, 0]),
    ([[1, 0], [1, 1], [0, 0]], 0, [0, 1, 0]),            # two readers: a tie is negative by default
    ([[1, 0], [1, 1], [0, 0]], 1, [1, 1, 0]),
    ([[1, 1, 0, 0], [1, 1, 1, 0]], 0, [0, 1]),
    ([[True, False, True]], 0, [1]),
])
def test_majority_vote(matrix, tie, expected):
    assert majority_vote(matrix, tie=tie).tolist() == expected


def test_majority_refuses_non_binary():
    with pytest.raises(ValueError, match="only 0 and 1"):
        majority_vote([[0, 2, 1]])
    with pytest.raises(ValueError, match="tie"):
        majority_vote([[0, 1]], tie=2)


def test_reader_agreement_is_built_from_the_pieces():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, size=(60, 3))
    truth[:, 2] = 0  # a class nobody reads positive: kappas undefined
    readers = {w: np.where(rng.random(truth.shape) < 0.15, 1 - truth, truth) for w in ("R1", "R2", "R3")}
    readers = {w: np.where(np.arange(3) == 2, 0, m) for w, m in readers.items()}
    a = reader_agreement(readers, ["ich", "sdh", "edh"])
    assert list(a) == ["ich", "sdh", "edh"]
    for k, name in enumerate(a):
        cols = np.stack([readers[w][:, k] for w in readers], axis=1)
        row = a[name]
        assert row["n"] == 60
        assert row["positive"] == {w: int(readers[w][:, k].sum()) for w in readers}
        assert row["majority_positive"] == int((cols.sum(axis=1) >= 2).sum())
        assert row["unanimous"] == int(((cols.sum(axis=1) == 0) | (cols.sum(axis=1) == 3)).sum())
        assert list(row["cohen_kappa"]) == ["R1-R2", "R1-R3", "R2-R3"]
        if name == "edh":
            assert row["fleiss_kappa"] is None and set(row["cohen_kappa"].values()) == {None}
        else:
            assert row["fleiss_kappa"] == pytest.approx(fleiss_kappa(cols))
            assert row["cohen_kappa"]["R1-R3"] == pytest.approx(cohen_kappa(cols[:, 0], cols[:, 2]))
            assert 0.4 < row["fleiss_kappa"] < 0.9
    import json

    json.dumps(a)  # JSON-ready


@pytest.mark.parametrize("readers, names, match", [
    ({"R1": [[1, 0]]}, ["a", "b"], "at least two readers"),
    ({"R1": [[1, 0]], "R2": [[1, 0], [0, 0]]}, ["a", "b"], "same items"),
    ({"R1": [[1, 0]], "R2": [[1, 0]]}, ["a"], "1 names"),
    ({"R1": [[1, 0]], "R2": [[1, 3]]}, ["a", "b"], "only 0 and 1"),
])
def test_reader_agreement_refuses(readers, names, match):
    with pytest.raises(ValueError, match=match):
        reader_agreement(readers, names)
