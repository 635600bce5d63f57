"""Training: :class:`YoloTrainer` (ultralytics' trainer, medpipe's outputs) and ultralytics' results.csv as a history.

Ultralytics (AGPL-3.0) is used as a library: its ``YOLO`` object trains; this module resumes an
interrupted run, mirrors each epoch's ``results.csv`` row to TensorBoard (:data:`TB_TAGS`: the
``train/...``, ``val/...`` names of the MONAI-engine bundles) and ``history.json``, draws the
current model's boxes on a few fixed validation slices after each epoch (TensorBoard
``val/overlays``), and leaves medpipe's checkpoint files (``models/model.pt``,
``model_state_dict.pt``, ``model.yaml``).
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
from medpipe.utils.logs import duration, sig

log = logging.getLogger("medpipe")

__all__ = ["YoloTrainer", "read_results_csv", "train_device", "RESULTS_COLUMNS", "TB_TAGS", "OVERLAY_TAG",
           "decode_boxes"]

#: ultralytics results.csv column -> medpipe history key
RESULTS_COLUMNS = {
    "train/box_loss": "box_loss", "train/cls_loss": "cls_loss", "train/dfl_loss": "dfl_loss",
    "val/box_loss": "val_box_loss", "val/cls_loss": "val_cls_loss", "val/dfl_loss": "val_dfl_loss",
    "metrics/precision(B)": "precision", "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "map50", "metrics/mAP50-95(B)": "map50_95", "lr/pg0": "lr",
}
#: medpipe history key -> TensorBoard tag (the scheme of :mod:`medpipe.handlers.tensorboard`)
TB_TAGS = {
    "box_loss": "train/box_loss", "cls_loss": "train/cls_loss", "dfl_loss": "train/dfl_loss", "lr": "train/lr",
    "val_box_loss": "val/box_loss", "val_cls_loss": "val/cls_loss", "val_dfl_loss": "val/dfl_loss",
    "precision": "val/precision", "recall": "val/recall", "map50": "val/map50", "map50_95": "val/map50_95",
}
#: the image tag of the per-epoch overlay grid (as the MONAI-engine bundles')
OVERLAY_TAG = "val/overlays"
#: ultralytics' own experiment loggers, off in medpipe's trainings: each logs wherever it likes as soon as its
#: package is installed (mlflow: an ``mlflow.db`` and ``mlruns/`` in the working folder); ``medpipe train
#: --tracking mlflow`` records the run in medpipe's store instead (:mod:`medpipe.engines.tracking`)
ULTRALYTICS_LOGGERS = ("clearml", "comet", "dvc", "mlflow", "raytune", "wandb")


def disable_ultralytics_loggers() -> None:
    """Turn :data:`ULTRALYTICS_LOGGERS` off for this process (ultralytics reads them per trainer); the
    settings file in ``YOLO_CONFIG_DIR`` is left as it is."""
    from ultralytics.utils import SETTINGS

    for key in ULTRALYTICS_LOGGERS:
        if SETTINGS.get(key) is True:
            dict.__setitem__(SETTINGS, key, False)  # in memory only: SETTINGS[key] = ... would rewrite the file


def train_device(device, distributed: bool = False):
    """The ``device`` argument of ultralytics' ``train``: one device (``cpu``, ``0``...), or with
    ``distributed`` every visible GPU as a list (``[0, 1, ...]``), which makes ultralytics train with
    its own DDP: it starts ``torch.distributed.run`` with one process per GPU itself.

    Args:
        device: the bundle's ``device`` (``cpu``, ``cuda``, ``cuda:1``...; see
            :func:`medpipe.detection.env.ul_device`); with ``distributed`` it must be a CUDA device.
        distributed: the ``distributed`` id that ``multi_gpu_train.json`` sets; the GPUs are those
            ``CUDA_VISIBLE_DEVICES`` leaves visible.

    Raises:
        UserError: ``distributed`` under torchrun (ultralytics starts its own processes), on a CPU
            device, or with fewer than 2 GPUs.

    Example:
        >>> train_device("cuda:1"), train_device("cpu")
        ('1', 'cpu')
    """
    if not distributed:
        return ul_device(device)
    import torch

    from medpipe.errors import UserError

    overlay = "multi_gpu_train.json (distributed: true)"
    if "LOCAL_RANK" in os.environ:
        raise UserError(f"{overlay} of an ultralytics-engine bundle is not started with torchrun: ultralytics "
                        f"starts one process per GPU itself. Run `python -m monai.bundle run --config_file "
                        f"\"['bundles/B/configs/train.json','bundles/B/configs/multi_gpu_train.json']\"` (or "
                        f"`medpipe train B --distributed true`) without torchrun.")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n >= 2 and not str(device).strip().lower().startswith("cuda"):
        raise UserError(f"{overlay} with --device {device}: multi-GPU training runs on the {n} CUDA GPUs of this "
                        f"machine; leave --device out (or choose GPUs with CUDA_VISIBLE_DEVICES).")
    if n < 2:
        raise UserError(f"{overlay}: multi-GPU training needs at least 2 CUDA GPUs and this machine has {n} "
                        f"(torch {torch.__version__}, device {device}). Train on one device with train.json "
                        f"alone (leave --distributed false).")
    return list(range(n))


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
        distributed: train on every visible GPU through ultralytics' own DDP (:func:`train_device`).
            Ultralytics pickles this object's epoch callback into its DDP processes, where rank 0
            writes TensorBoard, ``history.json`` and the overlays as in single-device training (the
            other ranks skip it); medpipe's per-epoch log line may not show there (ultralytics prints
            its own).
        overlay_records: validation records (``image``, ``patient``, ``slice``, ``boxes`` in pixels)
            from which a few fixed slices are drawn with the current model's boxes after each epoch
            (TensorBoard ``val/overlays``; :func:`medpipe.visualization.overlays.pick_slices`); None: no overlays.
        overlay_conf: confidence of the boxes drawn.
        n_overlays: how many slices.

    Example:
        >>> YoloTrainer(fold_data_yaml("data/phe-sich", 0, "runs/d/data"), "runs/d", max_epochs=5).run()  # doctest: +SKIP
    """

    def __init__(self, data: str, output_dir: str, model: str = "yolov8n.yaml", image_size: int = 512,
                 max_epochs: int = 100, batch_size: int = 16, patience: int = 20, device="cpu", seed: int = 12345,
                 workers: int = 2, amp: bool = False, resume: bool = True, time_limit_s: float | None = None,
                 args: dict | None = None, config_dir: str | None = None,
                 overlay_records: list[dict] | None = None, overlay_conf: float = 0.25, n_overlays: int = 4,
                 distributed: bool = False) -> None:
        self.data, self.output_dir = str(data), Path(output_dir).expanduser().absolute()
        self.model = check_model_arg(model)
        self.image_size, self.max_epochs, self.batch_size = int(image_size), int(max_epochs), int(batch_size)
        self.patience, self.device, self.seed, self.workers = int(patience), device, int(seed), int(workers)
        self.amp, self.resume, self.time_limit_s = bool(amp), bool(resume), time_limit_s
        self.args = dict(args or {})
        self.config_dir = config_dir
        self.distributed = bool(distributed)
        self._writer = None
        self._tb_done = 0
        self._t0 = 0.0
        self._first_epoch = 0
        self.overlay_records, self.overlay_conf, self.n_overlays = overlay_records, float(overlay_conf), int(n_overlays)
        self._picked: list[dict] | None = None
        self._overlays_failed = False

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
        if int(os.environ.get("RANK", "-1")) > 0:
            return  # ultralytics' DDP runs the callbacks on every rank; rank 0 alone writes
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
        self._write_overlays(trainer, hist["epoch"][i])
        parts = [f"{k} {sig(hist[k][i])}" for k in ("box_loss", "cls_loss", "dfl_loss", "precision", "recall", "map50",
                                                     "map50_95") if hist.get(k) and hist[k][i] is not None]
        # ultralytics writes best.pt when this epoch's fitness is the best so far
        best = trainer.fitness is not None and trainer.best_fitness == trainer.fitness
        log.info("epoch %d/%d: %s%s (%s elapsed, ETA %s)", e, total, ", ".join(parts), ", new best" if best else "",
                 duration(el), duration((total - e) * el / done))

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
                    self._writer.add_scalar(TB_TAGS.get(k, f"val/{k}"), vals[i], e)
            self._tb_done = e
        self._writer.flush()

    def _write_overlays(self, trainer, epoch: int) -> None:
        """``val/overlays`` at ``epoch``: the fixed slices with true (green) and predicted (red) boxes."""
        if not self.overlay_records or self._overlays_failed or self._writer is None:
            return
        try:
            grid = self._render_overlays(trainer)
        except Exception as e:  # noqa: BLE001 - a picture must never stop a training
            self._overlays_failed = True
            log.warning("TensorBoard overlays disabled for this run: %s: %s", type(e).__name__, e)
            return
        self._writer.add_image(OVERLAY_TAG, grid, epoch, dataformats="HWC")
        self._writer.flush()

    def _render_overlays(self, trainer) -> np.ndarray:
        import torch
        from PIL import Image

        from medpipe.visualization.overlays import boxes_tile, pick_slices, tile_grid

        if self._picked is None:
            self._picked = [dict(r) for r in pick_slices(self.overlay_records, self.n_overlays)]
            for r in self._picked:
                with Image.open(r["image"]) as im:
                    r["_gray"] = np.asarray(im.convert("L"))
        # the weights ultralytics validates and saves: the EMA
        model = getattr(getattr(trainer, "ema", None), "ema", None)
        model = trainer.model if model is None else model
        model = getattr(model, "module", model)
        p = next(model.parameters())
        size = int(trainer.args.imgsz)
        x, frames = zip(*(_letterbox(r["_gray"], size) for r in self._picked))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model(torch.stack(x).to(device=p.device, dtype=p.dtype))
        finally:
            model.train(was_training)
        preds = decode_boxes(out, self.overlay_conf, nc=int(getattr(model, "nc", 0) or 0) or None)
        tiles = []
        for r, (boxes, scores), (scale, left, top) in zip(self._picked, preds, frames):
            h, w = r["_gray"].shape
            boxes = boxes.copy()
            boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - left) / scale).clip(0, w)
            boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - top) / scale).clip(0, h)
            cap = f"{r.get('patient', '?')}/{int(r.get('slice', 0) or 0):02d}  {len(r.get('boxes') or [])} true, " \
                  f"{len(boxes)} predicted"
            tiles.append(boxes_tile(r["_gray"], r.get("boxes") or [], boxes, scores.tolist(), caption=cap))
        return tile_grid(tiles, ncols=len(tiles))

    def train_kwargs(self) -> dict:
        """The arguments of ultralytics' ``train`` for a new run (``args`` last: they win)."""
        kwargs = dict(data=self.data, epochs=self.max_epochs, imgsz=self.image_size, batch=self.batch_size,
                      patience=self.patience, device=train_device(self.device, self.distributed), seed=self.seed,
                      workers=self.workers, amp=self.amp, project=str(self.output_dir), name="train",
                      exist_ok=True, plots=True, verbose=True, resume=False)
        if self.time_limit_s:
            kwargs["time"] = float(self.time_limit_s) / 3600.0
        kwargs.update(self.args)
        return kwargs

    def run(self) -> dict:
        """Train; return a summary (epochs, best epoch, final metrics, paths)."""
        prepare_ultralytics_env(self.config_dir)
        disable_ultralytics_loggers()
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
            yolo.train(resume=True, data=self.data, device=train_device(self.device, self.distributed),
                       workers=self.workers)
        else:
            for f in (self.output_dir / "tb").glob("events.out.tfevents.*"):  # a new run: no stale curves
                f.unlink()
            kwargs = self.train_kwargs()
            if self.distributed:
                log.info("multi-GPU: ultralytics trains on GPUs %s in DDP processes of its own (its progress "
                         "output follows)", kwargs["device"])
            log.info("training %s on %s for %d epochs at %d px (device %s); ultralytics' run folder: %s",
                     self.model, self.data, self.max_epochs, self.image_size, kwargs["device"], self.run_dir)
            yolo.train(**kwargs)
        return self._finish()

    def _finish(self) -> dict:
        import torch

        hist = read_results_csv(self.run_dir / "results.csv")
        if self.distributed and hist["epoch"]:
            self._tb_done = max(self._tb_done, hist["epoch"][-1])  # rank 0 of ultralytics' DDP wrote the scalars
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
        # the last of equally fit epochs: ultralytics rewrites best.pt when an epoch ties the best fitness
        best_i = max(range(len(fit)), key=lambda i: (fit[i], i)) if fit else None
        summary = {"epochs": len(hist["epoch"]), "best_epoch": hist["epoch"][best_i] if best_i is not None else None,
                   "checkpoint": str(models / "model.pt"),
                   **({k: hist[k][best_i] for k in ("map50", "map50_95", "precision", "recall")}
                      if best_i is not None else {})}
        log.info("training done: %d epochs; best epoch %s (mAP50 %s, mAP50-95 %s); wrote %s", summary["epochs"],
                 summary["best_epoch"], sig(summary.get("map50")), sig(summary.get("map50_95")), models / "model.pt")
        return summary


