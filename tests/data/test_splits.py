from collections import Counter

import pytest

from medpipe.data.splits import patient_kfold


def _strata(n_pos, n_neg):
    s = {f"p{i:03d}": 1 for i in range(n_pos)}
    s.update({f"n{i:03d}": 0 for i in range(n_neg)})
    return s


@pytest.mark.parametrize("n_pos,n_neg,folds", [(10, 10, 5), (7, 3, 5), (60, 0, 5), (13, 8, 3), (2, 2, 2)])
def test_every_patient_in_exactly_one_fold_and_stratified(n_pos, n_neg, folds):
    strata = _strata(n_pos, n_neg)
    fold_of, test = patient_kfold(strata, folds=folds, seed=1)
    assert set(fold_of) == set(strata) and test == []
    assert set(fold_of.values()) <= set(range(folds))
    for value in (0, 1):
        per_fold = Counter(fold_of[p] for p, s in strata.items() if s == value)
        counts = [per_fold.get(f, 0) for f in range(folds)]
        assert max(counts) - min(counts) <= 1, counts  # stratified: each stratum dealt evenly


def test_deterministic_and_seed_dependent():
    strata = _strata(20, 20)
    a, _ = patient_kfold(strata, folds=5, seed=12345)
    b, _ = patient_kfold(dict(reversed(list(strata.items()))), folds=5, seed=12345)  # input order irrelevant
    c, _ = patient_kfold(strata, folds=5, seed=7)
    assert a == b
    assert a != c


def test_test_fraction_disjoint():
    strata = _strata(10, 10)
    fold_of, test = patient_kfold(strata, folds=4, seed=0, test_fraction=0.2)
    assert len(test) == 4 and not set(test) & set(fold_of)
    assert sum(strata[p] for p in test) == 2  # stratified too
    assert set(test) | set(fold_of) == set(strata)


def test_ties_go_to_the_fold_with_fewer_records():
    # one stratum, 2 folds: after each pair of patients the folds are tied in patients, so the next
    # patient goes to the fold with fewer records so far
    strata = {f"p{i}": 1 for i in range(8)}
    sizes = {f"p{i}": 10 + 7 * i for i in range(8)}
    fold_of, _ = patient_kfold(strata, sizes, folds=2, seed=3)
    records = [sum(sizes[p] for p, f in fold_of.items() if f == k) for k in (0, 1)]
    naive = [sum(sizes[f"p{i}"] for i in range(8) if i % 2 == k) for k in (0, 1)]
    assert abs(records[0] - records[1]) <= abs(naive[0] - naive[1]) + max(sizes.values())


@pytest.mark.parametrize("kw,match", [({"folds": 1}, "folds must be"), ({"folds": 9}, "cannot fill"),
                                      ({"test_fraction": 1.0}, "test fraction")])
def test_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        patient_kfold(_strata(4, 4), **kw)
