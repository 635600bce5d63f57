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


# --------------------------------------------------------------------------- multi-label splits
import math  # noqa: E402

import numpy as np  # noqa: E402

from medpipe.data.splits import audit_patient_split, multilabel_patient_kfold  # noqa: E402
from medpipe.errors import DataError  # noqa: E402

PREVALENCE = (0.5, 0.3, 0.15, 0.08, 0.04, 0.02)


def _ml_labels(n=300, prev=PREVALENCE, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(prev))) < prev).astype(int)
    return {f"pt{i:04d}": y[i].tolist() for i in range(n)}


def _prevalence_deviation(labels, fold_of, folds):
    """Mean over folds and labels of |fold prevalence - overall prevalence|."""
    pids = sorted(fold_of)
    y = np.array([labels[p] for p in pids])
    f = np.array([fold_of[p] for p in pids])
    overall = y.mean(0)
    return float(np.mean([np.abs(y[f == k].mean(0) - overall) for k in range(folds)]))


@pytest.mark.parametrize("n,folds,test_fraction", [(300, 5, 0.0), (300, 5, 0.2), (40, 3, 0.1), (7, 2, 0.25),
                                                  (23, 2, 0.3), (11, 3, 0.05)])
def test_multilabel_every_patient_in_exactly_one_part(n, folds, test_fraction):
    labels = _ml_labels(n)
    fold_of, test = multilabel_patient_kfold(labels, folds=folds, seed=1, test_fraction=test_fraction)
    assert not set(fold_of) & set(test)
    assert set(fold_of) | set(test) == set(labels)
    assert len(fold_of) + len(test) == n and test == sorted(test)
    assert set(fold_of.values()) == set(range(folds))
    assert len(test) == math.ceil(test_fraction * n)  # the hold-out fraction, rounded up
    counts = np.bincount(list(fold_of.values()), minlength=folds)
    assert counts.max() - counts.min() <= max(2, 0.05 * n), counts


def test_multilabel_deterministic_and_seed_dependent():
    labels = _ml_labels(60)
    a = multilabel_patient_kfold(labels, folds=3, seed=12345, test_fraction=0.2)
    b = multilabel_patient_kfold(dict(reversed(list(labels.items()))), folds=3, seed=12345, test_fraction=0.2)
    c = multilabel_patient_kfold(labels, folds=3, seed=7, test_fraction=0.2)
    assert a == b  # input order irrelevant
    assert a != c


def test_multilabel_folds_keep_label_prevalence_better_than_random():
    labels = _ml_labels(300)
    folds = 5
    fold_of, _ = multilabel_patient_kfold(labels, folds=folds, seed=3)
    stratified = _prevalence_deviation(labels, fold_of, folds)
    pids = sorted(labels)
    random_devs = []
    for seed in range(8):  # random patient assignments with the same fold sizes
        perm = np.random.default_rng(seed).permutation(len(pids))
        random_devs.append(_prevalence_deviation(labels, {pids[i]: int(perm[i] % folds) for i in range(len(pids))},
                                                 folds))
    assert stratified < 0.5 * np.mean(random_devs), (stratified, random_devs)
    # the rarest label (2 %) is spread over the folds, not piled into a few
    rare = [fold_of[p] for p in pids if labels[p][-1]]
    per_fold = np.bincount(rare, minlength=folds)
    assert per_fold.max() - per_fold.min() <= 1, per_fold


def test_multilabel_sizes_balance_records():
    labels = _ml_labels(150, seed=4)
    rng = np.random.default_rng(4)
    sizes = {p: int(s) for p, s in zip(sorted(labels), rng.integers(5, 200, len(labels)))}

    def spread(fold_of):
        r = np.array([sum(sizes[p] for p, f in fold_of.items() if f == k) for k in range(5)])
        return (r.max() - r.min()) / r.mean()

    with_sizes = np.mean([spread(multilabel_patient_kfold(labels, sizes, folds=5, seed=s)[0]) for s in range(3)])
    without = np.mean([spread(multilabel_patient_kfold(labels, folds=5, seed=s)[0]) for s in range(3)])
    assert with_sizes < without, (with_sizes, without)


def test_multilabel_single_label_and_bool_vectors():
    labels = {f"p{i}": [bool(i % 3 == 0)] for i in range(12)}
    fold_of, test = multilabel_patient_kfold(labels, folds=3, seed=0)
    assert test == [] and len(fold_of) == 12
    pos = np.bincount([fold_of[p] for p, v in labels.items() if v[0]], minlength=3)
    assert sorted(pos.tolist()) == [1, 1, 2]  # 4 positives over 3 folds
    assert sorted(np.bincount(list(fold_of.values())).tolist()) == [4, 4, 4]


