"""Box-detection scores computed from per-image boxes (plain numpy): the RSNA Pneumonia Detection Challenge metric.

The RSNA Pneumonia Detection Challenge (Kaggle, 2018) scored a submission by the **mean over images
of the average precision at IoU thresholds 0.40, 0.45, ..., 0.75** (:func:`challenge_map`), which is
not COCO's mAP: there is no precision-recall curve, each image scores a single count ratio per
threshold, and the confidences only set the order in which predicted boxes claim true ones.

For one image and one IoU threshold ``t`` (:func:`challenge_image_precision`):

* the predicted boxes are taken in decreasing confidence (ties keep their given order); each one
  is matched to the not-yet-matched true box with which its IoU is **strictly greater** than
  ``t`` (the one with the highest IoU when several qualify; the first of them on a tie). A matched
  prediction is a true positive (TP), an unmatched one a false positive (FP); true boxes left
  unmatched are false negatives (FN);
* the precision at ``t`` is ``TP / (TP + FP + FN)``.

The image's score is the mean of that precision over the thresholds. An image with no true box and
no predicted box is **skipped** (it does not enter the mean: ``None``); an image with true boxes
and no prediction, or predictions and no true box, scores 0. The final score is the mean over the
images that were not skipped (``None`` when every image was skipped).

Conventions:

* A box is ``[xmin, ymin, xmax, ymax]`` in pixels (continuous coordinates: area
  ``(xmax - xmin) * (ymax - ymin)``), as in :mod:`medpipe.metrics.localization` and the prepared
  datalists. An empty or inverted box has area 0 and IoU 0 with everything.
* Which boxes are "the submission" is the caller's choice: pass ``min_score`` to keep only boxes
  with confidence ``>= min_score`` (a challenge entry submitted the boxes above its own threshold).
* Everything returned is plain python (``float``, ``list``, ``None``): JSON-ready.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["iou_matrix", "challenge_image_precision", "challenge_precision_from_ious", "challenge_image_scores",
           "challenge_map", "CHALLENGE_IOU_THRESHOLDS"]

#: the IoU thresholds of the RSNA Pneumonia Detection Challenge: 0.40, 0.45, ..., 0.75
CHALLENGE_IOU_THRESHOLDS = tuple(round(0.40 + 0.05 * i, 2) for i in range(8))


def _boxes(b, name: str) -> np.ndarray:
    a = np.asarray([] if b is None else b, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 4 or not np.isfinite(a).all():
        raise ValueError(f"{name} must be a list of [xmin, ymin, xmax, ymax] boxes of finite numbers, got shape "
                         f"{a.shape}")
    return a


def iou_matrix(a, b) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b``: an ``(len(a), len(b))`` array.

    Empty or inverted boxes have area 0; a pair whose union is 0 has IoU 0.

    Example:
        >>> iou_matrix([[0, 0, 4, 4]], [[2, 2, 6, 6], [0, 0, 4, 4]]).round(4).tolist()
        [[0.1429, 1.0]]
    """
    a, b = _boxes(a, "a"), _boxes(b, "b")
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _predictions(pred_boxes, scores, min_score: float | None) -> np.ndarray:
    """The predicted boxes kept (score >= min_score), in decreasing score (stable)."""
    p = _boxes(pred_boxes, "pred_boxes")
    if scores is None:
        if min_score is not None:
            raise ValueError("min_score needs the scores of the predicted boxes")
        return p
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(p):
        raise ValueError(f"{len(p)} predicted boxes but {len(s)} scores")
    if min_score is not None:
        keep = s >= float(min_score)
        p, s = p[keep], s[keep]
    return p[np.argsort(-s, kind="stable")]


def challenge_image_precision(true_boxes, pred_boxes, scores=None,
                              thresholds: Sequence[float] = CHALLENGE_IOU_THRESHOLDS,
                              min_score: float | None = None) -> float | None:
    """One image's challenge score: the mean over ``thresholds`` of ``TP / (TP + FP + FN)``.

    Args:
        true_boxes: the image's true boxes, ``[[xmin, ymin, xmax, ymax], ...]`` (may be empty).
        pred_boxes: its predicted boxes (may be empty).
        scores: the predicted boxes' confidences; they set the matching order (highest first).
            None: ``pred_boxes`` are already in that order.
        thresholds: IoU thresholds; a prediction matches a true box when their IoU is ``> t``.
        min_score: keep only predictions with confidence ``>= min_score`` (None: all of them).

    Returns:
        The score in [0, 1], or None when the image has neither true nor predicted boxes (skipped).

    Example:
        >>> challenge_image_precision([[0, 0, 10, 10]], [[0, 0, 10, 10]])
        1.0
        >>> challenge_image_precision([], []) is None, challenge_image_precision([[0, 0, 10, 10]], [])
        (True, 0.0)
    """
    p_boxes = _predictions(pred_boxes, scores, min_score)
    return challenge_precision_from_ious(iou_matrix(p_boxes, _boxes(true_boxes, "true_boxes")), thresholds)


