"""The explicit registry of bundles: name -> engine, task, dataset, what the report shows.

Everything that treats bundles by name (the CLI's choices, export, the report, the pipeline runner,
the smoke-test table) reads this table; no other module spells a bundle name. A bundle is a config
folder ``bundles/NAME`` plus one entry here (see the README's developer section).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: how a bundle's network is run: MONAI engines (supervised trainer/evaluator from the shared
#: skeleton ``bundles/common/configs``) or ultralytics (YOLO) driven from the bundle config
ENGINES = ("monai", "ultralytics")
#: what the bundle predicts; decides metrics, report section and export
TASKS = ("classification", "segmentation", "detection")


@dataclass(frozen=True)
class BundleSpec:
    """One bundle.

    Attributes:
        name: folder name under ``bundles/`` and the CLI name.
        title: a human title for the report and ``--help``.
        engine: one of :data:`ENGINES`.
        task: one of :data:`TASKS`.
        dataset: the prepared dataset it trains on by default (``data/<dataset>``).
        label_key: the record key it learns (``label``, ``labels``, ``mask`` or ``boxes``).
        plots: ``eval/`` files (globs allowed) the report shows, in order.
        headline: the metric keys of ``eval/metrics.json`` the report and the summary lead with.
        references: published or seed-project numbers to show beside ours:
            ``{metric: (value, source)}``.
        min_image_size: the smallest ``image_size`` the network accepts.
        image_size_multiple: ``image_size`` must be a multiple of this.
    """

    name: str
    title: str
    engine: str
    task: str
    dataset: str
    label_key: str
    plots: tuple[str, ...] = ()
    headline: tuple[str, ...] = ()
    references: dict = field(default_factory=dict)
    min_image_size: int = 32
    image_size_multiple: int = 1


_SEED = "seed project (full data, slice-level split that leaks patients)"

BUNDLES: dict[str, BundleSpec] = {
    "sich_cls": BundleSpec(
        name="sich_cls", title="Slice classifier (sich_cls, ResNet)", engine="monai", task="classification",
        dataset="phe-sich", label_key="label",
        plots=("eval/training_curves.png", "eval/confusion_matrix.png", "eval/roc.png", "eval/gradcam/*.png"),
        headline=("accuracy", "precision", "recall", "f1", "specificity", "auroc"),
        references={"accuracy": (0.983, _SEED), "f1": (0.959, _SEED)}),
    "sich_det": BundleSpec(
        name="sich_det", title="Detector (sich_det, YOLOv8)", engine="ultralytics", task="detection",
        dataset="phe-sich", label_key="boxes",
        plots=("eval/training_curves.png", "eval/confusion_matrix.png", "eval/conf_sweep.png", "eval/boxes/*.png"),
        headline=("map50", "map50_95", "precision", "recall"),
        references={"map50": (0.99, _SEED), "map50_95": (0.71, _SEED), "slice_level.recall": (0.993, _SEED),
                    "slice_level.precision": (0.892, _SEED)},
        min_image_size=32, image_size_multiple=32),
    "sich_seg": BundleSpec(
        name="sich_seg", title="Segmenter (sich_seg, nnU-Net-style DynUNet)", engine="monai", task="segmentation",
        dataset="phe-sich", label_key="mask",
        plots=("eval/training_curves.png", "eval/pixel_confusion.png", "eval/seg_to_cls_sweep.png",
               "eval/overlays/*.png"),
        headline=("dice", "iou", "sensitivity", "specificity", "dice_per_case_mean"),
        references={"dice": (0.394, _SEED), "iou": (0.245, _SEED), "sensitivity": (0.588, _SEED),
                    "specificity": (0.9995, _SEED), "seg_to_cls.accuracy": (0.977, _SEED),
                    "seg_to_cls.recall": (0.888, _SEED)},
        min_image_size=32, image_size_multiple=16),
}


def get_bundle(name: str) -> BundleSpec:
    """The registry entry of ``name``, or a :class:`~medpipe.errors.UserError` with a suggestion."""
    from medpipe.errors import UserError

    if name not in BUNDLES:
        import difflib

        close = difflib.get_close_matches(name, BUNDLES, n=1)
        raise UserError(f"unknown bundle {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                        + f" (bundles: {', '.join(BUNDLES)}).")
    return BUNDLES[name]
