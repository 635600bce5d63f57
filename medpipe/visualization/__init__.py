"""Evaluation figures written as PNG files (matplotlib Agg canvas, atomic writes).

See :mod:`medpipe.visualization.plots`.
"""

from medpipe.visualization.plots import (image_grid, overlay_boxes, overlay_contours, overlay_heatmap,
                                         plot_confusion_matrix, plot_curves, plot_roc,
                                         plot_threshold_sweep)

__all__ = [
    "plot_confusion_matrix", "plot_roc", "plot_curves", "plot_threshold_sweep",
    "overlay_boxes", "overlay_contours", "overlay_heatmap", "image_grid",
]
