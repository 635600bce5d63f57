"""TensorBoard for the MONAI-engine bundles: one writer per run, each scalar once, overlays per validation.

Tags (the detector, :mod:`medpipe.detection.training`, uses the same scheme):

============================  =====================================================================
``train/loss``                 mean training loss of the epoch (:class:`~medpipe.handlers.training.TrainingHistory`)
``train/loss_iteration``       loss of each iteration (:class:`IterationLoss`, step = iteration)
``train/lr``                   learning rate at the end of the epoch
``val/<metric>``               each validation metric (``val_dice`` -> ``val/dice``), step = epoch
``val/overlays``               after each validation, a grid of the same fixed validation slices with
                               the prediction drawn (:class:`ValidationOverlays`), step = epoch
``train/images``               the first training batch as the network sees it (augmented), once
============================  =====================================================================

Every handler of a run writes through one :func:`summary_writer` per folder (one event file), and
only on the main rank (:func:`medpipe.engines.distributed.is_main_rank`); the configs also gate them
with ``_disabled_``.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events

log = logging.getLogger("medpipe")

__all__ = ["summary_writer", "close_writer", "scalar_tag", "IterationLoss", "ValidationOverlays", "grad_cam",
           "OVERLAY_TAG", "OVERLAY_KINDS"]

#: the image tag of the per-validation overlay grid
OVERLAY_TAG = "val/overlays"

_WRITERS: dict[str, object] = {}


def _is_main_rank() -> bool:
    from medpipe.engines.distributed import is_main_rank

    return is_main_rank()


def summary_writer(log_dir: str | os.PathLike):
    """The one ``SummaryWriter`` of ``log_dir`` in this process (created on first use); None off the main rank.

    Example:
        >>> w = summary_writer("runs/x/tb")  # doctest: +SKIP
        >>> w.add_scalar("val/dice", 0.8, 3)  # doctest: +SKIP
    """
    if not _is_main_rank():
        return None
    key = os.path.abspath(os.fspath(log_dir))
    if key not in _WRITERS:
        from torch.utils.tensorboard import SummaryWriter

        _WRITERS[key] = SummaryWriter(key)
    return _WRITERS[key]


def close_writer(log_dir: str | os.PathLike | None = None) -> None:
    """Flush and close the writer of ``log_dir`` (every writer when None); a later write opens a new one."""
    keys = list(_WRITERS) if log_dir is None else [os.path.abspath(os.fspath(log_dir))]
    for k in keys:
        w = _WRITERS.pop(k, None)
        if w is not None:
            w.close()


atexit.register(close_writer)


def scalar_tag(name: str, split: str) -> str:
    """The TensorBoard tag of a history value: ``("loss", "train")`` -> ``train/loss``,
    ``("val_dice", "val")`` -> ``val/dice``.

    Example:
        >>> scalar_tag("val_f1", "val"), scalar_tag("lr", "train")
        ('val/f1', 'train/lr')
    """
    prefix = f"{split}_"
    return f"{split}/{name[len(prefix):] if name.startswith(prefix) else name}"


class IterationLoss:
    """Write the loss of every training iteration as ``train/loss_iteration`` (step = iteration).

    Args:
        log_dir: the run's TensorBoard folder.
        tag: the scalar's tag.
    """

    def __init__(self, log_dir: str, tag: str = "train/loss_iteration") -> None:
        self.log_dir, self.tag = log_dir, tag

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        from medpipe.handlers.training import _loss_of  # training imports this module

        loss = _loss_of(engine.state.output)
        w = summary_writer(self.log_dir) if loss is not None else None
        if w is not None:
            w.add_scalar(self.tag, loss, engine.state.iteration)


def _unwrap(network: torch.nn.Module) -> torch.nn.Module:
    return network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network


def grad_cam(network: torch.nn.Module, layer: str, x: torch.Tensor, class_idx: Sequence[int]) -> torch.Tensor:
    """Grad-CAM maps ``(B, H, W)`` (volumes: ``(B, D, H, W)``) in [0, 1] of ``class_idx[i]`` for each
    input ``x[i]``, at ``x``'s size.

    The hook on ``layer`` is removed before returning, and gradients are taken with
    :func:`torch.autograd.grad` (no parameter's ``.grad`` is touched), so it is safe between
    training iterations. The network is used in whatever mode it is in (eval for stable maps).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> grad_cam(net, "0", torch.rand(2, 1, 16, 16), [1, 0]).shape
        torch.Size([2, 16, 16])
    """
    module = dict(network.named_modules())[layer]
    acts: list[torch.Tensor] = []
    hook = module.register_forward_hook(lambda m, i, o: acts.append(o))
    try:
        with torch.enable_grad():
            logits = network(x)
            score = logits[torch.arange(len(x), device=logits.device), torch.as_tensor(list(class_idx),
                                                                                        device=logits.device)]
            (grads,) = torch.autograd.grad(score.sum(), acts[0])
    finally:
        hook.remove()
    a = acts[0].detach()
    spatial = tuple(range(2, a.ndim))
    cam = torch.relu((grads.mean(dim=spatial, keepdim=True) * a).sum(1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam.float(), size=tuple(x.shape[2:]),
                                          mode="trilinear" if len(spatial) == 3 else "bilinear", align_corners=False)
    flat = cam.flatten(1)
    shape = (-1,) + (1,) * (cam.ndim - 1)
    lo, hi = flat.min(1).values.view(shape), flat.max(1).values.view(shape)
    return ((cam - lo) / (hi - lo).clamp(min=1e-12))[:, 0]


def _name(names: Sequence[str], i: int) -> str:
    return str(names[i]) if 0 <= i < len(names) else str(i)


def _slice_id(r: dict) -> str:
    p, s = r.get("patient"), r.get("slice")
    if p is None or s is None:  # images that are not slices of a volume (radiographs): the file's name
        return os.path.splitext(os.path.basename(str(r.get("image", "?"))))[0]
    return f"{p}/{int(s):02d}" if isinstance(s, (int, np.integer)) else f"{p}/{s}"


def _segmentation_tiles(self: ValidationOverlays, x: torch.Tensor, items: list[dict], net: torch.nn.Module,
                        size: int) -> list[np.ndarray]:
    from medpipe.visualization.overlays import segmentation_tile

    with torch.no_grad():
        out = self.inferer(x, net) if self.inferer is not None else net(x)
    if isinstance(out, (list, tuple)):
        out = out[0]
    if out.ndim == x.ndim + 1:  # deep-supervision stack (B, heads, C, H, W): the main head
        out = out[:, 0]
    pred = out.argmax(1) > 0 if out.shape[1] > 1 else torch.sigmoid(out[:, 0]) > 0.5
    tiles = []
    for r, it, p in zip(self._picked, items, pred.cpu().numpy()):
        t = np.asarray(torch.as_tensor(it["label"]).float().cpu()).reshape(p.shape) > 0.5
        inter, tot = int((p & t).sum()), int(p.sum() + t.sum())
        what = f"Dice {2 * inter / tot:.2f}" if t.any() else f"no lesion, {int(p.sum())} px predicted"
        img = it["image"]  # 2.5D input (previous, this, next slice): the middle channel is the slice itself
        tiles.append(segmentation_tile(img[img.shape[0] // 2], t, p, caption=f"{_slice_id(r)}  {what}", size=size))
    return tiles


def _classification_tiles(self: ValidationOverlays, x: torch.Tensor, items: list[dict], net: torch.nn.Module,
                          size: int) -> list[np.ndarray]:
    from medpipe.visualization.overlays import heatmap_tile, segmentation_tile, strongest_plane

    with torch.no_grad():
        logits = net(x).float()
    probs = torch.sigmoid(logits) if self.task == "multilabel" else torch.softmax(logits, 1)
    probs = probs.cpu().numpy()
    if self.task == "binary":  # explain the positive class, whatever the prediction
        idx = [probs.shape[1] - 1] * len(items)
    else:  # the predicted (multiclass) or highest-scoring (multi-label) class
        idx = [int(np.argmax(p)) for p in probs]
    heat = grad_cam(net, self.gradcam_layer, x, idx).cpu().numpy() if self.gradcam_layer else [None] * len(items)
    tiles = []
    for r, it, p, k, h in zip(self._picked, items, probs, idx, heat):
        y = r.get("labels", r.get("label"))
        if self.task == "multilabel":
            truth = "+".join(_name(self.class_names, i) for i, v in enumerate(np.ravel(y)) if v) or "none"
        else:
            truth = _name(self.class_names, int(np.ravel(y)[0]))
        img, h, plane = strongest_plane(np.asarray(it["image"][0]), h)  # a volume: its strongest axial plane
        cap = (f"{_slice_id(r)}{'' if plane is None else f' z{plane}'}  p({_name(self.class_names, k)}) {p[k]:.2f}"
               f" | true {truth}")
        tiles.append(heatmap_tile(img, h, caption=cap, size=size) if h is not None
                     else segmentation_tile(img, caption=cap, size=size))
    return tiles


#: label kind -> drawing of the overlay tiles (task from the datalist / checkpoint settings)
OVERLAY_KINDS = {
    "segmentation": _segmentation_tiles,
    "binary": _classification_tiles,
    "multiclass": _classification_tiles,
    "multilabel": _classification_tiles,
}


class ValidationOverlays:
    """After each validation, write a grid of the same fixed validation slices with the prediction drawn.

    Attach to the evaluator (``validate#handlers``): the step is the evaluator's epoch, i.e. the
    training epoch it validated. The slices are chosen once (:func:`medpipe.visualization.overlays.pick_slices`:
    positives and negatives from different patients), pre-processed once with the validation
    transform, and predicted with the current network in eval mode (the unwrapped module under DDP,
    on the main rank only; no collective call), so the grid shows the model learning:

    - ``segmentation``: the predicted mask (red) and the true contour (green), Dice in the caption;
    - ``binary`` / ``multiclass`` / ``multilabel``: the Grad-CAM of the positive (binary) or
      predicted class over the slice, its probability and the truth in the caption.

    Args:
        log_dir: the run's TensorBoard folder.
        task: the label kind (a key of :data:`OVERLAY_KINDS`).
        records: the validation records (datalist records with ``image``, ``patient``, ``slice``).
        transform: the deterministic validation pre-processing (dict -> dict with ``image``, and
            ``label`` for segmentation).
        network: the trained network.
        inferer: the validation inferer (e.g. sliding window); None: ``network(x)``.
        class_names: class names of the label kind (captions).
        gradcam_layer: the layer Grad-CAM reads (classification); None: no heat map.
        n_slices: how many slices (default 4).
        tile_size: pixels of each tile's longer side.
        tag: the image tag.
    """

    def __init__(self, log_dir: str, task: str, records: Sequence[dict], transform, network: torch.nn.Module,
                 inferer=None, class_names: Sequence[str] = (), gradcam_layer: str | None = None, n_slices: int = 4,
                 tile_size: int = 256, tag: str = OVERLAY_TAG) -> None:
        if task not in OVERLAY_KINDS:
            raise ValueError(f"task {task!r}: ValidationOverlays draws {', '.join(OVERLAY_KINDS)}")
        self.log_dir, self.task, self.records, self.transform = log_dir, task, list(records), transform
        self.network, self.inferer, self.class_names = network, inferer, list(class_names)
        self.gradcam_layer, self.n_slices, self.tile_size, self.tag = gradcam_layer, int(n_slices), int(tile_size), tag
        self._picked: list[dict] | None = None
        self._items: list[dict] = []
        self._failed = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _prepare(self) -> None:
        from medpipe.visualization.overlays import pick_slices

        self._picked = pick_slices(self.records, self.n_slices)
        self._items = [self.transform(dict(r)) if self.transform is not None else dict(r) for r in self._picked]

    def render(self) -> np.ndarray | None:
        """The overlay grid ``(H, W, 3)`` ``uint8`` with the network as it is now (None: no records)."""
        from medpipe.visualization.overlays import tile_grid

        if self._picked is None:
            self._prepare()
        if not self._picked:
            return None
        net = _unwrap(self.network)
        device = next(net.parameters()).device
        x = torch.stack([torch.as_tensor(np.asarray(it["image"]) if not torch.is_tensor(it["image"]) else it["image"])
                         for it in self._items]).float().to(device)
        was_training = net.training
        net.eval()
        try:
            tiles = OVERLAY_KINDS[self.task](self, x, self._items, net, self.tile_size)
        finally:
            net.train(was_training)
        return tile_grid(tiles, ncols=len(tiles))

    def __call__(self, engine: Engine) -> None:
        if self._failed or not _is_main_rank():
            return
        try:
            grid = self.render()
        except Exception as e:  # noqa: BLE001 - a picture must never stop a training
            self._failed = True
            log.warning("TensorBoard overlays disabled for this run: %s: %s", type(e).__name__, e)
            return
        w = summary_writer(self.log_dir)
        if grid is not None and w is not None:
            w.add_image(self.tag, grid, engine.state.epoch, dataformats="HWC")
            w.flush()
