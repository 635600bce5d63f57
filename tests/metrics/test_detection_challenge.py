"""The RSNA Pneumonia Detection Challenge metric against cases computed by hand, and its recomputation from the
files a detection evaluation writes (predictions.csv + the datalist's true boxes)."""

import csv
import json

import numpy as np
import pytest

from medpipe.metrics.detection import (CHALLENGE_IOU_THRESHOLDS, challenge_image_precision, challenge_image_scores,
                                       challenge_map, challenge_precision_from_ious, iou_matrix)
from tests.conftest import REPO

A = [0, 0, 10, 10]
B = [10, 0, 20, 10]        # A's right-hand neighbour, no overlap with A
FAR = [50, 50, 60, 60]

# p19 = [0, 0, 19, 10] (area 190): IoU with A = 100/190 = 0.526, with B = 90/200 = 0.45 exactly
P19 = [0, 0, 19, 10]


@pytest.mark.parametrize("true, pred, scores, expected", [
    ([A], [A], [0.9], 1.0),                                           # perfect match
    ([A, B], [B, A], [0.8, 0.9], 1.0),                                # perfect, boxes in any order
    ([A], [FAR], [0.9], 0.0),                                         # no overlap: 1 FP + 1 FN at every t
    ([A, B], [A, B, FAR], [0.9, 0.8, 0.7], 2 / 3),                    # one FP among two TP at all thresholds
    ([A, B], [A, B, FAR], [0.5, 0.4, 0.9], 2 / 3),                    # ... whatever the FP's confidence
    ([A], [], [], 0.0),                                               # a missed image
    ([], [A], [0.3], 0.0),                                            # a false alarm on an image without boxes
    ([A], [A, A], [0.9, 0.8], 0.5),                                   # a duplicate is a FP: 1 / (1 + 1)
    # IoU 0.5 exactly: a match for t = 0.40, 0.45 only (IoU > t), so 2 of 8 thresholds score 1
    ([A], [[0, 0, 20, 10]], [0.9], 2 / 8),
    # IoU 0.75 exactly (7.5 x 10 inside 10 x 10): > t for every t but 0.75
    ([A], [[0, 0, 7.5, 10]], [0.9], 7 / 8),
])
def test_image_precision_by_hand(true, pred, scores, expected):
    assert challenge_image_precision(true, pred, scores) == pytest.approx(expected)


def test_empty_image_is_skipped():
    assert challenge_image_precision([], []) is None
    assert challenge_image_precision([], [A], [0.1], min_score=0.5) is None   # its only box is below the threshold
    # skipped images do not enter the mean; a false alarm on an empty image does (as 0)
    assert challenge_map([[A], [], []], [[A], [], []], [[0.9], [], []]) == 1.0
    assert challenge_map([[A], [], []], [[A], [], [FAR]], [[0.9], [], [0.6]]) == 0.5
    assert challenge_map([[], []], [[], []]) is None


def test_iou_at_the_threshold_is_not_a_match():
    """The rule is IoU > t: 0.45 exactly does not match at t = 0.45 but does at 0.40."""
    assert iou_matrix([P19], [B])[0, 0] == 0.45
    assert 0.45 in CHALLENGE_IOU_THRESHOLDS
    assert challenge_image_precision([B], [P19], [0.9], thresholds=[0.40]) == 1.0
    assert challenge_image_precision([B], [P19], [0.9], thresholds=[0.45]) == 0.0   # 1 FP + 1 FN


def test_confidence_order_matters():
    """P19 overlaps A (IoU 0.526) and B (IoU 0.45); the exact box A overlaps only A.

    P19 first: it takes A at t < 0.526 (its best), the exact A is then a FP and B a FN: 1/3; at
    t >= 0.55 P19 matches nothing and A takes A: 1/3 again. Exact A first: it takes A, P19 takes B at
    t = 0.40 (0.45 > 0.40): 1; at 0.45 and above P19 is a FP and B a FN: 1/3.
    """
    assert challenge_image_precision([A, B], [P19, A], [0.9, 0.8]) == pytest.approx(1 / 3)
    assert challenge_image_precision([A, B], [P19, A], [0.8, 0.9]) == pytest.approx((1 + 7 / 3) / 8)
    # without scores the given order is the confidence order
    assert challenge_image_precision([A, B], [A, P19]) == pytest.approx((1 + 7 / 3) / 8)


