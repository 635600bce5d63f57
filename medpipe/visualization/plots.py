"""Evaluation figures as PNG files: confusion matrix, ROC, training curves, threshold sweeps,
box/contour/heat-map overlays and image grids.

Every function draws on its own :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot,
no global state, safe in worker threads and headless runs), writes the PNG atomically (a temp
file in the same folder, then :func:`os.replace`, so a reader never sees a half-written file),
creates missing parent folders, and returns the written path. Images are 2D arrays (numpy or
torch) in any value range; they are min-max normalized for display.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = [
    "plot_confusion_matrix", "plot_roc", "plot_roc_curves", "plot_curves", "plot_threshold_sweep",
    "overlay_boxes", "overlay_contours", "overlay_heatmap", "image_grid", "DPI", "curve_panels", "is_learning_rate",
]

#: resolution of every written PNG
DPI = 120
TRUE_COLOR = "lime"
PRED_COLOR = "red"
_SWEEP_KEYS = ("accuracy", "precision", "recall", "f1", "specificity")


# ---------------------------------------------------------------- helpers
def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically; return ``Path(path)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # not mkstemp: its 0600 mode would survive os.replace; a unique name is enough here
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _array(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _image2d(image, name: str = "image") -> np.ndarray:
    """A 2D float image scaled to [0, 1] (constant images become 0); singleton axes dropped."""
    a = _array(image).astype(np.float64)
    if a.ndim > 2:
        a = np.squeeze(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2D (singleton axes allowed), got shape {_array(image).shape}")
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros_like(a)
    lo, hi = a[finite].min(), a[finite].max()
    a = np.where(finite, a, lo)  # NaN/inf pixels shown as the minimum
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _mask2d(mask, shape, name: str) -> np.ndarray:
    m = _array(mask)
    if m.ndim > 2:
        m = np.squeeze(m)
    if m.shape != tuple(shape):
        raise ValueError(f"{name} shape {m.shape} does not match the image {tuple(shape)}")
    return m != 0


def _image_figure(shape, extra_width: float = 0.0) -> tuple[Figure, object]:
    h, w = shape
    base = 6.0
    scale = base / max(h, w)
    fig = _new_figure(max(w * scale, 2.5) + extra_width, max(h * scale, 2.5) + 0.5)
    return fig, fig.add_subplot(1, 1, 1)


def _show_gray(ax, img: np.ndarray) -> None:
    ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------- metric plots
def plot_confusion_matrix(cm, class_names: Sequence[str], path, title: str | None = None) -> Path:
    """Confusion matrix as two panels: raw counts and row-normalized (fraction of each true class).

    Args:
        cm: square matrix, rows = true class, columns = predicted class (e.g. the
            ``confusion_matrix`` of :func:`medpipe.metrics.classification_metrics`).
        class_names: one name per row/column.
        path: output PNG path.
        title: figure title (default "Confusion matrix").

    Returns:
        The written path.

    Example:
        >>> plot_confusion_matrix([[50, 3], [4, 20]], ["negative", "positive"], "cm.png")  # doctest: +SKIP
        PosixPath('cm.png')
    """
    m = _array(cm).astype(np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"cm must be a square matrix, got shape {m.shape}")
    if len(class_names) != m.shape[0]:
        raise ValueError(f"{len(class_names)} class names for a {m.shape[0]}x{m.shape[0]} matrix")
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows != 0)
    k = m.shape[0]
    side = max(3.2, 0.9 * k + 1.8)
    longest = max(len(str(c)) for c in class_names)
    # long names (e.g. lateral_malleolus_fracture) are slanted below the columns, and each panel gets
    # room for them at its left; the figure keeps the matrices square without empty bands
    slant = longest * k > 60
    fig = _new_figure(2 * (side + 0.08 * longest) + 1.0, side + (0.07 * longest if slant else 0.6))
    axes = fig.subplots(1, 2)
    integral = np.all(m == np.round(m))
    panels = [(axes[0], m, "Counts", (lambda v: f"{int(v)}") if integral else (lambda v: f"{v:.3g}"), None),
              (axes[1], norm, "Row-normalized (recall per true class)", lambda v: f"{v:.2f}", 1.0)]
    for ax, data, sub, fmt, vmax in panels:
        im = ax.imshow(data, cmap="Blues", vmin=0.0, vmax=vmax if vmax is not None else max(data.max(), 1.0))
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        hi = im.norm.vmax
        for i in range(k):
            for j in range(k):
                # a true class absent from the evaluated set has no row to normalize: not 0, undefined
                text = "n/a" if vmax is not None and rows[i, 0] == 0 else fmt(data[i, j])
                ax.text(j, i, text, ha="center", va="center", fontsize=12,
                        color="white" if data[i, j] > 0.5 * hi else "gray" if text == "n/a" else "black")
        ax.set_xticks(range(k), labels=[str(c) for c in class_names])
        if slant:
            ax.tick_params(axis="x", labelrotation=35)
            for t in ax.get_xticklabels():
                t.set_horizontalalignment("right")
                t.set_rotation_mode("anchor")
        ax.set_yticks(range(k), labels=[str(c) for c in class_names])
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        ax.set_title(sub)
    fig.suptitle(title or f"Confusion matrix (n={int(m.sum())})")
    return _save(fig, path)


def plot_roc(y_true, y_prob, path, title: str | None = None, threshold: float | None = None) -> Path:
    """ROC curve with its AUC in the legend and the chance diagonal.

    When ``y_true`` holds a single class the curve is undefined: the figure shows the diagonal
    and a text note instead (no exception).

    Args:
        y_true: 0/1 labels.
        y_prob: positive-class scores.
        path: output PNG path.
        title: figure title (default "ROC curve").
        threshold: optional operating threshold (``y_prob >= threshold``) to mark on the curve.

    Returns:
        The written path.

    Example:
        >>> plot_roc([0, 1, 1, 0], [0.2, 0.9, 0.6, 0.4], "roc.png")  # doctest: +SKIP
        PosixPath('roc.png')
    """
    from medpipe.metrics.classification import _inputs

    y, p = _inputs(y_true, y_prob)
    fig = _new_figure(5.5, 5.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="chance (AUC = 0.5)")
    n_pos = int(y.sum())
    if 0 < n_pos < y.size:
        from sklearn.metrics import roc_auc_score, roc_curve

        fpr, tpr, _ = roc_curve(y, p)
        auc = roc_auc_score(y, p)
        ax.plot(fpr, tpr, color="C0", lw=2, label=f"ROC (AUC = {auc:.3f})")
        if threshold is not None:
            pred = p >= threshold
            op_tpr = float(np.mean(pred[y == 1]))
            op_fpr = float(np.mean(pred[y == 0]))
            ax.plot([op_fpr], [op_tpr], "o", color="C3", ms=8,
                    label=f"threshold {threshold:.3g} (TPR {op_tpr:.2f}, FPR {op_fpr:.2f})")
    else:
        only = "positive" if n_pos else "negative"
        ax.text(0.5, 0.55, f"ROC undefined:\nall {y.size} samples are {only}",
                ha="center", va="center", fontsize=12, transform=ax.transAxes,
                bbox=dict(boxstyle="round", fc="lightyellow", ec="gray"))
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_title(title or f"ROC curve (n={y.size}, positives={n_pos})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_roc_curves(curves: Mapping[str, tuple], path, title: str | None = None) -> Path:
    """One-vs-rest ROC curves of several classes in one panel (multiclass and multi-label models).

    Args:
        curves: class name -> ``(y_true, y_score)`` (0/1 labels for that class, its scores). A
            class whose labels hold a single value has no curve; the legend says "undefined".
        path: output PNG path.
        title: figure title.

    Returns:
        The written path.

    Example:
        >>> plot_roc_curves({"a": ([0, 1, 1], [0.2, 0.7, 0.9]), "b": ([1, 0, 0], [0.6, 0.3, 0.4])}, "roc.png")  # doctest: +SKIP
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    from medpipe.metrics.classification import _inputs

    fig = _new_figure(6.5, 5.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="chance")
    for i, (name, (y_true, y_score)) in enumerate(curves.items()):
        y, p = _inputs(y_true, y_score)
        color = f"C{i % 10}"
        if 0 < int(y.sum()) < y.size:
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, color=color, lw=1.6, ls="-" if i < 10 else ":",
                    label=f"{name} (AUC {roc_auc_score(y, p):.3f}, n+={int(y.sum())})")
        else:
            ax.plot([], [], color=color, label=f"{name}: undefined (n+={int(y.sum())})")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_title(title or "ROC curves, one class vs the rest")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8 if len(curves) > 6 else 9)
    return _save(fig, path)


