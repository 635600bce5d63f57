"""Segmentation losses: Dice + cross-entropy with nnU-Net-style deep supervision."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

__all__ = ["DeepSupervisionDiceCELoss", "deep_supervision_weights"]


def deep_supervision_weights(n: int) -> list[float]:
    """nnU-Net's head weights ``1 / 2**i`` (i = 0 is the full-resolution output), normalized to sum 1.

    Example:
        >>> deep_supervision_weights(3)
        [0.5714285714285714, 0.2857142857142857, 0.14285714285714285]
    """
    if n < 1:
        raise ValueError(f"need at least one output head, got {n}")
    w = [1.0 / 2**i for i in range(n)]
    s = sum(w)
    return [v / s for v in w]


class DeepSupervisionDiceCELoss(torch.nn.Module):
    """Dice + cross-entropy on softmax logits, summed over deep-supervision heads with weights.

    Wraps :class:`monai.losses.DiceCELoss` (``to_onehot_y=True, softmax=True``). Accepted predictions:

    * ``(B, C, H, W)`` logits: plain DiceCE.
    * ``(B, S, C, H, W)``: MONAI DynUNet's train-mode stack (head 0 = main output; MONAI has already
      upsampled every head to full size, so the target is used as is).
    * a list/tuple of ``(B, C, h_i, w_i)`` heads (nnU-Net style, decreasing resolution): the target
      is resized to each head by nearest neighbour (labels must stay labels, never interpolated).

    The target is a label map ``(B, 1, H, W)`` (or ``(B, H, W)``) with integer class values.

    Args:
        lambda_dice: weight of the Dice term.
        lambda_ce: weight of the cross-entropy term.
        weights: one weight per head, used as given; ``None``: nnU-Net's ``1/2**i`` normalized to
            sum 1 (see :func:`deep_supervision_weights`), sized to the number of heads received.
        batch: Dice over the whole batch as one volume (nnU-Net's batch Dice); steadier than a
            per-sample Dice when many slices have no lesion.
        smooth_nr: Dice numerator smoothing.
        smooth_dr: Dice denominator smoothing.
        include_background: include the background channel in the Dice term. Default False, like
            nnU-Net (``do_bg=False``): with a small lesion the background Dice is ~1 and only
            dilutes the foreground signal. Cross-entropy always covers every class.

    Example:
        >>> loss = DeepSupervisionDiceCELoss()
        >>> pred = torch.randn(2, 3, 2, 32, 32, requires_grad=True)  # DynUNet train output
        >>> target = torch.randint(0, 2, (2, 1, 32, 32))
        >>> loss(pred, target).backward()
    """

    def __init__(self, lambda_dice: float = 1.0, lambda_ce: float = 1.0,
                 weights: Sequence[float] | None = None, batch: bool = True,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
                 include_background: bool = False) -> None:
        super().__init__()
        self.weights = None if weights is None else [float(w) for w in weights]
        self.dice_ce = DiceCELoss(
            include_background=include_background, to_onehot_y=True, softmax=True,
            lambda_dice=lambda_dice, lambda_ce=lambda_ce, batch=batch,
            smooth_nr=smooth_nr, smooth_dr=smooth_dr)

    def _weights(self, n: int) -> list[float]:
        if self.weights is None:
            return deep_supervision_weights(n)
        if len(self.weights) != n:
            raise ValueError(f"{len(self.weights)} deep-supervision weights for {n} output heads")
        return self.weights

    @staticmethod
    def _target_like(target: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        if target.shape[2:] == head.shape[2:]:
            return target
        dtype = target.dtype
        resized = F.interpolate(target.float(), size=head.shape[2:], mode="nearest")
        return resized.to(dtype)

    def forward(self, pred, target: torch.Tensor) -> torch.Tensor:
        """Weighted DiceCE over the heads of ``pred`` against the label map ``target``.

        Args:
            pred: ``(B, C, H, W)`` logits, a ``(B, S, C, H, W)`` head stack, or a list of heads.
            target: ``(B, 1, H, W)`` or ``(B, H, W)`` class labels.

        Returns:
            A scalar loss.
        """
        if target.ndim == 3:
            target = target.unsqueeze(1)
        if isinstance(pred, (list, tuple)):
            heads = list(pred)
        elif pred.ndim == 5:
            heads = list(torch.unbind(pred, dim=1))
        elif pred.ndim == 4:
            return self.dice_ce(pred, self._target_like(target, pred))
        else:
            raise ValueError(f"pred must be (B, C, H, W), (B, S, C, H, W) or a list of heads; "
                             f"got shape {tuple(pred.shape)}")
        if not heads:
            raise ValueError("pred is an empty list of heads")
        total = None
        for w, head in zip(self._weights(len(heads)), heads):
            if w == 0:
                continue
            term = w * self.dice_ce(head, self._target_like(target, head))
            total = term if total is None else total + term
        if total is None:
            raise ValueError("every deep-supervision weight is 0")
        return total
