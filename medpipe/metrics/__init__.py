"""Evaluation metrics: binary classification (:mod:`.classification`), multiclass
(:mod:`.multiclass`) and multi-label (:mod:`.multilabel`) classification with one entry point per
label kind (:mod:`.tasks`), the one binary threshold sweep (:mod:`.thresholds`), and binary
segmentation pixel counts, Dice and the area-threshold sweep (:mod:`.segmentation`), and
patient-level bootstrap confidence intervals of all of these (:mod:`.bootstrap`).

All results are plain python numbers/lists/dicts (JSON-serializable); conventions for empty
masks, absent classes and 0/0 ratios are in each submodule's docstring. Importing this package
loads numpy only; scikit-learn is imported inside the functions that need it.
"""

from medpipe.metrics.bootstrap import classification_cis, patient_bootstrap, segmentation_cis
from medpipe.metrics.classification import (best_threshold, classification_metrics,
                                            rates_from_counts, roc_points)
from medpipe.metrics.multiclass import multiclass_metrics
from medpipe.metrics.multilabel import best_thresholds_per_class, multilabel_metrics
from medpipe.metrics.segmentation import (SWEEP_METRICS, PixelCounter, area_threshold_sweep,
                                          choose_area_threshold, pixel_confusion)
from medpipe.metrics.tasks import KINDS, classification_metrics_for, positive_scores
from medpipe.metrics.thresholds import choose_threshold, threshold_sweep

__all__ = [
    "classification_metrics", "roc_points", "best_threshold", "rates_from_counts",
    "multiclass_metrics", "multilabel_metrics", "best_thresholds_per_class",
    "classification_metrics_for", "positive_scores", "KINDS",
    "threshold_sweep", "choose_threshold",
    "pixel_confusion", "PixelCounter", "area_threshold_sweep", "choose_area_threshold",
    "SWEEP_METRICS",
    "patient_bootstrap", "classification_cis", "segmentation_cis",
]
