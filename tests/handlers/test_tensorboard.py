"""TensorBoard: each scalar once under train/ and val/ names, one overlay grid per validation, main rank only.

A tiny MONAI trainer/evaluator pair (in-memory 16 px slices, a two-layer network) runs a few epochs
with the handlers the bundles use; the event files are read back with TensorBoard's own reader.
"""

from __future__ import annotations

import io
import logging
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medpipe.handlers import tensorboard as T
from medpipe.visualization.overlays import PRED_RGB, TRUE_RGB, boxes_tile, pick_slices, segmentation_tile, tile_grid

TILE = 64


def read_events(tb: Path) -> tuple[dict, dict, int]:
    """``({scalar tag: [(step, value)]}, {image tag: [(step, HxWx3 array)]}, number of event files)``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict = {}
    images: dict = {}
    files = sorted(Path(tb).glob("events.out.tfevents.*"))
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"images": 0, "scalars": 0})
        acc.Reload()
        for t in acc.Tags()["scalars"]:
            scalars.setdefault(t, []).extend((e.step, e.value) for e in acc.Scalars(t))
        for t in acc.Tags()["images"]:
            images.setdefault(t, []).extend(
                (e.step, np.asarray(Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB")))
                for e in acc.Images(t))
    return scalars, images, len(files)


def _records(task: str, n_patients: int = 3, size: int = 16) -> list[dict]:
    """Per patient: slice 0 with a bright square lesion, slice 1 without."""
    rng = np.random.default_rng(0)
    out = []
    for p in range(n_patients):
        for s in range(2):
            pos = s == 0
            img = rng.normal(0, 0.1, (1, size, size)).astype(np.float32)
            mask = np.zeros((1, size, size), np.float32)
            if pos:
                img[:, 4:10, 5:11] += 2.0
                mask[:, 4:10, 5:11] = 1.0
            r = {"image": img, "patient": f"{p:04d}", "slice": s}
            if task == "segmentation":
                r.update(label=mask, slice_label=int(pos))
            elif task == "multilabel":
                r.update(labels=[int(pos), int(not pos)], label=np.asarray([pos, not pos], np.float32))
            else:
                r["label"] = int(pos)
            out.append(r)
    return out


def _network(task: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if task == "segmentation":
        return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    return torch.nn.Sequential(OrderedDict(
        features=torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU()),
        pool=torch.nn.AdaptiveAvgPool2d(1), flat=torch.nn.Flatten(), head=torch.nn.Linear(4, 2)))


def _loss(task: str):
    if task == "segmentation":
        return lambda p, y: torch.nn.functional.cross_entropy(p, y[:, 0].long())
    if task == "multilabel":
        return torch.nn.BCEWithLogitsLoss()
    return lambda p, y: torch.nn.functional.cross_entropy(p, y.long())


def train_tiny(tmp_path: Path, task: str, epochs: int = 3, val_interval: int = 1, transform=None):
    """Train with the bundles' TensorBoard handlers; returns the run folder."""
    from monai.engines import SupervisedEvaluator, SupervisedTrainer
    from monai.handlers import ValidationHandler, from_engine

    from medpipe.handlers.classification import ClassificationMetric
    from medpipe.handlers.segmentation import GlobalDice
    from medpipe.handlers.training import TrainingHistory

    recs = _records(task)
    loader = torch.utils.data.DataLoader(recs, batch_size=2, shuffle=False)
    net = _network(task)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    tb = tmp_path / "tb"
    metric = {"val_dice": GlobalDice(output_transform=from_engine(["pred", "label"]))} if task == "segmentation" else \
        {"val_f1": ClassificationMetric("f1", kind=task, output_transform=from_engine(["pred", "label"]))}
    overlays = T.ValidationOverlays(str(tb), task, recs, transform, net, class_names=["no", "yes"],
                                    gradcam_layer=None if task == "segmentation" else "features", tile_size=TILE)
    evaluator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=loader, network=net,
                                    key_val_metric=metric, val_handlers=[overlays])
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=epochs, train_data_loader=loader, network=net, optimizer=opt,
        loss_function=_loss(task),
        train_handlers=[ValidationHandler(validator=evaluator, interval=val_interval, epoch_level=True),
                        TrainingHistory(str(tmp_path), optimizer=opt, validator=evaluator, tb_dir=str(tb)),
                        T.IterationLoss(str(tb))])
    trainer.run()
    return tmp_path


