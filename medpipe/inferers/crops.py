"""Ten-crop test-time augmentation for classifiers (CheXNet reproductions' evaluation).

The evaluator feeds images resized to ``resize_size`` (not cropped); the inferer cuts the five
``crop_size`` crops of torchvision's ``TenCrop`` (four corners and the centre) and their horizontal
mirrors, runs the network on all ten, and averages the *probabilities* (sigmoid for multi-label,
softmax otherwise). It returns the logit of that average, so the bundle's usual post-processing
(sigmoid/softmax) turns it back into the averaged probability and nothing downstream changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.inferers import Inferer, SimpleInferer

__all__ = ["TenCropInferer", "ten_crops", "evaluation_inferer", "TTA_MODES"]

#: the values of the ``tta`` setting
TTA_MODES = ("none", "ten_crop")


def ten_crops(x: torch.Tensor, size: int) -> torch.Tensor:
    """The ten crops of a batch ``(B, C, H, W)``: ``(10, B, C, size, size)``, in torchvision's order
    (top-left, top-right, bottom-left, bottom-right, centre, then the same of the mirrored image).

    Example:
        >>> ten_crops(torch.zeros(2, 1, 36, 40), 32).shape
        torch.Size([10, 2, 1, 32, 32])
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if size > h or size > w:
        raise ValueError(f"crop size {size} is larger than the image ({h}x{w})")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]
    crops = [x[..., i:i + size, j:j + size] for i, j in corners]
    flipped = torch.flip(x, dims=(-1,))
    crops += [flipped[..., i:i + size, j:j + size] for i, j in corners]
    return torch.stack(crops)


class TenCropInferer(Inferer):
    """Average a classifier's probabilities over the ten crops of each image.

    Args:
        crop_size: side of the crops (the network's training input size, ``image_size``).
        multilabel: average sigmoid probabilities (True) or softmax ones (False).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(1, 3))
        >>> TenCropInferer(32)(torch.rand(2, 1, 36, 36), net).shape
        torch.Size([2, 3])
    """

    def __init__(self, crop_size: int, multilabel: bool = True) -> None:
        super().__init__()
        self.crop_size, self.multilabel = int(crop_size), bool(multilabel)

    def __call__(self, inputs: torch.Tensor, network: Callable, *args, **kwargs) -> torch.Tensor:
        crops = ten_crops(inputs, self.crop_size)
        n, b = crops.shape[:2]
        logits = network(crops.reshape(n * b, *crops.shape[2:]), *args, **kwargs).float()
        logits = logits.reshape(n, b, *logits.shape[1:])
        if self.multilabel:
            return torch.logit(torch.sigmoid(logits).mean(0), eps=1e-7)
        return torch.log(torch.softmax(logits, dim=-1).mean(0).clamp(min=1e-12))


def evaluation_inferer(tta: str, crop_size: int, multilabel: bool = True) -> Inferer:
    """The evaluator's inferer for the ``tta`` setting: ``none`` (the network on the centre crop the
    pre-processing cut) or ``ten_crop`` (:class:`TenCropInferer`; the pre-processing must then not crop).
    """
    from medpipe.errors import UserError

    if tta not in TTA_MODES:
        raise UserError(f"--tta {tta}: choose none or ten_crop.")
    return TenCropInferer(crop_size, multilabel) if tta == "ten_crop" else SimpleInferer()
