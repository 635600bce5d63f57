"""YOLOv8 detection of perihaematomal oedema boxes, with ultralytics as the engine.

Ultralytics (AGPL-3.0) is used as a library only: its ``YOLO`` object trains, validates, predicts
and exports; this module prepares its inputs (a data.yaml per medpipe fold), keeps it offline, and
turns its outputs into medpipe's (``models/model.pt``, TensorBoard, ``history.json``,
``eval/metrics.json`` with the CONTRACT keys, slice-level metrics, box overlays, CSV/JSON predictions).

Facts a user of the bundle relies on:

* **Offline.** :func:`prepare_ultralytics_env` must run before ultralytics is imported: it sets
  ``YOLO_OFFLINE=1`` (no DNS probes), points ``YOLO_CONFIG_DIR`` at a folder medpipe owns, puts a
  copy of matplotlib's DejaVuSans as ``Arial.ttf``/``Arial.Unicode.ttf`` there (ultralytics would
  download them for its plots), and sets the torch thread count explicitly (ultralytics resets it to
  ``cpu_count - 1`` on CPU, i.e. 1 on a 2-core machine). Models are built from ``yolov8{n,s,m}.yaml``
  (no hub download); a ``.pt`` must be a local file.
* **Grayscale input.** The prepared slices are 8-bit single-channel PNGs. Ultralytics decodes them
  with OpenCV as 3-channel BGR, i.e. three identical channels; the network keeps the standard
  3-channel input (``ch=3``) so that exported files are ordinary YOLOv8 models. Colour (hue,
  saturation) augmentations are no-ops on such images; brightness, flips, mosaic, scale, translate
  act as on any image.
* **Checkpoints.** ``models/model.pt`` is an *ultralytics checkpoint* (a pickled dict holding the
  network object, loaded with ``ultralytics.YOLO(path)``), not a plain state_dict, because the
  detector's network class is ultralytics'. ``models/model_state_dict.pt`` holds the plain state_dict
  (``torch.load(..., weights_only=True)``) and ``models/model.yaml`` the architecture it belongs to
  (``build_network("models/model.yaml")`` rebuilds the module).
* **Folds.** :func:`fold_data_yaml` writes a data.yaml whose train/val lists are chosen from
  ``datalist.json`` by the bundle's ``fold``; the YOLO export's own train/val folders (cut at
  prepare's ``--val-fold``) only supply the files.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medpipe.errors import DataError, UserError

log = logging.getLogger("medpipe")

__all__ = [
    "prepare_ultralytics_env", "fold_data_yaml", "label_path", "build_network", "YoloTrainer", "YoloEvaluator",
    "YoloPredictor", "export_yolo", "yolo_parity", "export_yolo_cli", "box_prediction_rows",
    "slice_prediction_rows", "conf_sweep", "BOX_COLUMNS", "SLICE_COLUMNS",
]

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
YOLO_SPLITS = ("train", "val", "test")
#: columns of predictions.csv (one row per predicted box, or one "none" row per slice without a box)
BOX_COLUMNS = ("patient", "slice", "image", "box_index", "xmin", "ymin", "xmax", "ymax", "confidence", "label")
#: columns of slice_predictions.csv (one row per slice; probability = highest box confidence or 0)
SLICE_COLUMNS = ("patient", "slice", "image", "probability", "prediction", "label")
#: ultralytics results.csv column -> medpipe history key
RESULTS_COLUMNS = {
    "train/box_loss": "box_loss", "train/cls_loss": "cls_loss", "train/dfl_loss": "dfl_loss",
    "val/box_loss": "val_box_loss", "val/cls_loss": "val_cls_loss", "val/dfl_loss": "val_dfl_loss",
    "metrics/precision(B)": "precision", "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "map50", "metrics/mAP50-95(B)": "map50_95", "lr/pg0": "lr",
}
#: default confidence thresholds of the slice-level sweep
SWEEP_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
EXPORT_TOLERANCE = 1e-4

_STATE: dict = {"threads": None}


# ------------------------------------------------------------------ environment
def prepare_ultralytics_env(config_dir: str | os.PathLike | None = None, threads: int | None = None) -> Path:
    """Make ultralytics safe to import and run offline; idempotent.

    Call it before anything imports ultralytics (the bundle configs do so in ``initialize``).

    Args:
        config_dir: folder for ultralytics' settings and fonts (``YOLO_CONFIG_DIR``). Default: the
            ``YOLO_CONFIG_DIR`` already set, else ``medpipe``'s cache folder (a temp folder unless
            ``MEDPIPE_CACHE`` says otherwise). Ignored with a warning once ultralytics is imported.
        threads: torch CPU threads; default: the value an earlier call chose, else ``OMP_NUM_THREADS``
            when set, else the usable cores minus one (at least 1). On a CPU shared with other busy
            processes, more threads than free cores makes OpenMP spin: one YOLOv8n epoch at 128 px on
            the 2-core demo machine took 2 s with 1 thread and 6-60 s with 2 threads next to another job.

    Returns:
        The config folder ultralytics uses.

    Example:
        >>> prepare_ultralytics_env()  # doctest: +SKIP
        PosixPath('/tmp/medpipe-cache-0/ultralytics')
    """
    import torch

    from medpipe.utils.env import offline_env

    imported = "ultralytics" in sys.modules
    if config_dir and not imported:
        os.environ["YOLO_CONFIG_DIR"] = str(Path(config_dir).expanduser().absolute())
    offline_env()  # YOLO_OFFLINE=1, HF_HUB_OFFLINE=1, cache folders (values already set win)
    # ultralytics keeps its settings and looks for fonts in YOLO_CONFIG_DIR/Ultralytics
    # (utils.get_user_config_dir); the top folder gets a copy too for older releases
    dirs = [Path(os.environ["YOLO_CONFIG_DIR"]), Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"]
    if imported:
        from ultralytics.utils import USER_CONFIG_DIR

        if config_dir and Path(config_dir).absolute() != Path(USER_CONFIG_DIR).absolute():
            log.warning("ultralytics was imported before prepare_ultralytics_env: it keeps its config folder %s "
                        "(asked: %s)", USER_CONFIG_DIR, config_dir)
        dirs = [Path(USER_CONFIG_DIR)]
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        for name in FONT_NAMES:
            dst = d / name
            if not dst.is_file() or dst.stat().st_size == 0:
                tmp = d / f".{name}.tmp-{os.getpid()}"
                shutil.copyfile(font, tmp)
                os.replace(tmp, dst)
    if threads is None:
        threads = _STATE["threads"] or 0
    if not threads:
        env = os.environ.get("OMP_NUM_THREADS")
        threads = int(env) if env and env.isdigit() and int(env) > 0 and not imported else 0
    if not threads:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = cores - 1
    threads = max(1, int(threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # else ultralytics' import sets 1
    torch.set_num_threads(threads)
    _STATE["threads"] = threads
    return dirs[0]


def _restore_threads(*_) -> None:
    """Ultralytics' device selection sets torch threads to ``cpu_count - 1``: put ours back (a callback)."""
    if _STATE["threads"]:
        import torch

        torch.set_num_threads(_STATE["threads"])