def test_min_score_drops_boxes_below_it():
    assert challenge_image_precision([A], [A, FAR], [0.9, 0.2]) == 0.5
    assert challenge_image_precision([A], [A, FAR], [0.9, 0.2], min_score=0.25) == 1.0
    assert challenge_image_precision([A], [A, FAR], [0.9, 0.25], min_score=0.25) == 0.5   # >= min_score is kept


def test_thresholds_and_input_checks():
    assert CHALLENGE_IOU_THRESHOLDS == (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)
    assert iou_matrix([A, [0, 0, 0, 5]], [A, [5, 0, 15, 10]]).tolist() == [[1.0, 50 / 150], [0.0, 0.0]]
    assert iou_matrix([], [A]).shape == (0, 1)
    with pytest.raises(ValueError, match="scores"):
        challenge_image_precision([A], [A, B], [0.9])
    with pytest.raises(ValueError, match="xmin"):
        challenge_image_precision([[0, 0, 1]], [A])
    with pytest.raises(ValueError, match="images"):
        challenge_image_scores([[A]], [[A], []])


def test_matches_a_brute_force_reading_of_the_rule():
    """Random images against a direct transcription of the challenge's description (greedy, highest IoU)."""
    rng = np.random.default_rng(0)

    def brute(true, pred, scores):
        if not true and not pred:
            return None
        order = sorted(range(len(pred)), key=lambda i: -scores[i])
        out = []
        for t in CHALLENGE_IOU_THRESHOLDS:
            taken, tp = set(), 0
            for i in order:
                best, best_j = t, None
                for j, g in enumerate(true):
                    v = float(iou_matrix([pred[i]], [g])[0, 0])
                    if j not in taken and v > best:
                        best, best_j = v, j
                if best_j is not None:
                    taken.add(best_j)
                    tp += 1
            out.append(tp / (len(pred) + len(true) - tp))
        return sum(out) / len(out)

    def boxes(n):
        xy = rng.uniform(0, 40, (n, 2))
        wh = rng.uniform(5, 25, (n, 2))
        return np.concatenate([xy, xy + wh], 1).round(0).tolist()

    for _ in range(200):
        true, pred = boxes(int(rng.integers(0, 4))), boxes(int(rng.integers(0, 5)))
        scores = rng.uniform(0, 1, len(pred)).tolist()
        got, want = challenge_image_precision(true, pred, scores), brute(true, pred, scores)
        assert (got is None and want is None) or got == pytest.approx(want)


def test_from_an_iou_matrix():
    assert challenge_precision_from_ious(np.zeros((0, 0))) is None
    assert challenge_precision_from_ious(np.zeros((0, 2))) == 0.0 == challenge_precision_from_ious(np.zeros((3, 0)))
    assert challenge_precision_from_ious([[0.9, 0.0], [0.0, 0.41]]) == pytest.approx((1 + 1 / 3 * 7) / 8)
    with pytest.raises(ValueError, match="matrix"):
        challenge_precision_from_ious([0.5])