def _series(values) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


_LR_KEY = re.compile(r"(^|[_/\-. ])(lr|learning_rate)(\d|[_/\-. ]|$)", re.IGNORECASE)


def is_learning_rate(key: str) -> bool:
    """Whether a history key holds a learning rate (``lr``, ``learning_rate``, ``lr/pg0``, ``head_lr``...).

    Example:
        >>> [is_learning_rate(k) for k in ("lr", "lr/pg0", "lr0", "val_f1", "lrap")]
        [True, True, True, False, False]
    """
    return bool(_LR_KEY.search(key))


def curve_panels(history: Mapping[str, Sequence[float]]) -> list[tuple[str, list[str]]]:
    """How :func:`plot_curves` groups the keys: ``[(panel, keys)]`` for the non-empty panels of
    ``Loss`` (keys containing "loss"), ``Metrics`` (the rest) and ``Learning rate`` (see
    :func:`is_learning_rate`), in that order. Timings (keys ending in ``_s``: ``train_s`` seconds,
    ``images_per_s`` throughput) are not learning curves and are left out.

    Example:
        >>> curve_panels({"loss": [1.0], "lr": [0.1], "val_f1": [0.5], "empty": [], "images_per_s": [90.0]})
        [('Loss', ['loss']), ('Metrics', ['val_f1']), ('Learning rate', ['lr'])]
    """
    keys = [k for k, v in history.items() if len(v) and not k.endswith("_s")]
    lr = [k for k in keys if is_learning_rate(k)]
    loss = [k for k in keys if "loss" in k.lower() and k not in lr]
    rest = [k for k in keys if k not in lr and k not in loss]
    return [(name, ks) for name, ks in (("Loss", loss), ("Metrics", rest), ("Learning rate", lr)) if ks]


