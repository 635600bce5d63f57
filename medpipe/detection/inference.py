"""Inference: running a checkpoint on slices (:func:`predict_boxes`) and :class:`YoloPredictor` (files or a volume).

Slices reach ultralytics as image paths (it decodes a gray PNG as three identical BGR channels) or,
for NIfTI volumes, as HxWx3 uint8 arrays with the gray value repeated (:func:`as_source`), so both
paths feed the network the same input.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medpipe.detection.env import prepare_ultralytics_env, ul_device
from medpipe.detection.network import checkpoint_class_names, checkpoint_image_size, load_checkpoint_model
from medpipe.detection.predictions import (BOX_COLUMNS, SLICE_COLUMNS, box_prediction_rows, norm_pred,
                                           slice_prediction_rows, write_rows_csv)

log = logging.getLogger("medpipe")

__all__ = ["YoloPredictor", "predict_boxes", "as_source", "gray_image"]


def predict_boxes(yolo, sources: Sequence, image_size: int, device, conf: float, iou: float, max_det: int,
                  batch_size: int, project: Path) -> list[dict]:
    """Boxes per source, in input order: ``{"boxes": xyxy pixels, "scores": [...], "classes": [...]}``.

    Args:
        yolo: a loaded ``ultralytics.YOLO`` (:func:`medpipe.detection.network.load_checkpoint_model`).
        sources: image paths, or HxWx3 uint8 arrays (BGR; gray repeated), see :func:`as_source`.
        image_size, device, conf, iou, max_det: ultralytics' ``imgsz``, ``device``, ``conf``, ``iou``, ``max_det``.
        batch_size: slices per ``predict`` call.
        project: ultralytics' run folder (nothing is saved there: ``save=False``).
    """
    out: list[dict | None] = [None] * len(sources)
    n = max(1, int(batch_size))
    for i in range(0, len(sources), n):
        chunk = list(sources[i:i + n])
        res = yolo.predict(chunk, imgsz=int(image_size), device=ul_device(device), conf=float(conf), iou=float(iou),
                           max_det=int(max_det), verbose=False, save=False, batch=len(chunk), project=str(project),
                           name="ultralytics_predict", exist_ok=True)
        if all(isinstance(s, str) for s in chunk):  # ultralytics sorts path lists: match by path
            by_path = {os.path.normpath(r.path): r for r in res}
            res = [by_path[os.path.normpath(s)] for s in chunk]
        for j, r in enumerate(res):
            b = r.boxes
            out[i + j] = {"boxes": b.xyxy.cpu().numpy().astype(float).tolist(),
                          "scores": b.conf.cpu().numpy().astype(float).tolist(),
                          "classes": b.cls.cpu().numpy().astype(int).tolist()}
    return out  # type: ignore[return-value]


def gray_image(image) -> np.ndarray:
    """A slice as a 2D array for drawing: an array's first channel, or an image file read as gray."""
    if isinstance(image, np.ndarray):
        return image if image.ndim == 2 else image[..., 0]
    from PIL import Image

    with Image.open(image) as im:
        return np.asarray(im.convert("L"))


def as_source(r: dict):
    """What ultralytics is given for a record's ``image``: an absolute path, or an HxWx3 uint8 array.

    Example:
        >>> as_source({"image": np.zeros((4, 5), np.float32)}).shape
        (4, 5, 3)
    """
    img = r["image"]
    if isinstance(img, np.ndarray):
        a = img if img.dtype == np.uint8 else np.clip(img, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a)
    return str(Path(img).absolute())