def test_the_evaluation_summary_equals_the_metric_at_every_confidence():
    """challenge_summary reuses one IoU matrix per image over the confidence sweep: the same numbers as
    challenge_map with min_score at each threshold; per-image columns as slice_predictions.csv writes them."""
    from medpipe.detection.predictions import CHALLENGE_COLUMNS, challenge_summary

    rng = np.random.default_rng(1)
    records, preds = [], []
    for i in range(40):
        n_true, n_pred = int(rng.integers(0, 3)), int(rng.integers(0, 6))
        xy = rng.uniform(0, 40, (n_true + n_pred, 2))
        wh = rng.uniform(5, 25, (n_true + n_pred, 2))
        b = np.concatenate([xy, xy + wh], 1).round(1).tolist()
        records.append({"patient": str(i), "image": f"{i}.png", "boxes": b[:n_true]})
        preds.append({"boxes": b[n_true:], "scores": rng.uniform(0, 1, n_pred).tolist()})
    sweep = (0.1, 0.5, 0.9)
    m, cols = challenge_summary(records, preds, conf=0.3, sweep_thresholds=sweep)
    true, boxes, scores = [r["boxes"] for r in records], [p["boxes"] for p in preds], [p["scores"] for p in preds]
    assert m["challenge_map"] == pytest.approx(challenge_map(true, boxes, scores, min_score=0.3))
    for row in m["challenge_map_detail"]["by_conf"]:
        want = challenge_map(true, boxes, scores, min_score=row["conf"])
        assert row["challenge_map"] == pytest.approx(want) if want is not None else row["challenge_map"] is None
    assert [r["conf"] for r in m["challenge_map_detail"]["by_conf"]] == [0.1, 0.3, 0.5, 0.9]
    per = challenge_image_scores(true, boxes, scores, min_score=0.3)
    assert [("" if v is None else v) for v in per] == [c["challenge_precision"] for c in cols]
    assert all(set(c) == set(CHALLENGE_COLUMNS) for c in cols)
    d = m["challenge_map_detail"]
    assert d["n_scored"] == sum(v is not None for v in per) and d["n_scored"] + d["n_skipped"] == d["n_slices"] == 40


def test_recomputed_from_the_evaluation_files(tmp_path):
    """predictions.csv (every box with its confidence) + the datalist's true boxes give the same score."""
    from medpipe.detection.predictions import BOX_COLUMNS, box_prediction_rows, write_rows_csv

    records = [{"patient": "p1", "image": "images/p1.png", "label": 1, "boxes": [A, B]},
               {"patient": "p2", "image": "images/p2.png", "label": 0, "boxes": []},
               {"patient": "p3", "image": "images/p3.png", "label": 0, "boxes": []},
               {"patient": "p4", "image": "images/p4.png", "label": 1, "boxes": [FAR]}]
    preds = [{"boxes": [P19, A, FAR], "scores": [0.8, 0.9, 0.1]}, {"boxes": [], "scores": []},
             {"boxes": [B], "scores": [0.6]}, {"boxes": [[50, 50, 59, 60]], "scores": [0.3]}]
    direct = challenge_map([r["boxes"] for r in records], [p["boxes"] for p in preds],
                           [p["scores"] for p in preds], min_score=0.25)
    write_rows_csv(box_prediction_rows(records, preds), tmp_path / "predictions.csv", BOX_COLUMNS)
    by_image: dict = {r["image"]: ([], []) for r in records}
    for row in csv.DictReader(open(tmp_path / "predictions.csv")):
        if row["box_index"] != "none" and float(row["confidence"]) >= 0.25:
            by_image[row["image"]][0].append([float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
            by_image[row["image"]][1].append(float(row["confidence"]))
    again = challenge_map([r["boxes"] for r in records], [by_image[r["image"]][0] for r in records],
                          [by_image[r["image"]][1] for r in records])
    # p1: (1 + 7/3) / 8; p2 skipped; p3 a false alarm: 0; p4: IoU 0.9 at every t: 1
    assert direct == again == pytest.approx(((1 + 7 / 3) / 8 + 0 + 1) / 3)


def test_only_the_bundle_that_asks_for_it_reports_it():
    """cxr_pneumonia_det's evaluation asks for the challenge score; sich_det's evaluation is unchanged."""
    cxr = json.loads((REPO / "bundles/cxr_pneumonia_det/configs/evaluate.json").read_text())
    sich = json.loads((REPO / "bundles/sich_det/configs/evaluate.json").read_text())
    assert "challenge_map" in cxr["extra_metrics"] and cxr["evaluator"]["extra_metrics"] == "@extra_metrics"
    assert "extra_metrics" not in sich and "extra_metrics" not in sich["evaluator"]
