"""SlidingWindowTTAInferer: probabilities, padding, flip TTA, deep-supervision outputs."""

from __future__ import annotations

import pytest
import torch

from medpipe.inferers.sliding_window import SlidingWindowTTAInferer


class PointwiseNet(torch.nn.Module):
    """1x1 convolutions only: every flip commutes with it (flip-equivariant)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))

    def forward(self, x):
        return self.body(x)


class PositionNet(torch.nn.Module):
    """Not flip-equivariant: logits depend on the pixel's column inside the window."""

    def forward(self, x):
        col = torch.linspace(-3, 3, x.shape[-1]).expand_as(x)
        return torch.cat([col, -col], dim=1) + x


class StackNet(torch.nn.Module):
    """Returns a DynUNet-like train-mode stack (B, S, C, H, W) whose head 0 is ``inner(x)``."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        y = self.inner(x)
        return torch.stack([y, torch.zeros_like(y), 5 + y], dim=1)


@pytest.mark.parametrize("shape, roi", [((2, 1, 40, 48), (16, 16)), ((1, 1, 20, 12), (32, 32))])
@pytest.mark.parametrize("mirror_axes", [None, [3], [2, 3]])
def test_probabilities(shape, roi, mirror_axes):
    x = torch.rand(shape)
    with torch.no_grad():
        out = SlidingWindowTTAInferer(roi, sw_batch_size=3, mirror_axes=mirror_axes)(x, PointwiseNet())
    assert tuple(out.shape) == (shape[0], 2) + shape[2:]
    assert (out >= 0).all()
    torch.testing.assert_close(out.sum(1), torch.ones(shape[0], *shape[2:]))


def test_tta_of_equivariant_network_equals_plain():
    x, net = torch.rand(2, 1, 40, 48), PointwiseNet()
    with torch.no_grad():
        plain = SlidingWindowTTAInferer((16, 16))(x, net)
        tta = SlidingWindowTTAInferer((16, 16), mirror_axes=[2, 3])(x, net)
        expected = torch.softmax(net(x), dim=1)  # pointwise: windows change nothing
    torch.testing.assert_close(tta, plain)
    torch.testing.assert_close(plain, expected)


def test_tta_flips_back_before_averaging():
    x, net = torch.rand(1, 1, 24, 24), PositionNet()
    inferer = SlidingWindowTTAInferer((24, 24), mirror_axes=[3])  # one window covers the image
    with torch.no_grad():
        out = inferer(x, net)
        p0 = torch.softmax(net(x), 1)
        p1 = torch.flip(torch.softmax(net(torch.flip(x, dims=(3,))), 1), dims=(3,))
    torch.testing.assert_close(out, (p0 + p1) / 2)
    assert not torch.allclose(out, p0)


def test_softmax_false_averages_raw_outputs():
    x, net = torch.rand(1, 1, 24, 24), PositionNet()
    with torch.no_grad():
        out = SlidingWindowTTAInferer((24, 24), mirror_axes=[3], softmax=False)(x, net)
        expected = (net(x) + torch.flip(net(torch.flip(x, dims=(3,))), dims=(3,))) / 2
    torch.testing.assert_close(out, expected)


def test_deep_supervision_stack_uses_main_head():
    x, net = torch.rand(2, 1, 32, 32), PointwiseNet()
    inferer = SlidingWindowTTAInferer((16, 16), mirror_axes=[2])
    with torch.no_grad():
        torch.testing.assert_close(inferer(x, StackNet(net)), inferer(x, net))


def test_bad_mirror_axes():
    with pytest.raises(ValueError, match="spatial"):
        SlidingWindowTTAInferer((16, 16), mirror_axes=[1])
    with pytest.raises(ValueError, match="does not exist"):
        SlidingWindowTTAInferer((16, 16), mirror_axes=[4])(torch.rand(1, 1, 16, 16), PointwiseNet())
