"""Patient-level bootstrap: known cases, a brute-force re-computation per resample, the normal approximation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medpipe.metrics import classification_metrics
from medpipe.metrics.bootstrap import (auroc_statistic, bootstrap_distribution, classification_cis, count_statistic,
                                       mean_statistic, patient_bootstrap, pixel_statistic, resample_counts,
                                       segmentation_cis)


def _rows(rng, n_patients=6, per_patient=(2, 6)):
    patients, labels, scores = [], [], []
    for p in range(n_patients):
        k = int(rng.integers(*per_patient))
        patients += [f"{p:04d}"] * k
        y = rng.integers(0, 2, k)
        labels += y.tolist()
        scores += np.clip(0.35 * y + 0.65 * rng.random(k), 0, 1).round(2).tolist()  # rounded: ties happen
    return np.array(patients), np.array(labels), np.array(scores)


def test_resample_counts_draw_every_patient_count_times():
    c = resample_counts(5, n_boot=300, seed=1)
    assert c.shape == (300, 5) and (c.sum(axis=1) == 5).all() and c.min() >= 0
    assert np.array_equal(c, resample_counts(5, n_boot=300, seed=1))  # deterministic
    assert not np.array_equal(c, resample_counts(5, n_boot=300, seed=2))
    # each patient is drawn once per resample on average
    assert c.mean() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("patients, labels, preds, expected", [
    # one patient: every resample is the data itself
    (["a"] * 4, [1, 0, 1, 0], [1, 0, 0, 0], (0.75, 0.75)),
    # every patient has the same accuracy: no spread
    (["a", "a", "b", "b", "c", "c"], [1, 0, 1, 0, 1, 0], [1, 1, 0, 0, 1, 1], (0.5, 0.5)),
    # all correct
    (["a", "b", "c", "d"], [1, 0, 1, 0], [1, 0, 1, 0], (1.0, 1.0)),
])
def test_known_intervals(patients, labels, preds, expected):
    assert patient_bootstrap(patients, count_statistic("accuracy", labels, preds), n_boot=200) == expected


def test_brute_force_recomputation_of_every_resample():
    """The vectorised statistics equal the metrics recomputed on the materialized resample rows."""
    rng = np.random.default_rng(7)
    patients, labels, scores = _rows(rng)
    preds = (scores >= 0.5).astype(int)
    n_boot, seed = 25, 3
    ids = sorted(set(patients))
    counts = resample_counts(len(ids), n_boot, seed)  # the resamples bootstrap_distribution uses
    dists = {m: bootstrap_distribution(patients, count_statistic(m, labels, preds), n_boot, seed)
             for m in ("accuracy", "precision", "recall", "f1", "specificity")}
    auc = bootstrap_distribution(patients, auroc_statistic(labels, scores), n_boot, seed)
    for b in range(n_boot):
        take = np.concatenate([np.flatnonzero(patients == p) for p, c in zip(ids, counts[b]) for _ in range(c)])
        y, p, s = labels[take], preds[take], scores[take]
        ref = classification_metrics(y, p, threshold=0.5)
        cm = np.asarray(ref["confusion_matrix"])
        for m, d in dists.items():
            undefined = {"precision": cm[:, 1].sum() == 0, "recall": cm[1].sum() == 0,
                         "specificity": cm[0].sum() == 0, "f1": cm[1].sum() + cm[:, 1].sum() == 0}.get(m, False)
            if undefined:
                assert math.isnan(d[b])
            else:
                assert d[b] == pytest.approx(ref[m])
        if 0 < y.sum() < y.size:
            assert auc[b] == pytest.approx(roc_auc_score(y, s))
        else:
            assert math.isnan(auc[b])


def test_normal_approximation_for_many_independent_patients():
    """One slice per patient: the bootstrap interval of accuracy ~ p +- 1.96 sqrt(p (1 - p) / n)."""
    rng = np.random.default_rng(0)
    n = 400
    correct = rng.random(n) < 0.8
    labels = np.ones(n, dtype=int)
    preds = correct.astype(int)
    lo, hi = patient_bootstrap(np.arange(n), count_statistic("accuracy", labels, preds), n_boot=4000, seed=1)
    p = correct.mean()
    half = 1.959964 * math.sqrt(p * (1 - p) / n)
    assert lo == pytest.approx(p - half, abs=0.008) and hi == pytest.approx(p + half, abs=0.008)


def test_auroc_statistic_equals_weighted_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 50)
    s = rng.integers(0, 10, 50) / 10  # many ties
    w = rng.integers(0, 4, (5, 50)).astype(float)
    got = auroc_statistic(y, s)(w)
    for b in range(5):
        assert got[b] == pytest.approx(roc_auc_score(y, s, sample_weight=w[b]))


def test_pixel_and_mean_statistics():
    tp, fp, fn = np.array([8, 0, 3]), np.array([2, 5, 0]), np.array([0, 0, 3])
    w = np.array([[1.0, 1.0, 1.0], [0.0, 3.0, 0.0], [2.0, 0.0, 1.0]])
    assert pixel_statistic("dice", tp, fp, fn)(w)[0] == pytest.approx(22 / (22 + 7 + 3))
    assert pixel_statistic("dice", tp, fp, fn)(w)[1] == 0.0  # only false positives
    assert math.isnan(pixel_statistic("sensitivity", tp, fp, fn)(w)[1])  # no foreground: undefined
    assert pixel_statistic("iou", tp, fp, fn)(w)[2] == pytest.approx(19 / (19 + 4 + 3))
    dice = np.array([0.8, np.nan, 0.5])  # NaN: an empty slice, not in the per-case mean
    assert mean_statistic(dice)(w).tolist()[0] == pytest.approx(0.65)
    assert math.isnan(mean_statistic(dice)(w)[1])


def test_undefined_resamples_are_left_out_and_all_undefined_is_none():
    # recall needs positives; only patient "b" has one
    stat = count_statistic("recall", [0, 0, 1, 0], [0, 1, 1, 0])
    assert patient_bootstrap(["a", "a", "b", "b"], stat, n_boot=100) == (1.0, 1.0)
    none = count_statistic("recall", [0, 0], [0, 1])
    assert patient_bootstrap(["a", "b"], none, n_boot=50) == (None, None)


def test_ready_made_sets_share_resamples_and_are_deterministic():
    rng = np.random.default_rng(11)
    patients, labels, scores = _rows(rng, n_patients=10)
    preds = (scores >= 0.5).astype(int)
    a = classification_cis(patients, labels, preds, scores, n_boot=300, seed=5)
    assert a == classification_cis(patients, labels, preds, scores, n_boot=300, seed=5)
    assert set(a) == {"accuracy", "precision", "recall", "f1", "specificity", "auroc"}
    assert all(0.0 <= lo <= hi <= 1.0 for lo, hi in a.values())
    assert a != classification_cis(patients, labels, preds, scores, n_boot=300, seed=6)
    tp, fp, fn = rng.integers(0, 50, (3, len(patients)))
    seg = segmentation_cis(patients, tp, fp, fn, dice=np.where(tp > 10, 0.7, np.nan), n_boot=200)
    assert set(seg) == {"dice", "iou", "sensitivity", "dice_per_case_mean"}
    assert seg["dice_per_case_mean"] == (pytest.approx(0.7), pytest.approx(0.7))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown metric"):
        count_statistic("auroc", [1], [1])
    with pytest.raises(ValueError, match="0/1"):
        count_statistic("recall", [2], [1])
    with pytest.raises(ValueError, match="alpha"):
        patient_bootstrap(["a"], mean_statistic([1.0]), alpha=1.5)
    with pytest.raises(ValueError, match="no rows"):
        patient_bootstrap([], mean_statistic([]))


def test_multilabel_auroc_intervals_per_class_and_mean():
    from medpipe.metrics.bootstrap import auroc_statistic, multilabel_auroc_cis, patient_bootstrap

    rng = np.random.default_rng(0)
    n = 60
    patients = [f"p{i // 2}" for i in range(n)]
    y = np.stack([rng.integers(0, 2, n), rng.integers(0, 2, n), np.zeros(n, int)], axis=1)
    s = np.clip(y * 0.4 + rng.random((n, 3)) * 0.6, 0, 1)
    ci = multilabel_auroc_cis(patients, y, s, ["a", "b", "never"], n_boot=300, seed=3)
    assert ci["auroc_per_class"]["never"] is None  # no positive: no AUROC, no interval
    for k, name in enumerate("ab"):  # the same resamples as a one-class bootstrap with the same seed
        assert ci["auroc_per_class"][name] == patient_bootstrap(patients, auroc_statistic(y[:, k], s[:, k]), 300, 3)
    lo, hi = ci["auroc_mean"]
    a, b = ci["auroc_per_class"]["a"], ci["auroc_per_class"]["b"]
    assert min(a[0], b[0]) <= lo <= hi <= max(a[1], b[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiclass_statistic_equals_multiclass_metrics_on_every_resample(seed):
    """Each resample's value = multiclass_metrics (and sklearn's kappa) on the rows repeated by their weights;
    class 3 is absent from the truth but predicted, class 2 is present but never predicted."""
    from sklearn.metrics import cohen_kappa_score

    from medpipe.metrics.bootstrap import MULTICLASS_METRICS, multiclass_statistic, resample_counts
    from medpipe.metrics.multiclass import multiclass_metrics

    rng = np.random.default_rng(seed)
    n, c = 40, 4
    y = rng.integers(0, 3, n)
    p = np.where(rng.random(n) < 0.6, y, rng.integers(0, c, n))
    p[p == 2] = 0
    p[0] = 3
    patients = np.repeat(np.arange(10), 4)
    counts = resample_counts(10, n_boot=25, seed=seed)
    w = counts[:, patients].astype(float)
    for metric in MULTICLASS_METRICS:
        got = multiclass_statistic(metric, y, p, c)(w)
        for i in range(len(w)):
            idx = np.repeat(np.arange(n), w[i].astype(int))
            onehot = np.eye(c)[p[idx]]
            m = multiclass_metrics(y[idx], onehot, [f"c{k}" for k in range(c)], y_pred=p[idx])
            want = m[metric]
            if metric == "kappa" and want is not None:
                assert want == pytest.approx(cohen_kappa_score(y[idx], p[idx]))
            if want is None:
                assert math.isnan(got[i])
            else:
                assert got[i] == pytest.approx(want), (metric, i)


def test_multiclass_intervals_contain_the_point_estimate():
    from medpipe.metrics.bootstrap import multiclass_cis
    from medpipe.metrics.multiclass import multiclass_metrics

    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 300)
    p = np.where(rng.random(300) < 0.7, y, rng.integers(0, 5, 300))
    patients = np.repeat(np.arange(60), 5)
    ci = multiclass_cis(patients, y, p, 5, n_boot=300)
    m = multiclass_metrics(y, np.eye(5)[p], list("abcde"), y_pred=p)
    for k, (lo, hi) in ci.items():
        assert lo <= m[k] <= hi and hi - lo < 0.4, k