CASES = [  # task, epochs, validation interval, key metric tag
    ("segmentation", 3, 1, "val/dice"),
    ("binary", 3, 1, "val/f1"),
    ("multilabel", 4, 2, "val/f1"),
]


@pytest.mark.parametrize("task,epochs,interval,key", CASES)
def test_each_scalar_once_and_one_overlay_grid_per_validation(tmp_path, task, epochs, interval, key):
    run = train_tiny(tmp_path, task, epochs, interval)
    scalars, images, n_files = read_events(run / "tb")
    assert n_files == 1  # one writer for every handler
    assert set(scalars) == {"train/loss", "train/loss_iteration", "train/lr", "train/images_per_s", key}
    every = list(range(1, epochs + 1))
    validated = [e for e in every if e % interval == 0]
    assert [s for s, _ in scalars["train/loss"]] == every and [s for s, _ in scalars["train/lr"]] == every
    assert [s for s, _ in scalars["train/images_per_s"]] == every and all(v > 0 for _, v in scalars["train/images_per_s"])
    assert [s for s, _ in scalars[key]] == validated  # written only when a validation ran, once
    steps = [s for s, _ in scalars["train/loss_iteration"]]
    assert steps == list(range(1, 3 * epochs + 1))  # 6 records, batch 2
    assert set(images) == {"val/overlays", "train/images"}
    grids = images["val/overlays"]
    assert [s for s, _ in grids] == validated
    for _, g in grids:
        assert g.shape == (TILE + 4, 4 * TILE + 5 * 2, 3)  # 4 fixed slices side by side
    colours = {tuple(c) for c in grids[-1][1].reshape(-1, 3)}
    if task == "segmentation":
        assert TRUE_RGB in colours  # the true contour
    else:
        assert any(len(set(c)) > 1 for c in colours)  # a coloured heat map over the gray slice


def test_overlays_show_the_model_learning(tmp_path):
    """The grid changes from one validation to the next (same slices, new predictions)."""
    _, images, _ = read_events(train_tiny(tmp_path, "segmentation", epochs=2) / "tb")
    (_, first), (_, second) = images["val/overlays"]
    assert first.shape == second.shape and not np.array_equal(first, second)


def test_nothing_is_written_off_the_main_rank(tmp_path, monkeypatch):
    import medpipe.engines.distributed as D

    monkeypatch.setattr(D, "is_main_rank", lambda: False)
    train_tiny(tmp_path, "binary", epochs=2)
    assert not list(tmp_path.rglob("events.out.tfevents.*"))
    assert not (tmp_path / "history.json").exists()


def test_a_failing_overlay_warns_once_and_training_goes_on(tmp_path, caplog):
    def broken(d):
        raise OSError("slice unreadable")

    with caplog.at_level(logging.WARNING, logger="medpipe"):
        run = train_tiny(tmp_path, "binary", epochs=2, transform=broken)
    assert caplog.text.count("TensorBoard overlays disabled for this run: OSError: slice unreadable") == 1
    scalars, images, _ = read_events(run / "tb")
    assert "val/overlays" not in images and [s for s, _ in scalars["val/f1"]] == [1, 2]


@pytest.mark.parametrize("name,split,tag", [
    ("loss", "train", "train/loss"),
    ("lr", "train", "train/lr"),
    ("val_dice", "val", "val/dice"),
    ("val_auroc", "val", "val/auroc"),
    ("map50", "val", "val/map50"),
])
def test_scalar_tags(name, split, tag):
    assert T.scalar_tag(name, split) == tag


def test_grad_cam_leaves_no_hook_and_no_gradient():
    net = _network("binary").eval()
    x = torch.zeros(2, 1, 16, 16)
    x[0, :, 4:10, 5:11] = 2.0
    cam = T.grad_cam(net, "features", x, [1, 1])
    assert cam.shape == (2, 16, 16) and float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0
    assert all(p.grad is None for p in net.parameters())
    assert not net.features._forward_hooks


# ---------------------------------------------------------------- the fixed slices and the tiles


