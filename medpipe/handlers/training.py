"""Training-side ignite handlers: history and curves, last checkpoint, resume, progress with ETA.

Each is small and attaches to a MONAI ``SupervisedTrainer``; bundles list them by id.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch
from ignite.engine import Engine, Events

from medpipe.handlers.tensorboard import close_writer, scalar_tag, summary_writer
from medpipe.utils.fs import write_json
from medpipe.utils.logs import duration, sig

log = logging.getLogger("medpipe")


def _is_main_rank() -> bool:
    from medpipe.engines.distributed import is_main_rank

    return is_main_rank()


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _loss_of(output) -> float | None:
    if isinstance(output, list) and output:
        output = output[0]
    if isinstance(output, dict) and "loss" in output:
        v = output["loss"]
        return float(v.item() if hasattr(v, "item") else v)
    return None


def _batch_size(batch) -> int:
    """How many samples a training batch holds (a collated dict or tensor: its first dimension; a list: its length)."""
    if isinstance(batch, dict):
        batch = next((v for v in batch.values() if hasattr(v, "shape") and len(v.shape)), None)
    if isinstance(batch, (list, tuple)):
        return len(batch)
    return int(batch.shape[0]) if batch is not None and hasattr(batch, "shape") and len(batch.shape) else 0


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class TrainingHistory:
    """Per-epoch history (loss, learning rate, throughput, validation metrics) -> ``history.json``, TensorBoard, curves.

    Attach after the ``ValidationHandler`` so the epoch's validation metrics exist when it runs.
    Logs one line per epoch (4 significant digits, ``new best`` when the key validation metric
    improved, i.e. when the best checkpoint was written, elapsed time and ETA); writes
    ``train/loss``, ``train/lr``, ``train/images_per_s`` and ``val/<metric>`` (only for epochs that were validated) to
    TensorBoard, and the first training batch once as ``train/images`` (tags:
    :mod:`medpipe.handlers.tensorboard`); at the end plots ``eval/training_curves.png``.

    Throughput: ``train_s`` is the epoch's training time (from the epoch start to its last
    iteration: validation and checkpoints excluded) and ``images_per_s`` the samples fed to the
    network per second in it (patches for patch-trained networks; all ranks together under DDP).
    The loss read at each iteration waits for the device, so on a GPU both are wall-clock true.

    Args:
        output_dir: run folder (``history.json`` and ``eval/`` go there).
        optimizer: to read the learning rate.
        validator: the evaluator whose ``state.metrics`` hold the validation metrics.
        tb_dir: TensorBoard folder (None: no TensorBoard logging from this handler).
        n_images: training images logged to TensorBoard at the first iteration.
    """

    def __init__(self, output_dir: str, optimizer=None, validator: Engine | None = None, tb_dir: str | None = None,
                 n_images: int = 8, image_key: str = "image", label_key: str = "label") -> None:
        self.output_dir = Path(output_dir)
        self.optimizer = optimizer
        self.validator = validator
        self.tb_dir = tb_dir
        self.n_images = n_images
        self.image_key, self.label_key = image_key, label_key
        self.history: dict[str, list] = {}
        self._losses: list[float] = []
        self._t0 = None
        self._epoch_t0 = self._last_t = None
        self._samples = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _started(self, engine: Engine) -> None:
        self._t0 = time.perf_counter()
        self._start_epoch = None  # known at the first epoch end: a resume handler may run after this one
        self.history = {}

    def _epoch_started(self, engine: Engine) -> None:
        self._epoch_t0 = self._last_t = time.perf_counter()
        self._samples = 0

    def _iteration(self, engine: Engine) -> None:
        loss = _loss_of(engine.state.output)
        if loss is not None:
            self._losses.append(loss)
        self._samples += _batch_size(engine.state.batch)
        self._last_t = time.perf_counter()
        if self.tb_dir and engine.state.iteration == 1 and self.n_images and _is_main_rank():
            batch = engine.state.batch
            imgs = batch[self.image_key] if isinstance(batch, dict) else torch.stack([b[self.image_key] for b in batch])
            imgs = imgs[: self.n_images].detach().float().cpu()
            if imgs.ndim == 4 and imgs.shape[1] not in (1, 3):  # e.g. 2.5D stacks: the middle slice's channels
                c = imgs.shape[1]
                imgs = imgs[:, c // 2 - 1: c // 2 + 2] if c % 3 == 0 else imgs[:, :1]
            if imgs.ndim == 4:
                lo = imgs.amin(dim=(1, 2, 3), keepdim=True)
                hi = imgs.amax(dim=(1, 2, 3), keepdim=True)
                summary_writer(self.tb_dir).add_images("train/images", (imgs - lo) / (hi - lo + 1e-8),
                                                       engine.state.epoch)

    def _epoch(self, engine: Engine) -> None:
        e = engine.state.epoch
        if self._start_epoch is None:
            self._start_epoch = e - 1
            path = self.output_dir / "history.json"
            if e > 1 and path.exists():  # resumed: keep the epochs trained before
                data = json.loads(path.read_text())
                self.history = {k: v[: e - 1] for k, v in data.items()}
        rec = {"epoch": e, "loss": sum(self._losses) / max(1, len(self._losses))}
        self._losses = []
        if self.optimizer is not None:
            rec["lr"] = float(self.optimizer.param_groups[0]["lr"])
        if self._epoch_t0 is not None and self._last_t > self._epoch_t0 and self._samples:
            rec["train_s"] = self._last_t - self._epoch_t0
            rec["images_per_s"] = self._samples * _world_size() / rec["train_s"]
        vstate = self.validator.state if self.validator is not None else None
        val_keys = []
        if vstate is not None:
            for k, v in (vstate.metrics or {}).items():
                if isinstance(v, (int, float)) or (hasattr(v, "item") and getattr(v, "numel", lambda: 1)() == 1):
                    rec[k] = float(v)
                    val_keys.append(k)
        validated = vstate is not None and vstate.epoch == e and bool(val_keys)  # else: last validation's values
        for k, v in rec.items():
            self.history.setdefault(k, []).append(v)
        if not _is_main_rank():
            return
        if self.tb_dir:
            w = summary_writer(self.tb_dir)
            for k in ("loss", "lr", "images_per_s"):
                if k in rec:
                    w.add_scalar(scalar_tag(k, "train"), rec[k], e)
            for k in val_keys if validated else ():
                w.add_scalar(scalar_tag(k, "val"), rec[k], e)
            w.flush()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.output_dir / "history.json", self.history, atomic=True)
        done = e - self._start_epoch
        el = time.perf_counter() - self._t0
        left = (engine.state.max_epochs - e) * el / max(1, done)
        best = validated and getattr(vstate, "key_metric_name", None) and getattr(vstate, "best_metric_epoch", -1) == e
        extras = "".join(f", {k} {sig(rec[k])}" for k in val_keys if validated)
        speed = f", {sig(rec['images_per_s'])} images/s" if "images_per_s" in rec else ""
        log.info("epoch %d/%d: loss %s%s%s (%s elapsed%s, ETA %s)", e, engine.state.max_epochs, sig(rec["loss"]), extras,
                 ", new best" if best else "", duration(el), speed, duration(left))

    def _completed(self, engine: Engine) -> None:
        if self.tb_dir and _is_main_rank():
            close_writer(self.tb_dir)
        if _is_main_rank() and self.history.get("epoch"):
            from medpipe.visualization.plots import plot_curves

            (self.output_dir / "eval").mkdir(parents=True, exist_ok=True)
            plot_curves({k: v for k, v in self.history.items() if k != "epoch"},
                        self.output_dir / "eval" / "training_curves.png", title="training")


class LastCheckpoint:
    """Save ``save_dict`` (network, optimizer, trainer, scheduler...) every epoch to one fixed file, atomically.

    The fixed name (``models/checkpoint_last.pt``) is what :class:`ResumeFromCheckpoint` looks for.
    Only rank 0 writes under DDP.
    """

    def __init__(self, save_dir: str, save_dict: dict, filename: str = "checkpoint_last.pt") -> None:
        self.path = Path(save_dir) / filename
        self.save_dict = save_dict

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if not _is_main_rank():
            return
        state = {}
        for k, obj in self.save_dict.items():
            if obj is None:  # e.g. no lr scheduler
                continue
            if isinstance(obj, torch.nn.parallel.DistributedDataParallel):
                obj = obj.module
            state[k] = obj.state_dict()
        _atomic_torch_save(state, self.path)


class ResumeFromCheckpoint:
    """At start, load ``path`` into ``load_dict`` when it exists, so a killed run continues where it stopped.

    The trainer's ``max_epochs`` stays the configured one (so a finished run can also be extended).

    Args:
        path: checkpoint written by :class:`LastCheckpoint`.
        load_dict: the same keys as the saver's ``save_dict``.
        enabled: False to always start fresh.
    """

    def __init__(self, path: str, load_dict: dict, enabled: bool = True) -> None:
        self.path = Path(path)
        self.load_dict = load_dict
        self.enabled = enabled

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        if not self.enabled or not self.path.exists():
            return
        max_epochs = engine.state.max_epochs
        ckpt = torch.load(self.path, map_location="cpu", weights_only=True)
        for k, obj in self.load_dict.items():
            if obj is None or k not in ckpt:
                continue
            if isinstance(obj, torch.nn.parallel.DistributedDataParallel):
                obj = obj.module
            obj.load_state_dict(ckpt[k])
        engine.state.max_epochs = max_epochs
        log.info("resuming from %s at epoch %d of %d", self.path, engine.state.epoch, max_epochs)


class TimeLimit:
    """Stop training after the epoch during which ``limit_s`` seconds of training have passed.

    The decision is taken on rank 0 and broadcast, so under torchrun every rank stops after the
    same epoch (a per-rank clock could stop one rank early and leave the others waiting forever).
    The last checkpoint and history are written as for any finished epoch, so a later run with a
    larger budget resumes.

    Args:
        limit_s: the budget in seconds; None or 0 disables the handler.
    """

    def __init__(self, limit_s: float | None = None) -> None:
        self.limit_s = float(limit_s or 0)
        self._t0 = None

    def attach(self, engine: Engine) -> None:
        if self.limit_s > 0:
            engine.add_event_handler(Events.STARTED, self._start)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _start(self, engine: Engine) -> None:
        self._t0 = time.perf_counter()

    def __call__(self, engine: Engine) -> None:
        from medpipe.engines.distributed import broadcast_flag

        elapsed = time.perf_counter() - (self._t0 or time.perf_counter())
        if broadcast_flag(elapsed >= self.limit_s):
            if _is_main_rank():
                log.info("time limit: %.0f s of %.0f s used after epoch %d of %d; stopping (resume with a larger "
                         "--time_limit_s or more --max_epochs)", elapsed, self.limit_s, engine.state.epoch,
                         engine.state.max_epochs)
            engine.terminate()


class RecalibrateBatchNorm:
    """Before each validation, recompute the batch-norm running statistics over the training data.

    Batch-norm layers keep running means and variances (momentum 0.1) that lag behind fast-changing
    weights. Trained from scratch for a few hundred iterations — small datasets, the demo — a network
    can rank images well in training mode yet, in evaluation mode, give every image p ~ 1e-20 for a
    class: its running statistics describe weights of many steps ago. This handler resets them and
    recomputes exact averages (``momentum=None``) with one forward pass over the training loader under
    ``no_grad`` (what :func:`torch.optim.swa_utils.update_bn` does), at the end of every epoch that is
    validated, before the validation — so the validated and saved weights carry statistics that match
    them. Cost: one forward pass over the training set per validation.

    Args:
        loader: the training data loader.
        network: the trained network.
        device: where batches go.
        interval: validate every ``interval`` epochs (the validation's interval).
        enabled: False makes it a no-op.
    """

    def __init__(self, loader, network, device="cpu", interval: int = 1, enabled: bool = True) -> None:
        self.loader, self.network, self.device = loader, network, device
        self.interval, self.enabled = max(1, int(interval)), bool(enabled)

    def attach(self, engine: Engine) -> None:
        if self.enabled:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine | None = None) -> None:
        net = self.network.module if hasattr(self.network, "module") else self.network
        bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not bns:
            return
        saved = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
        was_training = net.training
        net.train()
        with torch.no_grad():
            for batch in self.loader:
                x = batch["image"] if isinstance(batch, dict) else batch[0]
                net(torch.as_tensor(x).to(self.device))
        for m, mom in zip(bns, saved):
            m.momentum = mom
        net.train(was_training)
