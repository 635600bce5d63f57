import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from medpipe.metrics import area_threshold_sweep, choose_area_threshold
from medpipe.visualization import (image_grid, overlay_boxes, overlay_contours, overlay_heatmap,
                                   plot_confusion_matrix, plot_curves, plot_roc, plot_threshold_sweep)
from medpipe.visualization.plots import curve_panels, is_learning_rate

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def check_png(path, returned, min_bytes=3000):
    """Written where asked, returned, a real non-blank PNG, no temp files left behind."""
    assert os.fspath(returned) == os.fspath(path)
    data = path.read_bytes()
    assert data[:8] == PNG_SIG
    assert len(data) > min_bytes
    with Image.open(path) as im:
        im.load()
        assert im.width > 100 and im.height > 100
        assert np.asarray(im.convert("L"), dtype=np.float64).std() > 0
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.fixture
def image():
    yy, xx = np.mgrid[:64, :80]
    return np.sin(xx / 6.0) * np.cos(yy / 7.0) * 400.0 - 1000.0  # CT-like range


@pytest.fixture
def masks():
    yy, xx = np.mgrid[:64, :80]
    true = (yy - 30) ** 2 + (xx - 40) ** 2 < 120
    pred = (yy - 33) ** 2 + (xx - 43) ** 2 < 100
    return true, pred


def test_confusion_matrix(tmp_path):
    p = tmp_path / "nested" / "cm.png"  # parent folders are created
    check_png(p, plot_confusion_matrix([[50, 3], [4, 20]], ["negative", "positive"], p, title="CM"))


def test_confusion_matrix_empty_row_and_multiclass(tmp_path):
    p = tmp_path / "cm3.png"
    check_png(p, plot_confusion_matrix(np.array([[0, 0, 0], [2, 5, 1], [0, 1, 9]]), ["a", "b", "c"], p))
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 2]], ["a", "b"], tmp_path / "bad.png")
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 2], [3, 4]], ["a"], tmp_path / "bad.png")