def _last_and_best(name: str, epochs: np.ndarray, v: np.ndarray, panel: str) -> str:
    """Legend text: the series' last value and, for losses and metrics, its best one."""
    if not v.size:
        return f"{name} (no values)"
    fmt = "{:.3f}" if panel == "Metrics" and 0 <= v.min() and v.max() <= 1 else "{:.3g}"
    text = f"{name}: last {fmt.format(v[-1])}"
    if panel == "Learning rate" or v.size < 2:
        return text
    i = int(np.argmin(v) if panel == "Loss" else np.argmax(v))
    return text + f", {'min' if panel == 'Loss' else 'max'} {fmt.format(v[i])} (epoch {int(epochs[i])})"


def _curves_figure(history: Mapping[str, Sequence[float]], title: str | None) -> Figure:
    panels = curve_panels(history)
    if not panels:
        raise ValueError("history has no values to plot")
    widths = [1.0 if name != "Learning rate" else 0.6 for name, _ in panels]
    n_legend = max(len(keys) for _, keys in panels)
    fig = _new_figure(max(7.0, 4.6 * sum(widths) + 1.0), 3.6 + 0.25 * n_legend)
    axes = np.atleast_1d(fig.subplots(1, len(panels), gridspec_kw={"width_ratios": widths}))
    for ax, (name, keys) in zip(axes, panels):
        values = []
        for k in keys:
            v = _series(history[k])
            ok = np.isfinite(v)
            epochs = np.arange(1, v.size + 1)[ok]  # gaps (None/NaN) are skipped, not breaks
            v = v[ok]
            values.append(v)
            ax.plot(epochs, v, marker="o" if v.size <= 30 else None, ms=3.5, lw=1.6,
                    label=_last_and_best(k, epochs, v, name))
        allv = np.concatenate(values) if values else np.zeros(0)
        if name == "Learning rate" and allv.size and np.all(allv > 0):
            ax.set_yscale("log")
        if name == "Loss" and allv.size and np.all(allv > 0) and allv.max() > 50 * allv.min():
            ax.set_yscale("log")  # one exploding epoch must not flatten every other curve
        if name == "Metrics" and allv.size and allv.min() >= 0 and allv.max() <= 1:
            ax.set_ylim(-0.02, 1.02)  # scores in [0, 1] on their full scale, never zoomed into noise
        ax.set_xlabel("Epoch")
        ax.set_ylabel({"Loss": "loss", "Metrics": "value", "Learning rate": "learning rate"}[name])
        ax.set_title(name, fontsize=11)
        ax.grid(alpha=0.3, which="both" if name == "Learning rate" else "major")
        ax.xaxis.get_major_locator().set_params(integer=True)
        # below the panel: never over the curves; the end values live here, not as labels on the lines
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(0.0, -0.16), frameon=False, ncol=1)
    fig.suptitle(title or "Training curves", fontsize=12)
    return fig


