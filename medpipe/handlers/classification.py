"""Evaluation-side handlers for binary slice classification.

- :class:`BinaryMetric` — an ignite metric (F1, AUROC, ...) over the whole validation set, usable as
  a MONAI ``key_val_metric`` (checkpoint selection, early stopping); DDP-safe (gathers all ranks).
- :class:`ClassificationReport` — at the end of an evaluation writes ``eval/metrics.json``,
  ``predictions.csv``, confusion matrix / ROC / training-curve PNGs, a classification report and
  Grad-CAM overlays.
- :class:`PredictionWriter` — inference without labels: ``predictions.csv``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.metrics import Metric

from medpipe.utils.fs import write_json

log = logging.getLogger("medpipe")


def _positive_prob(pred) -> float:
    p = torch.as_tensor(pred).detach().float().flatten()
    return float(p[1] if p.numel() > 1 else p[0])


def _items(engine: Engine) -> list[dict]:
    """Decollated batch items, merged with the output's ``pred`` per item."""
    batch, output = engine.state.batch, engine.state.output
    if isinstance(batch, dict):  # not decollated
        from monai.data import decollate_batch

        batch = decollate_batch(batch)
    if isinstance(output, dict):
        from monai.data import decollate_batch

        output = decollate_batch(output)
    return [{**b, "pred": o["pred"]} for b, o in zip(batch, output)]


