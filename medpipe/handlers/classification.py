"""Evaluation-side handlers for classification of every label kind (binary, multiclass, multi-label).

Thin ignite wrappers over :mod:`medpipe.metrics` (the numbers) and :mod:`medpipe.evaluation.predictions`
(the one ``predictions.csv`` schema):

- :class:`ClassificationMetric` — one metric over the whole validation set, usable as a MONAI
  ``key_val_metric`` (checkpoint selection, early stopping); DDP-safe (gathers all ranks).
- :class:`ClassificationReport` — at the end of an evaluation writes ``eval/metrics.json``,
  ``predictions.csv``, confusion matrix / ROC / training-curve PNGs, a text report and Grad-CAM
  overlays.
- :class:`PredictionWriter` — inference without labels: ``predictions.csv``.

Label kind and class names come from the prepared dataset (training) or the checkpoint's settings
(evaluation, inference); nothing here assumes two classes.
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

from medpipe.data.inference import DICOM_IDS
from medpipe.evaluation import predictions as P
from medpipe.utils.fs import write_json

log = logging.getLogger("medpipe")

#: metric names a bundle may select, per label kind -> the key of the metrics dict
METRIC_KEYS = {
    "binary": {"auprc": "average_precision"},
    "multiclass": {},
    "multilabel": {"auroc": "auroc_mean", "f1": "f1_macro", "auprc": "auprc_mean", "accuracy": "subset_accuracy"},
}


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


def _np(x) -> np.ndarray:
    return torch.as_tensor(x).detach().float().cpu().numpy().ravel()


def _label_of(v):
    """A record's label as the metrics want it: int (binary/multiclass) or a 0/1 list (multi-label)."""
    a = _np(v)
    return int(a[0]) if a.size == 1 else [int(round(x)) for x in a]


def metric_value(kind: str, metrics: dict, name: str) -> float:
    """The value of metric ``name`` (``f1``, ``auroc``, ``accuracy``...) from a metrics dict of ``kind``."""
    key = METRIC_KEYS.get(kind, {}).get(name, name)
    v = metrics.get(key)
    return float("nan") if v is None else float(v)


class ClassificationMetric(Metric):
    """One classification metric over the whole evaluated set (binary, multiclass or multi-label).

    Args:
        metric: ``f1``, ``auroc``, ``accuracy``, ``precision``, ``recall``, ``specificity``,
            ``balanced_accuracy``, ``kappa`` (multi-class), ``auprc``/``f1_micro`` (multi-label). For
            multi-class data the averages are macro over the classes present; for multi-label data
            ``auroc`` is the mean AUROC over the classes where it is defined and ``f1`` the macro F1.
        kind: the label kind (from the datalist header / checkpoint settings).
        threshold: probability threshold of the thresholded metrics (binary, multi-label).
        output_transform: maps the engine output to ``(preds, labels)``; preds per item are the
            post-activation class scores.
    """

    def __init__(self, metric: str = "f1", kind: str = "binary", threshold: float = 0.5,
                 output_transform=lambda x: x, device="cpu"):
        self.metric, self.kind, self.threshold = metric, kind, threshold
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._rows: list[tuple] = []

    def update(self, output) -> None:
        preds, labels = output
        for p, y in zip(preds, labels):
            self._rows.append((_np(p), _label_of(y)))

    def compute(self) -> float:
        from medpipe.metrics.tasks import classification_metrics_for

        rows = gather_lists(self._rows)
        scores = np.stack([s for s, _ in rows])
        y = np.asarray([lab for _, lab in rows])
        names = [str(i) for i in range(scores.shape[1])]
        m = classification_metrics_for(self.kind, y, scores, names, threshold=self.threshold)
        return metric_value(self.kind, m, self.metric)


class _Collector:
    """Collects one row per item: ids, image path, post-activation scores, label when present."""

    def __init__(self):
        self.rows: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda e: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._done)

    def _collect(self, engine: Engine) -> None:
        for it in _items(engine):
            row = {k: _meta_str(it.get(k)) for k in ("patient", "slice", "volume", *DICOM_IDS) if k in it}
            src = it.get("image_path", it.get("source_image"))
            row["image"] = _meta_str(src) if src is not None else ""
            row["scores"] = _np(it["pred"]).tolist()
            if "label" in it and it["label"] is not None and not isinstance(it["label"], str):
                row["label"] = _label_of(it["label"])
            self.rows.append(row)

    def _done(self, engine: Engine) -> None:
        raise NotImplementedError


