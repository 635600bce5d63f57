"""Evaluation metrics: binary classification (:mod:`.classification`) and binary segmentation
pixel counts, Dice and the area-threshold sweep (:mod:`.segmentation`).

All results are plain python numbers/lists/dicts (JSON-serializable); conventions for empty
masks and 0/0 ratios are in each submodule's docstring.
"""

from medpipe.metrics.classification import (best_threshold, classification_metrics,
                                            rates_from_counts, roc_points)
from medpipe.metrics.segmentation import (SWEEP_METRICS, PixelCounter, area_threshold_sweep,
                                          choose_area_threshold, pixel_confusion)

__all__ = [
    "classification_metrics", "roc_points", "best_threshold", "rates_from_counts",
    "pixel_confusion", "PixelCounter", "area_threshold_sweep", "choose_area_threshold",
    "SWEEP_METRICS",
]
