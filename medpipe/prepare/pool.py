"""A process pool over work units with a few progress lines (serial when one worker is asked for)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence


def default_workers() -> int:
    """All cores, at most 8 (file checking is I/O bound beyond that)."""
    return min(os.cpu_count() or 1, 8)


def map_units(fn: Callable, units: Sequence, workers: int, progress: Callable[[str], None] | None = None,
              label: str = "checked", unit_name: str = "patients") -> list:
    """``[fn(u) for u in units]`` in order, over ``workers`` processes, with about five progress lines.

    ``fn`` must be picklable (a module-level function or a ``functools.partial`` of one); on Linux
    the workers are forked, so they start in milliseconds and share what the parent imported.
    """
    results, t0, n = [], time.perf_counter(), len(units)
    step = max(1, n // 5)
    pool = None
    if workers <= 1 or n <= 1:
        it = map(fn, units)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("fork") if sys.platform.startswith("linux") else None
        pool = ProcessPoolExecutor(max_workers=min(workers, n), mp_context=ctx)
        it = pool.map(fn, units, chunksize=max(1, n // (workers * 4)))
    try:
        for i, r in enumerate(it, 1):
            results.append(r)
            if progress and (i % step == 0 or i == n):
                el = time.perf_counter() - t0
                progress(f"  {label}: {i}/{n} {unit_name}, {el:.1f} s elapsed, ~{el / i * (n - i):.1f} s left")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return results
