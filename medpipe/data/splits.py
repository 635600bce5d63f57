"""Patient-level K-fold splits, stratified, deterministic per seed, and their leak audit.

* :func:`patient_kfold` stratifies on one value per patient (e.g. "has any positive slice").
* :func:`multilabel_patient_kfold` stratifies on a 0/1 vector per patient (any positive record per
  label), with iterative stratification (Sechidis et al. 2011, the ``iterative-stratification``
  package), so every fold keeps each label's prevalence, rare labels included.
* :func:`audit_patient_split` checks a datalist: no patient in two folds or in training and test.

Splits are made once by ``medpipe prepare`` and written into the datalist; consumers only read them.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from medpipe.errors import DataError

__all__ = ["patient_kfold", "multilabel_patient_kfold", "audit_patient_split"]


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


def _patient_label_matrix(patient_labels: Mapping[str, Sequence[int]]) -> tuple[list[str], np.ndarray]:
    pids = sorted(patient_labels)
    if not pids:
        raise ValueError("patient_labels is empty: no patient to split")
    # fast path (one array check; 30k patients in milliseconds); the loop below names a bad row
    try:
        y = np.asarray([patient_labels[pid] for pid in pids])
    except ValueError:  # ragged
        y = None
    if (y is not None and y.ndim == 2 and y.shape[1] > 0
            and (y.dtype == bool or np.issubdtype(y.dtype, np.number)) and np.isin(y, (0, 1)).all()):
        return pids, y.astype(np.int64)
    rows = []
    for pid in pids:
        v = np.asarray(list(patient_labels[pid]))
        if v.ndim != 1 or v.size == 0:
            raise ValueError(f"patient {pid!r}: labels must be a flat, non-empty 0/1 sequence (one per "
                             f"label), got {patient_labels[pid]!r}")
        if rows and v.size != rows[0].size:
            raise ValueError(f"patient {pid!r} has {v.size} labels but patient {pids[0]!r} has "
                             f"{rows[0].size}; every patient needs one 0/1 per label")
        if v.dtype == bool:
            v = v.astype(np.int64)
        if not np.issubdtype(v.dtype, np.number) or not np.isin(v, (0, 1)).all():
            raise ValueError(f"patient {pid!r}: labels must be 0/1 (1 = any of its records has the "
                             f"label), got {v.tolist()}")
        rows.append(v.astype(np.int64))
    return pids, np.stack(rows)


def _size_bins(pids: list[str], sizes: Mapping[str, int]) -> np.ndarray:
    """One-hot record-count terciles, so the stratifier spreads small and large patients evenly."""
    n = np.asarray([sizes.get(pid, 1) for pid in pids], dtype=np.float64)
    bins = np.digitize(n, np.quantile(n, [1 / 3, 2 / 3]), right=True)
    return np.eye(3, dtype=np.int64)[bins]


def _exact_test_size(y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
                     n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Move patients between training and test until test holds exactly ``n_test`` of them.

    Iterative stratification favours label balance over set sizes and can miss the size by a
    patient or two on small sets; each move takes the patient that keeps the test set's label
    counts nearest ``n_test / n`` of the totals (first such patient on ties, so deterministic).
    """
    target = y.sum(axis=0) * n_test / y.shape[0]
    train, test = list(train_idx), list(test_idx)
    while len(test) != n_test:
        src, dst, sign = (test, train, -1) if len(test) > n_test else (train, test, 1)
        counts = y[test].sum(axis=0)
        cost = [np.abs(counts + sign * y[i] - target).sum() for i in src]
        dst.append(src.pop(int(np.argmin(cost))))
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(test, dtype=np.int64))


