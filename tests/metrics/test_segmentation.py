import json

import numpy as np
import pytest
import torch

from medpipe.metrics import PixelCounter, area_threshold_sweep, choose_area_threshold, pixel_confusion

Z = np.zeros((3, 3), int)


def _mask(*pixels, shape=(3, 3)):
    m = np.zeros(shape, np.uint8)
    for r, c in pixels:
        m[r, c] = 1
    return m


# pred, target, (tp, fp, fn, tn)
CONFUSION = [
    pytest.param(Z, Z, (0, 0, 0, 9), id="all-empty"),
    pytest.param(_mask((0, 0)), Z, (0, 1, 0, 8), id="empty-target-fp"),
    pytest.param(Z, _mask((1, 1), (1, 2)), (0, 0, 2, 7), id="empty-pred"),
    pytest.param(_mask((1, 1), (2, 2)), _mask((1, 1), (2, 2)), (2, 0, 0, 7), id="perfect"),
    # pred [[1,1,0],[0,1,0]] vs target [[0,1,1],[0,1,0]]: tp (0,1),(1,1); fp (0,0); fn (0,2); tn 2
    pytest.param(np.array([[1, 1, 0], [0, 1, 0]]), np.array([[0, 1, 1], [0, 1, 0]]), (2, 1, 1, 2),
                 id="partial"),
    # nonzero = foreground, whatever the value or dtype
    pytest.param(np.array([0.0, 0.3, -2.0, 0.0]), np.array([True, True, False, False]), (1, 1, 1, 1),
                 id="nonzero-values"),
]


@pytest.mark.parametrize("pred,target,want", CONFUSION)
def test_pixel_confusion(pred, target, want):
    c = pixel_confusion(pred, target)
    assert c == dict(zip(("tp", "fp", "fn", "tn"), want))
    assert all(type(v) is int for v in c.values())


def test_pixel_confusion_torch_and_3d():
    p = torch.zeros(2, 1, 4, 4)
    t = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    p[0, 0, :2, :2] = 1
    t[0, 0, 1:3, 1:3] = 1
    assert pixel_confusion(p, t) == {"tp": 1, "fp": 3, "fn": 3, "tn": 25}
    assert pixel_confusion(p, t.numpy()) == pixel_confusion(p.numpy(), t)


def test_pixel_confusion_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        pixel_confusion(np.zeros((2, 2)), np.zeros((2, 3)))


# single case: pred, target, global dice, global iou, sensitivity, specificity, per-case dice
SINGLE = [
    pytest.param(Z, Z, 1.0, 1.0, None, 1.0, None, id="all-empty"),
    pytest.param(_mask((0, 0)), Z, 0.0, 0.0, None, 8 / 9, 0.0, id="empty-target-fp"),
    pytest.param(Z, _mask((1, 1), (1, 2)), 0.0, 0.0, 0.0, 1.0, 0.0, id="empty-pred"),
    pytest.param(_mask((1, 1)), _mask((1, 1)), 1.0, 1.0, 1.0, 1.0, 1.0, id="perfect"),
    # tp 2 fp 1 fn 1 tn 2: dice 4/6, iou 2/4, sens 2/3, spec 2/3
    pytest.param(np.array([[1, 1, 0], [0, 1, 0]]), np.array([[0, 1, 1], [0, 1, 0]]),
                 2 / 3, 0.5, 2 / 3, 2 / 3, 2 / 3, id="partial"),
]


