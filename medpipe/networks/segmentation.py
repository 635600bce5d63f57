"""2D segmentation networks built by name from plain (JSON-able) arguments.

Bundles reference :func:`build_segmenter` with a full dotted ``_target_``; everything it takes is a
number, a string, a list or ``None`` so it can live in a JSON config. The names:

* ``"dynunet"`` -- MONAI :class:`~monai.networks.nets.DynUNet` with residual blocks, instance norm
  and kernels/strides planned from the training patch size the way nnU-Net plans a 2D U-Net
  (:func:`plan_dynunet`). With deep supervision, train mode returns MONAI's stacked tensor
  ``(B, 1 + deep_supr_num, C, H, W)`` (every head already upsampled to full size); eval mode returns
  ``(B, C, H, W)``.
* ``"basicunet"`` -- MONAI :class:`~monai.networks.nets.BasicUNet` (H and W divisible by 16).
* ``"smp_unet"`` / ``"smp_unetplusplus"`` -- ``segmentation_models_pytorch`` Unet / UnetPlusPlus
  (H and W divisible by 32), with randomly initialised encoders unless a local checkpoint is given.

No weights are ever fetched from a model hub (the machines are offline): ``encoder_weights`` may
only be ``None`` or a local encoder state_dict file, and ``pretrained_path`` a local state_dict of the
whole network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

__all__ = ["build_segmenter", "plan_dynunet", "load_state_dict_file", "SEGMENTERS",
           "NNUNET_FILTERS"]

#: nnU-Net's feature widths per resolution level (32 doubling, capped at 320)
NNUNET_FILTERS = (32, 64, 128, 256, 320, 320)


def _pair(patch_size) -> tuple[int, ...]:
    if isinstance(patch_size, int):
        return (patch_size, patch_size)
    out = tuple(int(s) for s in patch_size)
    if len(out) != 2 or min(out) < 1:
        raise ValueError(f"patch_size must be two positive ints (H, W), got {patch_size!r}")
    return out


def plan_dynunet(patch_size: Sequence[int] | int, min_feature_size: int = 4,
                 max_levels: int = 6) -> tuple[list[list[int]], list[list[int]]]:
    """Plan DynUNet kernels and strides from the patch size, nnU-Net style.

    Each axis is halved at every level while the halved feature map stays ``>= min_feature_size``
    and the size is even (so the decoder's transposed convolutions restore it exactly); an axis
    that cannot be halved any more gets stride 1 from then on (anisotropic patches are fine). The
    first level has stride 1 (full resolution), every kernel is 3x3 (nnU-Net's 2D choice) and the
    depth is capped at ``max_levels`` resolution levels.

    Args:
        patch_size: training patch ``(H, W)`` (an int means square).
        min_feature_size: smallest feature-map edge allowed at the bottleneck (nnU-Net: 4).
        max_levels: most resolution levels, including the full-resolution one.

    Returns:
        ``(kernel_size, strides)``: lists of ``[kh, kw]`` / ``[sh, sw]``, one per level, usable as
        DynUNet's ``kernel_size``, ``strides`` (and ``strides[1:]`` as ``upsample_kernel_size``).

    Raises:
        ValueError: the patch is too small for the 3 levels DynUNet needs.

    Example:
        >>> k, s = plan_dynunet((128, 128))
        >>> len(s), s[0], s[-1]
        (6, [1, 1], [2, 2])
        >>> plan_dynunet((64, 32))[1]
        [[1, 1], [2, 2], [2, 2], [2, 2], [2, 1]]
    """
    size = list(_pair(patch_size))
    if max_levels < 3:
        raise ValueError(f"max_levels must be >= 3 (DynUNet needs 3 levels), got {max_levels}")
    strides = [[1, 1]]
    while len(strides) < max_levels:
        step = [2 if (s % 2 == 0 and s // 2 >= min_feature_size) else 1 for s in size]
        if step == [1, 1]:
            break
        size = [s // st for s, st in zip(size, step)]
        strides.append(step)
    if len(strides) < 3:
        raise ValueError(
            f"patch_size {tuple(_pair(patch_size))} allows only {len(strides) - 1} downsampling(s) "
            f"with min_feature_size={min_feature_size}; DynUNet needs at least 2: use a patch of "
            f"at least {4 * min_feature_size}x{4 * min_feature_size} pixels")
    kernels = [[3, 3] for _ in strides]
    return kernels, strides


def load_state_dict_file(model: torch.nn.Module, path: str | os.PathLike, strict: bool = True) -> torch.nn.Module:
    """Load a local checkpoint into ``model`` (``weights_only=True``: tensors only, no pickled code).

    Accepts a bare state_dict, or a dict wrapping one under ``"state_dict"``, ``"model"``,
    ``"network"`` or ``"net"`` (MONAI ``CheckpointSaver`` / Lightning style); a ``"module."``
    prefix left by DataParallel/DDP is stripped.

    Args:
        model: the network to fill.
        path: local ``.pt``/``.pth`` file.
        strict: passed to :meth:`torch.nn.Module.load_state_dict`.

    Returns:
        ``model`` (for chaining).

    Example:
        >>> net = load_state_dict_file(build_segmenter("basicunet"), "model.pt")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist (only local files are supported; "
                                "no weights are downloaded)")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict):
        for key in ("state_dict", "model", "network", "net"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict):
        raise ValueError(f"checkpoint {path!r} does not hold a state_dict (got {type(sd).__name__})")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    model.load_state_dict(sd, strict=strict)
    return model


def _build_dynunet(in_channels, out_channels, patch_size, deep_supervision, deep_supr_num, filters,
                   **_ignored) -> torch.nn.Module:
    from monai.networks.nets import DynUNet

    kernels, strides = plan_dynunet(patch_size)
    levels = len(strides)
    if filters is None:
        filters = [NNUNET_FILTERS[i] if i < len(NNUNET_FILTERS) else NNUNET_FILTERS[-1] for i in range(levels)]
    filters = [int(f) for f in filters]
    if len(filters) < levels:
        raise ValueError(f"dynunet planned {levels} levels for patch {tuple(_pair(patch_size))} "
                         f"but filters has only {len(filters)} values: {filters}")
    if deep_supervision and not 1 <= deep_supr_num <= levels - 2:
        raise ValueError(f"deep_supr_num must be in [1, {levels - 2}] for the {levels} levels planned "
                         f"for patch {tuple(_pair(patch_size))}, got {deep_supr_num}")
    return DynUNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernels,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=filters[:levels],
        norm_name=("INSTANCE", {"affine": True}),
        deep_supervision=bool(deep_supervision),
        deep_supr_num=int(deep_supr_num),
        res_block=True,
    )


