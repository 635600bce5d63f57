"""Segmentation handlers: a global-Dice key metric, the evaluation report, and the inference mask writer.

Metrics are computed at the native resolution of the stored slices: predicted probabilities are
resized back to each slice's original size before the argmax, and compared with the original mask
file, so numbers do not depend on the training ``image_size``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.metrics import Metric

from medpipe.handlers.classification import _items, _meta_str, gather_lists
from medpipe.handlers.training import _is_main_rank
from medpipe.utils.fs import write_csv_atomic, write_json

log = logging.getLogger("medpipe")


def native_foreground(prob, size) -> np.ndarray:
    """Foreground probability map (float32, at ``size``) of a network output ``(C, h, w)``.

    Logits are turned into probabilities first (softmax over classes; sigmoid for one channel), then
    resized bilinearly. Two classes: the probability of class 1, so ``> 0.5`` is the argmax. More classes:
    1.0 where the argmax is not background (a threshold on it changes nothing).
    """
    p = torch.as_tensor(prob).detach().float()
    if p.ndim == 2:
        p = p[None]
    is_prob = bool(p.min() >= 0) and bool(p.max() <= 1) and (
        p.shape[0] == 1 or bool(torch.allclose(p.sum(0), torch.ones_like(p[0]), atol=1e-3)))
    if not is_prob:
        p = torch.sigmoid(p) if p.shape[0] == 1 else torch.softmax(p, 0)
    h, w = int(size[0]), int(size[1])
    if tuple(p.shape[-2:]) != (h, w):
        p = torch.nn.functional.interpolate(p[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    if p.shape[0] == 1:
        fg = p[0]
    elif p.shape[0] == 2:
        fg = p[1]
    else:
        fg = (p.argmax(0) > 0).float()
    return fg.cpu().numpy().astype(np.float32)


def _size_of(item, key="image") -> tuple[int, int] | None:
    s = item.get(f"{key}_size")
    if s is None:
        return None
    return tuple(int(_meta_str(v)) for v in s)


class GlobalDice(Metric):
    """Dice from global pixel counts over the evaluated set (the report's ``dice``), at the network's resolution.

    Used as the ``key_val_metric`` during training (checkpoint selection, early stopping). DDP-safe.
    ``output_transform`` gives ``(preds, labels)``: per item class probabilities ``(C, H, W)`` and a
    0/1 mask ``(1, H, W)``.
    """

    def __init__(self, output_transform=lambda x: x, device="cpu"):
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._tp = self._fp = self._fn = 0

    def update(self, output) -> None:
        preds, labels = output
        for p, y in zip(preds, labels):
            p = torch.as_tensor(p)
            pred = p.argmax(0) > 0 if p.shape[0] > 1 else p[0] > 0.5
            t = torch.as_tensor(y).reshape(pred.shape) > 0.5
            self._tp += int((pred & t).sum())
            self._fp += int((pred & ~t).sum())
            self._fn += int((~pred & t).sum())

    def compute(self) -> float:
        tp, fp, fn = (sum(v) for v in zip(*gather_lists([(self._tp, self._fp, self._fn)])))
        den = 2 * tp + fp + fn
        return 1.0 if den == 0 else 2.0 * tp / den


#: overlay example groups: (name, file prefix, slice test on (target_area, pred_area), rank key: higher first).
#: Slice-level outcome by "any predicted pixel"; ``TP`` shows the clearest lesions, ``TP-low`` the poorest
#: overlaps among detected lesions (also prefixed ``TP_``).
OVERLAY_GROUPS = (
    ("TP", "TP", lambda t, p: t > 0 and p > 0, lambda r: r["target_area"]),
    ("FP", "FP", lambda t, p: t == 0 and p > 0, lambda r: r["pred_area"]),
    ("FN", "FN", lambda t, p: t > 0 and p == 0, lambda r: r["target_area"]),
    ("TP-low", "TP", lambda t, p: t > 0 and p > 0, lambda r: -(r["dice"] or 0.0)),
)


class SegmentationReport:
    """Evaluation outputs of a binary segmentation model, plus the segmentation-derived slice classifier.

    Writes under ``output_dir``: ``eval/metrics.json`` (``dice``, ``iou``, ``sensitivity``,
    ``specificity``, ``dice_per_case_mean``, ``pixel_confusion``, ...), ``predictions.csv`` (one row
    per slice: patient, slice, image, pred_area, target_area, dice, label, and the slice's pixel
    counts tp, fp, fn, from which per-patient bootstrap intervals of the global metrics are
    computed), ``eval/pixel_confusion.png``, ``eval/overlays/*.png`` (true contour green, predicted
    red; see :data:`OVERLAY_GROUPS`), ``eval/training_curves.png``, and the seg->cls files
    (``eval/seg_to_cls_*``); when
    ``cls_predictions`` points at a sich_cls ``predictions.csv``, ``eval/slice_classifiers.md`` with
    both classifiers side by side on the common slices.

    Args:
        output_dir: where the outputs go.
        n_overlays: sample slices drawn: round-robin over :data:`OVERLAY_GROUPS` (true positives,
            false positives on empty slices, missed lesions, the poorest overlaps), each from a patient
            not drawn yet while there are such patients; file names start with the outcome
            (``TP_``, ``FP_``, ``FN_``) so that the report can spread its picks over them.
        cls_predictions: optional path of a slice classifier's predictions.csv to compare with.
        class_names: the mask's class names (background first), from the checkpoint's settings; the
            segmentation-derived slice classifier calls its classes ``no_<fg>`` and ``<fg>``.
        run_dir: the training run folder (its ``history.json`` gives the curves); default ``output_dir``.
        extra: facts recorded in metrics.json (split, fold, checkpoint...).
        min_component_px: post-processing applied before every metric: predicted connected components
            smaller than this many pixels (per slice, native resolution) are removed; 0 = none.
        fg_threshold: foreground where its probability exceeds this (0.5: the argmax); learned and applied
            like ``min_component_px``. The
            evaluation of the run's own validation fold uses 0 and *learns* the value
            (:class:`~medpipe.evaluation.postprocessing.ComponentSweep`, written to
            ``eval/postprocessing.json`` and stored with the checkpoint); other record sets apply it.
    """

    def __init__(self, output_dir: str, n_overlays: int = 8, cls_predictions: str | None = None,
                 class_names=("background", "foreground"), run_dir: str | None = None,
                 extra: dict | None = None, min_component_px: int = 0, fg_threshold: float = 0.5) -> None:
        self.output_dir = Path(output_dir).expanduser().absolute()
        self.run_dir = Path(run_dir) if run_dir else self.output_dir
        self.min_component_px = int(min_component_px or 0)
        self.fg_threshold = float(fg_threshold if fg_threshold is not None else 0.5)
        self.n_overlays = n_overlays
        self.cls_predictions = cls_predictions
        fg = str(list(class_names)[-1])
        self.mask_names = tuple(class_names)
        self.class_names = (f"no_{fg}", fg)
        self.extra = extra or {}
        self.rows: list[dict] = []
        self._counter = None
        self._samples: dict[str, dict] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._done)

    def _start(self, engine: Engine) -> None:
        from medpipe.metrics.segmentation import PixelCounter

        from medpipe.evaluation.postprocessing import ComponentSweep

        self._counter = PixelCounter()
        self._sweep = ComponentSweep()
        self.rows, self._samples = [], {g[0]: {} for g in OVERLAY_GROUPS}

    def _collect(self, engine: Engine) -> None:
        from medpipe.evaluation.postprocessing import postprocess
        from medpipe.transforms.io import load_gray

        for it in _items(engine):
            path = _meta_str(it.get("label_path"))
            target = load_gray(path, binarize=True)[0] if path else torch.as_tensor(it["label"])[0].numpy()
            prob = native_foreground(it["pred"], target.shape)
            self._sweep.update(prob, target, patient=_meta_str(it.get("patient")))
            pred = postprocess(prob, self.fg_threshold, self.min_component_px)
            case = f"{_meta_str(it.get('patient'))}_{int(_meta_str(it.get('slice', 0))):02d}"
            rec = self._counter.update(pred, target, case_id=case)
            row = {"patient": _meta_str(it.get("patient")), "slice": int(_meta_str(it.get("slice", 0))),
                   "image": _meta_str(it.get("image_path", "")), "pred_area": int(pred.sum()),
                   "target_area": int(target.sum()), "dice": rec.get("dice"),
                   "label": int(_meta_str(it.get("slice_label", int(target.sum() > 0)))),
                   "tp": rec["tp"], "fp": rec["fp"], "fn": rec["fn"]}
            self.rows.append(row)
            self._keep_sample({"row": row, "image": _meta_str(it.get("image_path")), "pred": pred, "target": target})

    def _keep_sample(self, sample: dict) -> None:
        """Keep, per overlay group, the two best slices of each patient, for at most ``2 * n_overlays`` patients."""
        r = sample["row"]
        for name, _prefix, test, rank in OVERLAY_GROUPS:
            if not test(r["target_area"], r["pred_area"]):
                continue
            best = self._samples[name]
            kept = sorted(best.get(r["patient"], []) + [sample], key=lambda s: -rank(s["row"]))
            best[r["patient"]] = kept[:2]
            if len(best) > 2 * max(self.n_overlays, 1):  # forget the patient whose best is weakest
                del best[min(best, key=lambda p: rank(best[p][0]["row"]))]

    def _pick_samples(self) -> list[tuple[str, dict]]:
        """``(prefix, sample)`` pairs: round-robin over the groups, new patients first, no slice twice."""
        queues = {name: sorted((s for kept in self._samples.get(name, {}).values() for s in kept),
                               key=lambda s: -rank(s["row"]))
                  for name, _prefix, _test, rank in OVERLAY_GROUPS}
        prefix = {name: pre for name, pre, _t, _r in OVERLAY_GROUPS}
        picked, patients, slices = [], set(), set()
        while len(picked) < self.n_overlays and any(queues.values()):
            for name, q in queues.items():
                q[:] = [s for s in q if (s["row"]["patient"], s["row"]["slice"]) not in slices]
                if not q or len(picked) >= self.n_overlays:
                    continue
                s = q.pop(next((i for i, s in enumerate(q) if s["row"]["patient"] not in patients), 0))
                picked.append((prefix[name], s))
                patients.add(s["row"]["patient"])
                slices.add((s["row"]["patient"], s["row"]["slice"]))
        return picked

    def _done(self, engine: Engine) -> None:
        counts = gather_lists([self._counter])
        sweeps = gather_lists([self._sweep])
        rows = gather_lists(self.rows)
        if not _is_main_rank():
            return
        from medpipe.evaluation.seg_to_cls import compare_slice_classifiers, evaluate_seg_to_cls
        from medpipe.visualization.plots import overlay_contours, plot_confusion_matrix, plot_curves

        counter = counts[0]
        for other in counts[1:]:
            counter.merge(other)
        ev = self.output_dir / "eval"
        ev.mkdir(parents=True, exist_ok=True)
        m = counter.compute()
        m.pop("per_case", None)  # per-slice rows go to predictions.csv, not metrics.json
        m.update(self.extra)
        m["resolution"] = "native (predictions resized to each stored slice's size)"
        for other in sweeps[1:]:
            sweeps[0].extend(other)
        learned = sweeps[0].choose()
        write_json(ev / "postprocessing.json", learned, atomic=True)
        m["postprocessing"] = {"applied_fg_threshold": self.fg_threshold,
                               "applied_min_component_px": self.min_component_px,
                               **{k: v for k, v in learned.items() if k not in ("sweep", "crossfit_folds", "rule")}}
        s2c = evaluate_seg_to_cls(rows, out_dir=ev, class_names=self.class_names)
        m["seg_to_cls"] = {k: s2c[k] for k in ("area_threshold", "selection", "accuracy", "precision", "recall",
                                               "f1", "specificity", "auroc") if k in s2c}
        write_json(ev / "metrics.json", m, atomic=True)
        write_csv_atomic(rows, self.output_dir / "predictions.csv",
                         ["patient", "slice", "image", "pred_area", "target_area", "dice", "label", "tp", "fp", "fn"])
        pc = m["pixel_confusion"]
        plot_confusion_matrix([[pc["tn"], pc["fp"]], [pc["fn"], pc["tp"]]], [self.mask_names[0], self.class_names[1]],
                              ev / "pixel_confusion.png", title=f"pixel confusion over {len(rows)} slices")
        ov = ev / "overlays"
        ov.mkdir(exist_ok=True)
        for old in ov.glob("*.png"):
            old.unlink()
        from medpipe.transforms.io import load_gray

        for key, s in self._pick_samples():
            r = s["row"]
            img = load_gray(s["image"])[0] if s["image"] and os.path.exists(str(s["image"])) else s["target"]
            what = {"TP": f"Dice {r['dice']:.2f}" if r["dice"] is not None else "",
                    "FP": f"empty slice, {r['pred_area']} px predicted",
                    "FN": f"lesion of {r['target_area']} px missed"}[key]
            overlay_contours(img, s["target"], s["pred"], ov / f"{key}_{r['patient']}_{r['slice']:02d}.png",
                             title=f"{key}: patient {r['patient']} slice {r['slice']}, {what}\n"
                                   f"(green truth, red prediction)")
        hist = self.run_dir / "history.json"
        if hist.exists():
            h = json.loads(hist.read_text())
            plot_curves({k: v for k, v in h.items() if k != "epoch"}, ev / "training_curves.png", title="training")
        if self.cls_predictions and os.path.exists(self.cls_predictions):
            with open(self.cls_predictions) as f:
                cls_rows = [{"patient": r["patient"], "slice": int(r["slice"]), "label": int(r["label"]),
                             "probability": float(r["probability"])} for r in csv.DictReader(f) if r.get("label") != ""]
            # the same protocol as the seg->cls metrics: each patient decided with the A chosen on the other half
            applied = {p: f["area_threshold"] for f in s2c.get("folds", []) for p in f["patients"]}
            seg_rows = [{"patient": r["patient"], "slice": r["slice"], "label": r["label"],
                         "prediction": int(r["pred_area"] >= applied.get(r["patient"], s2c["area_threshold"])),
                         "probability": r["pred_area"]} for r in rows]
            name = "segmenter (area >= A, cross-fitted)" if applied else "segmenter (area >= A)"
            try:
                table, _ = compare_slice_classifiers({"slice classifier": cls_rows, name: seg_rows},
                                                     class_names=self.class_names)
                (ev / "slice_classifiers.md").write_text(table)
            except ValueError as e:
                log.warning("slice classifier comparison skipped: %s", e)
        log.info("segmentation: dice %s, iou %s, sensitivity %s, specificity %s, per-case Dice %s; "
                 "seg->cls (A=%s) f1 %s", *("n/a" if v is None else f"{v:.4g}" if isinstance(v, float) else v
                                            for v in (m["dice"], m["iou"], m["sensitivity"], m["specificity"],
                                                      m["dice_per_case_mean"], s2c["area_threshold"], s2c["f1"])))
        log.info("post-processing learned on these slices: foreground probability > %.2f, min component %d px "
                 "(%s): Dice %.4g -> %.4g (cross-fitted %.4g)", learned["fg_threshold"], learned["min_component_px"],
                 "kept" if learned["kept"] else "off, no gain",
                 learned["dice_raw"], learned["dice_postprocessed"], learned["dice_postprocessed_crossfit"])
        log.info("wrote %s", ev)


class MaskWriter:
    """Inference: write predicted masks at each input's native size.

    PNG for slice inputs (``masks/<stem>.png``), one NIfTI per volume input with the input's geometry
    (``masks/<name>_<class>.nii.gz``, ``<class>`` the foreground class name), and ``predictions.csv``
    (patient, slice, image, pred_area, positive = area >= ``area_threshold``). Predicted components smaller
    than ``min_component_px`` (the post-processing learned on validation, stored with the checkpoint) are
    removed first, after the foreground probability threshold ``fg_threshold`` (both learned on validation).
    """

    def __init__(self, output_dir: str, area_threshold: int = 1, class_names=("background", "foreground"),
                 min_component_px: int = 0, fg_threshold: float = 0.5) -> None:
        self.output_dir = Path(output_dir).expanduser().absolute()
        self.area_threshold = area_threshold
        self.min_component_px = int(min_component_px or 0)
        self.fg_threshold = float(fg_threshold if fg_threshold is not None else 0.5)
        self.foreground = str(list(class_names)[-1])
        self.rows: list[dict] = []
        self._volumes: dict[str, dict[int, np.ndarray]] = defaultdict(dict)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda e: (self.rows.clear(), self._volumes.clear()))
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._done)

    def _collect(self, engine: Engine) -> None:
        from medpipe.io.masks import write_mask_png

        (self.output_dir / "masks").mkdir(parents=True, exist_ok=True)
        for it in _items(engine):
            from medpipe.evaluation.postprocessing import postprocess

            size = _size_of(it) or tuple(it["pred"].shape[-2:])
            pred = postprocess(native_foreground(it["pred"], size), self.fg_threshold, self.min_component_px)
            src = str(_meta_str(it.get("image_path", "")))
            patient, sl = _meta_str(it.get("patient")), int(_meta_str(it.get("slice", 0)))
            if "#" in src:  # a slice of a volume: "path.nii.gz#k"
                vol = src.rsplit("#", 1)[0]
                self._volumes[vol][sl] = pred
            else:
                write_mask_png(pred, self.output_dir / "masks" / (Path(src).stem + ".png"))
            self.rows.append({"patient": patient, "slice": sl, "image": src, "pred_area": int(pred.sum()),
                              "positive": int(pred.sum() >= self.area_threshold)})

    def _done(self, engine: Engine) -> None:
        from medpipe.io.masks import write_mask_nifti

        for vol, slices in self._volumes.items():
            stack = np.stack([slices[k] for k in sorted(slices)])
            name = Path(vol).name
            name = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem
            out = self.output_dir / "masks" / f"{name}_{self.foreground}.nii.gz"
            write_mask_nifti(stack, vol, out)
            log.info("wrote %s (%d slices, geometry of %s)", out, len(stack), vol)
        path = write_csv_atomic(self.rows, self.output_dir / "predictions.csv",
                                ["patient", "slice", "image", "pred_area", "positive"])
        log.info("wrote %s: %d slices, %d with predicted %s (area >= %d px)", path, len(self.rows),
                 sum(r["positive"] for r in self.rows), self.foreground, self.area_threshold)