def plot_curves(history: Mapping[str, Sequence[float]], path, title: str | None = None) -> Path:
    """Training curves per epoch in one wide figure: a loss panel, a metric panel and a learning-rate panel.

    Keys containing "loss" share the loss panel; learning rates (:func:`is_learning_rate`) get their
    own panel (log scale when positive), never the metric axis; every other key is a metric, drawn
    on 0..1 when its values lie there. Losses spanning more than a factor 50 are drawn on a log
    scale. Each legend entry carries the series' last value and its best (min loss, max metric)
    with the epoch, so no value labels sit on the lines.

    Args:
        history: name -> one value per epoch (epoch 1 first); ``None``/NaN entries are gaps
            (e.g. epochs without validation).
        path: output PNG path.
        title: figure title (default "Training curves").

    Returns:
        The written path.

    Raises:
        ValueError: ``history`` is empty or holds only empty lists.

    Example:
        >>> hist = {"train_loss": [0.9, 0.5], "val_dice": [0.4, 0.6], "lr": [1e-3, 5e-4]}
        >>> plot_curves(hist, "curves.png")  # doctest: +SKIP
        PosixPath('curves.png')
    """
    return _save(_curves_figure(history, title), path)


def plot_threshold_sweep(sweep: Sequence[Mapping], chosen, path, x_key: str = "area",
                         title: str | None = None) -> Path:
    """Metrics against the swept threshold, with the chosen threshold marked.

    Plots whichever of ``accuracy``, ``precision``, ``recall``, ``f1``, ``specificity`` the rows
    hold (other keys, e.g. counts, are ignored). The x axis becomes symmetric-log when the
    thresholds are >= 0 and span more than two orders of magnitude (typical for areas).

    Args:
        sweep: rows such as those of :func:`medpipe.metrics.area_threshold_sweep`.
        chosen: the chosen threshold (a value of ``x_key``), or ``None`` for no marker.
        path: output PNG path.
        x_key: the row key holding the threshold.
        title: figure title (default "Metrics vs <x_key> threshold").

    Returns:
        The written path.

    Example:
        >>> rows = [{"area": 0, "f1": 0.5}, {"area": 10, "f1": 0.8}]
        >>> plot_threshold_sweep(rows, 10, "sweep.png")  # doctest: +SKIP
        PosixPath('sweep.png')
    """
    if not sweep:
        raise ValueError("empty sweep")
    rows = sorted(sweep, key=lambda r: r[x_key])
    x = np.array([float(r[x_key]) for r in rows])
    keys = [k for k in _SWEEP_KEYS if k in rows[0]]
    if not keys:
        raise ValueError(f"sweep rows hold none of {_SWEEP_KEYS}")
    fig = _new_figure(7.5, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    for k in keys:
        ax.plot(x, [r[k] for r in rows], marker="." if x.size <= 60 else None, label=k,
                lw=2.2 if k == "f1" else 1.4)
    if chosen is not None:
        ci = int(np.argmin(np.abs(x - float(chosen))))
        desc = ", ".join(f"{k} {rows[ci][k]:.3f}" for k in keys if k in ("f1", "recall", "specificity"))
        ax.axvline(float(chosen), color="black", ls="--", lw=1.2,
                   label=f"chosen {x_key} = {_fmt(chosen)}" + (f"\n({desc})" if desc else ""))
    pos = x[x > 0]
    if x.min() >= 0 and pos.size and pos.max() / pos.min() > 100:
        ax.set_xscale("symlog", linthresh=max(pos.min(), 1e-12))
        ax.set_xlim(0, x.max() * 1.1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"{x_key} threshold (positive when {x_key} >= threshold)")
    ax.set_ylabel("metric value")
    ax.set_title(title or f"Metrics vs {x_key} threshold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="best")
    return _save(fig, path)


# ---------------------------------------------------------------- image overlays
def overlay_boxes(image, boxes_true, boxes_pred, path, scores: Sequence[float] | None = None,
                  title: str | None = None) -> Path:
    """Grayscale image with true boxes (green) and predicted boxes (red, with scores).

    Args:
        image: 2D image, any range.
        boxes_true: ground-truth boxes ``[xmin, ymin, xmax, ymax]`` in pixels (may be empty/None).
        boxes_pred: predicted boxes, same format (may be empty/None).
        path: output PNG path.
        scores: optional confidence per predicted box, written next to it.
        title: optional figure title (default: the box counts).

    Returns:
        The written path.

    Example:
        >>> overlay_boxes(img, [[10, 10, 30, 40]], [[12, 9, 31, 38]], "boxes.png", scores=[0.91])  # doctest: +SKIP
        PosixPath('boxes.png')
    """
    from matplotlib.patches import Rectangle

    img = _image2d(image)
    bt, bp = (np.zeros((0, 4)) if b is None or len(b) == 0 else _array(b).astype(np.float64).reshape(-1, 4)
              for b in (boxes_true, boxes_pred))
    if scores is not None and len(scores) != len(bp):
        raise ValueError(f"{len(scores)} scores for {len(bp)} predicted boxes")
    fig, ax = _image_figure(img.shape)
    _show_gray(ax, img)
    for boxes, color in ((bt, TRUE_COLOR), (bp, PRED_COLOR)):
        for x0, y0, x1, y1 in boxes:
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.8))
    if scores is not None:
        for (x0, y0, _, _), s in zip(bp, scores):
            ax.text(x0, y0 - 1, f"{float(s):.2f}", color="white", fontsize=8, va="bottom",
                    bbox=dict(fc=PRED_COLOR, ec="none", alpha=0.7, pad=1))
    ax.legend(handles=[Line2D([], [], color=TRUE_COLOR, lw=2, label=f"true ({len(bt)})"),
                       Line2D([], [], color=PRED_COLOR, lw=2, label=f"predicted ({len(bp)})")],
              loc="lower right", fontsize=8, framealpha=0.7)
    ax.set_title(title or f"boxes: {len(bt)} true, {len(bp)} predicted")
    return _save(fig, path)


