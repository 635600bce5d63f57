"""At the end of an evaluation, score the classifier's Grad-CAM maps against the records' reference boxes.

A thin ignite wrapper over :mod:`medpipe.evaluation.localization`. It runs after the evaluation's
:class:`~medpipe.handlers.classification.ClassificationReport` (list it after the report in
``validate#handlers``) and uses what the report collected: the evaluated images, their
probabilities and the decision thresholds. Files under ``output_dir``:

- ``eval/localization.json``: what was scored and how, the counts, and per class and over all
  cases Wang et al.'s accuracy at T(IoBB) and T(IoU) (T = 0.1 ... 0.7) and the mean IoBB/IoU, for the
  CAM and for the control map at each fraction of the maximum;
- ``eval/localization.csv``: one row per case (image, finding, probability, predicted, reference
  boxes, and per method the box, IoU, IoBB);
- ``eval/cam/*.png``: overlays (heat map, CAM box in red, reference boxes in green) of a few cases
  from different patients and findings, in the stored image's orientation; when the evaluated
  images carry fewer boxes than overlays, predicted findings of other images fill in (CAM box only).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ignite.engine import Engine, Events

from medpipe.metrics.localization import LOCALIZATION_THRESHOLDS, MAP_FRACTIONS

log = logging.getLogger("medpipe")


class CamLocalization:
    """Grad-CAM localisation scored against reference boxes (see the module docstring).

    Args:
        output_dir: where ``eval/`` goes.
        report: the evaluation's ``ClassificationReport`` (its rows and thresholds are used).
        network: the evaluated network.
        records: the evaluated records *with* their boxes (``select_records(..., scalars_only=False)``).
        transform: pre-processing of the CAM input: the evaluation's, without the crop (the whole
            image at the network's scale); must keep ``image_size`` (the stored size).
        layer: the layer Grad-CAM reads.
        class_names: the model's classes.
        device: the network's device.
        box_key: the record key of the reference boxes.
        fractions: fractions of the map's maximum to threshold at.
        thresholds: the T values of the accuracy tables.
        control_sigma: the control Gaussian's sigma (fraction of the image side).
        n_overlays: overlays to draw.
        batch_size: images per Grad-CAM pass.
        reference: published accuracies to record beside ours (``{"source", "note", "accuracy_iobb_0.5": {...}}``).
        box_classes: ``{finding: class}`` when the model's classes group the boxed findings (see
            :func:`medpipe.evaluation.localization.finding_classes`).
        box_finding: the class of plain ``[xmin, ymin, xmax, ymax]`` boxes (a binary model's positive
            class); overlays of images without boxes then show only that class.
        box_name: what the reference boxes are called in the overlays' titles (e.g. ``NIH box``).
    """

    def __init__(self, output_dir: str, report, network, records: Sequence[dict], transform, layer: str,
                 class_names: Sequence[str], device="cpu", box_key: str = "nih_boxes",
                 fractions: Sequence[float] = MAP_FRACTIONS, thresholds: Sequence[float] = LOCALIZATION_THRESHOLDS,
                 control_sigma: float = 0.25, n_overlays: int = 8, batch_size: int = 8,
                 reference: dict | None = None, box_classes: dict | None = None,
                 box_finding: str | None = None, box_name: str = "reference box") -> None:
        self.output_dir = Path(output_dir).expanduser().absolute()
        self.report, self.network, self.records, self.transform = report, network, list(records), transform
        self.layer, self.class_names, self.device, self.box_key = layer, list(class_names), device, box_key
        self.fractions, self.thresholds = tuple(float(f) for f in fractions), tuple(float(t) for t in thresholds)
        self.control_sigma, self.n_overlays, self.batch_size = float(control_sigma), int(n_overlays), int(batch_size)
        self.reference, self.box_classes, self.box_finding = reference, dict(box_classes or {}), box_finding
        self.box_name = box_name

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine | None = None) -> None:
        from medpipe.engines.distributed import is_main_rank

        if not is_main_rank():
            return
        try:
            self.run()
        except Exception as e:  # noqa: BLE001 - a failed localisation must not lose the evaluation
            log.warning("CAM localisation skipped: %s: %s", type(e).__name__, e)

    def _load(self, path: str) -> dict:
        return self.transform({"image": path})

    def run(self) -> dict:
        """Score, write the files, return the ``localization.json`` content."""
        import torch

        from medpipe.evaluation import localization as L
        from medpipe.utils.fs import write_csv_atomic, write_json

        rows = getattr(self.report, "all_rows", None) or self.report.rows
        thr = self._thresholds()
        cases, counts = L.localization_cases(rows, self.records, self.class_names, thr, self.box_key,
                                             self.box_classes, self.box_finding)
        extra = self._predicted_extras(rows, cases, thr)
        everything = cases + extra
        draw = L.pick_overlays(cases, self.n_overlays)
        draw += [len(cases) + i for i in L.pick_overlays(extra, self.n_overlays - len(draw))] if extra else []
        net = self.network.module if isinstance(self.network, torch.nn.parallel.DistributedDataParallel) \
            else self.network
        was_training = net.training
        try:
            maps = L.localize(everything, net, self.layer, self._load, self.device, self.fractions,
                              self.control_sigma, self.batch_size, keep_maps=set(draw))
        finally:
            net.train(was_training)
        ev = self.output_dir / "eval"
        ev.mkdir(parents=True, exist_ok=True)
        tables = L.localization_tables(cases, self.class_names, self.fractions, self.thresholds)
        size = self._input_size()
        result = {
            "what": ("Grad-CAM of each boxed finding's logit (the true finding, whatever was predicted), thresholded "
                     "at each fraction of its maximum; the box around the largest 8-connected region is scored "
                     "against the reference boxes of that finding on that image (best of them)"),
            "layer": self.layer,
            "cam_input": (f"the image resized to {size} px without crop (the network's scale), map upsampled "
                          f"bilinearly to it" if size else "the evaluation's pre-processing without crop"),
            "control": f"a centred Gaussian (sigma {self.control_sigma:g} x the image side), same box rule",
            "fractions": list(self.fractions),
            "thresholds": list(self.thresholds),
            "correct_if": "score > T (Wang et al. 2017)",
            "box_classes": self.box_classes or None,
            "iobb": "intersection / area of the predicted (CAM) box",
            "cases": len(cases),
            "predicted_cases": int(sum(c["predicted"] for c in cases)),
            **counts,
            **tables,
            "reference": self.reference,
        }
        write_json(ev / "localization.json", result, atomic=True)
        csv_rows, cols = L.csv_rows(cases, self.fractions)
        write_csv_atomic(csv_rows, ev / "localization.csv", cols)
        self._overlays(ev / "cam", everything, draw, maps)
        if cases:
            key = f"cam@{self.fractions[0]:g}"
            acc = tables["accuracy_iobb"][key]["all"].get("0.5")
            ctrl = tables["accuracy_iobb"][f"control@{self.fractions[0]:g}"]["all"].get("0.5")
            log.info("CAM localisation: %d boxed findings on %d images; accuracy at IoBB > 0.5: CAM %.3f, "
                     "centred control %.3f (fraction %g of the max)", len(cases), counts["images_with_boxes"], acc,
                     ctrl, self.fractions[0])
        else:
            log.info("CAM localisation: no evaluated image carries %r boxes of the model's classes; wrote overlays "
                     "of predicted findings only", self.box_key)
        return result

    def _thresholds(self) -> list[float]:
        m = getattr(self.report, "metrics", None) or {}
        t = m.get("thresholds")
        if isinstance(t, dict):
            return [float(t.get(c, 0.5)) for c in self.class_names]
        th = getattr(self.report, "threshold", 0.5)
        return [float(v) for v in np.broadcast_to(np.asarray(th, dtype=np.float64), (len(self.class_names),))]

    def _predicted_extras(self, rows, cases, thr) -> list[dict]:
        """Predicted findings of images without reference boxes: what the overlays show when boxes run out."""
        if len(cases) >= self.n_overlays:
            return []
        boxed = {c["image"] for c in cases}
        out = []
        for r in rows:
            if str(r.get("image")) in boxed:
                continue
            s = np.asarray(r["scores"], dtype=np.float64)
            k = int(np.argmax(s - np.asarray(thr)))
            if self.box_finding is not None:  # one boxed class: only its predictions are worth a map
                k = self.class_names.index(self.box_finding)
            if s[k] >= thr[k]:
                out.append({"image": str(r["image"]), "patient": str(r.get("patient", "")),
                            "finding": self.class_names[k], "class_index": k, "probability": float(s[k]),
                            "predicted": True, "true_boxes": []})
        return out

    def _input_size(self):
        try:
            return int(np.asarray(self._load(self.records[0]["image"])["image"]).shape[-1]) if self.records else None
        except Exception:  # noqa: BLE001 - only for the description
            return None

    def _overlays(self, out: Path, cases: list[dict], draw: list[int], maps: dict) -> None:
        from medpipe.evaluation.localization import write_overlay
        from medpipe.transforms.io import load_gray

        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for i in draw:
            if i not in maps:
                continue
            c = cases[i]
            stem = Path(c["image"]).stem
            write_overlay(out / f"{c['finding']}_{stem}.png", load_gray(c["image"])[0], maps[i], c, self.layer,
                          self.fractions[0], self.box_name)
            # the map itself (float16, the CAM's own grid), so that a report can put another model's
            # output (e.g. a detector's boxes on the same image) over the same heat map
            np.savez_compressed(out / f"{c['finding']}_{stem}.npz", heat=np.asarray(maps[i], dtype=np.float16),
                                image=str(c["image"]), finding=str(c["finding"]),
                                probability=float(c.get("probability", float("nan"))),
                                true_boxes=np.asarray(c.get("true_boxes") or np.zeros((0, 4)), dtype=np.float32),
                                layer=str(self.layer))
