"""Training: :class:`YoloTrainer` (ultralytics' trainer, medpipe's outputs) and ultralytics' results.csv as a history.

Ultralytics (AGPL-3.0) is used as a library: its ``YOLO`` object trains; this module resumes an
interrupted run, mirrors each epoch's ``results.csv`` row to TensorBoard and ``history.json``, and
leaves medpipe's checkpoint files (``models/model.pt``, ``model_state_dict.pt``, ``model.yaml``).
The number of classes and their names come from the data.yaml (:func:`medpipe.detection.data.fold_data_yaml`).

Grayscale input: the prepared slices are 8-bit single-channel PNGs, which ultralytics decodes as
3-channel BGR with three identical channels. Colour (hue, saturation) augmentations are no-ops on
such images; brightness, flips, mosaic, scale, translate act as on any image.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from medpipe.detection.env import prepare_ultralytics_env, ul_device
from medpipe.detection.network import check_model_arg, load_yolo
from medpipe.utils.fs import atomic_write_text

log = logging.getLogger("medpipe")

__all__ = ["YoloTrainer", "read_results_csv", "RESULTS_COLUMNS"]

#: ultralytics results.csv column -> medpipe history key
RESULTS_COLUMNS = {
    "train/box_loss": "box_loss", "train/cls_loss": "cls_loss", "train/dfl_loss": "dfl_loss",
    "val/box_loss": "val_box_loss", "val/cls_loss": "val_cls_loss", "val/dfl_loss": "val_dfl_loss",
    "metrics/precision(B)": "precision", "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "map50", "metrics/mAP50-95(B)": "map50_95", "lr/pg0": "lr",
}


def read_results_csv(path: str | os.PathLike) -> dict[str, list]:
    """ultralytics' ``results.csv`` as a medpipe history: ``epoch`` and one list per :data:`RESULTS_COLUMNS` key."""
    path = Path(path)
    hist: dict[str, list] = {"epoch": []}
    if not path.is_file():
        return hist
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            row = {k.strip(): v for k, v in row.items() if k}
            try:
                hist["epoch"].append(int(float(row["epoch"])))
            except (KeyError, ValueError):
                continue
            for col, key in RESULTS_COLUMNS.items():
                try:
                    v = float(row[col])
                except (KeyError, TypeError, ValueError):
                    v = None
                hist.setdefault(key, []).append(None if v is None or not math.isfinite(v) else v)
    return hist


