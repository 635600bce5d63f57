"""Scoring binary masks predicted by any tool (nnU-Net, another framework) with medpipe's segmentation metrics.

:func:`evaluate_masks` is the tool-independent twin of the ``sich_seg`` evaluation report
(:class:`medpipe.handlers.segmentation.SegmentationReport`): the same target reading (the record's mask
file, foreground = value > 127, via :func:`medpipe.transforms.io.load_gray`), the same per-slice rows,
the same global metrics (:class:`medpipe.metrics.segmentation.PixelCounter`) and the same cross-fitted
area-threshold slice classifier (:func:`medpipe.evaluation.seg_to_cls.evaluate_seg_to_cls`). So numbers of
an outside segmenter and of a medpipe bundle, evaluated on the same records, are directly comparable.

Predictions must already be at each slice's native size (nnU-Net's 2D predictions are); nothing is
resized here. A predicted mask is foreground wherever it is nonzero (nnU-Net writes 0/1, medpipe 0/255).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["evaluate_masks", "read_prediction", "ROW_COLUMNS", "S2C_KEYS"]

#: the columns of ``predictions.csv``, as the sich_seg evaluation writes them
ROW_COLUMNS = ("patient", "slice", "image", "pred_area", "target_area", "dice", "label", "tp", "fp", "fn")
#: the seg->cls keys copied into ``metrics.json["seg_to_cls"]``, as the sich_seg evaluation does
S2C_KEYS = ("area_threshold", "selection", "accuracy", "precision", "recall", "f1", "specificity", "auroc")


def read_prediction(pred) -> np.ndarray:
    """A predicted mask (array, tensor or image path) as a 2D bool array: nonzero = foreground.

    Example:
        >>> read_prediction([[0, 1], [255, 0]]).tolist()
        [[False, True], [True, False]]
    """
    if isinstance(pred, (str, Path)):
        from PIL import Image

        with Image.open(pred) as im:
            arr = np.asarray(im.convert("L") if im.mode not in ("L", "I;16", "I", "F", "1") else im)
    else:
        arr = pred.detach().cpu().numpy() if hasattr(pred, "detach") else np.asarray(pred)
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2D predicted mask, got shape {arr.shape}")
    return arr != 0


def evaluate_masks(records: Sequence[Mapping], predictions: Sequence, output_dir=None,
                   class_names: Sequence[str] = ("background", "foreground"), extra: dict | None = None) -> dict:
    """medpipe's segmentation metrics of predicted masks against the records' masks, at native resolution.

    Args:
        records: datalist records with absolute paths (e.g. ``load_split(D, fold, "val")``): ``mask``,
            ``patient``, ``slice``, ``image`` and ``label`` (the slice label; default: mask non-empty).
        predictions: one predicted mask per record, same order (array/tensor or image path; nonzero =
            foreground), at the size of the record's mask.
        output_dir: when given, writes ``eval/metrics.json``, ``predictions.csv`` and the seg->cls files
            (``eval/seg_to_cls_*``) there, in the layout of a medpipe evaluation.
        class_names: the mask's class names (background first); the derived slice classifier calls its
            classes ``no_<fg>`` and ``<fg>``.
        extra: facts recorded in ``metrics.json`` (model, fold, ...).

    Returns:
        The ``metrics.json`` content: ``dice``, ``iou``, ``sensitivity``, ``specificity``,
        ``dice_per_case_mean``, ``pixel_confusion``, ``n_cases``, ... (see
        :meth:`~medpipe.metrics.segmentation.PixelCounter.compute`, without ``per_case``), ``resolution``,
        ``seg_to_cls`` (:data:`S2C_KEYS`; None, with ``seg_to_cls_skipped`` saying why, when the records
        hold fewer than 2 patients) and ``extra``'s keys.

    Raises:
        ValueError: lengths differ, no record, or a prediction's shape differs from its target's.
    """
    from medpipe.evaluation.seg_to_cls import evaluate_seg_to_cls
    from medpipe.metrics.segmentation import PixelCounter
    from medpipe.transforms.io import load_gray
    from medpipe.utils.fs import write_csv_atomic, write_json

    if len(records) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(records)} records")
    if not records:
        raise ValueError("no records to evaluate")
    fg = str(list(class_names)[-1])
    counter, rows = PixelCounter(), []
    for r, p in zip(records, predictions):
        target = load_gray(r["mask"], binarize=True)[0].astype(np.uint8)
        pred = read_prediction(p).astype(np.uint8)
        if pred.shape != target.shape:
            raise ValueError(f"prediction for {r.get('image', r['mask'])} has shape {pred.shape}, its mask "
                             f"{target.shape}: predictions must be at the slice's native size")
        sl = int(r.get("slice", 0) or 0)
        rec = counter.update(pred, target, case_id=f"{r.get('patient')}_{sl:02d}")
        label = r.get("label")
        rows.append({"patient": r.get("patient"), "slice": sl, "image": str(r.get("image", "")),
                     "pred_area": int(pred.sum()), "target_area": int(target.sum()), "dice": rec["dice"],
                     "label": int(label) if isinstance(label, (int, np.integer)) else int(target.sum() > 0),
                     "tp": rec["tp"], "fp": rec["fp"], "fn": rec["fn"]})
    m = counter.compute()
    m.pop("per_case", None)
    m.update(extra or {})
    m["resolution"] = "native (predictions at each stored slice's size)"
    ev = Path(output_dir) / "eval" if output_dir is not None else None
    try:
        s2c = evaluate_seg_to_cls(rows, out_dir=ev, class_names=(f"no_{fg}", fg))
        m["seg_to_cls"] = {k: s2c[k] for k in S2C_KEYS if k in s2c}
    except ValueError as e:  # e.g. a single patient: the area threshold cannot be cross-fitted
        m["seg_to_cls"] = None
        m["seg_to_cls_skipped"] = str(e)
    if output_dir is not None:
        write_json(ev / "metrics.json", m, atomic=True)
        write_csv_atomic(rows, Path(output_dir) / "predictions.csv", list(ROW_COLUMNS))
    return m
