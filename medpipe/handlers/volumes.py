"""Evaluation handlers of slice classifiers of CT volumes (ankle_ct_cls): volume-level metrics and
attention-map overlays, run after :class:`~medpipe.handlers.classification.ClassificationReport`.

- :class:`VolumeLevelReport` — slice probabilities averaged per volume (the records' ``volume`` key,
  joined to the report's rows on the image path: the collector itself is not changed), the same
  metrics as for slices under ``volume_level`` in ``eval/metrics.json``, and
  ``eval/volume_predictions.csv``.
- :class:`AttentionOverlays` — ``eval/attention/*.png``: the network's attention map
  (``network.attention(x)``, :class:`~medpipe.networks.classification.AttentionClassifier`) over the
  slice, for one correct and one wrong slice (the most confident) of every class present.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

from medpipe.utils.fs import write_json

log = logging.getLogger("medpipe")


def _key(path) -> str:
    return os.path.normpath(os.path.abspath(str(path))) if path not in (None, "") else ""


def join_records(rows: list[dict], records: list[dict], keys: tuple[str, ...] = ("volume",)) -> list[dict]:
    """The report's rows with ``keys`` copied from the evaluated records of the same image (matched on the
    absolute path, else on the file name); rows without a match are returned unchanged.

    Example:
        >>> join_records([{"image": "/d/images/a_000.png", "scores": [1.0]}],
        ...              [{"image": "/d/images/a_000.png", "volume": "scans/a.nii.gz"}])[0]["volume"]
        'scans/a.nii.gz'
    """
    by_path = {_key(r.get("image")): r for r in records}
    by_name: dict = {}
    for r in records:
        by_name.setdefault(os.path.basename(str(r.get("image", ""))), []).append(r)
    out = []
    for row in rows:
        rec = by_path.get(_key(row.get("image")))
        if rec is None:
            same = by_name.get(os.path.basename(str(row.get("image", ""))), [])
            rec = same[0] if len(same) == 1 else None
        out.append({**row, **{k: rec[k] for k in keys if rec is not None and k in rec}})
    return out


class VolumeLevelReport:
    """Volume-level evaluation of a slice classifier (binary or multiclass).

    Args:
        report: the evaluation's ``ClassificationReport`` (its rows and metrics; attach this handler after it).
        records: the evaluated records (``select_records``; they carry ``group_key``).
        output_dir: the evaluation's output folder (``eval/metrics.json`` is updated in place).
        class_names: the model's class names.
        kind: ``multiclass`` or ``binary`` (multi-label models are not aggregated).
        group_key: the record key naming the volume.
        threshold: binary decision threshold.
    """

    def __init__(self, report, records: list[dict], output_dir: str, class_names, kind: str = "multiclass",
                 group_key: str = "volume", threshold: float = 0.5) -> None:
        self.report, self.records, self.output_dir = report, records, Path(output_dir).expanduser().absolute()
        self.class_names, self.kind, self.group_key, self.threshold = list(class_names), kind, group_key, threshold
        self.metrics: dict | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine | None = None) -> None:
        import json

        from medpipe.engines.distributed import is_main_rank
        from medpipe.evaluation.aggregate import aggregate_by
        from medpipe.metrics.tasks import classification_metrics_for

        if not is_main_rank() or self.kind == "multilabel":
            return
        rows = join_records(self.report.all_rows, self.records, (self.group_key,))
        vols = [v for v in aggregate_by(rows, self.group_key) if "label" in v]
        if not vols:
            log.warning("volume level skipped: no evaluated record has a %r", self.group_key)
            return
        y = np.asarray([v["label"] for v in vols], dtype=int)
        s = np.asarray([v["scores"] for v in vols], dtype=np.float64)
        threshold = self.report.threshold if isinstance(getattr(self.report, "threshold", None), float) else self.threshold
        m = classification_metrics_for(self.kind, y, s, self.class_names, threshold=threshold)
        m.update({"n": len(vols), "n_slices": int(sum(v["n"] for v in vols)), "group_key": self.group_key,
                  "aggregation": "mean of the slice probabilities per volume, then argmax"})
        self.metrics = m
        path = self.output_dir / "eval" / "metrics.json"
        full = json.loads(path.read_text()) if path.exists() else {}
        full["volume_level"] = m
        write_json(path, full, atomic=True)
        write_volume_csv(vols, self.output_dir / "eval" / "volume_predictions.csv", self.group_key, self.kind,
                         self.class_names, threshold)
        log.info("volume level (%d volumes): accuracy %.4g, balanced accuracy %s", len(vols), m["accuracy"],
                 "n/a" if m.get("balanced_accuracy") is None else f"{m['balanced_accuracy']:.4g}")


def write_volume_csv(vols: list[dict], path: Path, group_key: str, kind: str, class_names, threshold: float = 0.5):
    """One row per volume (:func:`~medpipe.evaluation.aggregate.aggregate_by` output): its slices, the mean
    probability of every class, the prediction and, when known, the label."""
    from medpipe.utils.fs import write_csv_atomic

    out = []
    for v in vols:
        p = np.asarray(v["scores"])
        k = int(np.argmax(p)) if kind == "multiclass" else int(p[-1] >= threshold)
        row = {group_key: v[group_key], "patient": v.get("patient", ""), "n_slices": v["n"],
               **{f"p_{c}": float(x) for c, x in zip(class_names, p)}, "prediction": class_names[k]}
        if "label" in v:
            row["label"] = class_names[int(v["label"])]
        out.append(row)
    cols = [group_key, "patient", "n_slices", *[f"p_{c}" for c in class_names], "prediction"]
    return write_csv_atomic(out, path, cols + (["label"] if any("label" in v for v in vols) else []))


class VolumePredictions:
    """Inference on volumes cut into slices: ``volume_predictions.csv`` beside ``predictions.csv``,
    the slice probabilities averaged per volume (the decision the evaluation's volume level scores).

    Args:
        writer: the inference's ``PredictionWriter`` (attach this handler after it).
        output_dir: the inference output folder.
        class_names: the model's class names.
        kind: ``binary``, ``multiclass`` (slice probabilities averaged) or ``multilabel`` (each label pooled
            with ``method`` and decided at its threshold).
        group_key: the row key naming the volume (inference records of a NIfTI input carry ``volume``, those of
            a CT DICOM folder the series).
        threshold: binary decision threshold; multi-label: one per class (list) or one for all.
        method: multi-label pooling (:func:`~medpipe.evaluation.aggregate.pool_scores`): ``max``, ``top<k>``, ``mean``.
    """

    def __init__(self, writer, output_dir: str, class_names, kind: str = "multiclass", group_key: str = "volume",
                 threshold=0.5, method: str = "mean") -> None:
        self.writer, self.output_dir, self.class_names = writer, Path(output_dir).absolute(), list(class_names)
        self.kind, self.group_key, self.threshold, self.method = kind, group_key, threshold, method

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine | None = None) -> None:
        from medpipe.evaluation.aggregate import aggregate_by

        vols = aggregate_by([r for r in self.writer.rows if r.get(self.group_key)], self.group_key,
                            method=self.method if self.kind == "multilabel" else "mean")
        if not vols or all(v["n"] == 1 for v in vols):  # slices files or whole-volume models: nothing to average
            return
        if self.kind == "multilabel":  # each label pooled per series/volume, decided at its threshold
            from medpipe.utils.fs import write_csv_atomic

            t = self.threshold if isinstance(self.threshold, (list, tuple)) else [self.threshold] * len(self.class_names)
            rows = [{self.group_key: v[self.group_key], "patient": v.get("patient", ""), "n_slices": v["n"],
                     **{f"p_{c}": float(p) for c, p in zip(self.class_names, v["scores"])},
                     **{f"pred_{c}": int(p >= float(tc)) for c, p, tc in zip(self.class_names, v["scores"], t)}}
                    for v in vols]
            cols = [self.group_key, "patient", "n_slices", *[f"p_{c}" for c in self.class_names],
                    *[f"pred_{c}" for c in self.class_names]]
            path = write_csv_atomic(rows, self.output_dir / "volume_predictions.csv", cols)
            for r in rows:
                log.info("%s: %d slices -> %s", r[self.group_key], r["n_slices"],
                         ", ".join(f"{c} {r[f'p_{c}']:.2f}" for c in self.class_names))
            log.info("wrote %s: %d volumes (%s of the slices' probabilities)", path, len(rows), self.method)
            return
        path = write_volume_csv(vols, self.output_dir / "volume_predictions.csv", self.group_key, self.kind,
                                self.class_names, self.threshold)
        for v in vols:
            k = int(np.argmax(v["scores"])) if self.kind == "multiclass" else int(v["scores"][-1] >= self.threshold)
            log.info("%s: %d slices -> %s (mean p %.2f)", v[self.group_key], v["n"], self.class_names[k],
                     float(np.asarray(v["scores"])[k]))
        log.info("wrote %s: %d volumes", path, len(vols))


class AttentionOverlays:
    """``eval/attention/*.png``: attention maps over one correct and one wrong slice of every class present.

    Args:
        report: the evaluation's ``ClassificationReport`` (attach this handler after it).
        network: the evaluated network; it needs an ``attention(x)`` method (else nothing is written).
        class_names: the model's class names.
        output_dir: the evaluation's output folder.
        transform: the deterministic pre-processing of the evaluator.
        device: where the network is.
    """

    def __init__(self, report, network, class_names, output_dir: str, transform=None, device="cpu") -> None:
        self.report, self.network, self.class_names = report, network, list(class_names)
        self.output_dir, self.transform, self.device = Path(output_dir).expanduser().absolute(), transform, device

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def examples(self, rows: list[dict]) -> list[tuple[str, dict]]:
        """``[(outcome, row)]``: per true class, the most confident correct and the most confident wrong row."""
        picked = []
        for k in range(len(self.class_names)):
            mine = [r for r in rows if r.get("label") == k]
            for outcome in ("correct", "wrong"):
                cand = [r for r in mine if (int(np.argmax(r["scores"])) == k) == (outcome == "correct")]
                if cand:
                    picked.append((outcome, max(cand, key=lambda r: float(np.max(r["scores"])))))
        return picked

    def __call__(self, engine: Engine | None = None) -> None:
        from medpipe.engines.distributed import is_main_rank
        from medpipe.visualization.overlays import strongest_plane
        from medpipe.visualization.plots import overlay_heatmap

        net = self.network.module if isinstance(self.network, torch.nn.parallel.DistributedDataParallel) \
            else self.network
        if not is_main_rank() or not hasattr(net, "attention"):
            return
        out = self.output_dir / "eval" / "attention"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        was_training = net.training
        net.eval()
        try:
            for outcome, r in self.examples(self.report.all_rows):
                item = self.transform({"image": r["image"]}) if self.transform else {"image": r["image"]}
                x = torch.as_tensor(np.asarray(item["image"]), dtype=torch.float32)[None].to(self.device)
                with torch.no_grad():
                    small = net.attention(x)
                    # drawn at the input's size (a 32-px slice gives a 1x1 map: overlay_heatmap needs 2D)
                    a = torch.nn.functional.interpolate(small, size=tuple(x.shape[2:]),
                                                        mode="trilinear" if x.ndim == 5 else "bilinear",
                                                        align_corners=False)[0, 0].float().cpu().numpy()
                img, a, plane = strongest_plane(x[0, 0].cpu().numpy(), a)  # a volume: its most attended axial plane
                hw = "x".join(str(int(v)) for v in small.shape[2:])
                true, k = self.class_names[r["label"]], int(np.argmax(r["scores"]))
                where = int(r.get("slice", 0) or 0) if plane is None else plane
                name = f"{true}_{outcome}_{r.get('patient', 'x')}_{where:03d}.png"
                overlay_heatmap(img, a, out / name, value_range=(0.0, 1.0),
                                label="attention (sigmoid, 0-1)",
                                title=f"{outcome}: true {true}, predicted {self.class_names[k]} "
                                      f"(p = {float(np.max(r['scores'])):.2f}); attention map {hw}, upsampled"
                                      + ("" if plane is None else f"; axial plane {plane} of {x.shape[2]} "
                                         + ("(most attended)" if small.shape[2] > 1 else "(middle: the map has one plane)")))
        except Exception as e:  # noqa: BLE001 - a failed visualization must not lose the metrics
            log.warning("attention overlays skipped: %s", e)
        finally:
            net.train(was_training)
        log.info("wrote %s", out)
