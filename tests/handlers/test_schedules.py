"""The poly learning-rate schedule over whichever budget (iterations or seconds) ends the run first."""

from __future__ import annotations

import time

import pytest
import torch
from ignite.engine import Engine

from medpipe.handlers.schedules import PolyLR, poly_progress


def test_progress_is_the_larger_fraction():
    assert poly_progress(0, 100, 0.0, None) == 0.0
    assert poly_progress(50, 100, 10.0, 100.0) == 0.5
    assert poly_progress(10, 100, 80.0, 100.0) == 0.8
    assert poly_progress(500, 100, 0.0, None) == 1.0


def _run(max_epochs, limit_s, sleep=0.0, epoch_length=10):
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    seen = []

    def step(engine, batch):
        seen.append(opt.param_groups[0]["lr"])
        time.sleep(sleep)

    eng = Engine(step)
    PolyLR(opt, max_epochs=max_epochs, limit_s=limit_s, power=0.9).attach(eng)
    eng.run(range(epoch_length), max_epochs=max_epochs)
    return seen


def test_decays_over_the_epoch_budget_without_a_time_limit():
    lrs = _run(max_epochs=2, limit_s=None)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs == sorted(lrs, reverse=True)
    assert lrs[10] == pytest.approx(0.1 * 0.5 ** 0.9)  # iteration 11 of 20: half-way
    assert lrs[-1] == pytest.approx(0.1 * (1 / 20) ** 0.9)


def test_a_time_budget_decays_faster_than_the_epoch_budget():
    by_time = _run(max_epochs=1000, limit_s=0.2, sleep=0.02)
    by_epochs = 0.1 * (1 - 9 / 10000) ** 0.9
    assert by_time[-1] < 0.05 < by_epochs  # 10 steps of 20 ms = the whole 0.2 s budget
