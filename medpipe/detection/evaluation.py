"""Evaluation: :class:`YoloEvaluator` (box mAP from ultralytics' validator, the slice-level any-finding
summary, the confidence sweep, the extra box metrics a bundle asks for by name: :data:`EXTRA_METRICS`)
and its drawings.

The box classes are the checkpoint's ``names``, checked against the fold data.yaml's. Files:
``eval/metrics.json``, ``predictions.csv``, ``slice_predictions.csv``, ``eval/confusion_matrix.png``,
``eval/conf_sweep.png``, ``eval/boxes/*.png``, ``eval/ultralytics_val/`` and, after training,
``eval/training_curves.png``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medpipe.detection.data import check_same_classes
from medpipe.detection.env import prepare_ultralytics_env, ul_device
from medpipe.detection.inference import as_source, gray_image, predict_boxes
from medpipe.detection.network import checkpoint_class_names, checkpoint_image_size, load_checkpoint_model
from medpipe.detection.predictions import (BOX_COLUMNS, CHALLENGE_COLUMNS, SLICE_COLUMNS, SWEEP_THRESHOLDS,
                                           any_finding_names, box_prediction_rows, challenge_summary, conf_sweep,
                                           norm_pred, slice_prediction_rows, write_rows_csv)
from medpipe.errors import UserError

log = logging.getLogger("medpipe")

__all__ = ["YoloEvaluator", "pick_examples", "EXTRA_METRICS"]

#: box metrics beyond ultralytics' mAP that a bundle asks for by name (evaluate.json ``extra_metrics``):
#: name -> what it adds to eval/metrics.json
EXTRA_METRICS = {
    "challenge_map": "`challenge_map` (RSNA Pneumonia Detection Challenge: mean over images of the precision "
                     "TP / (TP + FP + FN) averaged over IoU 0.40..0.75, boxes with confidence >= conf, images with no "
                     "true and no predicted box skipped), `challenge_map_detail`, and per-slice columns "
                     "n_true_boxes, n_pred_boxes, challenge_precision in slice_predictions.csv",
}


def pick_examples(slices: list[dict], n: int) -> list[tuple[str, int]]:
    """Up to ``n`` (outcome, slice index) pairs, round-robin over TP, FP, FN, TN (most confident mistakes first),
    each from a patient not shown yet while the group has one (rows without ``patient`` count as distinct).

    Example:
        >>> pick_examples([{"prediction": 1, "label": 0, "probability": 0.6}], 2)
        [('FP', 0)]
        >>> rows = [{"patient": p, "prediction": 1, "label": 1, "probability": q}
        ...         for p, q in (("a", 0.9), ("a", 0.8), ("b", 0.7))]
        >>> pick_examples(rows, 2)  # not the two most confident: adjacent slices of one patient
        [('TP', 0), ('TP', 2)]
    """
    groups: dict[str, list[int]] = {"TP": [], "FP": [], "FN": [], "TN": []}
    for i, r in enumerate(slices):
        key = ("T" if r["prediction"] == r["label"] else "F") + ("P" if r["prediction"] else "N")
        groups[key].append(i)
    groups["TP"].sort(key=lambda i: -slices[i]["probability"])
    groups["FP"].sort(key=lambda i: -slices[i]["probability"])
    groups["FN"].sort(key=lambda i: slices[i]["probability"])
    groups["TN"].sort(key=lambda i: -slices[i]["probability"])

    def patient(i: int):
        p = slices[i].get("patient")
        return ("row", i) if p in (None, "") else p

    picked: list[tuple[str, int]] = []
    shown: set = set()
    while len(picked) < n and any(groups.values()):
        for k in ("TP", "FP", "FN", "TN"):
            if groups[k] and len(picked) < n:
                i = next((i for i in groups[k] if patient(i) not in shown), groups[k][0])
                groups[k].remove(i)
                picked.append((k, i))
                shown.add(patient(i))
    return picked


class YoloEvaluator:
    """Evaluate a trained detector on a split: box-level mAP and the slice-level any-finding summary.

    Box level (ultralytics' validator on the fold's ``val`` split): ``map50``, ``map50_95``, and
    ``precision``/``recall`` at the confidence that maximizes their F1 (ultralytics' convention),
    over the checkpoint's classes (which must equal the data.yaml's ``names``).
    Slice level, any finding: every slice of the split is predicted (confidence >= ``predict_conf``);
    its probability is the highest box confidence of any class (0 without a box) and it is positive
    when that is >= ``conf``; :func:`medpipe.metrics.classification.classification_metrics` gives
    ``slice_level``, whose two classes are named by
    :func:`medpipe.detection.predictions.any_finding_names` (``no_phe``/``phe`` for one class ``phe``).

    Files under ``output_dir``: ``eval/metrics.json``, ``predictions.csv`` (:data:`BOX_COLUMNS`),
    ``slice_predictions.csv`` (:data:`SLICE_COLUMNS`), ``eval/confusion_matrix.png`` (slice level),
    ``eval/conf_sweep.png``, ``eval/boxes/*.png`` (true boxes green, predicted red), ultralytics'
    own curves in ``eval/ultralytics_val/`` and ``eval/training_curves.png`` when ``history.json`` exists.

    Args:
        ckpt_path: ``models/model.pt``.
        data: the fold's data.yaml (:func:`medpipe.detection.data.fold_data_yaml`).
        dataset_dir: the prepared dataset (slice truth and true boxes from ``datalist.json``).
        output_dir: the run folder.
        fold: the training run's validation fold (what ``records="val"`` means).
        records: the evaluated records: ``val``, ``test``, ``all`` or ``fold:N``; ``data`` must be the
            data.yaml written for them (:func:`medpipe.detection.data.fold_data_yaml` with ``records``).
        image_size: inference size; None: the checkpoint's training size.
        conf: the slice-level operating threshold (and the one boxes are drawn at).
        iou: NMS IoU threshold.
        predict_conf: lowest box confidence kept (predictions.csv, probabilities, mAP).
        max_det: most boxes per slice.
        n_examples: slices drawn to ``eval/boxes``.
        run_dir: the training run folder (its ``history.json`` gives the curves); default ``output_dir``.
        extra: JSON-able facts added to metrics.json.
        extra_metrics: names from :data:`EXTRA_METRICS` to compute as well (default none).
        unit: what one record is, in titles and the log (``slice``; ``image`` for radiographs). The
            metrics keep their contract names (``slice_level``, ``n_slices``).
    """

    def __init__(self, ckpt_path: str, data: str, dataset_dir: str, output_dir: str, fold: int = 0,
                 records: str = "val", image_size: int | None = None, batch_size: int = 16, device="cpu",
                 conf: float = 0.25, iou: float = 0.7, predict_conf: float = 0.001, max_det: int = 100,
                 n_examples: int = 8, workers: int = 2, sweep_thresholds: Sequence[float] = SWEEP_THRESHOLDS,
                 config_dir: str | None = None, run_dir: str | None = None, extra: dict | None = None,
                 extra_metrics: Sequence[str] = (), unit: str = "slice") -> None:
        self.run_dir = Path(run_dir) if run_dir else None
        self.ckpt_path, self.data, self.dataset_dir = ckpt_path, str(data), dataset_dir
        self.output_dir = Path(output_dir).expanduser().absolute()
        from medpipe.data.datalist import parse_records

        parse_records(records)
        self.fold, self.records, self.image_size, self.batch_size = int(fold), str(records), image_size, int(batch_size)
        self.device, self.conf, self.iou, self.predict_conf = device, float(conf), float(iou), float(predict_conf)
        self.max_det, self.n_examples = int(max_det), int(n_examples)
        self.workers, self.sweep_thresholds, self.config_dir = int(workers), tuple(sweep_thresholds), config_dir
        self.extra = dict(extra or {})
        if isinstance(extra_metrics, str):
            extra_metrics = [extra_metrics]
        unknown = [k for k in extra_metrics or () if k not in EXTRA_METRICS]
        if unknown:
            raise UserError(f"--extra_metrics {unknown}: not a detection metric; choose from "
                            f"{', '.join(EXTRA_METRICS)} (or [] for none).")
        self.extra_metrics, self.unit = tuple(extra_metrics or ()), str(unit)
        self.metrics: dict | None = None

    def run(self) -> dict:
        """Evaluate; write the files; return the metrics dict."""
        from medpipe.data.datalist import select_records
        from medpipe.metrics.classification import classification_metrics
        from medpipe.utils.fs import atomic_write_text
        from medpipe.visualization.plots import plot_confusion_matrix, plot_curves, plot_threshold_sweep

        prepare_ultralytics_env(self.config_dir)
        yolo = load_checkpoint_model(self.ckpt_path)
        slice_classes = any_finding_names(check_same_classes(checkpoint_class_names(yolo), self.data))
        size = int(self.image_size) if self.image_size else checkpoint_image_size(yolo)
        ev = self.output_dir / "eval"
        ev.mkdir(parents=True, exist_ok=True)
        det = yolo.val(data=self.data, split="val", imgsz=size, batch=self.batch_size,
                       device=ul_device(self.device), conf=self.predict_conf, iou=self.iou, max_det=self.max_det,
                       workers=self.workers, plots=True, project=str(ev), name="ultralytics_val", exist_ok=True,
                       verbose=False)
        box = {"map50": float(det.box.map50), "map50_95": float(det.box.map),
               "precision": float(det.box.mp), "recall": float(det.box.mr)}
        records = select_records(self.dataset_dir, self.records, self.fold, label_key="boxes")
        preds = predict_boxes(yolo, [as_source(r) for r in records], size, self.device, self.predict_conf, self.iou,
                              self.max_det, self.batch_size, ev)
        box_rows = box_prediction_rows(records, preds)
        slices = slice_prediction_rows(records, preds, self.conf)
        y = [r["label"] for r in slices]
        p = [r["probability"] for r in slices]
        sl = classification_metrics(y, p, threshold=self.conf, class_names=slice_classes)
        sweep = conf_sweep(y, p, sorted(set(self.sweep_thresholds) | {self.conf}))
        extra_box, slice_columns = {}, SLICE_COLUMNS
        if "challenge_map" in self.extra_metrics:
            extra_box, per_slice = challenge_summary(records, preds, self.conf, self.sweep_thresholds)
            for row, cols in zip(slices, per_slice):
                row.update(cols)
            slice_columns = SLICE_COLUMNS + CHALLENGE_COLUMNS
        m = {**box, **extra_box, "slice_level": sl, "conf": self.conf, "iou": self.iou,
             "predict_conf": self.predict_conf,
             "conf_sweep": sweep, "records": self.records, "fold": self.fold, "image_size": size,
             "checkpoint": str(Path(self.ckpt_path).absolute()), "n_slices": len(records),
             "n_true_boxes": int(sum(len(r.get("boxes") or []) for r in records)),
             "n_pred_boxes_at_conf": int(sum(int(np.sum(np.asarray(q["scores"]) >= self.conf)) for q in preds)),
             "box_metrics_note": "map50/map50_95/precision/recall from ultralytics' validator (precision and recall "
                                 "at the confidence maximizing F1); slice_level at confidence >= conf",
             **self.extra}
        self.metrics = m
        atomic_write_text(ev / "metrics.json", json.dumps(m, indent=2, default=str))
        write_rows_csv(box_rows, self.output_dir / "predictions.csv", BOX_COLUMNS)
        write_rows_csv(slices, self.output_dir / "slice_predictions.csv", slice_columns)
        plot_confusion_matrix(sl["confusion_matrix"], slice_classes, ev / "confusion_matrix.png",
                              title=f"{self.unit} level: positive when a box has confidence >= {self.conf:g} "
                                    f"(n={len(slices)})")
        plot_threshold_sweep(sweep, self.conf, ev / "conf_sweep.png", x_key="conf",
                             title=f"{self.unit}-level metrics vs box confidence threshold")
        self._draw(records, preds, slices, ev / "boxes")
        hist = (self.run_dir or self.output_dir) / "history.json"
        if hist.exists():
            h = json.loads(hist.read_text())
            plot_curves({k: v for k, v in h.items() if k != "epoch"}, ev / "training_curves.png",
                        title="YOLOv8 training")
        log.info("evaluation (records %s, fold %d, %d %ss): mAP50 %.4f, mAP50-95 %.4f, box P %.4f, R %.4f; %s level "
                 "at conf %.2f: recall %.4f, precision %.4f, specificity %.4f, f1 %.4f", self.records, self.fold,
                 len(records), self.unit, box["map50"], box["map50_95"], box["precision"], box["recall"], self.unit,
                 self.conf, sl["recall"], sl["precision"], sl["specificity"], sl["f1"])
        if "challenge_map" in extra_box:
            d = extra_box["challenge_map_detail"]
            log.info("RSNA challenge score at conf %.2f: %s (%d of %d %ss scored, %d without true or predicted boxes "
                     "skipped)", self.conf, "n/a" if m["challenge_map"] is None else f"{m['challenge_map']:.4f}",
                     d["n_scored"], d["n_slices"], self.unit, d["n_skipped"])
        log.info("wrote %s, %s, %s", ev / "metrics.json", self.output_dir / "predictions.csv",
                 self.output_dir / "slice_predictions.csv")
        return m

    def _draw(self, records, preds, slices, out: Path) -> None:
        from medpipe.visualization.plots import overlay_boxes

        if out.exists():
            shutil.rmtree(out)
        for key, i in pick_examples(slices, self.n_examples):
            r, s = records[i], slices[i]
            boxes, scores, _ = norm_pred(preds[i])
            keep = scores >= self.conf
            name = f"{key}_{r.get('patient', 'x')}_{int(r.get('slice', i)):02d}.png"
            where = f"patient {r.get('patient')}" + (f" slice {r['slice']}" if r.get("slice") not in (None, "") else "")
            overlay_boxes(gray_image(r["image"]), r.get("boxes") or [], boxes[keep], out / name,
                          scores=scores[keep].tolist(),
                          title=f"{key}: {where}, label {s['label']}, "
                                f"best box {s['probability']:.2f} (drawn: conf >= {self.conf:g})")
