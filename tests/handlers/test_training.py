"""Training-side handlers: batch-norm recalibration."""

from __future__ import annotations


def test_recalibrate_batchnorm_recomputes_exact_statistics_and_restores_momentum():
    import torch

    from medpipe.handlers.training import RecalibrateBatchNorm

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 1, bias=False), torch.nn.BatchNorm2d(3))
    bn = net[1]
    bn.running_mean.fill_(50.0)  # stale statistics, as after a few fast-changing iterations
    bn.running_var.fill_(1e-4)
    data = [{"image": torch.randn(4, 1, 5, 5) * 3 + 2} for _ in range(3)]
    net.eval()
    RecalibrateBatchNorm(data, net)()
    feats = torch.cat([net[0](b["image"]) for b in data]).detach()
    per_batch = torch.stack([net[0](b["image"]).mean(dim=(0, 2, 3)) for b in data]).detach()
    assert torch.allclose(bn.running_mean, per_batch.mean(0), atol=1e-5)  # the cumulative (exact) average
    assert torch.allclose(bn.running_mean, feats.mean(dim=(0, 2, 3)), atol=1e-5)
    assert bn.momentum == 0.1 and not net.training  # settings and mode restored
    RecalibrateBatchNorm(data, net, enabled=False).attach(type("E", (), {"add_event_handler": None})())  # no-op