_THREAD_EVENTS = ("on_pretrain_routine_start", "on_train_start", "on_val_start", "on_predict_start",
                  "on_export_start")


def _check_model_arg(model: str) -> str:
    m = str(model)
    if m.endswith((".yaml", ".yml")):
        return m
    if m.endswith(".pt"):
        if not Path(m).expanduser().is_file():
            raise UserError(f"model {m!r}: no such file. Hub weights are not downloaded: give a local .pt path, "
                            f"or build from an architecture, e.g. --model yolov8n.yaml (or yolov8s.yaml, yolov8m.yaml).")
        return str(Path(m).expanduser().absolute())
    raise UserError(f"model {m!r}: expected an architecture (yolov8n.yaml, yolov8s.yaml, yolov8m.yaml or a local "
                    f".yaml file) or a local .pt checkpoint.")


def _load_yolo(model: str):
    """``ultralytics.YOLO(model)`` with medpipe's thread callbacks (env prepared first)."""
    if _STATE["threads"] is None:
        prepare_ultralytics_env()
    from ultralytics import YOLO

    yolo = YOLO(model, task="detect")
    for ev in _THREAD_EVENTS:
        yolo.add_callback(ev, _restore_threads)
    return yolo


def _load_checkpoint_model(ckpt_path) -> object:
    p = Path(ckpt_path).expanduser()
    if not p.is_file():
        raise UserError(f"--ckpt_path {p}: not found; train first (medpipe train sich_det) or point at "
                        f"runs/sich_det/models/model.pt.")
    return _load_yolo(str(p.absolute()))


def _ul_device(device) -> str:
    """medpipe/torch device (``cpu``, ``cuda``, ``cuda:1``, ``torch.device``) -> ultralytics' (``cpu``, ``0``, ``1``)."""
    s = str(device).strip().lower() if device is not None else ""
    if s in ("", "none"):
        import torch

        return "0" if torch.cuda.is_available() else "cpu"
    if s.startswith("cuda"):
        return s.partition(":")[2] or "0"
    return s


def _ckpt_imgsz(yolo, default: int = 640) -> int:
    v = ((getattr(yolo, "ckpt", None) or {}).get("train_args") or {}).get("imgsz")
    if v is None:
        margs = getattr(yolo.model, "args", None)
        v = margs.get("imgsz") if isinstance(margs, dict) else getattr(margs, "imgsz", None)
    try:
        return int(v[0] if isinstance(v, (list, tuple)) else v)
    except (TypeError, ValueError):
        return default


def build_network(model: str = "yolov8n.yaml", num_classes: int = 1, channels: int = 3, raw_output: bool = False):
    """The detector's torch module (ultralytics ``DetectionModel``), e.g. to load ``model_state_dict.pt``.

    Args:
        model: an architecture (``yolov8n.yaml``, ``models/model.yaml`` written by training) or a local
            ultralytics ``.pt`` (its network is returned, in float32).
        num_classes: number of box classes (1: phe).
        channels: input channels (3: the gray slice repeated, as ultralytics feeds it).
        raw_output: in eval mode return only the decoded head tensor (1 x (4 + classes) x anchors),
            as ultralytics' exporter does, instead of ``(tensor, per-level maps)``: what
            ``python -m monai.bundle ckpt_export|onnx_export network_def`` needs to trace the network.

    Example:
        >>> net = build_network("runs/sich_det/models/model.yaml")  # doctest: +SKIP
        >>> sd = torch.load("runs/sich_det/models/model_state_dict.pt", weights_only=True)  # doctest: +SKIP
        >>> net.load_state_dict(sd)  # doctest: +SKIP
    """
    model = _check_model_arg(model)
    if _STATE["threads"] is None:
        prepare_ultralytics_env()
    if model.endswith(".pt"):
        net = _load_yolo(model).model.float()
    else:
        from ultralytics.nn.tasks import DetectionModel

        net = DetectionModel(cfg=model, ch=int(channels), nc=int(num_classes), verbose=False)
    if raw_output:
        head = net.model[-1]
        head.export = True  # the Detect head's own switch: eval output = the decoded tensor only
        head.dynamic = True  # rebuild anchors every call, so two traced calls give the same graph
    return net


