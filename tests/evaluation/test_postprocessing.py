"""Post-processing learned on validation: small-component removal, its sweep, and the keep-only-if-it-helps rule."""

from __future__ import annotations

import numpy as np
import pytest

from medpipe.evaluation.postprocessing import ComponentSweep, component_stats, remove_small_components
from medpipe.metrics.segmentation import pixel_confusion


def _blob(shape, r0, c0, h, w):
    m = np.zeros(shape, np.uint8)
    m[r0:r0 + h, c0:c0 + w] = 1
    return m


def test_remove_small_components_keeps_large_and_diagonal_neighbours():
    m = _blob((20, 20), 2, 2, 5, 5) | _blob((20, 20), 15, 15, 2, 2)
    m[7, 7] = 1  # touches the 5x5 blob diagonally: 8-connected, so part of it (26 px)
    out = remove_small_components(m, 10)
    assert out.sum() == 26 and out[15:17, 15:17].sum() == 0
    assert remove_small_components(m, 0).sum() == m.sum()
    assert remove_small_components(np.zeros((4, 4)), 5).sum() == 0


def test_sweep_counts_equal_relabelling_at_every_threshold():
    rng = np.random.default_rng(0)
    sw = ComponentSweep(thresholds=(0, 3, 8, 30))
    pairs = []
    for k in range(6):
        pred = (rng.random((24, 24)) > 0.93).astype(np.uint8) | _blob((24, 24), 3 + k, 4, 6, 5)
        truth = _blob((24, 24), 4 + k, 4, 6, 6) if k % 2 else np.zeros((24, 24), np.uint8)
        sw.update(pred, truth, patient=str(k // 2))
        pairs.append((pred, truth))
    res = sw.choose()
    for row in res["sweep"]:
        tp = fp = fn = 0
        for pred, truth in pairs:
            c = pixel_confusion(remove_small_components(pred, row["min_component_px"]), truth)
            tp, fp, fn = tp + c["tp"], fp + c["fp"], fn + c["fn"]
        assert (row["tp"], row["fp"], row["fn"]) == (tp, fp, fn)
        assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # specks removed help here: a threshold above 1 px is kept, with a better Dice than none
    assert res["kept"] and res["min_component_px"] > 0 and res["dice_postprocessed"] > res["dice_raw"]
    assert len(res["crossfit_folds"]) == 2 and 0 <= res["dice_postprocessed_crossfit"] <= 1


def test_sweep_keeps_nothing_when_removal_only_hurts():
    sw = ComponentSweep(thresholds=(0, 5, 50))
    truth = _blob((10, 10), 1, 1, 2, 2)  # a 4-px lesion, predicted exactly
    sw.update(truth.copy(), truth, patient="a")
    sw.update(truth.copy(), truth, patient="b")
    res = sw.choose()
    assert res["min_component_px"] == 0 and not res["kept"] and res["dice_postprocessed"] == res["dice_raw"] == 1.0


def test_component_stats_overlaps():
    pred = np.array([[1, 1, 0, 0, 1], [0, 0, 0, 0, 1]])
    truth = np.array([[0, 1, 0, 0, 1], [0, 0, 0, 0, 0]])
    sizes, overlaps, area = component_stats(pred, truth)
    assert sorted(zip(sizes.tolist(), overlaps.tolist())) == [(2, 1), (2, 1)] and area == 2


def test_a_lower_probability_threshold_is_learned_for_an_under_segmenting_model():
    from medpipe.evaluation.postprocessing import postprocess

    truth = _blob((16, 16), 4, 4, 6, 6)
    prob = np.where(truth > 0, 0.35, 0.05).astype(np.float32)  # right place, under-confident
    prob[5:9, 5:9] = 0.8
    sw = ComponentSweep(thresholds=(0, 10))
    for patient in ("1", "2", "3", "4"):
        sw.update(prob, truth, patient=patient)
    res = sw.choose()
    assert res["kept"] and res["fg_threshold"] < 0.35 and res["dice_postprocessed"] == 1.0
    assert res["dice_raw"] == pytest.approx(2 * 16 / (16 + 36))
    assert res["dice_postprocessed_crossfit"] == 1.0
    assert postprocess(prob, res["fg_threshold"], res["min_component_px"]).sum() == 36


def test_native_foreground_from_logits_and_probabilities():
    import torch

    from medpipe.handlers.segmentation import native_foreground

    logits = torch.tensor([[[0.0, 2.0]], [[0.0, -2.0]]])  # (C=2, 1, 2)
    fg = native_foreground(logits, (1, 2))
    assert fg[0, 0] == pytest.approx(0.5) and fg[0, 1] == pytest.approx(1 / (1 + np.exp(4)), rel=1e-4)
    probs = torch.softmax(logits, 0)
    assert np.allclose(native_foreground(probs, (1, 2)), fg)
    assert native_foreground(probs, (2, 4)).shape == (2, 4)


def test_a_choice_that_only_helps_on_the_slices_that_chose_it_is_not_kept():
    """Specks on one patient's slices, true small lesions on the other's: removing components < 5 px wins
    on all slices together (0.833 vs 0.824) but loses cross-fitted (0.667), so it stays off."""
    a_truth = _blob((12, 12), 0, 0, 4, 5)
    a_pred = a_truth.copy()
    for r, c in ((8, 8), (8, 0), (0, 8)):
        a_pred[r:r + 2, c:c + 2] = 1  # three 4-px specks
    b_truth = _blob((12, 12), 0, 0, 2, 2) | _blob((12, 12), 6, 6, 2, 2)
    sw = ComponentSweep(thresholds=(0, 5), prob_thresholds=(0.5,))
    sw.update(a_pred, a_truth, patient="a")
    sw.update(b_truth.copy(), b_truth, patient="b")
    res = sw.choose()
    assert res["chosen_on_all_slices"]["min_component_px"] == 5
    assert res["chosen_on_all_slices"]["dice"] == pytest.approx(40 / 48)
    assert res["dice_postprocessed_crossfit"] == pytest.approx(40 / 60)
    assert not res["kept"] and res["min_component_px"] == 0 and res["dice_postprocessed"] == res["dice_raw"]
