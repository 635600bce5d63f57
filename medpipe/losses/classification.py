"""Classification losses chosen by label kind (binary/multiclass: cross-entropy; multi-label: BCE).

One function so that a bundle config stays a one-liner whatever labels its dataset declares::

    "loss": "$medpipe.losses.classification.build_loss(@task, @train#data, @imbalance, len(@class_names), @device)"
"""

from __future__ import annotations

import torch

IMBALANCE = ("weighted_loss", "sampler", "none")


def build_loss(kind: str, data: list[dict] | None = None, imbalance: str = "weighted_loss", num_classes: int = 2,
               device="cpu", key: str = "label") -> torch.nn.Module:
    """The training loss for ``kind`` labels.

    Args:
        kind: ``binary`` or ``multiclass`` (cross-entropy over the logits) or ``multilabel``
            (``BCEWithLogitsLoss`` over one logit per class).
        data: the training records (for class weights).
        imbalance: ``weighted_loss`` (inverse-frequency class weights / per-class positive weights
            from ``data``), ``sampler`` (a balanced sampler does the work; plain loss) or ``none``.
        num_classes: number of classes (the network's outputs).
        device: where the weights live.
        key: the record key holding the label.

    Example:
        >>> build_loss("multiclass", [{"label": 0}, {"label": 2}, {"label": 2}], num_classes=3).weight.shape
        torch.Size([3])
    """
    from medpipe.data.datalist import class_weights
    from medpipe.errors import UserError

    if imbalance not in IMBALANCE:
        raise UserError(f"--imbalance {imbalance}: choose one of {', '.join(IMBALANCE)}.")
    weighted = imbalance == "weighted_loss" and data
    if kind == "multilabel":
        pw = class_weights(data, key).to(device) if weighted else None
        return torch.nn.BCEWithLogitsLoss(pos_weight=pw)
    if kind in ("binary", "multiclass"):
        w = class_weights(data, key, num_classes).to(device) if weighted else None
        return torch.nn.CrossEntropyLoss(weight=w)
    raise UserError(f"label kind {kind!r}: a classification bundle needs binary, multiclass or multilabel labels.")
