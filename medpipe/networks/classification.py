"""Image classifiers selectable by name (1-channel input, one logit per class): 2D, and 3-D ResNets.

ResNet18/34/50, DenseNet121 and EfficientNet-B0 are torchvision's definitions; Xception is timm's
(``legacy_xception``, the original architecture of Chollet 2017). No hub weights are ever
downloaded; ``pretrained_path`` loads a local checkpoint (e.g. torchvision ImageNet weights saved
beforehand, or a CheXNet reproduction's ``model.pth.tar``), adapting a 3-channel first convolution
to 1 channel by summing over its input channels and skipping a classifier head of another size.

With ``spatial_dims=3`` the ResNets (plain and with attention) are MONAI's 3-D definitions
(:func:`monai.networks.nets.resnet18`/``resnet34``, first convolution stride 2 along every axis)
under the same module names, for whole-volume inputs ``(B, 1, D, H, W)``.
"""

from __future__ import annotations

import logging
import re

import torch
from torch import nn

log = logging.getLogger(__name__)

#: name -> the layers Grad-CAM may read: ``last``, the last block (stride 32: the CAM of CheXNet and
#: Wang et al.), and ``stride16``, the last block at stride 16. At the 128-256 px slices sich_cls
#: trains on, stride 32 leaves a 4x4-8x8 map whose upsampled blobs cover most of the head (on the
#: demo's sich_cls: 32 % of the image above half the maximum, 2.2x chance mass on the lesion);
#: stride 16 halves the blob size and doubles the mass on the lesion.
CAM_LAYERS = {
    "resnet18": {"last": "layer4", "stride16": "layer3"},
    "resnet34": {"last": "layer4", "stride16": "layer3"},
    "resnet50": {"last": "layer4", "stride16": "layer3"},
    "densenet121": {"last": "features.denseblock4", "stride16": "features.denseblock3"},
    "efficientnet_b0": {"last": "features.8", "stride16": "features.5"},
    "xception": {"last": "act4", "stride16": "block11"},
    "inception_v3": {"last": "Mixed_7c", "stride16": "Mixed_6e"},
    # ResNets with a spatial attention map before the pooling (:class:`AttentionClassifier`): ``last``
    # is the attention-weighted layer4 output (an identity module, so hooks see features * map)
    "resnet18_attention": {"last": "attended", "stride16": "layer3"},
    "resnet34_attention": {"last": "attended", "stride16": "layer3"},
}
#: smallest input side each network accepts (Inception-V3's stem and pooling need 75 px)
MIN_INPUT = {"inception_v3": 75}
#: name -> the stride-16 layer (what sich_cls's Grad-CAM reads)
GRADCAM_LAYERS = {name: layers["stride16"] for name, layers in CAM_LAYERS.items()}
CLASSIFIERS = tuple(CAM_LAYERS)


def cam_layer(network_name: str, which: str | None = "last") -> str | None:
    """The layer Grad-CAM reads for ``network_name``: ``which`` is ``last``, ``stride16`` or a layer
    name of the network; ``none`` (or None): no Grad-CAM.

    Example:
        >>> cam_layer("densenet121"), cam_layer("densenet121", "stride16"), cam_layer("resnet50", "layer2")
        ('features.denseblock4', 'features.denseblock3', 'layer2')
    """
    from medpipe.errors import UserError

    if which in (None, "none", "None"):
        return None
    if network_name not in CAM_LAYERS:
        raise UserError(f"--network_name {network_name}: choose one of {', '.join(CLASSIFIERS)}.")
    return CAM_LAYERS[network_name].get(which, which)


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


class AttentionClassifier(nn.Module):
    """A torchvision ResNet with a spatial attention module before global pooling.

    ``features = layer4(...)``; ``a = sigmoid(conv1x1(features))`` (one channel); the logits are
    ``fc(avgpool(features * a))``. ``forward`` returns the logits only (one tensor: what losses,
    exports and Grad-CAM expect); :meth:`attention` returns the map ``(B, 1, h, w)`` (stride 32) for
    overlays. Module names follow torchvision's ResNet (``conv1``, ``layer1``... ``fc.1``), so ResNet
    checkpoints load with :func:`load_pretrained`; ``attended`` is an identity on ``features * a``
    (the layer Grad-CAM reads as ``last``).

    Example:
        >>> net = build_classifier("resnet18_attention", num_classes=7).eval()
        >>> net(torch.zeros(2, 1, 64, 64)).shape, net.attention(torch.zeros(2, 1, 64, 64)).shape
        (torch.Size([2, 7]), torch.Size([2, 1, 2, 2]))
    """

    def __init__(self, backbone: str = "resnet18", in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0,
                 spatial_dims: int = 2):
        super().__init__()
        if spatial_dims == 3:
            base = _monai_resnet(backbone, in_channels, 1)
            self.conv1, self.bn1, self.relu, self.maxpool = base.conv1, base.bn1, base.act, base.maxpool
        else:
            import torchvision

            base = getattr(torchvision.models, backbone)(weights=None)
            _first_conv_to(base, "conv1", in_channels)
            self.conv1, self.bn1, self.relu, self.maxpool = base.conv1, base.bn1, base.relu, base.maxpool
        self.spatial_dims = spatial_dims
        self.layer1, self.layer2, self.layer3, self.layer4 = base.layer1, base.layer2, base.layer3, base.layer4
        channels = base.fc.in_features
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        self.attention_conv = conv(channels, 1, kernel_size=1)
        self.attended = nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool3d(1) if spatial_dims == 3 else nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The layer4 features ``(B, C, h, w)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention map ``(B, 1, h, w)`` (3-D: ``(B, 1, d, h, w)``) in [0, 1] at the layer4
        resolution (input / 32)."""
        return torch.sigmoid(self.attention_conv(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        a = torch.sigmoid(self.attention_conv(f))
        z = self.avgpool(self.attended(f * a))
        return self.fc(torch.flatten(z, 1))


#: classifiers that also exist in 3-D (``spatial_dims=3``)
CLASSIFIERS_3D = ("resnet18", "resnet34", "resnet18_attention", "resnet34_attention")


def _monai_resnet(name: str, in_channels: int, num_classes: int) -> nn.Module:
    """MONAI's 3-D ResNet18/34, first convolution stride 2 along every axis (like the 2D stem)."""
    from monai.networks import nets

    return getattr(nets, name)(spatial_dims=3, n_input_channels=in_channels, num_classes=num_classes,
                               conv1_t_stride=2)