class YoloPredictor:
    """Detect boxes on a folder of slices or a NIfTI volume (:func:`medpipe.data.inference.list_inputs`).

    Volume slices are windowed to 8 bits like the prepared data and passed to ultralytics as arrays
    with the gray channel repeated three times (what its loader does to a gray PNG). The box classes
    are the checkpoint's (``names``).

    Files under ``output_dir``: ``predictions.csv`` (one row per box with confidence >= ``conf``,
    a ``none`` row for a slice without one), ``slice_predictions.csv`` (patient, slice, image,
    probability = highest box confidence of any class, prediction at ``conf``: the any-finding
    summary), ``predictions.json`` (the same per slice, each box with its class name, and the
    checkpoint's ``class_names``) and with ``draw`` ``boxes/PATIENT_SLICE.png``.

    Args:
        ckpt_path: ``models/model.pt``.
        input: folder of slices, one slice, or a ``.nii``/``.nii.gz`` volume.
        output_dir: where the files go.
        image_size: None: the checkpoint's training size.
        conf: box confidence threshold.
        draw: also draw every slice with its boxes.
        input_spec: the checkpoint's input settings (HU window for volumes, slice naming).
    """

    def __init__(self, ckpt_path: str, input: str, output_dir: str, image_size: int | None = None,
                 batch_size: int = 16, device="cpu", conf: float = 0.25, iou: float = 0.7,
                 predict_conf: float = 0.001, max_det: int = 100, draw: bool = False,
                 config_dir: str | None = None, input_spec: dict | None = None) -> None:
        self.ckpt_path, self.input, self.input_spec = ckpt_path, input, dict(input_spec or {})
        self.output_dir = Path(output_dir).expanduser().absolute()
        self.image_size, self.batch_size, self.device = image_size, int(batch_size), device
        self.conf, self.iou, self.predict_conf, self.max_det = float(conf), float(iou), float(predict_conf), int(max_det)
        self.draw, self.config_dir = bool(draw), config_dir

    def run(self) -> list[dict]:
        """Predict; write the files; return the per-slice results."""
        from medpipe.data.inference import list_inputs
        from medpipe.utils.fs import atomic_write_text

        prepare_ultralytics_env(self.config_dir)
        records = list_inputs(self.input, self.input_spec)
        yolo = load_checkpoint_model(self.ckpt_path)
        names = checkpoint_class_names(yolo)
        size = int(self.image_size) if self.image_size else checkpoint_image_size(yolo)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        preds = predict_boxes(yolo, [as_source(r) for r in records], size, self.device,
                              min(self.predict_conf, self.conf), self.iou, self.max_det, self.batch_size,
                              self.output_dir)
        write_rows_csv(box_prediction_rows(records, preds, min_conf=self.conf), self.output_dir / "predictions.csv",
                       BOX_COLUMNS)
        slices = slice_prediction_rows(records, preds, self.conf)
        write_rows_csv(slices, self.output_dir / "slice_predictions.csv", SLICE_COLUMNS)
        out = []
        for r, s, p in zip(records, slices, preds):
            boxes, scores, classes = norm_pred(p)
            keep = scores >= self.conf
            out.append({**s, "boxes": [{"box": [round(float(v), 2) for v in b], "confidence": round(float(c), 6),
                                        "class": names[k] if 0 <= k < len(names) else None}
                                       for b, c, k in zip(boxes[keep], scores[keep], classes[keep].tolist())]})
        doc = {"checkpoint": str(Path(self.ckpt_path).absolute()), "input": str(self.input), "conf": self.conf,
               "iou": self.iou, "image_size": size, "class_names": names, "box_format": "xyxy pixels of the input slice",
               "slices": out}
        atomic_write_text(self.output_dir / "predictions.json", json.dumps(doc, indent=1))
        if self.draw:
            from medpipe.visualization.plots import overlay_boxes

            for r, s in zip(records, out):
                overlay_boxes(gray_image(r["image"]), [], [b["box"] for b in s["boxes"]],
                              self.output_dir / "boxes" / f"{r['patient']}_{int(r['slice']):02d}.png",
                              scores=[b["confidence"] for b in s["boxes"]],
                              title=f"{r['patient']} slice {r['slice']}: {len(s['boxes'])} box(es), "
                                    f"conf >= {self.conf:g}")
        n_pos = sum(s["prediction"] for s in slices)
        log.info("wrote %s: %d slices, %d with a box (conf >= %g)", self.output_dir / "predictions.csv", len(slices),
                 n_pos, self.conf)
        return out