@pytest.mark.parametrize("labels,kw,match", [
    ({f"p{i}": [1, 0] for i in range(6)}, {"folds": 1}, "folds must be"),
    ({f"p{i}": [1, 0] for i in range(4)}, {"folds": 5}, "4 training patients cannot fill 5 folds"),
    ({f"p{i}": [1, 0] for i in range(6)}, {"folds": 5, "test_fraction": 0.5}, "smaller test fraction"),
    ({f"p{i}": [1, 0] for i in range(6)}, {"test_fraction": 1.0}, "test fraction"),
    ({f"p{i}": [1, 0] for i in range(6)}, {"test_fraction": -0.1}, "test fraction"),
    ({}, {}, "empty"),
    ({"a": [1, 0], "b": [1]}, {"folds": 2}, "patient 'b' has 1 labels"),
    ({"a": [1, 0], "b": [2, 0]}, {"folds": 2}, "patient 'b': labels must be 0/1"),
    ({"a": [], "b": []}, {"folds": 2}, "patient 'a'"),
])
def test_multilabel_errors(labels, kw, match):
    with pytest.raises(ValueError, match=match):
        multilabel_patient_kfold(labels, **kw)


# --------------------------------------------------------------------------- audit
def _records(fold_of, test, per_patient=2):
    training = [{"patient": p, "fold": f, "image": f"{p}_{i}.png"} for p, f in fold_of.items()
                for i in range(per_patient)]
    return training, [{"patient": p, "image": f"{p}.png"} for p in test]


def test_audit_clean_split_summary():
    labels = _ml_labels(30)
    fold_of, test = multilabel_patient_kfold(labels, folds=3, seed=0, test_fraction=0.2)
    training, held_out = _records(fold_of, test)
    summary = audit_patient_split(training, held_out)
    assert list(summary) == [0, 1, 2]
    for f, s in summary.items():
        n = sum(1 for v in fold_of.values() if v == f)
        assert s == {"patients": n, "records": 2 * n}


@pytest.mark.parametrize("leak,named", [
    ("fold", ["'pt0003' is in folds [0, 1]"]),
    ("test", ["'pt0005' is in training (folds [2]) and in test"]),
    ("both", ["'pt0003' is in folds [0, 1]", "'pt0005' is in training (folds [2]) and in test"]),
])
def test_audit_names_every_leaking_patient(leak, named):
    fold_of = {f"pt{i:04d}": i % 3 for i in range(9)}
    training, test = _records(fold_of, ["pt0100"])
    if leak in ("fold", "both"):
        training.append({"patient": "pt0003", "fold": 1})  # pt0003 is in fold 0
    if leak in ("test", "both"):
        test.append({"patient": "pt0005"})  # pt0005 is in fold 2
    with pytest.raises(DataError) as err:
        audit_patient_split(training, test)
    for text in named:
        assert text in str(err.value)
    assert f"({len(named)})" in str(err.value)


@pytest.mark.parametrize("training,test,match", [
    ([{"fold": 0}], None, "training record 0 has no 'patient'"),
    ([{"patient": "a"}], None, "fold None"),
    ([{"patient": "a", "fold": "0"}], None, "int fold"),
    ([{"patient": "a", "fold": True}], None, "int fold"),
    ([{"patient": "a", "fold": 0}], [{"image": "x"}], "test record 0 has no 'patient'"),
])
def test_audit_malformed_records(training, test, match):
    with pytest.raises(DataError, match=match):
        audit_patient_split(training, test)


def test_audit_custom_key():
    assert audit_patient_split([{"case": 1, "fold": 0}, {"case": 2, "fold": 0}], key="case") == \
        {0: {"patients": 2, "records": 2}}


def test_multilabel_test_hold_out_is_stratified_too():
    labels = _ml_labels(300, seed=2)
    _, test = multilabel_patient_kfold(labels, folds=5, seed=0, test_fraction=0.2)
    pids = sorted(labels)
    y = np.array([labels[p] for p in pids])

    def deviation(held_out):
        return float(np.abs(np.array([labels[p] for p in held_out]).mean(0) - y.mean(0)).mean())

    random_devs = [deviation([pids[i] for i in np.random.default_rng(s).permutation(300)[:60]]) for s in range(8)]
    assert deviation(test) < 0.5 * np.mean(random_devs), (deviation(test), random_devs)
