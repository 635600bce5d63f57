"""medpipe.detection.evaluation without a checkpoint: example picking and argument checks."""

from __future__ import annotations

import pytest

from medpipe.detection.evaluation import YoloEvaluator, pick_examples
from medpipe.errors import UserError


def test_examples_mix_outcomes():
    slices = [{"prediction": p, "label": y, "probability": q} for p, y, q in
              [(1, 1, 0.9), (1, 1, 0.8), (1, 0, 0.7), (0, 1, 0.1), (0, 0, 0.0), (0, 0, 0.05), (1, 0, 0.3)]]
    picked = pick_examples(slices, 6)
    assert [k for k, _ in picked] == ["TP", "FP", "FN", "TN", "TP", "FP"]
    assert picked[1][1] == 2  # the most confident false positive first
    assert {k for k, _ in pick_examples(slices, 7)} == {"TP", "FP", "FN", "TN"}
    assert pick_examples(slices, 0) == [] and len(pick_examples(slices, 100)) == len(slices)


def test_records_must_be_a_known_selection(tmp_path):
    with pytest.raises(UserError, match="--records train"):
        YoloEvaluator("model.pt", "data.yaml", str(tmp_path), str(tmp_path), records="train")


def test_class_names_are_not_a_constructor_argument(tmp_path):
    """The classes come from the checkpoint (checked against the data.yaml), never from a bundle constant."""
    with pytest.raises(TypeError):
        YoloEvaluator("model.pt", "data.yaml", str(tmp_path), str(tmp_path), class_names=("no_phe", "phe"))