def overlay_contours(image, mask_true, mask_pred, path, title: str | None = None) -> Path:
    """Grayscale image with the contours of the true mask (green) and the predicted mask (red).

    Args:
        image: 2D image, any range.
        mask_true: ground-truth mask, same shape (nonzero = foreground); may be empty.
        mask_pred: predicted mask, same shape; may be empty.
        path: output PNG path.
        title: figure title (default: the two foreground areas).

    Returns:
        The written path.

    Example:
        >>> overlay_contours(img, gt, pred > 0.5, "contours.png", title="case 12 (dice 0.81)")  # doctest: +SKIP
        PosixPath('contours.png')
    """
    img = _image2d(image)
    mt = _mask2d(mask_true, img.shape, "mask_true")
    mp = _mask2d(mask_pred, img.shape, "mask_pred")
    fig, ax = _image_figure(img.shape)
    _show_gray(ax, img)
    for m, color in ((mt, TRUE_COLOR), (mp, PRED_COLOR)):
        if m.any():
            # pad so that foreground touching the border still gets a closed contour
            padded = np.pad(m.astype(np.float64), 1)
            yy, xx = np.mgrid[-1:m.shape[0] + 1, -1:m.shape[1] + 1]
            ax.contour(xx, yy, padded, levels=[0.5], colors=[color], linewidths=1.6)
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)
    ax.legend(handles=[Line2D([], [], color=TRUE_COLOR, lw=2, label=f"true ({int(mt.sum())} px)"),
                       Line2D([], [], color=PRED_COLOR, lw=2, label=f"predicted ({int(mp.sum())} px)")],
              loc="lower right", fontsize=8, framealpha=0.7)
    ax.set_title(title or "true (green) vs predicted (red)")
    return _save(fig, path)


