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


def test_training_history_records_throughput_of_the_training_part_of_each_epoch(tmp_path):
    """images_per_s = samples fed / seconds from epoch start to its last iteration (validation excluded);
    both land in history.json, not in the learning-curve panels."""
    import json
    import time

    import torch
    from ignite.engine import Engine, Events

    from medpipe.handlers.training import TrainingHistory
    from medpipe.visualization.plots import curve_panels

    def step(engine, batch):
        time.sleep(0.02)
        return {"loss": torch.tensor(1.0)}

    trainer = Engine(step)
    TrainingHistory(str(tmp_path)).attach(trainer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: time.sleep(1.0))  # e.g. validation: not counted
    data = [{"image": torch.zeros(4, 1, 2, 2), "label": torch.zeros(4)}] * 3 + [{"image": torch.zeros(2, 1, 2, 2)}]
    trainer.run(data, max_epochs=2)
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["epoch"] == [1, 2] and len(hist["images_per_s"]) == 2
    for seconds, speed in zip(hist["train_s"], hist["images_per_s"]):
        assert 0.08 <= seconds < 1.0 and abs(speed - 14 / seconds) < 1e-6  # 4 + 4 + 4 + 2 samples
    assert [k for _, keys in curve_panels({k: v for k, v in hist.items() if k != "epoch"}) for k in keys] == ["loss"]
