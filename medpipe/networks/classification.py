"""Slice classifiers selectable by name: ResNet18/34, DenseNet121, EfficientNet-B0 (1-channel input).

No hub weights are ever downloaded; ``pretrained_path`` loads a local checkpoint (e.g. torchvision
ImageNet weights saved beforehand), adapting a 3-channel first convolution to 1 channel by summing
over its input channels and skipping a classifier head of another size.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

#: name -> the layer Grad-CAM reads: the last block at stride 16, not the last one (stride 32). At the
#: 128-256 px slices medpipe trains on, stride 32 leaves a 4x4-8x8 map whose upsampled blobs cover
#: most of the head (on the demo's sich_cls: 32 % of the image above half the maximum, 2.2x chance
#: mass on the lesion); stride 16 halves the blob size and doubles the mass on the lesion.
GRADCAM_LAYERS = {
    "resnet18": "layer3",
    "resnet34": "layer3",
    "densenet121": "features.denseblock3",
    "efficientnet_b0": "features.5",
}
CLASSIFIERS = tuple(GRADCAM_LAYERS)


def _first_conv_to(model: nn.Module, attr_path: str, in_channels: int) -> None:
    parent = model
    *parents, last = attr_path.split(".")
    for p in parents:
        parent = getattr(parent, p) if not p.isdigit() else parent[int(p)]
    conv = parent[int(last)] if last.isdigit() else getattr(parent, last)
    if conv.in_channels == in_channels:
        return
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    if last.isdigit():
        parent[int(last)] = new
    else:
        setattr(parent, last, new)


def build_classifier(name: str = "resnet18", in_channels: int = 1, num_classes: int = 2,
                     pretrained_path: str | None = None, dropout: float = 0.0) -> nn.Module:
    """Build a 2D classifier.

    Args:
        name: one of ``resnet18``, ``resnet34``, ``densenet121``, ``efficientnet_b0``.
        in_channels: input channels (1 for CT slices).
        num_classes: output logits.
        pretrained_path: optional local state_dict to start from (never downloaded).
        dropout: dropout before the last linear layer.

    Returns:
        The network; forward gives logits ``(B, num_classes)``.

    Example:
        >>> net = build_classifier("resnet18")
        >>> net(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 2])
    """
    import torchvision

    if name in ("resnet18", "resnet34"):
        model = getattr(torchvision.models, name)(weights=None)
        _first_conv_to(model, "conv1", in_channels)
        model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    elif name == "densenet121":
        model = torchvision.models.densenet121(weights=None)
        _first_conv_to(model, "features.conv0", in_channels)
        model.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.classifier.in_features, num_classes))
    elif name == "efficientnet_b0":
        model = torchvision.models.efficientnet_b0(weights=None)
        _first_conv_to(model, "features.0.0", in_channels)
        model.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.classifier[1].in_features, num_classes))
    else:
        raise ValueError(f"unknown classifier {name!r}; choose one of {', '.join(CLASSIFIERS)}")
    if pretrained_path:
        load_pretrained(model, pretrained_path)
    return model


def load_pretrained(model: nn.Module, path: str) -> dict:
    """Load a local state_dict into ``model`` where shapes allow; returns what was adapted or skipped."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = model.state_dict()
    loaded, adapted, skipped = {}, [], []
    for k, v in state.items():
        k2 = k[len("module."):] if k.startswith("module.") else k
        if k2 not in own:
            # torchvision heads are wrapped in Sequential(Dropout, Linear) here
            alt = k2.replace("fc.", "fc.1.").replace("classifier.", "classifier.1.")
            if alt not in own:
                skipped.append(k)
                continue
            k2 = alt
        if own[k2].shape == v.shape:
            loaded[k2] = v
        elif v.ndim == 4 and own[k2].ndim == 4 and v.shape[0] == own[k2].shape[0] and own[k2].shape[1] == 1:
            loaded[k2] = v.sum(dim=1, keepdim=True)  # RGB first conv -> grayscale
            adapted.append(k2)
        else:
            skipped.append(k)
    model.load_state_dict(loaded, strict=False)
    log.info("pretrained %s: %d tensors loaded, %d adapted to 1 channel, %d skipped", path, len(loaded),
             len(adapted), len(skipped))
    return {"loaded": len(loaded), "adapted": adapted, "skipped": skipped}