def build_classifier(name: str = "resnet18", in_channels: int = 1, num_classes: int = 2,
                     pretrained_path: str | None = None, dropout: float = 0.0,
                     input_size: int | None = None, spatial_dims: int = 2) -> nn.Module:
    """Build a 2D (or 3-D) classifier.

    Args:
        name: one of :data:`CLASSIFIERS` (``resnet18``, ``resnet34``, ``resnet50``, ``densenet121``,
            ``efficientnet_b0``, ``xception``, ``inception_v3``: torchvision's, without the auxiliary
            head, input at least 75 px; 299 as published; ``resnet18_attention``, ``resnet34_attention``:
            :class:`AttentionClassifier`).
        in_channels: input channels (1 for CT slices and radiographs).
        num_classes: output logits.
        pretrained_path: optional local state_dict to start from (never downloaded).
        dropout: dropout before the last linear layer.
        input_size: the side of the images it will see, checked against :data:`MIN_INPUT` (None: not checked).
        spatial_dims: 2 for images ``(B, C, H, W)``; 3 for volumes ``(B, C, D, H, W)`` (one of
            :data:`CLASSIFIERS_3D`, MONAI's 3-D ResNet definitions).

    Returns:
        The network; forward gives logits ``(B, num_classes)``.

    Example:
        >>> net = build_classifier("resnet18")
        >>> net(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 2])
    """
    import torchvision

    from medpipe.errors import UserError

    if int(spatial_dims) not in (2, 3):
        raise UserError(f"--spatial_dims {spatial_dims}: 2 (slices) or 3 (whole volumes).")
    if int(spatial_dims) == 3:
        if name not in CLASSIFIERS_3D:
            raise UserError(f"--network_name {name} --spatial_dims 3: 3-D networks are {', '.join(CLASSIFIERS_3D)}.")
        if name.endswith("_attention"):
            model = AttentionClassifier(name.removesuffix("_attention"), in_channels, num_classes, dropout, 3)
        else:
            model = _monai_resnet(name, in_channels, num_classes)
            model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
        if pretrained_path:
            load_pretrained(model, pretrained_path)
        return model
    if input_size is not None and int(input_size) < MIN_INPUT.get(name, 0):
        raise UserError(f"--image_size {input_size}: {name} needs images of at least {MIN_INPUT[name]} px "
                        f"(published at 299); use a larger --image_size or another --network_name.")
    if name in ("resnet18_attention", "resnet34_attention"):
        model = AttentionClassifier(name.removesuffix("_attention"), in_channels, num_classes, dropout)
    elif name in ("resnet18", "resnet34", "resnet50"):
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
    elif name == "inception_v3":
        # no auxiliary classifier: one output tensor in training and evaluation alike (the bundles' losses,
        # exports and Grad-CAM expect that); no ImageNet-style input transform (our normalization does it)
        model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True,
                                                transform_input=False)
        _first_conv_to(model, "Conv2d_1a_3x3.conv", in_channels)
        model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    elif name == "xception":
        import timm

        model = timm.create_model("legacy_xception", pretrained=False, in_chans=in_channels, num_classes=num_classes,
                                  drop_rate=dropout)
    else:
        raise UserError(f"--network_name {name}: unknown classifier; choose one of {', '.join(CLASSIFIERS)}.")
    if pretrained_path:
        load_pretrained(model, pretrained_path)
    return model


#: torchvision's fix for DenseNet checkpoints written before PyTorch 0.4 ("norm.1" -> "norm1"), which
#: CheXNet reproductions still ship
_OLD_DENSENET = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                           r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def _own_key(k: str, own: dict) -> str | None:
    """The key of ``own`` a checkpoint key ``k`` stands for: as is, without wrapper prefixes
    (``module.``, ``densenet121.``...), in the current DenseNet naming, or with the head at
    ``fc.1``/``classifier.1`` (here heads are ``Sequential(Dropout, Linear)``)."""
    k = _OLD_DENSENET.sub(r"\1\2", k)
    parts = k.split(".")
    for i in range(len(parts)):
        cand = ".".join(parts[i:])
        for alt in (cand, re.sub(r"^(fc|classifier)\.(?:0\.)?(weight|bias)$", r"\1.1.\2", cand)):
            if alt in own:
                return alt
    return None


def load_pretrained(model: nn.Module, path: str) -> dict:
    """Load a local state_dict into ``model`` where shapes allow; returns what was adapted or skipped."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = model.state_dict()
    loaded, adapted, skipped = {}, [], []
    for k, v in state.items():
        k2 = _own_key(k, own)
        if k2 is None:
            skipped.append(k)
            continue
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