def _build_basicunet(in_channels, out_channels, filters, **_ignored) -> torch.nn.Module:
    from monai.networks.nets import BasicUNet

    kw = {} if filters is None else {"features": [int(f) for f in filters]}
    return BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels, **kw)


def _smp_encoder_weights(encoder_weights):
    """smp gets ``None`` always; a local encoder file is loaded after construction."""
    if encoder_weights is None:
        return None
    if isinstance(encoder_weights, (str, os.PathLike)) and os.path.isfile(encoder_weights):
        return os.fspath(encoder_weights)
    raise ValueError(
        f"encoder_weights={encoder_weights!r}: medpipe never downloads hub weights (machines are "
        "offline). Use None (random init), a local encoder state_dict file as encoder_weights, or a "
        "whole-network checkpoint as pretrained_path")


def _build_smp(arch: str) -> Callable[..., torch.nn.Module]:
    def build(in_channels, out_channels, filters, encoder_name, encoder_weights, **_ignored):
        import segmentation_models_pytorch as smp

        local_encoder = _smp_encoder_weights(encoder_weights)
        cls = {"unet": smp.Unet, "unetplusplus": smp.UnetPlusPlus}[arch]
        kw = {} if filters is None else {"decoder_channels": [int(f) for f in filters]}
        net = cls(encoder_name=encoder_name, encoder_weights=None, in_channels=in_channels,
                  classes=out_channels, **kw)
        if local_encoder is not None:
            load_state_dict_file(net.encoder, local_encoder)
        return net

    build.__name__ = f"_build_smp_{arch}"
    return build