@pytest.mark.parametrize("pred,target,dice,iou,sens,spec,case_dice", SINGLE)
def test_counter_single_case(pred, target, dice, iou, sens, spec, case_dice):
    c = PixelCounter()
    c.update(pred, target, case_id="x")
    m = c.compute()
    assert set(m) == {"dice", "iou", "sensitivity", "specificity", "dice_per_case_mean", "pixel_confusion",
                      "n_cases", "n_positive_cases", "empty_case_false_positive_rate", "per_case"}
    assert m["dice"] == pytest.approx(dice)
    assert m["iou"] == pytest.approx(iou)
    assert m["sensitivity"] == (None if sens is None else pytest.approx(sens))
    assert m["specificity"] == pytest.approx(spec)
    assert m["per_case"][0]["dice"] == (None if case_dice is None else pytest.approx(case_dice))
    positive = np.count_nonzero(target) > 0
    assert m["n_positive_cases"] == int(positive)
    # mean over positive cases only: the empty-target cases never count
    assert m["dice_per_case_mean"] == (pytest.approx(case_dice) if positive else None)
    if positive:
        assert m["empty_case_false_positive_rate"] is None
    else:
        assert m["empty_case_false_positive_rate"] == float(np.count_nonzero(pred) > 0)


def test_counter_mixed_cases_hand_computed():
    c = PixelCounter()
    c.update(_mask((0, 0), (0, 1)), _mask((0, 0), (0, 1)), case_id="perfect")  # tp 2
    c.update(Z, Z, case_id="both-empty")  # undefined dice
    c.update(_mask((2, 2)), Z, case_id="fp-on-empty")  # fp 1, dice 0, not in the mean
    c.update(Z, _mask((1, 0), (1, 1), (1, 2)), case_id="missed")  # fn 3, dice 0
    m = c.compute()
    assert m["pixel_confusion"] == {"tp": 2, "fp": 1, "fn": 3, "tn": 36 - 6}
    assert m["dice"] == pytest.approx(4 / 8)  # 2*2 / (2*2 + 1 + 3), global counts
    assert m["iou"] == pytest.approx(2 / 6)
    assert m["sensitivity"] == pytest.approx(2 / 5)
    assert m["specificity"] == pytest.approx(30 / 31)
    assert [r["dice"] for r in m["per_case"]] == [1.0, None, 0.0, 0.0]
    assert m["dice_per_case_mean"] == pytest.approx(0.5)  # (1 + 0) / 2 over the positive cases
    assert m["n_cases"] == 4 and m["n_positive_cases"] == 2
    assert m["empty_case_false_positive_rate"] == pytest.approx(0.5)  # 1 of the 2 empty cases
    assert [r["case_id"] for r in m["per_case"]] == ["perfect", "both-empty", "fp-on-empty", "missed"]
    r = m["per_case"][3]
    assert (r["target_area"], r["pred_area"], r["tp"], r["fp"], r["fn"], r["tn"]) == (3, 0, 0, 0, 3, 6)
    assert set(r) == {"case_id", "dice", "tp", "fp", "fn", "tn", "target_area", "pred_area"}
    json.dumps(m)


def test_counter_all_empty_everywhere():
    c = PixelCounter()
    for _ in range(3):
        c.update(Z, Z)
    m = c.compute()
    assert m["dice"] == 1.0 and m["iou"] == 1.0
    assert m["dice_per_case_mean"] is None and m["sensitivity"] is None
    assert m["empty_case_false_positive_rate"] == 0.0
    assert [r["case_id"] for r in m["per_case"]] == [0, 1, 2]


def test_counter_batch_reset_and_empty():
    c = PixelCounter()
    with pytest.raises(ValueError):
        c.compute()
    preds = torch.zeros(3, 1, 2, 2)
    targets = torch.zeros(3, 1, 2, 2)
    preds[0, 0, 0, 0] = targets[0, 0, 0, 0] = 1
    recs = c.update_batch(preds, targets, case_ids=["a", "b", "c"])
    assert [r["case_id"] for r in recs] == ["a", "b", "c"] and len(c) == 3
    assert c.compute()["dice_per_case_mean"] == 1.0
    with pytest.raises(ValueError):
        c.update_batch(preds, targets, case_ids=["a"])
    c.reset()
    assert len(c) == 0