def overlay_heatmap(image, heatmap, path, title: str | None = None, alpha: float = 0.4,
                    value_range: tuple[float, float] | None = None, label: str | None = None,
                    boxes_true=None, boxes_pred=None) -> Path:
    """Grayscale image under a jet-colored heat map (e.g. Grad-CAM), with a colorbar.

    The heat map is min-max normalized (or, with ``value_range``, scaled from that range, so that
    several maps share one scale and a weak map stays dark) and stretched over the image when its
    size differs (Grad-CAM maps are often coarser than the input).

    Args:
        image: 2D image, any range.
        heatmap: 2D map, any range and size.
        path: output PNG path.
        title: figure title (default "Heat map").
        alpha: opacity of the heat map.
        value_range: ``(lo, hi)`` mapped to 0 and 1 (values outside are clipped); None: the map's own
            min and max.
        label: colorbar label (default "normalized activation").
        boxes_true: reference boxes ``[xmin, ymin, xmax, ymax]`` in pixels of ``image``, drawn green.
        boxes_pred: boxes derived from the map (same pixels), drawn red.

    Returns:
        The written path.

    Example:
        >>> overlay_heatmap(img, cam, "gradcam.png", title="Grad-CAM, p=0.93")  # doctest: +SKIP
        PosixPath('gradcam.png')
    """
    img = _image2d(image)
    if value_range is None:
        heat = _image2d(heatmap, "heatmap")
    else:
        lo, hi = (float(v) for v in value_range)
        raw = np.squeeze(_array(heatmap).astype(np.float64))
        if raw.ndim != 2:
            raise ValueError(f"heatmap must be 2D (singleton axes allowed), got shape {_array(heatmap).shape}")
        heat = np.clip((np.nan_to_num(raw, nan=lo) - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(raw)
    h, w = img.shape
    fig, ax = _image_figure(img.shape, extra_width=0.8)
    _show_gray(ax, img)
    im = ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0,
                   extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                   interpolation="bilinear" if heat.shape != img.shape else "nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label or "normalized activation")
    if boxes_true is not None or boxes_pred is not None:
        from matplotlib.patches import Rectangle

        bt, bp = (np.zeros((0, 4)) if b is None or len(b) == 0 else _array(b).astype(np.float64).reshape(-1, 4)
                  for b in (boxes_true, boxes_pred))
        for boxes, color in ((bt, TRUE_COLOR), (bp, PRED_COLOR)):
            for x0, y0, x1, y1 in boxes:  # box edges are pixel edges: pixel j spans [j - 0.5, j + 0.5] here
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.8))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(title or "Heat map")
    return _save(fig, path)


def image_grid(images: Sequence, path, titles: Sequence[str] | None = None, ncols: int = 4) -> Path:
    """A grid of images (2D grayscale, each normalized on its own, or ``H x W x 3`` RGB).

    Args:
        images: the images; RGB ``uint8`` is shown as is, float RGB is min-max normalized.
        path: output PNG path.
        titles: optional title per image.
        ncols: number of columns (fewer when there are fewer images).

    Returns:
        The written path.

    Raises:
        ValueError: no images, or ``titles`` of another length.

    Example:
        >>> image_grid([a, b, c], "grid.png", titles=["a", "b", "c"], ncols=3)  # doctest: +SKIP
        PosixPath('grid.png')
    """
    if len(images) == 0:
        raise ValueError("no images")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    ncols = max(1, min(int(ncols), len(images)))
    nrows = -(-len(images) // ncols)
    fig = _new_figure(3.0 * ncols, 3.0 * nrows + (0.3 if titles else 0.0))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(images):
            ax.set_axis_off()
            continue
        a = _array(images[i])
        if a.ndim == 3 and a.shape[-1] in (3, 4):
            if a.dtype != np.uint8:
                a = a.astype(np.float64)
                lo, hi = a.min(), a.max()
                a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
            ax.imshow(a, interpolation="nearest")
        else:
            _show_gray(ax, _image2d(a, f"images[{i}]"))
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    return _save(fig, path)