def test_roc(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    prob = np.clip(0.4 * y + 0.6 * rng.random(100), 0, 1)
    p = tmp_path / "roc.png"
    check_png(p, plot_roc(y, prob, p, threshold=0.5))


@pytest.mark.parametrize("y", [[0, 0, 0, 0], [1, 1, 1]])
def test_roc_single_class_does_not_crash(tmp_path, y):
    p = tmp_path / "roc1.png"
    check_png(p, plot_roc(y, np.linspace(0, 1, len(y)), p))


def test_curves(tmp_path):
    hist = {"train_loss": [1.0, 0.7, 0.5, 0.4], "val_loss": [1.1, None, 0.6, None],
            "val_dice": [0.2, 0.4, 0.5, 0.55], "val_auroc": [0.6, 0.7, 0.75, 0.8], "lr": [1e-3, 1e-3, 5e-4, 1e-4]}
    p = tmp_path / "curves.png"
    check_png(p, plot_curves(hist, p, title="run 1"))
    with Image.open(p) as im:
        assert im.width > 2.5 * im.height  # one wide figure, meant to be shown full width
    only_loss = tmp_path / "loss.png"
    check_png(only_loss, plot_curves({"loss": [3.0, 2.0, 1.5]}, only_loss))
    with pytest.raises(ValueError):
        plot_curves({}, tmp_path / "none.png")
    with pytest.raises(ValueError):
        plot_curves({"lr": []}, tmp_path / "none.png")


@pytest.mark.parametrize("key, is_lr", [("lr", True), ("LR", True), ("lr/pg0", True), ("lr0", True), ("head_lr", True),
                                        ("learning_rate", True), ("val_f1", False), ("lrap", False),
                                        ("val_loss", False), ("clr_loss", False)])
def test_learning_rate_keys(key, is_lr):
    assert is_learning_rate(key) is is_lr


def test_curve_panels_keep_the_learning_rate_off_the_metric_axis():
    from medpipe.visualization.plots import _curves_figure

    hist = {"loss": [0.6, 0.3], "lr": [1e-3, 1e-4], "val_f1": [0.5, 0.9], "val_accuracy": [0.4, 0.8],
            "box_loss": [3.0, 300.0]}
    assert curve_panels(hist) == [("Loss", ["loss", "box_loss"]), ("Metrics", ["val_f1", "val_accuracy"]),
                                  ("Learning rate", ["lr"])]
    fig = _curves_figure(hist, "t")
    axes = {ax.get_title(): ax for ax in fig.axes}
    assert set(axes) == {"Loss", "Metrics", "Learning rate"}
    metric_labels = [ln.get_label() for ln in axes["Metrics"].get_lines()]
    assert all(not lbl.startswith("lr") for lbl in metric_labels)
    assert axes["Metrics"].get_ylim() == pytest.approx((-0.02, 1.02))  # scores on their full 0..1 scale
    assert axes["Learning rate"].get_yscale() == "log"
    assert axes["Loss"].get_yscale() == "log"  # 0.3 .. 300: one exploding loss must not flatten the rest
    # end values are in the legend, not as text labels on the lines (which overlapped)
    assert all(not ax.texts for ax in fig.axes)
    assert metric_labels == ["val_f1: last 0.900, max 0.900 (epoch 2)", "val_accuracy: last 0.800, max 0.800 (epoch 2)"]


def test_threshold_sweep(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    areas = np.where(labels == 1, rng.integers(0, 4000, 300), rng.integers(0, 30, 300))
    sweep = area_threshold_sweep(areas, labels)
    p = tmp_path / "sweep.png"
    check_png(p, plot_threshold_sweep(sweep, choose_area_threshold(sweep), p))
    small = area_threshold_sweep([0, 0, 5, 50, 80], [0, 0, 0, 1, 1])
    p2 = tmp_path / "sweep_small.png"
    check_png(p2, plot_threshold_sweep(small, 50, p2, title="area sweep"))
    p3 = tmp_path / "prob.png"
    rows = [{"threshold": t, "f1": 1 - abs(t - 0.4), "recall": 1 - t} for t in np.linspace(0, 1, 11)]
    check_png(p3, plot_threshold_sweep(rows, None, p3, x_key="threshold"))


def test_overlay_boxes(tmp_path, image):
    p = tmp_path / "boxes.png"
    check_png(p, overlay_boxes(image, [[20, 15, 50, 40]], [[22, 14, 52, 42], [2, 2, 10, 10]], p,
                               scores=[0.93, 0.31]))
    empty = tmp_path / "boxes_empty.png"
    check_png(empty, overlay_boxes(image, [], None, empty))
    with pytest.raises(ValueError):
        overlay_boxes(image, [], [[1, 1, 4, 4]], tmp_path / "bad.png", scores=[0.1, 0.2])


def test_overlay_contours(tmp_path, image, masks):
    true, pred = masks
    p = tmp_path / "contours.png"
    check_png(p, overlay_contours(image, true, pred, p, title="dice 0.8"))
    # empty masks, torch input, a mask touching the border, (1, H, W) image
    edge = np.zeros_like(pred)
    edge[:5, :5] = True
    p2 = tmp_path / "contours2.png"
    check_png(p2, overlay_contours(torch.from_numpy(image)[None], np.zeros_like(true), torch.from_numpy(edge), p2))
    with pytest.raises(ValueError):
        overlay_contours(image, true[:10], pred, tmp_path / "bad.png")


def test_overlay_heatmap(tmp_path, image):
    p = tmp_path / "cam.png"
    cam = np.outer(np.hanning(8), np.hanning(10))  # coarser than the image: stretched over it
    check_png(p, overlay_heatmap(image, cam, p, title="Grad-CAM"))
    # on a shared scale a weak map stays weak instead of being stretched to the full colour range
    weak, strong = tmp_path / "weak.png", tmp_path / "strong.png"
    overlay_heatmap(np.zeros((64, 80)), cam * 0.01, weak, value_range=(0, 1), label="activation")
    overlay_heatmap(np.zeros((64, 80)), cam, strong, value_range=(0, 1), label="activation")
    red = [np.asarray(Image.open(f).convert("RGB"), dtype=float)[..., 0].mean() for f in (weak, strong)]
    assert red[0] < red[1]


def test_constant_image_is_fine(tmp_path):
    p = tmp_path / "const.png"
    check_png(p, overlay_contours(np.full((32, 32), 7.0), np.eye(32), np.zeros((32, 32)), p))


def test_image_grid(tmp_path, image, masks):
    true, pred = masks
    rgb = (np.stack([true, pred, np.zeros_like(true)], -1) * 255).astype(np.uint8)
    p = tmp_path / "grid.png"
    check_png(p, image_grid([image, true, pred, rgb, image.T], p, titles=list("abcde"), ncols=3))
    with pytest.raises(ValueError):
        image_grid([], tmp_path / "none.png")
    with pytest.raises(ValueError):
        image_grid([image], tmp_path / "bad.png", titles=["a", "b"])


def test_overwrite_is_atomic_replace(tmp_path):
    p = tmp_path / "cm.png"
    p.write_bytes(b"old")
    plot_confusion_matrix([[1, 2], [3, 4]], ["n", "p"], p)
    assert p.read_bytes()[:8] == PNG_SIG
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cm.png"]
    # the mode of an ordinary new file (umask-based), not mkstemp's private 0600
    ref = tmp_path / "ref"
    ref.write_bytes(b"")
    assert stat.S_IMODE(p.stat().st_mode) == stat.S_IMODE(ref.stat().st_mode)


def test_no_pyplot_state(tmp_path):
    import sys

    plot_confusion_matrix([[1, 2], [3, 4]], ["n", "p"], tmp_path / "cm.png")
    if "matplotlib.pyplot" in sys.modules:  # imported by someone else: we must not leave figures open
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []
