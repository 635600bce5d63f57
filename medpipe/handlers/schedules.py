"""Learning-rate schedules that know the run's budget (epochs *and* seconds).

nnU-Net decays the learning rate polynomially, ``lr = lr0 * (1 - progress) ** 0.9``, over a fixed number
of iterations. A run given a time budget (``--time_limit_s``) stops long before its ``max_epochs`` on a
CPU, so a schedule over epochs would never decay and the run would end at its highest learning rate.
:class:`PolyLR` uses as progress the larger of the iteration fraction and the time fraction, so the
decay ends where the run ends, whichever budget ends it.
"""

from __future__ import annotations

import time

from ignite.engine import Engine, Events

__all__ = ["PolyLR", "poly_progress"]


def poly_progress(iteration: int, total_iterations: int | None, elapsed_s: float, limit_s: float | None) -> float:
    """Training progress in [0, 1]: the larger of ``iteration / total_iterations`` and ``elapsed_s / limit_s``.

    Example:
        >>> poly_progress(10, 100, 30.0, 60.0), poly_progress(90, 100, 1.0, None)
        (0.5, 0.9)
    """
    p = 0.0
    if total_iterations:
        p = max(p, iteration / float(total_iterations))
    if limit_s:
        p = max(p, elapsed_s / float(limit_s))
    return min(max(p, 0.0), 1.0)


class PolyLR:
    """Set every parameter group's learning rate before each iteration: ``lr0 * (1 - progress) ** power``.

    Progress is :func:`poly_progress` of the trainer's iteration over ``max_epochs * epoch_length`` and
    of the seconds since this run started over ``limit_s`` (a resumed run continues the iteration
    count; its clock starts again). The learning rate never goes below ``min_lr_fraction * lr0``.

    Args:
        optimizer: the optimizer whose groups' ``lr`` is set (each group's initial ``lr`` is its lr0).
        max_epochs: the run's epoch budget.
        limit_s: the run's time budget in seconds (None/0: epochs only).
        power: the polynomial's exponent (nnU-Net: 0.9).
        min_lr_fraction: floor of the schedule as a fraction of lr0.
    """

    def __init__(self, optimizer, max_epochs: int, limit_s: float | None = None, power: float = 0.9,
                 min_lr_fraction: float = 0.0) -> None:
        self.optimizer, self.max_epochs = optimizer, int(max_epochs)
        self.limit_s, self.power, self.floor = float(limit_s or 0), float(power), float(min_lr_fraction)
        self.base = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
        self._t0: float | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_STARTED, self)

    def _start(self, engine: Engine) -> None:
        self._t0 = time.perf_counter()

    def lr_factor(self, engine: Engine) -> float:
        """``(1 - progress) ** power`` at the engine's current iteration and time."""
        length = engine.state.epoch_length or 0
        total = self.max_epochs * length if length else None
        elapsed = time.perf_counter() - (self._t0 or time.perf_counter())
        p = poly_progress(max(engine.state.iteration - 1, 0), total, elapsed, self.limit_s)
        return max((1.0 - p) ** self.power, self.floor)

    def __call__(self, engine: Engine) -> None:
        f = self.lr_factor(engine)
        for g, lr0 in zip(self.optimizer.param_groups, self.base):
            g["lr"] = lr0 * f