#: name -> builder(in_channels, out_channels, patch_size, deep_supervision, deep_supr_num, filters,
#: encoder_name, encoder_weights); each builder ignores the arguments it does not use
SEGMENTERS: dict[str, Callable[..., torch.nn.Module]] = {
    "dynunet": _build_dynunet,
    "basicunet": _build_basicunet,
    "smp_unet": _build_smp("unet"),
    "smp_unetplusplus": _build_smp("unetplusplus"),
}


def build_segmenter(name: str = "dynunet", in_channels: int = 1, out_channels: int = 2,
                    patch_size: Sequence[int] | int = (128, 128), deep_supervision: bool = True,
                    deep_supr_num: int = 2, filters: Sequence[int] | None = None,
                    encoder_name: str = "resnet34", encoder_weights: str | None = None,
                    pretrained_path: str | None = None) -> torch.nn.Module:
    """Build a 2D segmentation network by name.

    Every network maps ``(B, in_channels, H, W)`` to logits ``(B, out_channels, H, W)`` in eval mode.
    In train mode a ``"dynunet"`` with ``deep_supervision`` returns ``(B, 1 + deep_supr_num,
    out_channels, H, W)`` (index 0 along dim 1 is the main output), to be fed to
    :class:`medpipe.losses.segmentation.DeepSupervisionDiceCELoss`.

    Args:
        name: one of :data:`SEGMENTERS`: ``dynunet``, ``basicunet``, ``smp_unet``, ``smp_unetplusplus``.
        in_channels: input channels (1 for a windowed CT slice).
        out_channels: classes including background (2: background, PHE).
        patch_size: training patch ``(H, W)``; plans the DynUNet depth (other names ignore it).
        deep_supervision: DynUNet only: add deep-supervision heads (train mode output is 5D).
        deep_supr_num: DynUNet only: number of extra heads (``1 <= n <= levels - 2``).
        filters: feature widths. DynUNet: one per level (default nnU-Net's 32, 64, 128, 256, 320,
            320, truncated to the planned depth); BasicUNet: its six ``features``; smp: the
            ``decoder_channels`` (default 256, 128, 64, 32, 16).
        encoder_name: smp only: encoder architecture (e.g. ``resnet34``, ``resnet18``).
        encoder_weights: smp only: ``None`` (random init) or a local encoder state_dict file. Hub
            names such as ``"imagenet"`` are rejected (offline machines, no hub weights).
        pretrained_path: optional local state_dict of the whole network, loaded strictly with
            ``weights_only=True``.

    Returns:
        The network (a fresh :class:`torch.nn.Module` in train mode).

    Raises:
        ValueError: unknown name (the message lists the valid ones), a patch too small to plan,
            inconsistent ``filters``/``deep_supr_num``, or hub ``encoder_weights``.

    Example:
        >>> net = build_segmenter("dynunet", patch_size=(64, 64)).eval()
        >>> net(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 2, 64, 64])

        In a bundle config::

            "network_def": {"_target_": "medpipe.networks.segmentation.build_segmenter",
                            "name": "dynunet", "patch_size": "@patch_size"}
    """
    if name not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {name!r}; valid names: {', '.join(sorted(SEGMENTERS))}")
    net = SEGMENTERS[name](
        in_channels=int(in_channels), out_channels=int(out_channels), patch_size=patch_size,
        deep_supervision=deep_supervision, deep_supr_num=int(deep_supr_num),
        filters=None if filters is None else list(filters), encoder_name=encoder_name,
        encoder_weights=encoder_weights)
    if pretrained_path is not None:
        load_state_dict_file(net, pretrained_path)
    return net