def minmax_per_sample(x: torch.Tensor) -> torch.Tensor:
    """Scale each map of a ``(B, 1, H, W)`` batch to [0, 1] (min -> 0, max -> 1)."""
    flat = x.reshape(x.shape[0], -1)
    lo = flat.min(dim=1).values.reshape(-1, *([1] * (x.ndim - 1)))
    hi = flat.max(dim=1).values.reshape(-1, *([1] * (x.ndim - 1)))
    return (x - lo) / (hi - lo).clamp(min=1e-12)


def write_predictions_csv(rows: list[dict], path: Path, kind: str, class_names, threshold=0.5) -> Path:
    """``predictions.csv`` in the one schema of :mod:`medpipe.evaluation.predictions`."""
    from medpipe.utils.fs import write_csv_atomic

    with_labels = bool(rows) and all("label" in r for r in rows)
    ids = [k for k in DICOM_IDS if any(r.get(k) for r in rows)]  # DICOM inputs: their identifiers too
    out = [P.to_row(kind, {k: r.get(k, "") for k in ("patient", "slice", "image", *ids)}, r["scores"], class_names,
                    threshold, r.get("label") if with_labels else None) for r in rows]
    cols = P.columns(kind, class_names, with_labels)
    at = cols.index("image") + 1 if "image" in cols else len(cols)
    return write_csv_atomic(out, path, cols[:at] + ids + cols[at:])


class PredictionWriter(_Collector):
    """Inference: write ``output_dir/predictions.csv`` (the schema of :mod:`medpipe.evaluation.predictions`)."""

    def __init__(self, output_dir: str, kind: str = "binary", class_names=("negative", "positive"),
                 threshold: float = 0.5) -> None:
        super().__init__()
        self.output_dir, self.kind, self.class_names, self.threshold = Path(output_dir).absolute(), kind, list(class_names), threshold

    def _done(self, engine: Engine) -> None:
        path = write_predictions_csv(self.rows, self.output_dir / "predictions.csv", self.kind, self.class_names,
                                     self.threshold)
        if self.kind == "binary":
            n_pos = sum(P.positive_probability(r["scores"]) >= self.threshold for r in self.rows)
            what = f"{n_pos} predicted {self.class_names[-1]}"
        elif self.kind == "multiclass":
            from collections import Counter

            c = Counter(self.class_names[int(np.argmax(r["scores"]))] for r in self.rows)
            what = ", ".join(f"{k} {v}" for k, v in c.most_common())
        else:
            n = np.sum([np.asarray(r["scores"]) >= self.threshold for r in self.rows], axis=0)
            what = ", ".join(f"{k} {int(v)}" for k, v in zip(self.class_names, n))
        log.info("wrote %s: %d images; %s", path, len(self.rows), what)