def _letterbox(gray: np.ndarray, size: int):
    """A gray slice as the detector's input: 3 channels in [0, 1], resized to fit ``size`` x ``size`` with
    its aspect ratio kept and padded with ultralytics' gray (114); returns ``(tensor, (scale, left, top))``."""
    import torch

    h, w = gray.shape
    scale = min(size / h, size / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    t = torch.from_numpy(np.array(gray, dtype=np.float32))[None, None] / 255.0
    if (nh, nw) != (h, w):
        t = torch.nn.functional.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False)
    top, left = (size - nh) // 2, (size - nw) // 2
    out = torch.full((1, 1, size, size), 114.0 / 255.0)
    out[..., top:top + nh, left:left + nw] = t
    return out[0].expand(3, -1, -1), (scale, left, top)


def decode_boxes(out, conf: float = 0.25, iou: float = 0.7, max_det: int = 20, nc: int | None = None):
    """Boxes per image from a YOLO detection model's eval output: ``[(xyxy (N, 4), scores (N,)), ...]``.

    ``out`` is the decoded head tensor ``(B, 4 + classes, anchors)`` (centre x, centre y, width,
    height in input pixels, then class scores), possibly inside a tuple, or an end-to-end model's
    ``(B, N, 6)`` (x0, y0, x1, y1, score, class). Boxes under ``conf`` are dropped, then class-wise
    non-maximum suppression at ``iou`` keeps at most ``max_det`` per image.
    """
    import torch
    from torchvision.ops import batched_nms

    while isinstance(out, (list, tuple)):
        out = out[0]
    out = out.detach().float().cpu()
    res = []
    end2end = out.shape[-1] == 6 and (nc is None or out.shape[1] != 4 + nc)
    for o in out:
        if end2end:
            boxes, scores, cls = o[:, :4], o[:, 4], o[:, 5].long()
        else:
            xywh, cls_scores = o[:4].T, o[4:].T
            scores, cls = cls_scores.max(1)
            boxes = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
        keep = scores >= conf
        boxes, scores, cls = boxes[keep], scores[keep], cls[keep]
        if not end2end and len(boxes):
            keep = batched_nms(boxes, scores, cls, iou)[:max_det]
            boxes, scores = boxes[keep], scores[keep]
        order = scores.argsort(descending=True)[:max_det]
        res.append((boxes[order].numpy().astype(np.float64), scores[order].numpy().astype(np.float64)))
    return res