class YoloTrainer:
    """Train a YOLOv8 detector from scratch (or from a local .pt) with ultralytics; write medpipe's outputs.

    Files under ``output_dir``: ``train/`` (ultralytics' run: ``weights/{best,last}.pt``,
    ``results.csv``, its plots), ``models/model.pt`` (copy of ``best.pt``: an ultralytics checkpoint),
    ``models/model_state_dict.pt`` (plain state_dict), ``models/model.yaml`` (architecture),
    ``tb/`` (epoch scalars), ``history.json`` and ``eval/training_curves.png``.

    Args:
        data: a data.yaml (see :func:`medpipe.detection.data.fold_data_yaml`); its ``names`` set the classes.
        output_dir: the run folder.
        model: ``yolov8n.yaml`` (default), ``yolov8s.yaml``, ``yolov8m.yaml`` or a local ``.pt``.
        image_size: training size (``imgsz``; slices are letterboxed to it).
        max_epochs: epochs.
        batch_size: images per batch.
        patience: early stopping after this many epochs without a better fitness (0.1 mAP50 + 0.9 mAP50-95).
        device: ``cpu``, ``cuda``, ``cuda:1`` or ultralytics' ``0``/``0,1``.
        seed: random seed.
        workers: dataloader workers (ultralytics uses 0 on CPU).
        amp: mixed precision on CUDA. True makes ultralytics run its AMP check, which wants to download
            a model; offline it falls back after a warning.
        resume: continue ``output_dir/train/weights/last.pt`` when a run there was interrupted (a
            finished run is retrained from scratch).
        time_limit_s: stop after this many seconds (ultralytics' ``time``), None for no limit.
        args: further ultralytics train arguments (``{"mosaic": 0.0, "lr0": 0.005}``); they win.
        config_dir: see :func:`medpipe.detection.env.prepare_ultralytics_env`.

    Example:
        >>> YoloTrainer(fold_data_yaml("data/phe-sich", 0, "runs/d/data"), "runs/d", max_epochs=5).run()  # doctest: +SKIP
    """

    def __init__(self, data: str, output_dir: str, model: str = "yolov8n.yaml", image_size: int = 512,
                 max_epochs: int = 100, batch_size: int = 16, patience: int = 20, device="cpu", seed: int = 12345,
                 workers: int = 2, amp: bool = False, resume: bool = True, time_limit_s: float | None = None,
                 args: dict | None = None, config_dir: str | None = None) -> None:
        self.data, self.output_dir = str(data), Path(output_dir).expanduser().absolute()
        self.model = check_model_arg(model)
        self.image_size, self.max_epochs, self.batch_size = int(image_size), int(max_epochs), int(batch_size)
        self.patience, self.device, self.seed, self.workers = int(patience), device, int(seed), int(workers)
        self.amp, self.resume, self.time_limit_s = bool(amp), bool(resume), time_limit_s
        self.args = dict(args or {})
        self.config_dir = config_dir
        self._writer = None
        self._tb_done = 0
        self._t0 = 0.0
        self._first_epoch = 0

    @property
    def run_dir(self) -> Path:
        return self.output_dir / "train"

    def _resumable(self) -> Path | None:
        last = self.run_dir / "weights" / "last.pt"
        if not (self.resume and last.is_file()):
            return None
        import torch

        try:
            ckpt = torch.load(last, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - a broken last.pt means: start again
            log.warning("%s unreadable (%s); starting a new training", last, e)
            return None
        if ckpt.get("epoch", -1) >= 0 and ckpt.get("optimizer") is not None:
            return last
        log.info("%s is from a finished run; starting a new training in %s", last, self.run_dir)
        return None

    def _epoch_end(self, trainer) -> None:
        hist = read_results_csv(trainer.csv)
        if not hist["epoch"] or hist["epoch"][-1] <= self._tb_done:
            return  # ultralytics' final validation of best.pt calls this again without a new epoch
        self._write_history(hist)
        e, total = int(trainer.epoch) + 1, int(trainer.epochs)
        done = max(1, e - self._first_epoch)
        el = time.perf_counter() - self._t0
        i = len(hist["epoch"]) - 1
        if i < 0:
            return
        parts = [f"{k} {hist[k][i]:.4f}" for k in ("box_loss", "cls_loss", "dfl_loss", "precision", "recall", "map50",
                                                    "map50_95") if hist.get(k) and hist[k][i] is not None]
        log.info("epoch %d/%d: %s (%.0f s elapsed, ETA %.0f s)", e, total, ", ".join(parts), el,
                 (total - e) * el / done)

    def _write_history(self, hist: dict) -> None:
        if not hist["epoch"]:
            return
        atomic_write_text(self.output_dir / "history.json", json.dumps(hist, indent=1))
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.output_dir / "tb"))
        for i, e in enumerate(hist["epoch"]):
            if e <= self._tb_done:
                continue
            for k, vals in hist.items():
                if k != "epoch" and vals[i] is not None:
                    self._writer.add_scalar(f"epoch/{k}", vals[i], e)
            self._tb_done = e
        self._writer.flush()

    def run(self) -> dict:
        """Train; return a summary (epochs, best epoch, final metrics, paths)."""
        prepare_ultralytics_env(self.config_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        last = self._resumable()
        yolo = load_yolo(str(last) if last else self.model)
        yolo.add_callback("on_fit_epoch_end", self._epoch_end)
        self._t0 = time.perf_counter()
        if last:
            hist = read_results_csv(self.run_dir / "results.csv")
            self._tb_done = self._first_epoch = max(hist["epoch"] or [0])
            log.info("resuming from %s after epoch %d (ultralytics keeps the interrupted run's settings)",
                     last, self._first_epoch)
            yolo.train(resume=True, data=self.data, device=ul_device(self.device), workers=self.workers)
        else:
            for f in (self.output_dir / "tb").glob("events.out.tfevents.*"):  # a new run: no stale curves
                f.unlink()
            kwargs = dict(data=self.data, epochs=self.max_epochs, imgsz=self.image_size, batch=self.batch_size,
                          patience=self.patience, device=ul_device(self.device), seed=self.seed,
                          workers=self.workers, amp=self.amp, project=str(self.output_dir), name="train",
                          exist_ok=True, plots=True, verbose=True, resume=False)
            if self.time_limit_s:
                kwargs["time"] = float(self.time_limit_s) / 3600.0
            kwargs.update(self.args)
            log.info("training %s on %s for %d epochs at %d px (device %s); ultralytics' run folder: %s",
                     self.model, self.data, self.max_epochs, self.image_size, kwargs["device"], self.run_dir)
            yolo.train(**kwargs)
        return self._finish()

    def _finish(self) -> dict:
        import torch

        hist = read_results_csv(self.run_dir / "results.csv")
        self._write_history(hist)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        weights = self.run_dir / "weights"
        best = weights / "best.pt" if (weights / "best.pt").is_file() else weights / "last.pt"
        if not best.is_file():
            raise RuntimeError(f"ultralytics finished without a checkpoint in {weights}")
        models = self.output_dir / "models"
        models.mkdir(parents=True, exist_ok=True)
        tmp = models / f".model.pt.tmp-{os.getpid()}"
        shutil.copyfile(best, tmp)
        os.replace(tmp, models / "model.pt")
        net = load_yolo(str(models / "model.pt")).model.float().eval()
        state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        tmp = models / f".model_state_dict.pt.tmp-{os.getpid()}"
        torch.save(state, tmp)
        os.replace(tmp, models / "model_state_dict.pt")
        import yaml

        atomic_write_text(models / "model.yaml", "# architecture of model_state_dict.pt (ultralytics DetectionModel); "
                     "medpipe.detection.network.build_network('model.yaml') rebuilds it\n"
                     + yaml.safe_dump(json.loads(json.dumps(dict(net.yaml), default=str)), sort_keys=False))
        if hist["epoch"]:
            from medpipe.visualization.plots import plot_curves

            plot_curves({k: v for k, v in hist.items() if k not in ("epoch", "lr")},
                        self.output_dir / "eval" / "training_curves.png", title="YOLOv8 training")
        fit = [0.1 * (a or 0.0) + 0.9 * (b or 0.0) for a, b in zip(hist.get("map50", []), hist.get("map50_95", []))]
        best_i = int(np.argmax(fit)) if fit else None
        summary = {"epochs": len(hist["epoch"]), "best_epoch": hist["epoch"][best_i] if best_i is not None else None,
                   "checkpoint": str(models / "model.pt"),
                   **({k: hist[k][best_i] for k in ("map50", "map50_95", "precision", "recall")}
                      if best_i is not None else {})}
        log.info("training done: %d epochs; best epoch %s (mAP50 %s, mAP50-95 %s); wrote %s", summary["epochs"],
                 summary["best_epoch"], _f(summary.get("map50")), _f(summary.get("map50_95")), models / "model.pt")
        return summary


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"