class ClassificationReport(_Collector):
    """Write the evaluation outputs of a classifier (binary, multiclass or multi-label).

    Files under ``output_dir``: ``eval/metrics.json`` (CONTRACT keys of the label kind),
    ``predictions.csv``, ``eval/confusion_matrix.png`` (binary/multiclass), ``eval/roc.png``
    (per class for multiclass/multi-label, all curves in one figure), ``eval/classification_report.txt``,
    ``eval/training_curves.png`` (from the training run's ``history.json``), ``eval/gradcam/*.png``
    and, for multi-label models, ``eval/per_class.csv``.

    Multi-label models get per-class decision thresholds (``thresholds``), patient-level bootstrap
    intervals of every class's AUROC and of the mean, the evaluated set's size, patients and
    positives per class, and published values beside ours
    (:func:`medpipe.evaluation.multilabel.multilabel_summary`).

    Args:
        output_dir: where the outputs go.
        network: the evaluated network (for Grad-CAM; None to skip).
        kind: ``binary``, ``multiclass`` or ``multilabel``.
        class_names: the class names (from the checkpoint's settings).
        threshold: probability threshold (binary, multi-label).
        gradcam_layer: layer name Grad-CAM reads (e.g. ``layer4`` for ResNets).
        n_gradcam: examples per outcome group (each from another patient).
        transform: the deterministic pre-processing used by the evaluator, to rebuild Grad-CAM inputs.
        run_dir: the training run folder (its ``history.json`` gives the curves); default ``output_dir``.
        extra: additional JSON-able facts to record in metrics.json (split, fold, checkpoint...).
        thresholds: multi-label: ``"choose"`` (per class, maximum F1 on the evaluated records: the
            run's own validation fold), per-class values (list in class order or ``{name: t}``, e.g.
            those a validation evaluation stored with the checkpoint), or None (``threshold``).
        threshold_source: multi-label: where given ``thresholds`` come from (recorded in metrics.json).
        references: multi-label: published per-class AUROC to show beside ours
            (``{"source", "note", "auroc_mean", "auroc_per_class"}``).
        n_boot: multi-label: patient-level bootstrap resamples of the AUROC intervals (0: none).
    """

    def __init__(self, output_dir: str, network=None, kind: str = "binary", class_names=("negative", "positive"),
                 threshold: float = 0.5, gradcam_layer: str | None = None, n_gradcam: int = 2, transform=None,
                 device="cpu", run_dir: str | None = None, extra: dict | None = None, thresholds=None,
                 threshold_source: str = "", references: dict | None = None, n_boot: int = 1000) -> None:
        super().__init__()
        self.output_dir = Path(output_dir).expanduser().absolute()
        self.run_dir = Path(run_dir) if run_dir else self.output_dir
        self.network, self.kind, self.class_names, self.threshold = network, kind, list(class_names), threshold
        self.gradcam_layer, self.n_gradcam, self.transform, self.device = gradcam_layer, n_gradcam, transform, device
        self.extra = extra or {}
        self.thresholds, self.threshold_source, self.references = thresholds, threshold_source, references
        self.n_boot = int(n_boot or 0)
        self.metrics: dict | None = None
        self.all_rows: list[dict] = []

    def _done(self, engine: Engine) -> None:
        from medpipe.engines.distributed import is_main_rank
        from medpipe.metrics.tasks import classification_metrics_for

        rows = gather_lists(self.rows)
        if not is_main_rank():
            return
        self.all_rows = rows
        missing = sum("label" not in r for r in rows)
        if missing:
            raise RuntimeError(f"{missing} evaluated records have no label")
        ev = self.output_dir / "eval"
        ev.mkdir(parents=True, exist_ok=True)
        y, s = P.labels_and_scores(self.kind, rows)
        threshold = self.threshold
        if self.kind == "multilabel":
            m = self._multilabel(y, s, rows, ev)
            threshold = [m["thresholds"][c] for c in self.class_names]
        elif self.kind == "binary":
            m = self._binary(y, s)
            threshold = self.threshold
        else:
            m = classification_metrics_for(self.kind, y, s, self.class_names, threshold=self.threshold)
        m.update(self.extra)
        self.metrics = m
        write_json(ev / "metrics.json", m, atomic=True)
        write_predictions_csv(rows, self.output_dir / "predictions.csv", self.kind, self.class_names, threshold)
        self._plots(m, y, s, ev, len(rows))
        (ev / "classification_report.txt").write_text(self._report_text(m, len(rows)) + self._sklearn_report(y, s))
        if self.network is not None and self.gradcam_layer:
            try:
                self._gradcam(rows, ev / "gradcam")
            except Exception as e:  # noqa: BLE001 - a failed visualization must not lose the metrics
                log.warning("Grad-CAM skipped: %s", e)
        keys = ("auroc_mean", "auprc_mean", "f1_macro", "f1_micro") if self.kind == "multilabel" else \
            ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "specificity", "auroc")
        log.info("evaluation (%s, n=%d): %s", self.kind, len(rows),
                 ", ".join(f"{k} {m[k]:.4g}" for k in keys if isinstance(m.get(k), (int, float))))
        log.info("wrote %s", ev)

    def _binary(self, y: np.ndarray, s: np.ndarray) -> dict:
        """Binary metrics at the decision threshold (chosen here when ``threshold`` names a rule), plus
        sensitivity/specificity at that threshold and at the Youden point of these records."""
        from medpipe.metrics.classification import best_threshold, operating_points
        from medpipe.metrics.tasks import classification_metrics_for

        s2 = np.asarray(s, dtype=np.float64).reshape(len(s), -1)
        p = s2[:, 1] if s2.shape[1] > 1 else s2[:, 0]
        source = self.threshold_source
        if isinstance(self.threshold, str):  # a rule: choose on these (validation) records
            rule = self.threshold
            try:
                self.threshold = best_threshold(y, p, rule)
            except ValueError as e:
                log.warning("threshold not chosen by %s (%s); 0.5 used", rule, e)
                self.threshold, source = 0.5, f"0.5 ({rule} undefined here: {e})"
        m = classification_metrics_for("binary", y, s, self.class_names, threshold=self.threshold)
        m["threshold"] = float(self.threshold)
        m["threshold_source"] = source or f"fixed at {self.threshold:g}"
        m["operating_points"] = operating_points(y, p, self.threshold)
        return m

    def _multilabel(self, y: np.ndarray, s: np.ndarray, rows: list[dict], ev: Path) -> dict:
        """The multi-label summary (metrics, thresholds, intervals, references) and ``eval/per_class.csv``."""
        from medpipe.evaluation.multilabel import PER_CLASS_COLUMNS, multilabel_summary, per_class_rows
        from medpipe.utils.fs import write_csv_atomic

        patients = [r.get("patient") if r.get("patient") not in (None, "") else f"row{i}" for i, r in enumerate(rows)]
        thresholds = self.threshold if self.thresholds is None else self.thresholds
        source = self.threshold_source or ("" if self.thresholds is not None else f"{self.threshold} for every class")
        m = multilabel_summary(y, s, self.class_names, patients, thresholds=thresholds, threshold_source=source,
                               references=self.references, n_boot=self.n_boot)
        m["kind"] = "multilabel"
        write_csv_atomic(per_class_rows(m), ev / "per_class.csv", PER_CLASS_COLUMNS)
        return m

    def _plots(self, m: dict, y: np.ndarray, s: np.ndarray, ev: Path, n: int) -> None:
        from medpipe.visualization.plots import plot_confusion_matrix, plot_curves, plot_roc, plot_roc_curves

        if self.kind == "binary":
            p = s[:, 1] if s.shape[1] > 1 else s[:, 0]
            plot_confusion_matrix(m["confusion_matrix"], self.class_names, ev / "confusion_matrix.png",
                                  title=f"{self.class_names[-1]} vs {self.class_names[0]} (threshold {self.threshold:g}, n={n})")
            plot_roc(y, p, ev / "roc.png", title=f"ROC, {self.class_names[-1]} (n={n})", threshold=self.threshold)
        elif self.kind == "multiclass":
            plot_confusion_matrix(m["confusion_matrix"], self.class_names, ev / "confusion_matrix.png",
                                  title=f"{len(self.class_names)} classes (argmax, n={n})")
            plot_roc_curves({c: ((y == i).astype(int), s[:, i]) for i, c in enumerate(self.class_names)},
                            ev / "roc.png", title=f"ROC one class vs the rest (n={n})")
        else:
            pats = (m.get("evaluated") or {}).get("patients")
            plot_roc_curves({c: (y[:, i], s[:, i]) for i, c in enumerate(self.class_names)}, ev / "roc.png",
                            title=f"ROC per finding ({n} images" + (f", {pats} patients)" if pats else ")")
                            + (f", mean AUROC {m['auroc_mean']:.3f}" if isinstance(m.get("auroc_mean"), float) else ""))
        hist = self.run_dir / "history.json"
        if hist.exists():
            h = json.loads(hist.read_text())
            plot_curves({k: v for k, v in h.items() if k != "epoch"}, ev / "training_curves.png", title="training")

    def _sklearn_report(self, y: np.ndarray, s: np.ndarray) -> str:
        """scikit-learn's own ``classification_report`` of the decisions (binary at the decision threshold,
        multiclass at the argmax): per class precision, recall, F1, support; accuracy; macro and weighted averages."""
        if self.kind not in ("binary", "multiclass"):
            return ""
        from sklearn.metrics import classification_report

        s2 = np.asarray(s, dtype=np.float64).reshape(len(s), -1)
        if self.kind == "binary":
            p = s2[:, 1] if s2.shape[1] > 1 else s2[:, 0]
            pred = (p >= float(self.threshold)).astype(int)
        else:
            pred = np.argmax(s2, axis=1)
        labels = list(range(len(self.class_names)))
        text = classification_report(np.asarray(y).astype(int), pred, labels=labels, target_names=self.class_names,
                                     digits=4, zero_division=0)
        return "\nscikit-learn classification_report:\n" + text

    def _report_text(self, m: dict, n: int) -> str:
        def f(v):
            return "n/a" if v is None else f"{v:.4f}"

        thr = "per-class thresholds (see metrics.json)" if isinstance(m.get("thresholds"), dict) else \
            f"threshold {self.threshold:g}"
        lines = [f"{self.kind} classification: {n} images, {thr}", ""]
        pc = m.get("per_class") or {}
        cols = [c for c in ("precision", "recall", "specificity", "f1", "auroc", "support") if any(c in d for d in pc.values())]
        lines.append(f"{'class':<24}" + "".join(f"{c:>12}" for c in cols))
        for name, d in pc.items():
            lines.append(f"{name:<24}" + "".join(f"{d.get(c):>12d}" if c == "support" and d.get(c) is not None
                                                 else f"{f(d.get(c)):>12}" for c in cols))
        lines.append("")
        for k in ("accuracy", "balanced_accuracy", "kappa", "precision", "recall", "specificity", "f1", "auroc",
                  "auroc_mean", "auprc_mean", "f1_micro", "f1_macro", "subset_accuracy"):
            if k in m:
                lines.append(f"{k:<24}{f(m[k])}")
        for name, op in (m.get("operating_points") or {}).items():
            if op:
                what = "decision threshold" if name == "threshold" else "Youden point of these records (in-sample)"
                lines.append(f"{what}: threshold {op['threshold']:.4g}, sensitivity {f(op['sensitivity'])}, "
                             f"specificity {f(op['specificity'])}")
        absent = m.get("absent_classes") or m.get("undefined_classes")
        if absent:
            lines += ["", f"left out of the averages (undefined on this set): {', '.join(absent)}"]
        if "confusion_matrix" in m:
            lines += ["", f"confusion matrix (rows: true {', '.join(self.class_names)}): {m['confusion_matrix']}"]
        return "\n".join(lines) + "\n"

    def _target(self, r: dict) -> tuple[int, str]:
        """The class Grad-CAM explains for a row, and the outcome group it belongs to."""
        s = np.asarray(r["scores"])
        if self.kind == "binary":
            pred = P.positive_probability(s) >= self.threshold
            return 1 if s.size > 1 else 0, ("T" if pred == bool(r["label"]) else "F") + ("P" if pred else "N")
        k = int(np.argmax(s))
        if self.kind == "multiclass":
            return k, "correct" if k == r["label"] else "wrong"
        return k, "hit" if r["label"][k] else "miss"

    def _gradcam_examples(self, rows) -> dict[str, list]:
        """``{outcome: [(row, class index), ...]}``: up to ``n_gradcam`` of the most confident rows of each
        outcome, one per patient within an outcome and, while possible, patients not shown in another
        outcome (smaller groups, usually the mistakes, choose first). Rows without a patient are distinct.
        """
        def patient(r):
            p = r.get("patient")
            return ("row", id(r)) if p in (None, "") else p

        confident = sorted(rows, key=lambda r: -float(np.max(np.abs(np.asarray(r["scores"]) - 0.5))))
        candidates: dict[str, list] = {}
        for r in confident:
            idx, key = self._target(r)
            candidates.setdefault(key, []).append((r, idx))
        order = sorted(candidates, key=lambda k: (len(candidates[k]), k))
        groups: dict[str, list] = {k: [] for k in order}
        shown: set = set()
        for _ in range(self.n_gradcam):
            for key in order:
                own = {patient(r) for r, _ in groups[key]}
                free = [i for i, c in enumerate(candidates[key]) if patient(c[0]) not in own]
                if not free:
                    continue
                pick = candidates[key].pop(next((i for i in free if patient(candidates[key][i][0]) not in shown),
                                                free[0]))
                groups[key].append(pick)
                shown.add(patient(pick[0]))
        return {k: v for k, v in groups.items() if v}

    def _gradcam(self, rows, out: Path) -> None:
        from medpipe.evaluation.localization import raw_grad_cam
        from medpipe.visualization.overlays import strongest_plane
        from medpipe.visualization.plots import overlay_heatmap

        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        groups = self._gradcam_examples(rows)
        net = self.network.module if isinstance(self.network, torch.nn.parallel.DistributedDataParallel) else self.network
        was_training = net.training
        net.eval()
        # raw (ReLU'd) maps (raw_grad_cam: MONAI's default normalizer would flip them), drawn on one
        # scale per explained class: the strongest map among the examples is 1. Stretching each map
        # on its own turned faint evidence on confident negatives into a bright blob; a flat map (no
        # evidence anywhere) is said in the title.
        cam = raw_grad_cam(net, self.gradcam_layer)
        drawn = []
        for key, rs in groups.items():
            for r, idx in rs:
                item = self.transform({"image": r["image"]}) if self.transform else {"image": r["image"]}
                x = torch.as_tensor(np.asarray(item["image"]), dtype=torch.float32)[None].to(self.device)
                raw = cam(x, class_idx=idx).detach()[0, 0].cpu().numpy()
                img, raw_plane, plane = strongest_plane(x[0, 0].cpu().numpy(), raw)  # volumes: one axial plane
                drawn.append((key, dict(r, slice=plane) if plane is not None else r, idx, img, raw_plane))
        top: dict[int, float] = {}
        for _, _, idx, _, raw in drawn:
            top[idx] = max(top.get(idx, 0.0), float(raw.max()))
        for key, r, idx, img, raw in drawn:
            cls = self.class_names[idx] if idx < len(self.class_names) else str(idx)
            truth = r["label"] if self.kind != "multilabel" else \
                "+".join(c for c, v in zip(self.class_names, r["label"]) if v) or "none"
            if self.kind != "multilabel":
                truth = self.class_names[truth] if isinstance(truth, int) and truth < len(self.class_names) else truth
            flat = float(raw.max() - raw.min()) <= 1e-8 * max(1.0, float(np.abs(raw).max()))
            name = f"{key}_{r.get('patient', 'x')}_{int(r.get('slice', 0) or 0):02d}.png"
            overlay_heatmap(img, raw, out / name, value_range=(0.0, top[idx]),
                            label=f"Grad-CAM for {cls} (1 = strongest of these examples)",
                            title=f"{key}: p({cls}) = {float(np.asarray(r['scores'])[idx]):.2f}, true: {truth} "
                                  f"(Grad-CAM for {cls}, {self.gradcam_layer})"
                                  + (f"\nflat map: no evidence for {cls} anywhere" if flat else ""))
        net.train(was_training)


class CompareWithInternal:
    """At the end of an evaluation on another set, write it beside the run's validation evaluation
    (:func:`medpipe.evaluation.external.compare_with_internal`); nothing for the validation fold itself.

    Args:
        output_dir: this evaluation's output folder.
        run_dir: the training run folder.
        ckpt_path: the evaluated checkpoint.
        dataset_dir: the evaluated prepared dataset.
        records: the evaluated records.
    """

    def __init__(self, output_dir: str, run_dir: str, ckpt_path: str, dataset_dir: str, records: str = "val") -> None:
        self.output_dir, self.run_dir, self.ckpt_path = output_dir, run_dir, ckpt_path
        self.dataset_dir, self.records = dataset_dir, records

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine | None = None) -> None:
        from medpipe.engines.distributed import is_main_rank
        from medpipe.evaluation.external import compare_with_internal, to_markdown

        if not is_main_rank():
            return
        c = compare_with_internal(self.output_dir, self.run_dir, self.ckpt_path, self.dataset_dir, self.records)
        if c is not None:
            log.info("internal vs %s:\n%s", "held-out" if c["same_dataset"] else "external", to_markdown(c))