def gather_lists(items: list) -> list:
    """Concatenate a per-rank list over all DDP ranks (any sizes); the list itself without DDP."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return items
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [x for part in parts for x in part]


def _meta_str(v):
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    return v


class BinaryMetric(Metric):
    """One binary-classification metric over the whole evaluated set.

    Args:
        metric: a key of :func:`medpipe.metrics.classification.classification_metrics`
            (``f1``, ``auroc``, ``accuracy``, ``precision``, ``recall``, ``specificity``).
        threshold: probability threshold for the thresholded metrics.
        output_transform: maps the engine output to ``(preds, labels)``; preds per item are class
            probabilities ``(2,)`` (softmax) or a single positive-class probability.
    """

    def __init__(self, metric: str = "f1", threshold: float = 0.5, output_transform=lambda x: x, device="cpu"):
        self.metric, self.threshold = metric, threshold
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._probs: list[float] = []
        self._labels: list[int] = []

    def update(self, output) -> None:
        preds, labels = output
        for p, y in zip(preds, labels):
            self._probs.append(_positive_prob(p))
            self._labels.append(int(torch.as_tensor(y).flatten()[0]))

    def compute(self) -> float:
        from medpipe.metrics.classification import classification_metrics

        pairs = gather_lists(list(zip(self._probs, self._labels)))
        probs, labels = [p for p, _ in pairs], [y for _, y in pairs]
        m = classification_metrics(labels, probs, threshold=self.threshold)
        v = m[self.metric]
        return float("nan") if v is None else float(v)


class _Collector:
    def __init__(self):
        self.rows: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda e: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._done)

    def _collect(self, engine: Engine) -> None:
        for it in _items(engine):
            row = {k: _meta_str(it.get(k)) for k in ("patient", "slice") if k in it}
            src = it.get("image_path", it.get("source_image"))
            row["image"] = _meta_str(src) if src is not None else ""
            row["probability"] = _positive_prob(it["pred"])
            if "label" in it and it["label"] is not None and not isinstance(it["label"], str):
                row["label"] = int(torch.as_tensor(it["label"]).flatten()[0])
            self.rows.append(row)

    def _done(self, engine: Engine) -> None:
        raise NotImplementedError


def minmax_per_sample(x: torch.Tensor) -> torch.Tensor:
    """Scale each map of a ``(B, 1, H, W)`` batch to [0, 1] (min -> 0, max -> 1)."""
    flat = x.reshape(x.shape[0], -1)
    lo = flat.min(dim=1).values.reshape(-1, *([1] * (x.ndim - 1)))
    hi = flat.max(dim=1).values.reshape(-1, *([1] * (x.ndim - 1)))
    return (x - lo) / (hi - lo).clamp(min=1e-12)


def write_predictions_csv(rows: list[dict], path: Path, threshold: float) -> None:
    """``predictions.csv``: patient, slice, image, probability, prediction (at ``threshold``) [, label]."""
    from medpipe.utils.fs import write_csv_atomic

    write_csv_atomic([{**r, "prediction": int(r["probability"] >= threshold)} for r in rows], path,
                     ["patient", "slice", "image", "probability", "prediction", "label"])


class PredictionWriter(_Collector):
    """Inference: write ``output_dir/predictions.csv`` (patient, slice, image, probability, prediction)."""

    def __init__(self, output_dir: str, threshold: float = 0.5) -> None:
        super().__init__()
        self.output_dir, self.threshold = Path(output_dir), threshold

    def _done(self, engine: Engine) -> None:
        path = self.output_dir / "predictions.csv"
        write_predictions_csv(self.rows, path, self.threshold)
        n_pos = sum(r["probability"] >= self.threshold for r in self.rows)
        log.info("wrote %s: %d slices, %d predicted positive", path, len(self.rows), n_pos)


class ClassificationReport(_Collector):
    """Write the evaluation outputs of a binary slice classifier.

    Files under ``output_dir``: ``eval/metrics.json`` (CONTRACT keys), ``predictions.csv``,
    ``eval/confusion_matrix.png``, ``eval/roc.png``, ``eval/classification_report.txt``,
    ``eval/training_curves.png`` (from ``history.json`` when present) and ``eval/gradcam/*.png``.

    Args:
        output_dir: the run folder.
        network: the evaluated network (for Grad-CAM; None to skip).
        class_names: names of class 0 and 1.
        threshold: probability threshold.
        gradcam_layer: layer name Grad-CAM reads (e.g. ``layer4`` for ResNets).
        n_gradcam: examples per outcome (TP, FP, FN, TN).
        transform: the deterministic pre-processing used by the evaluator, to rebuild Grad-CAM inputs.
        extra: additional JSON-able facts to record in metrics.json (split, fold, checkpoint...).
    """

    def __init__(self, output_dir: str, network=None, class_names=("no_phe", "phe"), threshold: float = 0.5,
                 gradcam_layer: str | None = None, n_gradcam: int = 3, transform=None, device="cpu",
                 extra: dict | None = None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.network, self.class_names, self.threshold = network, tuple(class_names), threshold
        self.gradcam_layer, self.n_gradcam, self.transform, self.device = gradcam_layer, n_gradcam, transform, device
        self.extra = extra or {}
        self.metrics: dict | None = None

    def _done(self, engine: Engine) -> None:
        rows = gather_lists(self.rows)
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
            return
        from medpipe.metrics.classification import classification_metrics
        from medpipe.visualization.plots import plot_confusion_matrix, plot_curves, plot_roc

        ev = self.output_dir / "eval"
        ev.mkdir(parents=True, exist_ok=True)
        y = [r["label"] for r in rows]
        p = [r["probability"] for r in rows]
        m = classification_metrics(y, p, threshold=self.threshold, class_names=self.class_names)
        m.update({k: v for k, v in self.extra.items()})
        self.metrics = m
        write_json(ev / "metrics.json", m, atomic=True)
        write_predictions_csv(rows, self.output_dir / "predictions.csv", self.threshold)
        plot_confusion_matrix(m["confusion_matrix"], self.class_names, ev / "confusion_matrix.png",
                              title=f"slice classification (threshold {self.threshold:g}, n={len(rows)})")
        plot_roc(y, p, ev / "roc.png", title="ROC (slice level)", threshold=self.threshold)
        hist = self.output_dir / "history.json"
        if hist.exists():
            h = json.loads(hist.read_text())
            plot_curves({k: v for k, v in h.items() if k != "epoch"}, ev / "training_curves.png", title="training")
        (ev / "classification_report.txt").write_text(self._report_text(m, rows))
        if self.network is not None and self.gradcam_layer:
            try:
                self._gradcam(rows, ev / "gradcam")
            except Exception as e:  # noqa: BLE001 - a failed visualization must not lose the metrics
                log.warning("Grad-CAM skipped: %s", e)
        log.info("evaluation: %s", ", ".join(f"{k} {m[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1",
                                                                          "specificity", "auroc") if m.get(k) is not None))
        log.info("wrote %s", ev)

    def _report_text(self, m: dict, rows) -> str:
        lines = [f"binary slice classification: {len(rows)} slices, threshold {self.threshold:g}", "",
                 f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
        for name, pc in m["per_class"].items():
            lines.append(f"{name:<12}{pc['precision']:>10.4f}{pc['recall']:>10.4f}{pc['f1']:>10.4f}{pc['support']:>10d}")
        lines += ["", *(f"{k:<12}{m[k]:.4f}" for k in ("accuracy", "specificity", "auroc") if m.get(k) is not None),
                  "", f"confusion matrix (rows: true {self.class_names[0]}, {self.class_names[1]}): {m['confusion_matrix']}"]
        return "\n".join(lines) + "\n"

    def _gradcam(self, rows, out: Path) -> None:
        from monai.visualize import GradCAM

        from medpipe.visualization.plots import overlay_heatmap

        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        groups = {"TP": [], "FP": [], "FN": [], "TN": []}
        for r in sorted(rows, key=lambda r: -abs(r["probability"] - 0.5)):
            pred = r["probability"] >= self.threshold
            key = ("T" if pred == bool(r["label"]) else "F") + ("P" if pred else "N")
            if len(groups[key]) < self.n_gradcam:
                groups[key].append(r)
        net = self.network.module if isinstance(self.network, torch.nn.parallel.DistributedDataParallel) else self.network
        was_training = net.training
        net.eval()
        # MONAI's default normalizer maps (min, max) to (1, 0), i.e. flips the map; keep the
        # usual orientation (high = evidence for the positive class)
        cam = GradCAM(nn_module=net, target_layers=self.gradcam_layer, postprocessing=minmax_per_sample)
        for key, rs in groups.items():
            for r in rs:
                item = self.transform({"image": r["image"]}) if self.transform else {"image": r["image"]}
                x = torch.as_tensor(np.asarray(item["image"]), dtype=torch.float32)[None].to(self.device)
                heat = cam(x, class_idx=1)[0, 0].detach().cpu().numpy()
                name = f"{key}_{r.get('patient', 'x')}_{int(r.get('slice', 0)):02d}.png"
                overlay_heatmap(x[0, 0].cpu().numpy(), heat, out / name,
                                title=f"{key}: p(phe)={r['probability']:.2f}, label {r['label']} "
                                      f"(Grad-CAM on {self.gradcam_layer})")
        net.train(was_training)
