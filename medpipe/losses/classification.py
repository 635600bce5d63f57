"""Classification losses chosen by label kind (binary/multiclass: cross-entropy; multi-label: BCE).

One function so that a bundle config stays a one-liner whatever labels its dataset declares::

    "loss": "$medpipe.losses.classification.build_loss(@task, @train#data, @imbalance, len(@class_names), @device)"

A multi-label bundle names the same choice ``pos_weight`` (``auto``: per-class positive weights
computed from the training records, ``none``: unweighted), as CheXNet reproductions do::

    "loss": "$medpipe.losses.classification.build_loss(@task, @train#data, @pos_weight, len(@class_names), @device, setting='pos_weight')"
"""

from __future__ import annotations

import torch

IMBALANCE = ("weighted_loss", "sampler", "none")
#: the values of a multi-label bundle's ``pos_weight`` setting -> the ``imbalance`` they mean
POS_WEIGHT = {"auto": "weighted_loss", "none": "none"}


def build_loss(kind: str, data: list[dict] | None = None, imbalance: str = "weighted_loss", num_classes: int = 2,
               device="cpu", key: str = "label", setting: str = "imbalance",
               label_smoothing: float = 0.0, class_names=None, class_loss_weights: dict | None = None) -> torch.nn.Module:
    """The training loss for ``kind`` labels.

    Args:
        kind: ``binary`` or ``multiclass`` (cross-entropy over the logits) or ``multilabel``
            (``BCEWithLogitsLoss`` over one logit per class).
        data: the training records (for class weights).
        imbalance: ``weighted_loss`` (inverse-frequency class weights / per-class positive weights
            ``negatives / positives`` from ``data``), ``sampler`` (a balanced sampler does the work;
            plain loss) or ``none``; with ``setting="pos_weight"``: ``auto`` or ``none``.
        num_classes: number of classes (the network's outputs).
        device: where the weights live.
        key: the record key holding the label.
        setting: the config setting that chose ``imbalance`` (``imbalance`` or ``pos_weight``), for
            messages.
        label_smoothing: binary/multiclass: cross-entropy label smoothing in [0, 1) (0: none).
        class_names: multi-label: the class names (needed with ``class_loss_weights``).
        class_loss_weights: multi-label: ``{class name: weight}`` of each label's BCE term (absent
            names weigh 1), scaled so that the loss is the weighted mean over the labels, e.g.
            ``{"any": 2}``: the RSNA 2019 challenge's weighted log loss
            (:func:`medpipe.metrics.multilabel.weighted_log_loss`).

    Example:
        >>> build_loss("multiclass", [{"label": 0}, {"label": 2}, {"label": 2}], num_classes=3).weight.shape
        torch.Size([3])
    """
    from medpipe.data.datalist import class_weights
    from medpipe.errors import UserError

    if setting == "pos_weight":
        if imbalance not in POS_WEIGHT:
            raise UserError(f"--pos_weight {imbalance}: choose auto (per-class positive weights from the training "
                            f"folds) or none (unweighted BCE).")
        imbalance = POS_WEIGHT[imbalance]
    if imbalance not in IMBALANCE:
        raise UserError(f"--{setting} {imbalance}: choose one of {', '.join(IMBALANCE)}.")
    weighted = imbalance == "weighted_loss" and data
    if kind == "multilabel":
        pw = class_weights(data, key).to(device) if weighted else None
        if pw is not None:
            import logging

            logging.getLogger("medpipe").info("BCE positive weights (negatives/positives of %d training records): %s",
                                              len(data), ", ".join(f"{v:.3g}" for v in pw.tolist()))
        w = None
        if class_loss_weights:
            names = list(class_names or [])
            unknown = sorted(set(class_loss_weights) - set(names))
            if unknown:
                raise UserError(f"--class_loss_weights: {', '.join(unknown)} not among this model's classes "
                                f"({', '.join(names)}); name classes of the dataset's labels.")
            if any(float(v) < 0 for v in class_loss_weights.values()):
                raise UserError("--class_loss_weights: weights must be 0 or more.")
            raw = torch.tensor([float(class_loss_weights.get(n, 1.0)) for n in names])
            if float(raw.sum()) <= 0:
                raise UserError("--class_loss_weights: at least one class needs a positive weight.")
            w = (raw * len(names) / raw.sum()).to(device)
        return torch.nn.BCEWithLogitsLoss(weight=w, pos_weight=pw)
    if kind in ("binary", "multiclass"):
        w = class_weights(data, key, num_classes).to(device) if weighted else None
        if not 0.0 <= float(label_smoothing or 0.0) < 1.0:
            raise UserError(f"--label_smoothing {label_smoothing}: choose a value in [0, 1), e.g. 0.1 (0: none).")
        return torch.nn.CrossEntropyLoss(weight=w, label_smoothing=float(label_smoothing or 0.0))
    raise UserError(f"label kind {kind!r}: a classification bundle needs binary, multiclass or multilabel labels.")
