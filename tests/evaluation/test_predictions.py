"""The one predictions.csv schema for every classification label kind."""

import pytest

from medpipe.evaluation.predictions import columns, labels_and_scores, to_row

BASE = {"patient": "p", "slice": 2, "image": "x.png"}


def test_binary_keeps_the_probability_of_the_second_class():
    row = to_row("binary", BASE, [0.3, 0.7], ["no", "yes"], 0.5, label=1)
    assert row == {**BASE, "probability": 0.7, "prediction": 1, "label": 1}
    assert columns("binary", ["no", "yes"], True) == ["patient", "slice", "image", "probability", "prediction", "label"]


def test_multiclass_names_the_argmax_and_keeps_every_probability():
    row = to_row("multiclass", BASE, [0.1, 0.2, 0.7], ["a", "b", "c"], label=0)
    assert row["prediction"] == 2 and row["prediction_name"] == "c" and row["probability"] == 0.7
    assert [row[f"p_{c}"] for c in "abc"] == [0.1, 0.2, 0.7] and row["label"] == 0
    assert set(row) == set(columns("multiclass", ["a", "b", "c"], True))


def test_multilabel_thresholds_per_class():
    row = to_row("multilabel", BASE, [0.6, 0.4], ["a", "b"], [0.5, 0.3], label=[1, 0])
    assert (row["pred_a"], row["pred_b"], row["label_a"], row["label_b"]) == (1, 1, 1, 0)
    assert set(row) == set(columns("multilabel", ["a", "b"], True))
    assert "label_a" not in columns("multilabel", ["a", "b"], False)


def test_labels_and_scores_shapes():
    y, s = labels_and_scores("multilabel", [{"label": [1, 0], "scores": [0.2, 0.3]}])
    assert y.shape == (1, 2) and s.shape == (1, 2)
    y, s = labels_and_scores("multiclass", [{"label": 2, "scores": [0.2, 0.3, 0.5]}])
    assert y.tolist() == [2]


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown label kind"):
        columns("regression", [], False)
