"""Patient-level K-fold splits, stratified, deterministic per seed.

Splits are made once by ``medpipe prepare`` and written into the datalist; consumers only read them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping


def patient_kfold(
    strata: Mapping[str, object],
    sizes: Mapping[str, int] | None = None,
    folds: int = 5,
    seed: int = 12345,
    test_fraction: float = 0.0,
) -> tuple[dict[str, int], list[str]]:
    """Assign each patient to one of ``folds`` folds (and optionally to a held-out test set).

    Patients are grouped by stratum (for PHE-SICH: does the patient have any positive slice?). Within
    each stratum, patients are shuffled with ``seed`` and dealt to the fold that currently has the
    fewest patients of that stratum, ties broken by the fewest records so far, then by fold index; so
    folds are balanced in patients per stratum and, as far as patients allow, in records.

    Args:
        strata: patient id -> stratum value (any hashable).
        sizes: patient id -> number of records (for balancing); 1 each when omitted.
        folds: number of folds K (>= 2).
        seed: random seed; the same inputs and seed always give the same split.
        test_fraction: fraction of patients (per stratum, rounded) held out as a test set first.

    Returns:
        ``(fold_of, test_patients)``: patient -> fold in ``0..K-1`` for the training patients, and the
        sorted list of held-out test patients.

    Raises:
        ValueError: fewer training patients than folds, or a bad fraction.

    Example:
        >>> fold_of, test = patient_kfold({"a": 1, "b": 0, "c": 1, "d": 0}, folds=2, seed=0)
        >>> sorted(set(fold_of.values()))
        [0, 1]
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test fraction must be in [0, 1), got {test_fraction}")
    sizes = sizes or {}
    rng = random.Random(seed)
    by_stratum: dict[str, list[str]] = {}
    for pid in sorted(strata):
        by_stratum.setdefault(repr(strata[pid]), []).append(pid)

    test: list[str] = []
    pools: list[tuple[str, list[str]]] = []
    for key in sorted(by_stratum):
        pids = list(by_stratum[key])
        rng.shuffle(pids)
        n_test = int(round(test_fraction * len(pids)))
        test.extend(pids[:n_test])
        pools.append((key, pids[n_test:]))

    n_train = sum(len(p) for _, p in pools)
    if n_train < folds:
        raise ValueError(f"{n_train} training patients cannot fill {folds} folds; use fewer folds")

    fold_of: dict[str, int] = {}
    fold_patients = [0] * folds
    fold_records = [0] * folds
    for _, pids in pools:
        per_stratum = [0] * folds
        for pid in pids:  # shuffled order: the seed decides, the balancing rule keeps folds even
            f = min(range(folds), key=lambda i: (per_stratum[i], fold_records[i], fold_patients[i], i))
            fold_of[pid] = f
            per_stratum[f] += 1
            fold_patients[f] += 1
            fold_records[f] += sizes.get(pid, 1)
    return fold_of, sorted(test)