def multilabel_patient_kfold(
    patient_labels: Mapping[str, Sequence[int]],
    sizes: Mapping[str, int] | None = None,
    folds: int = 5,
    seed: int = 12345,
    test_fraction: float = 0.0,
) -> tuple[dict[str, int], list[str]]:
    """Assign each patient to one of ``folds`` folds (and optionally a test set), multi-label stratified.

    The same contract as :func:`patient_kfold`, for datasets where a record can carry several labels
    (e.g. hemorrhage subtypes): each patient is described by a 0/1 vector, 1 for a label that any of
    its records has. Iterative stratification (``iterstrat``'s ``MultilabelStratifiedShuffleSplit``
    for the test hold-out, then ``MultilabelStratifiedKFold``) deals patients so that each part keeps
    every label's prevalence, rarest labels first. Patients are sorted by id before anything random
    happens, so only the seed, not the input order, decides.

    Args:
        patient_labels: patient id -> 0/1 label vector (the same length for every patient).
        sizes: patient id -> number of records (1 when omitted). When given, record-count terciles
            are stratified on as well, so folds are balanced in records as far as labels allow.
        folds: number of folds K (>= 2).
        seed: random seed; the same inputs and seed always give the same split.
        test_fraction: fraction of patients held out as a test set first: exactly
            ``ceil(test_fraction * n)`` patients (0 = none).

    Returns:
        ``(fold_of, test_patients)``: patient -> fold in ``0..K-1`` for the training patients, and the
        sorted list of held-out test patients.

    Raises:
        ValueError: no patients, label vectors of different lengths or not 0/1, ``folds < 2``, a
            fraction outside ``[0, 1)``, or fewer training patients than folds.

    Example:
        >>> labels = {f"p{i}": [i % 2, int(i % 3 == 0)] for i in range(12)}
        >>> fold_of, test = multilabel_patient_kfold(labels, folds=3, seed=0, test_fraction=0.25)
        >>> len(test), sorted(set(fold_of.values())), set(fold_of) & set(test)
        (3, [0, 1, 2], set())
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test fraction must be in [0, 1), got {test_fraction}")
    pids, y = _patient_label_matrix(patient_labels)
    if y.shape[1] == 1:  # the stratifiers want >= 2 columns: add the complement label
        y = np.concatenate([y, 1 - y], axis=1)
    if sizes:
        y = np.concatenate([y, _size_bins(pids, sizes)], axis=1)
    n = len(pids)
    n_test = int(np.ceil(test_fraction * n)) if test_fraction > 0 else 0
    if n - n_test < folds:
        raise ValueError(f"{n - n_test} training patients cannot fill {folds} folds; use fewer folds"
                         + (" or a smaller test fraction" if n_test else ""))

    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit

    train_idx = np.arange(n)
    test: list[str] = []
    if n_test:
        split = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
        train_idx, test_idx = next(split.split(np.zeros(n), y))
        train_idx, test_idx = _exact_test_size(y, train_idx, test_idx, n_test)
        test = [pids[i] for i in test_idx]
    kfold = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of: dict[str, int] = {}
    for f, (_, val) in enumerate(kfold.split(np.zeros(train_idx.size), y[train_idx])):
        fold_of.update({pids[train_idx[i]]: f for i in val})
    return fold_of, sorted(test)


def audit_patient_split(training: list[dict], test: list[dict] | None = None,
                        key: str = "patient") -> dict[int, dict[str, int]]:
    """Check that no patient leaks across folds or between training and test; summarize the folds.

    Args:
        training: training records (datalist entries), each with the patient id under ``key`` and
            an int ``"fold"``.
        test: held-out test records, each with the patient id under ``key`` (optional).
        key: the record field holding the patient id.

    Returns:
        ``{fold: {"patients": n, "records": n}}`` for each fold, by ascending fold.

    Raises:
        DataError: a record lacks ``key`` or an int ``"fold"``; or patients found in two folds or
            in both training and test (every such patient is named).

    Example:
        >>> audit_patient_split([{"patient": "a", "fold": 0}, {"patient": "a", "fold": 0},
        ...                      {"patient": "b", "fold": 1}], [{"patient": "c"}])
        {0: {'patients': 1, 'records': 2}, 1: {'patients': 1, 'records': 1}}
    """
    folds_of: dict[Hashable, set[int]] = {}
    records: dict[int, int] = {}
    for i, rec in enumerate(training):
        if key not in rec:
            raise DataError(f"training record {i} has no {key!r} field; every record needs its "
                            f"patient id to audit the split (fields: {sorted(rec)})")
        fold = rec.get("fold")
        if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)):
            raise DataError(f"training record {i} (patient {rec[key]!r}) has fold {fold!r}; expected "
                            "an int fold index (re-run medpipe prepare to write the split)")
        folds_of.setdefault(rec[key], set()).add(int(fold))
        records[int(fold)] = records.get(int(fold), 0) + 1

    problems = [f"patient {pid!r} is in folds {sorted(fs)}"
                for pid, fs in sorted(folds_of.items(), key=lambda kv: str(kv[0])) if len(fs) > 1]
    test_patients = set()
    for i, rec in enumerate(test or []):
        if key not in rec:
            raise DataError(f"test record {i} has no {key!r} field; every record needs its patient "
                            f"id to audit the split (fields: {sorted(rec)})")
        test_patients.add(rec[key])
    problems += [f"patient {pid!r} is in training (folds {sorted(folds_of[pid])}) and in test"
                 for pid in sorted(test_patients & set(folds_of), key=str)]
    if problems:
        raise DataError(f"patient leak in the split ({len(problems)}): " + "; ".join(problems)
                        + ". Each patient's records must all sit in one fold, or all in test; "
                        "re-split by patient (medpipe prepare).")

    patients: dict[int, int] = {}
    for fs in folds_of.values():
        for f in fs:
            patients[f] = patients.get(f, 0) + 1
    return {f: {"patients": patients[f], "records": records[f]} for f in sorted(records)}
