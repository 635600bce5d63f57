"""Sliding-window inference with Gaussian weighting and mirror test-time augmentation (nnU-Net style)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.inferers import Inferer, sliding_window_inference

__all__ = ["SlidingWindowTTAInferer", "main_output"]


def main_output(out, ndim: int) -> torch.Tensor:
    """The main head of a network output: ``out[:, 0]`` for a deep-supervision stack (one more
    dimension than the input, MONAI DynUNet in train mode), ``out[0]`` for a list/tuple of heads,
    else ``out`` itself.

    Args:
        out: the network's output.
        ndim: number of dimensions of the input it was given (4 for BCHW).
    """
    if isinstance(out, (list, tuple)):
        out = out[0]
    if out.ndim == ndim + 1:
        out = out[:, 0]
    return out


class SlidingWindowTTAInferer(Inferer):
    """Gaussian-weighted sliding-window inference averaged over mirror flips.

    For each pass (the identity, then one flip per axis in ``mirror_axes``) the input is flipped,
    run through :func:`monai.inferers.sliding_window_inference`, softmax is applied (when
    ``softmax``), the result is flipped back, and all passes are averaged. Inputs smaller than
    ``roi_size`` are padded and the result cropped back by MONAI. Deep-supervision stacks
    ``(B, S, C, H, W)`` (a network left in train mode) are reduced to their main head.

    Args:
        roi_size: window ``(h, w)`` (the training patch size; a value ``<= 0`` means the full
            image extent along that axis).
        sw_batch_size: windows per network call.
        overlap: fraction of overlap between neighbouring windows (nnU-Net: 0.5).
        mode: window blending, ``"gaussian"`` (nnU-Net: trust window centres more) or ``"constant"``.
        mirror_axes: tensor dims to flip for TTA, e.g. ``[3]`` (left-right) or ``[2, 3]``, counted on
            the ``(B, C, H, W)`` input; ``None`` or empty: no TTA. Each axis is flipped on its own
            (not every combination), so ``[2, 3]`` means 3 passes.
        softmax: apply softmax over channels to each pass before averaging, so the result is class
            probabilities; False averages the raw outputs.
        sigma_scale: Gaussian sigma as a fraction of the window size (nnU-Net: 1/8).
        padding_mode: how inputs smaller than the window are padded (``torch.nn.functional.pad`` mode).
        cval: pad value for ``padding_mode="constant"``.

    Example:
        >>> inferer = SlidingWindowTTAInferer(roi_size=(64, 64), mirror_axes=[3])
        >>> net = torch.nn.Conv2d(1, 2, 1).eval()
        >>> with torch.no_grad():
        ...     prob = inferer(torch.rand(1, 1, 100, 80), net)
        >>> prob.shape
        torch.Size([1, 2, 100, 80])

        In a bundle config::

            "inferer": {"_target_": "medpipe.inferers.sliding_window.SlidingWindowTTAInferer",
                        "roi_size": "@patch_size", "mirror_axes": [3]}
    """

    def __init__(self, roi_size: Sequence[int] | int, sw_batch_size: int = 4, overlap: float = 0.5,
                 mode: str = "gaussian", mirror_axes: Sequence[int] | None = None,
                 softmax: bool = True, sigma_scale: float = 0.125, padding_mode: str = "constant",
                 cval: float = 0.0) -> None:
        super().__init__()
        self.roi_size = roi_size if isinstance(roi_size, int) else [int(r) for r in roi_size]
        self.sw_batch_size = int(sw_batch_size)
        self.overlap = float(overlap)
        self.mode = mode
        self.mirror_axes = [int(a) for a in (mirror_axes or [])]
        for a in self.mirror_axes:
            if a < 2:
                raise ValueError(f"mirror_axes must be spatial dims of a (B, C, H, W) tensor (>= 2), "
                                 f"got {list(mirror_axes)}")
        self.softmax = bool(softmax)
        self.sigma_scale = sigma_scale
        self.padding_mode = padding_mode
        self.cval = float(cval)

    def _one_pass(self, inputs: torch.Tensor, predictor: Callable) -> torch.Tensor:
        out = sliding_window_inference(
            inputs, roi_size=self.roi_size, sw_batch_size=self.sw_batch_size, predictor=predictor,
            overlap=self.overlap, mode=self.mode, sigma_scale=self.sigma_scale,
            padding_mode=self.padding_mode, cval=self.cval)
        if isinstance(out, (tuple, list, dict)):
            raise TypeError("the network must return one tensor (or a deep-supervision stack)")
        return torch.softmax(out, dim=1) if self.softmax else out

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args, **kwargs):
        """Run the TTA sliding-window inference.

        Args:
            inputs: ``(B, C, H, W)`` batch.
            network: the model (or any callable on window batches).
            args: extra positional arguments for ``network``.
            kwargs: extra keyword arguments for ``network``.

        Returns:
            ``(B, out_channels, H, W)``: averaged probabilities (or raw outputs when ``softmax``
            is False).
        """
        for a in self.mirror_axes:
            if a >= inputs.ndim:
                raise ValueError(f"mirror axis {a} does not exist for an input of shape {tuple(inputs.shape)}")
        ndim = inputs.ndim

        def predictor(x):
            return main_output(network(x, *args, **kwargs), ndim)

        total = self._one_pass(inputs, predictor)
        for axis in self.mirror_axes:
            flipped = self._one_pass(torch.flip(inputs, dims=(axis,)), predictor)
            total = total + torch.flip(flipped, dims=(axis,))
        return total / (1 + len(self.mirror_axes))