def challenge_precision_from_ious(ious, thresholds: Sequence[float] = CHALLENGE_IOU_THRESHOLDS) -> float | None:
    """:func:`challenge_image_precision` from the IoU matrix of an image's boxes.

    Args:
        ious: ``(n_predicted, n_true)`` IoUs (:func:`iou_matrix`), the predictions' rows in decreasing
            confidence. Its first ``k`` rows are the image's predictions at a higher confidence
            threshold, so one matrix serves a whole confidence sweep.
        thresholds: IoU thresholds (a match needs IoU ``> t``).

    Returns:
        The score in [0, 1], or None for a ``0 x 0`` matrix (no true and no predicted box: skipped).

    Example:
        >>> challenge_precision_from_ious(np.array([[0.9], [0.2]]))   # a hit and a false positive
        0.5
    """
    ious = np.asarray(ious, dtype=np.float64)
    if ious.ndim != 2:
        raise ValueError(f"ious must be a (predicted, true) matrix, got shape {ious.shape}")
    n_pred, n_true = ious.shape
    if not n_pred and not n_true:
        return None
    if not n_pred or not n_true:
        return 0.0
    precisions = []
    for t in (float(t) for t in thresholds):
        free = np.ones(n_true, dtype=bool)
        tp = 0
        for row in ious:
            cand = np.where(free & (row > t), row, -1.0)
            j = int(np.argmax(cand))  # the best free true box (first on a tie)
            if cand[j] > t:
                free[j] = False
                tp += 1
        precisions.append(tp / (n_pred + n_true - tp))  # TP / (TP + FP + FN)
    return float(np.mean(precisions))


def challenge_image_scores(true_boxes: Sequence, pred_boxes: Sequence, scores: Sequence | None = None,
                           thresholds: Sequence[float] = CHALLENGE_IOU_THRESHOLDS,
                           min_score: float | None = None) -> list[float | None]:
    """:func:`challenge_image_precision` of each image (``None`` for a skipped one), in input order.

    Args:
        true_boxes, pred_boxes: one list of boxes per image.
        scores: one list of confidences per image, or None (boxes already in confidence order).
        thresholds, min_score: as :func:`challenge_image_precision`.
    """
    if len(true_boxes) != len(pred_boxes):
        raise ValueError(f"{len(true_boxes)} images of true boxes but {len(pred_boxes)} of predicted boxes")
    if scores is not None and len(scores) != len(pred_boxes):
        raise ValueError(f"{len(pred_boxes)} images of predicted boxes but {len(scores)} of scores")
    return [challenge_image_precision(t, p, None if scores is None else scores[i], thresholds, min_score)
            for i, (t, p) in enumerate(zip(true_boxes, pred_boxes))]


def challenge_map(true_boxes: Sequence, pred_boxes: Sequence, scores: Sequence | None = None,
                  thresholds: Sequence[float] = CHALLENGE_IOU_THRESHOLDS,
                  min_score: float | None = None) -> float | None:
    """The RSNA Pneumonia Detection Challenge score: the mean of :func:`challenge_image_precision` over the
    images not skipped (an image with no true and no predicted box is skipped).

    Args:
        true_boxes: one list of ``[xmin, ymin, xmax, ymax]`` true boxes per image.
        pred_boxes: one list of predicted boxes per image.
        scores: one list of confidences per image (they order the matching), or None.
        thresholds: IoU thresholds (default the challenge's 0.40 ... 0.75).
        min_score: keep only predictions with confidence ``>= min_score``.

    Returns:
        The score in [0, 1], or None when every image was skipped.

    Example:
        >>> true = [[[0, 0, 10, 10]], [], []]
        >>> pred = [[[0, 0, 10, 10]], [], [[5, 5, 9, 9]]]   # a hit, a skipped image, a false positive
        >>> challenge_map(true, pred)
        0.5
    """
    vals = [v for v in challenge_image_scores(true_boxes, pred_boxes, scores, thresholds, min_score) if v is not None]
    return float(np.mean(vals)) if vals else None