def test_pick_slices_is_fixed_and_spreads_over_patients():
    recs = _records("segmentation")
    picked = pick_slices(recs, 4)
    assert [(r["patient"], r["slice"]) for r in picked] == [("0000", 0), ("0001", 0), ("0002", 1), ("0000", 1)]
    shuffled = [recs[i] for i in np.random.default_rng(1).permutation(len(recs))]
    assert [id(r) for r in pick_slices(shuffled, 4)] == [id(r) for r in picked]  # datalist order does not matter
    assert len(pick_slices(recs[:3], 4)) == 3 and pick_slices([], 4) == []
    only_negatives = [r for r in recs if not r["slice_label"]]
    assert len(pick_slices(only_negatives, 4)) == 3


def test_segmentation_tile_draws_truth_contour_and_predicted_mask():
    img = np.zeros((16, 16))
    truth = np.zeros((16, 16))
    truth[4:10, 4:10] = 1
    pred = np.zeros((16, 16))
    pred[8:14, 8:14] = 1
    tile = segmentation_tile(img, truth, pred, size=64)
    assert tile.shape == (64, 64, 3) and tile.dtype == np.uint8
    assert (tile[20, 16] == TRUE_RGB).all()  # on the true contour (left edge, x 16..19)
    r, g, b = tile[48, 48]
    assert r > 100 and g < 30 and b < 30  # inside the prediction only: red
    assert (tile[2, 2] == 0).all()  # background untouched


def test_boxes_tile_and_grid():
    tile = boxes_tile(np.zeros((32, 32)), [[4, 4, 12, 12]], [[16, 16, 28, 28]], [0.9], size=64)
    assert (tile[8:24, 8] == TRUE_RGB).all(axis=1).any() and (tile == PRED_RGB).all(axis=2).any()
    assert tile_grid([tile, tile[:32]], ncols=2, pad=1).shape == (66, 131, 3)


def test_detector_boxes_from_the_raw_head():
    from medpipe.detection.training import _letterbox, decode_boxes

    # (1, 4 + 1 class, 3 anchors): centre x, centre y, w, h, score
    out = torch.tensor([[[10.0, 11.0, 40.0], [10.0, 10.0, 40.0], [4.0, 4.0, 4.0], [4.0, 4.0, 4.0],
                         [0.9, 0.8, 0.1]]])
    [(boxes, scores)] = decode_boxes((out, None), conf=0.25, iou=0.3)
    assert boxes.tolist() == [[8.0, 8.0, 12.0, 12.0]] and scores.tolist() == pytest.approx([0.9])
    x, (scale, left, top) = _letterbox(np.full((32, 64), 255, np.uint8), 64)
    assert x.shape == (3, 64, 64) and (scale, left, top) == (1.0, 0, 16)
    assert float(x[0, 0, 0]) == pytest.approx(114 / 255) and float(x[0, 16, 0]) == 1.0


# ---------------------------------------------------------------- the printed command


def test_tensorboard_command_runs_from_a_plain_shell(tmp_path, monkeypatch):
    import shlex

    from medpipe.reporting.summary import tensorboard_command

    cmd = shlex.split(tensorboard_command([("sich_seg", tmp_path / "tb")]))
    assert Path(cmd[0]).is_absolute() and Path(cmd[0]).name == "tensorboard" and Path(cmd[0]).is_file()
    assert cmd[1:] == ["--logdir_spec", f"sich_seg:{tmp_path / 'tb'}", "--samples_per_plugin", "images=200",
                       "--host", "127.0.0.1", "--port", "6006"]
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))  # no tensorboard script next to it
    cmd = shlex.split(tensorboard_command([("a", "/r/a/tb")]))
    assert cmd[:3] == [str(tmp_path / "bin" / "python"), "-m", "tensorboard.main"]


def test_summary_prints_the_tensorboard_command_only_when_asked(tmp_path):
    from medpipe.reporting.summary import summarize

    assert "tensorboard" not in summarize(str(tmp_path), [str(tmp_path / "sich_cls")]).lower()
    assert "--logdir_spec sich_cls:" in summarize(str(tmp_path), [str(tmp_path / "sich_cls")], tensorboard=True)
