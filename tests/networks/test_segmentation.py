"""Segmentation networks: planning, shapes in train/eval mode, tracing, checkpoints, learning."""

from __future__ import annotations

import pytest
import torch

from medpipe.losses.segmentation import DeepSupervisionDiceCELoss
from medpipe.networks.segmentation import SEGMENTERS, build_segmenter, plan_dynunet



@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a busy 2-core runner torch's spinning OpenMP threads oversubscribe
    the CPU and these tests slow down 20-40x (measured); with one thread they cost ~1 s each."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# smp gets the small resnet18 encoder to keep the tests fast; the architecture code path is the same
NET_CASES = [
    ("dynunet", {}),
    ("basicunet", {}),
    ("smp_unet", {"encoder_name": "resnet18"}),
    ("smp_unetplusplus", {"encoder_name": "resnet18"}),
]


@pytest.mark.parametrize("patch, strides", [
    ((128, 128), [[1, 1]] + [[2, 2]] * 5),
    ((64, 32), [[1, 1], [2, 2], [2, 2], [2, 2], [2, 1]]),
    ((512, 512), [[1, 1]] + [[2, 2]] * 5),  # capped at max_levels=6
    ((96, 96), [[1, 1]] + [[2, 2]] * 4),  # 96 -> 6: 3 would be < min_feature_size
    (16, [[1, 1], [2, 2], [2, 2]]),
])
def test_plan_dynunet(patch, strides):
    kernels, got = plan_dynunet(patch)
    assert got == strides
    assert kernels == [[3, 3]] * len(strides)


def test_plan_dynunet_too_small():
    with pytest.raises(ValueError, match="at least 2"):
        plan_dynunet((8, 8))


def test_registry_and_unknown_name():
    assert set(SEGMENTERS) == {"dynunet", "basicunet", "smp_unet", "smp_unetplusplus"}
    with pytest.raises(ValueError, match="basicunet, dynunet, smp_unet, smp_unetplusplus"):
        build_segmenter("unetr")


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:.*deprecated:FutureWarning")
@pytest.mark.parametrize("name, kw", NET_CASES)
def test_shapes_and_trace(name, kw):
    torch.manual_seed(0)
    net = build_segmenter(name, patch_size=(64, 64), **kw)
    x = torch.randn(2, 1, 64, 64)
    out = net.train()(x)
    expected_train = (2, 3, 2, 64, 64) if name == "dynunet" else (2, 2, 64, 64)
    assert tuple(out.shape) == expected_train
    net.eval()
    with torch.no_grad():
        y = net(x)
        assert tuple(y.shape) == (2, 2, 64, 64)
        traced = torch.jit.trace(net, x)
        torch.testing.assert_close(traced(x), y)
        # the traced graph is not tied to the example's size (bundles export by tracing)
        x2 = torch.randn(1, 1, 96, 64)
        torch.testing.assert_close(traced(x2), net(x2))


def test_dynunet_options():
    net = build_segmenter("dynunet", patch_size=(64, 64), deep_supervision=False, filters=[8, 16, 32, 64, 64])
    assert tuple(net.train()(torch.zeros(1, 1, 64, 64)).shape) == (1, 2, 64, 64)
    assert list(net.filters) == [8, 16, 32, 64, 64]
    net = build_segmenter("dynunet", patch_size=(64, 64), deep_supr_num=3, out_channels=3, in_channels=2)
    assert tuple(net.train()(torch.zeros(1, 2, 64, 64)).shape) == (1, 4, 3, 64, 64)
    with pytest.raises(ValueError, match="deep_supr_num"):
        build_segmenter("dynunet", patch_size=(64, 64), deep_supr_num=4)
    with pytest.raises(ValueError, match="filters"):
        build_segmenter("dynunet", patch_size=(64, 64), filters=[8, 16])


def test_no_hub_weights():
    with pytest.raises(ValueError, match="never downloads"):
        build_segmenter("smp_unet", encoder_weights="imagenet")


@pytest.mark.parametrize("wrap", ["bare", "model", "ddp"])
def test_pretrained_path(tmp_path, wrap):
    torch.manual_seed(1)
    src = build_segmenter("basicunet", filters=[4, 4, 8, 8, 16, 4]).eval()
    sd = src.state_dict()
    if wrap == "model":
        sd = {"model": sd}
    elif wrap == "ddp":
        sd = {f"module.{k}": v for k, v in sd.items()}
    path = tmp_path / "model.pt"
    torch.save(sd, path)
    dst = build_segmenter("basicunet", filters=[4, 4, 8, 8, 16, 4], pretrained_path=str(path)).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x))
    with pytest.raises(FileNotFoundError):
        build_segmenter("basicunet", pretrained_path=str(tmp_path / "missing.pt"))


def test_smp_local_encoder_weights(tmp_path):
    src = build_segmenter("smp_unet", encoder_name="resnet18")
    path = tmp_path / "encoder.pt"
    torch.save(src.encoder.state_dict(), path)
    dst = build_segmenter("smp_unet", encoder_name="resnet18", encoder_weights=str(path))
    for k, v in src.encoder.state_dict().items():
        torch.testing.assert_close(dst.encoder.state_dict()[k], v)


def _dice(pred: torch.Tensor, target: torch.Tensor) -> float:
    inter = (pred * target).sum().item()
    return 2 * inter / (pred.sum().item() + target.sum().item())


def test_dynunet_overfits_one_image():
    """20 Adam steps on one synthetic slice reach Dice > 0.8: the net + loss + supervision learn."""
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    target = (((yy - 30) ** 2 + (xx - 36) ** 2) < 12**2).float()[None, None]  # a disc "lesion"
    image = 40 + 120 * target + 10 * torch.randn_like(target)
    image = (image - image.mean()) / image.std()
    net = build_segmenter("dynunet", patch_size=(64, 64), deep_supr_num=2)
    loss_fn = DeepSupervisionDiceCELoss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(20):
        opt.zero_grad()
        loss = loss_fn(net(image), target)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = net(image).argmax(1, keepdim=True).float()
    assert _dice(pred, target) > 0.8
