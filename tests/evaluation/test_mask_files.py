"""Scoring outside predictions (nnU-Net's) with medpipe's segmentation metrics, as the sich_seg report does."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from medpipe.evaluation.mask_files import evaluate_masks, read_prediction
from medpipe.metrics.segmentation import PixelCounter


def _mask(path, box=None, size=8):
    m = np.zeros((size, size), np.uint8)
    if box:
        y0, y1, x0, x1 = box
        m[y0:y1, x0:x1] = 255
    Image.fromarray(m).save(path)
    return m > 0


@pytest.fixture
def records(tmp_path):
    """4 slices of 2 patients: two with a 9-pixel lesion, two empty."""
    spec = [("p1", 0, (2, 5, 2, 5)), ("p1", 1, None), ("p2", 0, (1, 4, 3, 6)), ("p2", 1, None)]
    recs, truth = [], []
    for patient, sl, box in spec:
        path = tmp_path / f"{patient}_{sl}.png"
        truth.append(_mask(path, box))
        recs.append({"image": str(path), "mask": str(path), "patient": patient, "slice": sl,
                     "label": int(box is not None)})
    return recs, truth


def test_perfect_predictions_score_one(records, tmp_path):
    recs, truth = records
    m = evaluate_masks(recs, [t.astype(np.uint8) for t in truth], output_dir=tmp_path / "out",
                       class_names=("background", "phe"), extra={"model": "x"})
    assert m["dice"] == m["iou"] == m["sensitivity"] == m["specificity"] == m["dice_per_case_mean"] == 1.0
    assert m["model"] == "x" and m["n_cases"] == 4
    assert m["seg_to_cls"]["selection"] == "cross-fitted" and m["seg_to_cls"]["accuracy"] == 1.0
    saved = json.loads((tmp_path / "out/eval/metrics.json").read_text())
    assert saved["dice"] == 1.0 and "per_case" not in saved
    rows = list(csv.DictReader(open(tmp_path / "out/predictions.csv")))
    assert [r["patient"] for r in rows] == ["p1", "p1", "p2", "p2"] and rows[0]["label"] == "1"
    assert (tmp_path / "out/eval/seg_to_cls_metrics.json").is_file()


def test_matches_pixel_counter_and_reads_0_1_files(records, tmp_path):
    """nnU-Net writes 0/1 PNGs: nonzero is foreground; numbers equal PixelCounter's on the same arrays."""
    recs, truth = records
    rng = np.random.default_rng(0)
    preds = [(rng.random(t.shape) < 0.3).astype(np.uint8) for t in truth]
    paths = []
    for i, p in enumerate(preds):
        paths.append(tmp_path / f"pred{i}.png")
        Image.fromarray(p).save(paths[-1])  # values 0/1
    m = evaluate_masks(recs, paths)
    c = PixelCounter()
    for p, t in zip(preds, truth):
        c.update(p, t)
    ref = c.compute()
    for k in ("dice", "iou", "sensitivity", "specificity", "dice_per_case_mean", "pixel_confusion"):
        assert m[k] == ref[k], k
    assert m["resolution"].startswith("native")


def test_bad_inputs(records):
    recs, truth = records
    with pytest.raises(ValueError, match="3 predictions for 4 records"):
        evaluate_masks(recs, truth[:3])
    with pytest.raises(ValueError, match="native size"):
        evaluate_masks(recs, [np.zeros((4, 4))] * 4)
    one = evaluate_masks(recs[:2], truth[:2])  # one patient: the area threshold cannot be cross-fitted
    assert one["seg_to_cls"] is None and "2 patients" in one["seg_to_cls_skipped"]
    assert read_prediction(np.ones((1, 2, 3))).shape == (2, 3)