# ------------------------------------------------------------------ data
def label_path(image_path: str | os.PathLike) -> Path:
    """Where ultralytics looks for an image's labels: the last ``/images/`` -> ``/labels/``, suffix ``.txt``."""
    s = os.fspath(image_path)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa not in s:
        raise DataError(f"{s}: not inside an images/ folder, so ultralytics cannot find its labels.")
    head, _, tail = s.rpartition(sa)
    return Path(head + sb + os.path.splitext(tail)[0] + ".txt")


def _yolo_index(yolo_dir: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for split in YOLO_SPLITS:
        d = yolo_dir / "images" / split
        if d.is_dir():
            for p in d.iterdir():
                if p.name in index:
                    raise DataError(f"{yolo_dir}/images: {p.name} is in two splits; re-run `medpipe prepare phe-sich`.")
                index[p.name] = p
    return index


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def fold_data_yaml(dataset_dir: str | os.PathLike, fold: int, out_dir: str | os.PathLike,
                   class_name: str | None = None) -> str:
    """Write a ultralytics data.yaml for one medpipe fold; return its path.

    ``val`` lists the datalist records with ``fold == fold``, ``train`` all other folds, ``test`` the
    held-out patients when the datalist has them. The lists are TXT files of absolute image paths
    under ``dataset_dir/yolo/images/*`` (whichever of prepare's train/val/test folders holds the
    file); ultralytics finds each label by replacing ``/images/`` with ``/labels/``, which is checked
    here for every image, together with the number of boxes against the datalist.

    Args:
        dataset_dir: the folder ``medpipe prepare phe-sich`` wrote.
        fold: the validation fold.
        out_dir: where ``data.yaml``, ``train.txt``, ``val.txt`` (and ``test.txt``) go.
        class_name: name of the box class; default the datalist's ``class_names[0]`` (``phe``).

    Returns:
        The path of ``out_dir/data.yaml``.

    Raises:
        DataError: no YOLO export, an image or label missing from it, or labels that disagree with
            the datalist (a stale export: re-run prepare).

    Example:
        >>> fold_data_yaml("data/phe-sich", 1, "runs/sich_det/data")  # doctest: +SKIP
        'runs/sich_det/data/data.yaml'
    """
    from medpipe.data.datalist import load_datalist, load_split

    base = Path(dataset_dir).expanduser().absolute()
    yolo_dir = base / "yolo"
    if not (yolo_dir / "images").is_dir():
        raise DataError(f"{yolo_dir}/images: not found. The detection bundle reads the YOLO export that "
                        f"`medpipe prepare phe-sich` writes; re-run prepare (or pass --dataset_dir).")
    dl = load_datalist(base)
    name = class_name or (dl.get("class_names") or ["phe"])[0]
    index = _yolo_index(yolo_dir)
    splits = {"train": load_split(base, fold, "train", scalars_only=False),
              "val": load_split(base, fold, "val", scalars_only=False)}
    if dl.get("test"):
        splits["test"] = load_split(base, fold, "test", scalars_only=False)
    out = Path(out_dir).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    for split, recs in splits.items():
        lines = []
        for r in recs:
            img = index.get(Path(r["image"]).name)
            if img is None:
                raise DataError(f"{yolo_dir}/images: {Path(r['image']).name} (datalist record of patient "
                                f"{r.get('patient')}) is missing; re-run `medpipe prepare phe-sich`.")
            lab = label_path(img)
            if not lab.is_file():
                raise DataError(f"{lab}: label file missing for {img}; re-run `medpipe prepare phe-sich`.")
            n_lines = sum(1 for line in lab.read_text().splitlines() if line.strip())
            if n_lines != len(r.get("boxes") or []):
                raise DataError(f"{lab}: {n_lines} boxes but datalist.json has {len(r.get('boxes') or [])} for "
                                f"{r['image']}; the YOLO export is stale, re-run `medpipe prepare phe-sich`.")
            lines.append(str(img))
        _atomic_text(out / f"{split}.txt", "\n".join(lines) + "\n")
    text = [f"# ultralytics data for medpipe fold {int(fold)}: val = datalist fold {int(fold)}, train = the other "
            f"folds (written by medpipe.detection.yolo.fold_data_yaml from {base / 'datalist.json'})",
            f"path: {json.dumps(str(out))}"]
    text += [f"{s}: {json.dumps(str(out / f'{s}.txt'))}" for s in splits]
    text += ["nc: 1", "names:", f"  0: {json.dumps(str(name))}"]
    path = out / "data.yaml"
    _atomic_text(path, "\n".join(text) + "\n")
    log.info("fold %d: %s (%s)", int(fold), path, ", ".join(f"{s} {len(r)} slices" for s, r in splits.items()))
    return str(path)


# ------------------------------------------------------------------ training
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
        data: a data.yaml (see :func:`fold_data_yaml`).
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
        config_dir: see :func:`prepare_ultralytics_env`.

    Example:
        >>> YoloTrainer(fold_data_yaml("data/phe-sich", 0, "runs/d/data"), "runs/d", max_epochs=5).run()  # doctest: +SKIP
    """

    def __init__(self, data: str, output_dir: str, model: str = "yolov8n.yaml", image_size: int = 512,
                 max_epochs: int = 100, batch_size: int = 16, patience: int = 20, device="cpu", seed: int = 12345,
                 workers: int = 2, amp: bool = False, resume: bool = True, time_limit_s: float | None = None,
                 args: dict | None = None, config_dir: str | None = None) -> None:
        self.data, self.output_dir = str(data), Path(output_dir).expanduser().absolute()
        self.model = _check_model_arg(model)
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
        _atomic_text(self.output_dir / "history.json", json.dumps(hist, indent=1))
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
        yolo = _load_yolo(str(last) if last else self.model)
        yolo.add_callback("on_fit_epoch_end", self._epoch_end)
        self._t0 = time.perf_counter()
        if last:
            hist = read_results_csv(self.run_dir / "results.csv")
            self._tb_done = self._first_epoch = max(hist["epoch"] or [0])
            log.info("resuming from %s after epoch %d (ultralytics keeps the interrupted run's settings)",
                     last, self._first_epoch)
            yolo.train(resume=True, data=self.data, device=_ul_device(self.device), workers=self.workers)
        else:
            for f in (self.output_dir / "tb").glob("events.out.tfevents.*"):  # a new run: no stale curves
                f.unlink()
            kwargs = dict(data=self.data, epochs=self.max_epochs, imgsz=self.image_size, batch=self.batch_size,
                          patience=self.patience, device=_ul_device(self.device), seed=self.seed,
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
        net = _load_yolo(str(models / "model.pt")).model.float().eval()
        state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        tmp = models / f".model_state_dict.pt.tmp-{os.getpid()}"
        torch.save(state, tmp)
        os.replace(tmp, models / "model_state_dict.pt")
        import yaml

        _atomic_text(models / "model.yaml", "# architecture of model_state_dict.pt (ultralytics DetectionModel); "
                     "medpipe.detection.yolo.build_network('model.yaml') rebuilds it\n"
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


# ------------------------------------------------------------------ prediction helpers (pure)
def _norm_pred(p) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(p.get("boxes") if isinstance(p, dict) else p[0], dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(p.get("scores") if isinstance(p, dict) else p[1], dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    return boxes[order], scores[order]


def _image_name(r: dict) -> str:
    return str(r.get("image_path") or r.get("image"))


def box_prediction_rows(records: Sequence[dict], predictions: Sequence, min_conf: float = 0.0) -> list[dict]:
    """predictions.csv rows: one per predicted box (highest confidence first), a ``none`` row for a slice without one.

    Args:
        records: one dict per slice with ``patient``, ``slice``, ``image`` (or ``image_path``) and,
            when known, ``label`` (the slice truth).
        predictions: per slice ``{"boxes": [[xmin, ymin, xmax, ymax], ...], "scores": [...]}`` in pixels.
        min_conf: boxes below this confidence are left out.

    Returns:
        Dicts with the :data:`BOX_COLUMNS` keys (``label`` only when the records have labels).
        ``box_index`` counts from 0 per slice; a ``none`` row has empty coordinates and confidence 0.

    Example:
        >>> box_prediction_rows([{"patient": "0001", "slice": 3, "image": "a.png", "label": 0}],
        ...                     [{"boxes": [], "scores": []}])[0]["box_index"]
        'none'
    """
    if len(records) != len(predictions):
        raise ValueError(f"{len(records)} records but {len(predictions)} predictions")
    rows = []
    for r, p in zip(records, predictions):
        boxes, scores = _norm_pred(p)
        keep = scores >= min_conf
        base = {"patient": r.get("patient", ""), "slice": r.get("slice", ""), "image": _image_name(r)}
        if "label" in r and r["label"] is not None:
            base["label"] = int(r["label"])
        if not keep.any():
            rows.append({**base, "box_index": "none", "xmin": "", "ymin": "", "xmax": "", "ymax": "",
                         "confidence": 0.0})
            continue
        for i, (b, s) in enumerate(zip(boxes[keep], scores[keep])):
            rows.append({**base, "box_index": i, "xmin": float(b[0]), "ymin": float(b[1]), "xmax": float(b[2]),
                         "ymax": float(b[3]), "confidence": float(s)})
    return rows


def slice_prediction_rows(records: Sequence[dict], predictions: Sequence, conf: float = 0.25) -> list[dict]:
    """slice_predictions.csv rows: probability = highest box confidence (0 without a box), prediction at ``conf``.

    Example:
        >>> slice_prediction_rows([{"patient": "1", "slice": 0, "image": "a.png", "label": 1}],
        ...                       [{"boxes": [[1, 2, 3, 4]], "scores": [0.3]}], conf=0.25)[0]["prediction"]
        1
    """
    if len(records) != len(predictions):
        raise ValueError(f"{len(records)} records but {len(predictions)} predictions")
    rows = []
    for r, p in zip(records, predictions):
        _, scores = _norm_pred(p)
        prob = float(scores.max()) if scores.size else 0.0
        row = {"patient": r.get("patient", ""), "slice": r.get("slice", ""), "image": _image_name(r),
               "probability": prob, "prediction": int(prob >= conf)}
        if "label" in r and r["label"] is not None:
            row["label"] = int(r["label"])
        rows.append(row)
    return rows


def conf_sweep(labels: Sequence[int], probs: Sequence[float],
               thresholds: Sequence[float] = SWEEP_THRESHOLDS) -> list[dict]:
    """Slice-level metrics vs confidence threshold (a slice is positive when its best box has ``conf >= t``).

    Returns:
        One row per threshold: ``conf``, ``accuracy``, ``precision``, ``recall``, ``f1``,
        ``specificity``, ``tp``, ``fp``, ``fn``, ``tn``.

    Example:
        >>> [r["recall"] for r in conf_sweep([1, 1, 0], [0.9, 0.3, 0.5], [0.25, 0.6])]
        [1.0, 0.5]
    """
    from medpipe.metrics.classification import rates_from_counts

    y = np.asarray(labels, dtype=np.int64).ravel()
    p = np.asarray(probs, dtype=np.float64).ravel()
    if y.size != p.size:
        raise ValueError(f"{y.size} labels but {p.size} probabilities")
    rows = []
    for t in sorted(float(t) for t in thresholds):
        pred = p >= t
        tp, fp = int(np.sum(pred & (y == 1))), int(np.sum(pred & (y == 0)))
        fn, tn = int(np.sum(~pred & (y == 1))), int(np.sum(~pred & (y == 0)))
        rates = rates_from_counts(tp, fp, fn, tn)
        rows.append({"conf": t, **{k: float(v) for k, v in rates.items()}, "tp": tp, "fp": fp, "fn": fn, "tn": tn})
    return rows


def write_rows_csv(rows: Sequence[dict], path: str | os.PathLike, columns: Sequence[str]) -> Path:
    """Write ``rows`` as CSV with ``columns`` (see :func:`medpipe.utils.fs.write_csv_atomic`)."""
    from medpipe.utils.fs import write_csv_atomic

    return write_csv_atomic(rows, path, columns)


def _predict(yolo, sources: Sequence, image_size: int, device, conf: float, iou: float, max_det: int,
             batch_size: int, project: Path) -> list[dict]:
    """Boxes per source, in input order. Sources: image paths, or HxWx3 uint8 arrays (BGR; gray repeated)."""
    out: list[dict | None] = [None] * len(sources)
    n = max(1, int(batch_size))
    for i in range(0, len(sources), n):
        chunk = list(sources[i:i + n])
        res = yolo.predict(chunk, imgsz=int(image_size), device=_ul_device(device), conf=float(conf), iou=float(iou),
                           max_det=int(max_det), verbose=False, save=False, batch=len(chunk), project=str(project),
                           name="ultralytics_predict", exist_ok=True)
        if all(isinstance(s, str) for s in chunk):  # ultralytics sorts path lists: match by path
            by_path = {os.path.normpath(r.path): r for r in res}
            res = [by_path[os.path.normpath(s)] for s in chunk]
        for j, r in enumerate(res):
            b = r.boxes
            out[i + j] = {"boxes": b.xyxy.cpu().numpy().astype(float).tolist(),
                          "scores": b.conf.cpu().numpy().astype(float).tolist()}
    return out  # type: ignore[return-value]


def _gray(image) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image if image.ndim == 2 else image[..., 0]
    from PIL import Image

    with Image.open(image) as im:
        return np.asarray(im.convert("L"))


def _source(r: dict):
    img = r["image"]
    if isinstance(img, np.ndarray):
        a = img if img.dtype == np.uint8 else np.clip(img, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a)
    return str(Path(img).absolute())


def _pick_examples(slices: list[dict], n: int) -> list[tuple[str, int]]:
    """Up to ``n`` (outcome, slice index) pairs, round-robin over TP, FP, FN, TN (most confident mistakes first)."""
    groups: dict[str, list[int]] = {"TP": [], "FP": [], "FN": [], "TN": []}
    for i, r in enumerate(slices):
        key = ("T" if r["prediction"] == r["label"] else "F") + ("P" if r["prediction"] else "N")
        groups[key].append(i)
    groups["TP"].sort(key=lambda i: -slices[i]["probability"])
    groups["FP"].sort(key=lambda i: -slices[i]["probability"])
    groups["FN"].sort(key=lambda i: slices[i]["probability"])
    groups["TN"].sort(key=lambda i: -slices[i]["probability"])
    picked: list[tuple[str, int]] = []
    while len(picked) < n and any(groups.values()):
        for k in ("TP", "FP", "FN", "TN"):
            if groups[k] and len(picked) < n:
                picked.append((k, groups[k].pop(0)))
    return picked


# ------------------------------------------------------------------ evaluation
class YoloEvaluator:
    """Evaluate a trained detector on a split: box-level mAP and a slice-level classification.

    Box level (ultralytics' validator on the fold's ``val`` split): ``map50``, ``map50_95``, and
    ``precision``/``recall`` at the confidence that maximizes their F1 (ultralytics' convention).
    Slice level: every slice of the split is predicted (confidence >= ``predict_conf``); its
    probability is the highest box confidence (0 without a box) and it is positive when that is
    >= ``conf``; :func:`medpipe.metrics.classification.classification_metrics` gives ``slice_level``.

    Files under ``output_dir``: ``eval/metrics.json``, ``predictions.csv`` (:data:`BOX_COLUMNS`),
    ``slice_predictions.csv`` (:data:`SLICE_COLUMNS`), ``eval/confusion_matrix.png`` (slice level),
    ``eval/conf_sweep.png``, ``eval/boxes/*.png`` (true boxes green, predicted red), ultralytics'
    own curves in ``eval/ultralytics_val/`` and ``eval/training_curves.png`` when ``history.json`` exists.

    Args:
        ckpt_path: ``models/model.pt``.
        data: the fold's data.yaml (:func:`fold_data_yaml`).
        dataset_dir: the prepared dataset (slice truth and true boxes from ``datalist.json``).
        output_dir: the run folder.
        fold: the validation fold.
        split: ``val`` or ``test``.
        image_size: inference size; None: the checkpoint's training size.
        conf: the slice-level operating threshold (and the one boxes are drawn at).
        iou: NMS IoU threshold.
        predict_conf: lowest box confidence kept (predictions.csv, probabilities, mAP).
        max_det: most boxes per slice.
        class_names: slice classes (negative, positive).
        n_examples: slices drawn to ``eval/boxes``.
        extra: JSON-able facts added to metrics.json.
    """

    def __init__(self, ckpt_path: str, data: str, dataset_dir: str, output_dir: str, fold: int = 0,
                 split: str = "val", image_size: int | None = None, batch_size: int = 16, device="cpu",
                 conf: float = 0.25, iou: float = 0.7, predict_conf: float = 0.001, max_det: int = 100,
                 class_names: Sequence[str] = ("no_phe", "phe"), n_examples: int = 8, workers: int = 2,
                 sweep_thresholds: Sequence[float] = SWEEP_THRESHOLDS, config_dir: str | None = None,
                 extra: dict | None = None) -> None:
        if split not in ("val", "test"):
            raise UserError(f"eval_split {split!r}: choose val or test")
        self.ckpt_path, self.data, self.dataset_dir = ckpt_path, str(data), dataset_dir
        self.output_dir = Path(output_dir).expanduser().absolute()
        self.fold, self.split, self.image_size, self.batch_size = int(fold), split, image_size, int(batch_size)
        self.device, self.conf, self.iou, self.predict_conf = device, float(conf), float(iou), float(predict_conf)
        self.max_det, self.class_names, self.n_examples = int(max_det), tuple(class_names), int(n_examples)
        self.workers, self.sweep_thresholds, self.config_dir = int(workers), tuple(sweep_thresholds), config_dir
        self.extra = dict(extra or {})
        self.metrics: dict | None = None

    def run(self) -> dict:
        """Evaluate; write the files; return the metrics dict."""
        from medpipe.data.datalist import load_split
        from medpipe.metrics.classification import classification_metrics
        from medpipe.visualization.plots import plot_confusion_matrix, plot_curves, plot_threshold_sweep

        prepare_ultralytics_env(self.config_dir)
        yolo = _load_checkpoint_model(self.ckpt_path)
        size = int(self.image_size) if self.image_size else _ckpt_imgsz(yolo)
        ev = self.output_dir / "eval"
        ev.mkdir(parents=True, exist_ok=True)
        det = yolo.val(data=self.data, split=self.split, imgsz=size, batch=self.batch_size,
                       device=_ul_device(self.device), conf=self.predict_conf, iou=self.iou, max_det=self.max_det,
                       workers=self.workers, plots=True, project=str(ev), name="ultralytics_val", exist_ok=True,
                       verbose=False)
        box = {"map50": float(det.box.map50), "map50_95": float(det.box.map),
               "precision": float(det.box.mp), "recall": float(det.box.mr)}
        records = load_split(self.dataset_dir, self.fold, self.split, scalars_only=False)
        preds = _predict(yolo, [_source(r) for r in records], size, self.device, self.predict_conf, self.iou,
                         self.max_det, self.batch_size, ev)
        box_rows = box_prediction_rows(records, preds)
        slices = slice_prediction_rows(records, preds, self.conf)
        y = [r["label"] for r in slices]
        p = [r["probability"] for r in slices]
        sl = classification_metrics(y, p, threshold=self.conf, class_names=self.class_names)
        sweep = conf_sweep(y, p, sorted(set(self.sweep_thresholds) | {self.conf}))
        m = {**box, "slice_level": sl, "conf": self.conf, "iou": self.iou, "predict_conf": self.predict_conf,
             "conf_sweep": sweep, "split": self.split, "fold": self.fold, "image_size": size,
             "checkpoint": str(Path(self.ckpt_path).absolute()), "n_slices": len(records),
             "n_true_boxes": int(sum(len(r.get("boxes") or []) for r in records)),
             "n_pred_boxes_at_conf": int(sum(int(np.sum(np.asarray(q["scores"]) >= self.conf)) for q in preds)),
             "box_metrics_note": "map50/map50_95/precision/recall from ultralytics' validator (precision and recall "
                                 "at the confidence maximizing F1); slice_level at confidence >= conf",
             **self.extra}
        self.metrics = m
        _atomic_text(ev / "metrics.json", json.dumps(m, indent=2, default=str))
        write_rows_csv(box_rows, self.output_dir / "predictions.csv", BOX_COLUMNS)
        write_rows_csv(slices, self.output_dir / "slice_predictions.csv", SLICE_COLUMNS)
        plot_confusion_matrix(sl["confusion_matrix"], self.class_names, ev / "confusion_matrix.png",
                              title=f"slice level: positive when a box has confidence >= {self.conf:g} (n={len(slices)})")
        plot_threshold_sweep(sweep, self.conf, ev / "conf_sweep.png", x_key="conf",
                             title="slice-level metrics vs box confidence threshold")
        self._draw(records, preds, slices, ev / "boxes")
        hist = self.output_dir / "history.json"
        if hist.exists():
            h = json.loads(hist.read_text())
            plot_curves({k: v for k, v in h.items() if k not in ("epoch", "lr")}, ev / "training_curves.png",
                        title="YOLOv8 training")
        log.info("evaluation (%s, fold %d, %d slices): mAP50 %.4f, mAP50-95 %.4f, box P %.4f, R %.4f; slice level at "
                 "conf %.2f: recall %.4f, precision %.4f, specificity %.4f, f1 %.4f", self.split, self.fold,
                 len(records), box["map50"], box["map50_95"], box["precision"], box["recall"], self.conf,
                 sl["recall"], sl["precision"], sl["specificity"], sl["f1"])
        log.info("wrote %s, %s, %s", ev / "metrics.json", self.output_dir / "predictions.csv",
                 self.output_dir / "slice_predictions.csv")
        return m

    def _draw(self, records, preds, slices, out: Path) -> None:
        from medpipe.visualization.plots import overlay_boxes

        if out.exists():
            shutil.rmtree(out)
        for key, i in _pick_examples(slices, self.n_examples):
            r, s = records[i], slices[i]
            boxes, scores = _norm_pred(preds[i])
            keep = scores >= self.conf
            name = f"{key}_{r.get('patient', 'x')}_{int(r.get('slice', i)):02d}.png"
            overlay_boxes(_gray(r["image"]), r.get("boxes") or [], boxes[keep], out / name, scores=scores[keep].tolist(),
                          title=f"{key}: patient {r.get('patient')} slice {r.get('slice')}, label {s['label']}, "
                                f"best box {s['probability']:.2f} (drawn: conf >= {self.conf:g})")


# ------------------------------------------------------------------ inference
class YoloPredictor:
    """Detect PHE boxes on a folder of slices or a NIfTI volume (:func:`medpipe.data.inference.list_inputs`).

    Volume slices are windowed to 8 bits like the prepared data and passed to ultralytics as arrays
    with the gray channel repeated three times (what its loader does to a gray PNG).

    Files under ``output_dir``: ``predictions.csv`` (one row per box with confidence >= ``conf``,
    a ``none`` row for a slice without one), ``slice_predictions.csv`` (patient, slice, image,
    probability = highest box confidence, prediction at ``conf``), ``predictions.json`` (the same
    per slice) and with ``draw`` ``boxes/PATIENT_SLICE.png``.

    Args:
        ckpt_path: ``models/model.pt``.
        input: folder of slices, one slice, or a ``.nii``/``.nii.gz`` volume.
        output_dir: where the files go.
        image_size: None: the checkpoint's training size.
        conf: box confidence threshold.
        draw: also draw every slice with its boxes.
    """

    def __init__(self, ckpt_path: str, input: str, output_dir: str, image_size: int | None = None,
                 batch_size: int = 16, device="cpu", conf: float = 0.25, iou: float = 0.7,
                 predict_conf: float = 0.001, max_det: int = 100, draw: bool = False,
                 config_dir: str | None = None) -> None:
        self.ckpt_path, self.input = ckpt_path, input
        self.output_dir = Path(output_dir).expanduser().absolute()
        self.image_size, self.batch_size, self.device = image_size, int(batch_size), device
        self.conf, self.iou, self.predict_conf, self.max_det = float(conf), float(iou), float(predict_conf), int(max_det)
        self.draw, self.config_dir = bool(draw), config_dir

    def run(self) -> list[dict]:
        """Predict; write the files; return the per-slice results."""
        from medpipe.data.inference import list_inputs

        prepare_ultralytics_env(self.config_dir)
        records = list_inputs(self.input)
        yolo = _load_checkpoint_model(self.ckpt_path)
        size = int(self.image_size) if self.image_size else _ckpt_imgsz(yolo)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        preds = _predict(yolo, [_source(r) for r in records], size, self.device, min(self.predict_conf, self.conf),
                         self.iou, self.max_det, self.batch_size, self.output_dir)
        write_rows_csv(box_prediction_rows(records, preds, min_conf=self.conf), self.output_dir / "predictions.csv",
                       BOX_COLUMNS)
        slices = slice_prediction_rows(records, preds, self.conf)
        write_rows_csv(slices, self.output_dir / "slice_predictions.csv", SLICE_COLUMNS)
        out = []
        for r, s, p in zip(records, slices, preds):
            boxes, scores = _norm_pred(p)
            keep = scores >= self.conf
            out.append({**s, "boxes": [{"box": [round(float(v), 2) for v in b], "confidence": round(float(c), 6)}
                                       for b, c in zip(boxes[keep], scores[keep])]})
        doc = {"checkpoint": str(Path(self.ckpt_path).absolute()), "input": str(self.input), "conf": self.conf,
               "iou": self.iou, "image_size": size, "box_format": "xyxy pixels of the input slice", "slices": out}
        _atomic_text(self.output_dir / "predictions.json", json.dumps(doc, indent=1))
        if self.draw:
            from medpipe.visualization.plots import overlay_boxes

            for r, s in zip(records, out):
                overlay_boxes(_gray(r["image"]), [], [b["box"] for b in s["boxes"]],
                              self.output_dir / "boxes" / f"{r['patient']}_{int(r['slice']):02d}.png",
                              scores=[b["confidence"] for b in s["boxes"]],
                              title=f"{r['patient']} slice {r['slice']}: {len(s['boxes'])} box(es), "
                                    f"conf >= {self.conf:g}")
        n_pos = sum(s["prediction"] for s in slices)
        log.info("wrote %s: %d slices, %d with a box (conf >= %g)", self.output_dir / "predictions.csv", len(slices),
                 n_pos, self.conf)
        return out


# ------------------------------------------------------------------ export
def export_yolo(ckpt_path: str, format: str = "onnx", output: str | None = None, image_size: int | None = None,
                device="cpu", config_dir: str | None = None) -> str:
    """Export through ultralytics' exporter (ONNX: ``simplify=False``, ``dynamic=False``; TorchScript).

    The exporter works on a temporary copy of the checkpoint (it writes next to its input), and the
    file is moved to ``output`` (default: next to the checkpoint, ``.onnx`` or ``.ts``). Input
    1x3xSxS float in [0, 1]; output ultralytics' raw head (1 x (4 + classes) x anchors, boxes as
    xywh in input pixels, class scores after sigmoid; no NMS).

    Returns:
        The exported file's path.
    """
    fmt = str(format).lower()
    if fmt not in ("onnx", "torchscript"):
        raise UserError(f"--format {format}: choose torchscript or onnx")
    prepare_ultralytics_env(config_dir)
    ckpt = Path(ckpt_path).expanduser().absolute()
    if not ckpt.is_file():
        raise UserError(f"--ckpt_path {ckpt}: not found; train first (medpipe train sich_det).")
    out = Path(output).expanduser().absolute() if output else ckpt.with_suffix(".onnx" if fmt == "onnx" else ".ts")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medpipe-yolo-export-") as td:
        src = Path(td) / "model.pt"
        shutil.copyfile(ckpt, src)
        yolo = _load_yolo(str(src))
        size = int(image_size) if image_size else _ckpt_imgsz(yolo)
        kwargs = dict(format=fmt, imgsz=size, dynamic=False, device=_ul_device(device))
        if fmt == "onnx":
            kwargs["simplify"] = False  # else ultralytics tries to pip-install onnxslim
        f = yolo.export(**kwargs)
        if not f or not Path(f).is_file():
            raise RuntimeError(f"ultralytics export to {fmt} produced no file")
        shutil.move(str(f), out)
    return str(out)


def _first_tensor(out):
    import torch

    while isinstance(out, (list, tuple)):
        out = out[0]
    return out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)


def _parity_outputs(ckpt_path: str, exported: str, image_size: int | None, seed: int):
    import torch

    yolo = _load_checkpoint_model(ckpt_path)
    size = int(image_size) if image_size else _ckpt_imgsz(yolo)
    net = yolo.model.float().eval()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = _first_tensor(net(x))
        if str(exported).endswith(".onnx"):
            import onnxruntime as ort

            sess = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
            got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        else:
            got = _first_tensor(torch.jit.load(str(exported), map_location="cpu")(x))
    if ref.shape != got.shape:
        raise RuntimeError(f"exported output shape {got.shape} differs from the eager {ref.shape}")
    return ref, got, size


def yolo_parity(ckpt_path: str, exported: str, image_size: int | None = None, seed: int = 0,
                normalize_boxes: bool = False) -> float:
    """Max abs difference between the eager network (``YOLO(ckpt).model``, eval) and the exported file.

    Both run on the same random 1x3xSxS input in [0, 1]; the first output tensor is compared (the
    eager head also returns its per-level feature maps, the exported one only the decoded tensor):
    rows 0-3 are box centre/size in input pixels, the rest class scores in [0, 1].

    Args:
        ckpt_path: the ultralytics checkpoint.
        exported: the ``.onnx`` or ``.ts``/``.torchscript`` file.
        image_size: input size; None: the checkpoint's training size.
        seed: seed of the random input.
        normalize_boxes: divide the box rows by the image size first. Box values reach ~S pixels,
            where float32 spacing alone is 3e-5 (S=256) to 6e-5 (S=512): the exporter's fused
            convolutions then differ from the unfused eager network by 1-2 units in the last place,
            which can exceed 1e-4 in pixels while being ~1e-7 of the image.

    Returns:
        The max abs difference.
    """
    ref, got, size = _parity_outputs(ckpt_path, exported, image_size, seed)
    if normalize_boxes:
        ref, got = ref.copy(), got.copy()
        ref[:, :4] /= size
        got[:, :4] /= size
    return float(np.abs(ref - got).max())


def export_yolo_cli(ckpt_path: str, fmt: str, output: str | None = None, overrides: dict | None = None) -> int:
    """``medpipe export sich_det``: export, print the equivalent ultralytics command and the parity figure."""
    if fmt not in ("torchscript", "onnx"):
        raise UserError(f"--format {fmt}: choose torchscript or onnx")
    ov = dict(overrides or {})
    ckpt = Path(ckpt_path).expanduser().absolute()
    if not ckpt.is_file():
        raise UserError(f"--ckpt_path {ckpt}: not found; train first (medpipe train sich_det) or point at "
                        f"models/model.pt.")
    size = ov.get("image_size")
    size = int(size) if size not in (None, "", "None", "null") else None
    device = ov.get("device") or "cpu"
    threads = ov.get("threads")
    threads = int(threads) if threads not in (None, "", "None", "null") else None
    prepare_ultralytics_env(ov.get("yolo_config_dir"), threads)
    size = size or _ckpt_imgsz(_load_checkpoint_model(ckpt))
    shown = f"yolo export model={ckpt} format={fmt} imgsz={size}" + (" simplify=False" if fmt == "onnx" else "") + \
        f" dynamic=False device={_ul_device(device)}"
    print(f"running: {shown}  (ultralytics' exporter, in-process through medpipe.detection.yolo.export_yolo)",
          flush=True)
    out = export_yolo(str(ckpt), fmt, output, size, device, ov.get("yolo_config_dir"))
    ref, got, s = _parity_outputs(str(ckpt), out, size, 0)
    raw = float(np.abs(ref - got).max())
    scale = np.ones((1, ref.shape[1], 1), dtype=np.float64)
    scale[:, :4] = 1.0 / s
    norm = float(np.abs((ref - got) * scale).max())
    ok = norm <= EXPORT_TOLERANCE
    print(f"exported {out}; parity with the eager model on a random 1x3x{s}x{s} input: max abs diff {norm:.2e} with "
          f"boxes as fractions of the image ({'OK' if ok else 'FAILED'}, tolerance {EXPORT_TOLERANCE:g}); "
          f"{raw:.2e} in raw pixel units (box values up to {np.abs(ref[:, :4]).max():.0f} px)", flush=True)
    return 0 if ok else 1