# --------------------------------------------------------------------------- area sweep
def test_sweep_hand_example():
    sweep = area_threshold_sweep([0, 0, 5, 50, 80], [0, 0, 0, 1, 1])
    assert [r["area"] for r in sweep] == [0, 5, 50, 80]
    assert all(type(r["area"]) is int for r in sweep)
    want = {
        0: dict(tp=2, fp=3, fn=0, tn=0, accuracy=0.4, precision=0.4, recall=1.0, f1=4 / 7, specificity=0.0),
        5: dict(tp=2, fp=1, fn=0, tn=2, accuracy=0.8, precision=2 / 3, recall=1.0, f1=0.8, specificity=2 / 3),
        50: dict(tp=2, fp=0, fn=0, tn=3, accuracy=1.0, precision=1.0, recall=1.0, f1=1.0, specificity=1.0),
        80: dict(tp=1, fp=0, fn=1, tn=3, accuracy=0.8, precision=1.0, recall=0.5, f1=2 / 3, specificity=1.0),
    }
    for r in sweep:
        assert {k: r[k] for k in want[r["area"]]} == pytest.approx(want[r["area"]]), r["area"]
    # the best A lies in (5, 50]; with thresholds taken from the areas that is 50
    assert choose_area_threshold(sweep) == 50
    assert choose_area_threshold(sweep, "recall") == 0  # ties (0, 5, 50) -> smallest
    json.dumps(sweep)


def test_sweep_explicit_thresholds_and_floats():
    sweep = area_threshold_sweep(np.array([0.0, 2.5, 7.5]), [0, 1, 1], thresholds=[10, 1, 1, 3])
    assert [r["area"] for r in sweep] == [1, 3, 10]  # sorted, deduplicated
    assert [r["tp"] for r in sweep] == [2, 1, 0]
    # no positive predicted at A=10: precision 0/0 := 0
    assert sweep[-1]["precision"] == 0.0 and sweep[-1]["specificity"] == 1.0
    floats = area_threshold_sweep([0.0, 2.5, 7.5], [0, 1, 1])
    assert [r["area"] for r in floats] == [0.0, 2.5, 7.5] and type(floats[1]["area"]) is float
    assert choose_area_threshold(floats) == 2.5


def test_sweep_cap_quantile_spaced():
    rng = np.random.default_rng(0)
    areas = np.concatenate([np.zeros(500, int), rng.integers(1, 100_000, 5000)])
    labels = (areas > 5000).astype(int)
    sweep = area_threshold_sweep(areas, labels)
    a = [r["area"] for r in sweep]
    assert 150 <= len(a) <= 200
    assert a == sorted(set(a)) and a[0] == 0 and a[-1] == int(areas.max())
    assert set(a) <= set(areas.tolist())
    assert len(area_threshold_sweep(areas, labels, max_thresholds=20)) <= 20
    # every candidate is evaluated exactly like a direct computation
    r = sweep[len(sweep) // 2]
    pred = areas >= r["area"]
    assert r["tp"] == int(np.sum(pred & (labels == 1))) and r["fp"] == int(np.sum(pred & (labels == 0)))


def test_choose_ties_smallest_area_any_order():
    sweep = [{"area": 30, "f1": 0.9}, {"area": 10, "f1": 0.9}, {"area": 20, "f1": 0.5}]
    assert choose_area_threshold(sweep) == 10


@pytest.mark.parametrize("areas,labels", [([1, 2], [0]), ([1, -2], [0, 1]), ([1, 2], [0, 3]),
                                          ([], []), ([1, float("nan")], [0, 1])])
def test_sweep_bad_input(areas, labels):
    with pytest.raises(ValueError):
        area_threshold_sweep(areas, labels)


def test_choose_bad_input():
    with pytest.raises(ValueError):
        choose_area_threshold([])
    with pytest.raises(ValueError):
        choose_area_threshold([{"area": 1, "f1": 0.2}], metric="auroc")
