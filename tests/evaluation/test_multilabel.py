"""The multi-label evaluation summary: thresholds and where they come from, intervals, references, the CSV rows."""

import numpy as np
import pytest

from medpipe.evaluation.multilabel import PER_CLASS_COLUMNS, multilabel_summary, per_class_rows
from medpipe.metrics.multilabel import best_thresholds_per_class, multilabel_metrics

Y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]])
P = np.array([[.9, .2, .1], [.3, .7, .2], [.6, .8, .1], [.2, .1, .3], [.4, .3, .2], [.5, .6, .1]])
PATIENTS = ["a", "a", "b", "c", "c", "d"]
NAMES = ["Atelectasis", "Cardiomegaly", "Hernia"]


def test_thresholds_chosen_on_the_records_given_or_default():
    chosen = multilabel_summary(Y, P, NAMES, PATIENTS, thresholds="choose", n_boot=0)
    assert list(chosen["thresholds"].values()) == best_thresholds_per_class(Y, P)
    assert "in-sample" in chosen["thresholds_source"]
    assert chosen["f1_macro"] == multilabel_metrics(Y, P, NAMES, best_thresholds_per_class(Y, P))["f1_macro"]
    given = multilabel_summary(Y, P, NAMES, PATIENTS, thresholds={"Cardiomegaly": 0.65}, threshold_source="stored",
                               n_boot=0)
    assert given["thresholds"] == {"Atelectasis": 0.5, "Cardiomegaly": 0.65, "Hernia": 0.5}
    assert given["thresholds_source"] == "stored"
    default = multilabel_summary(Y, P, NAMES, PATIENTS, n_boot=0)
    assert default["at_threshold_0.5"]["f1_macro"] == default["f1_macro"]
    with pytest.raises(ValueError):
        multilabel_summary(Y, P, NAMES, PATIENTS, thresholds="best")


def test_evaluated_set_intervals_and_references():
    ref = {"source": "CheXNet", "auroc_mean": 0.84, "auroc_per_class": {"Atelectasis": 0.8094, "Cardiomegaly": 0.9248}}
    m = multilabel_summary(Y, P, NAMES, PATIENTS, thresholds="choose", references=ref, n_boot=200)
    assert m["evaluated"] == {"images": 6, "patients": 4,
                              "positives_per_class": {"Atelectasis": 3, "Cardiomegaly": 3, "Hernia": 0},
                              "positive_patients_per_class": {"Atelectasis": 3, "Cardiomegaly": 3, "Hernia": 0}}
    assert m["auroc_per_class"]["Hernia"] is None and m["auroc_ci_per_class"]["Hernia"] is None
    lo, hi = m["auroc_ci_per_class"]["Cardiomegaly"]
    assert 0 <= lo <= m["auroc_per_class"]["Cardiomegaly"] <= hi <= 1
    assert m["bootstrap"]["unit"] == "patient" and m["bootstrap"]["resamples"] == 200
    pc = m["reference"]["per_class"]
    assert pc["Cardiomegaly"]["reference"] == 0.9248
    assert pc["Cardiomegaly"]["difference"] == pytest.approx(m["auroc_per_class"]["Cardiomegaly"] - 0.9248)
    assert pc["Hernia"] == {"ours": None, "reference": None, "difference": None}
    assert "split" in m["reference"]["note"]
    rows = per_class_rows(m)
    assert [r["class"] for r in rows] == NAMES and set(rows[0]) == set(PER_CLASS_COLUMNS)
    assert rows[1]["positives"] == 3 and rows[1]["negatives"] == 3 and rows[1]["reference_auroc"] == 0.9248


def test_one_threshold_for_every_class():
    m = multilabel_summary(Y, P, NAMES, PATIENTS, thresholds=0.4, n_boot=0)
    assert set(m["thresholds"].values()) == {0.4} and m["thresholds_source"] == "0.4 for every class"
