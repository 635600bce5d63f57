"""``prepare(spec, src, out, options)``: a dataset as downloaded -> a prepared, patient-split dataset.

The engine does what every dataset needs; the dataset's :class:`~medpipe.prepare.converter.Converter`
does the rest. In order:

1. options checked (common ones first: ``--folds`` >= 2, ``--test-fraction`` in [0, 1)); ``--src``
   and ``--out`` checked: ``--out`` may be absent, empty, or a folder an earlier ``prepare`` wrote
   (it holds :data:`MARKER`) -- anything else is refused, never emptied;
2. ``--src`` scanned without reading files (symlink loops and dangling links become skipped
   entries); the fingerprint of the file list and options is compared with the last run, and the
   recorded output files are checked: unchanged and intact means nothing to do;
3. an exclusive lock next to ``--out`` (a second ``prepare`` into the same folder is refused), then
   leftovers of killed runs are cleaned;
4. the converter plans work units; they run in a worker pool, writing into a temp folder;
5. every record is validated against the declared tasks; patients are split into folds
   (stratified; multi-label datasets by iterative stratification), or the converter assigns the
   parts itself (:meth:`~medpipe.prepare.converter.Converter.assign_parts`, for datasets that ship
   their own split), or -- for a converter that declares
   :attr:`~medpipe.prepare.converter.Converter.test_only` -- every record goes to ``test``
   (``training`` empty, ``num_folds`` 0); the split is audited;
6. ``--strict`` turns any anomaly or skipped file into an error; then the dataset's exports,
   ``datalist.json`` (with the ``dataset``/``tasks``/``input`` header and ``synthetic``: whether
   ``--src`` is ``medpipe synth`` output, see :func:`synthetic_marker`), ``prepare_report.{json,md}``
   and the marker are written, and the temp folder replaces ``--out`` in one rename. Unlabelled
   images a converter returns as ``inference`` entries (a challenge's test set) go to the datalist's
   ``inference`` list, never into folds or ``test``.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

from medpipe.errors import DataError, UserError
from medpipe.prepare import report as R
from medpipe.prepare.pool import default_workers, map_units
from medpipe.prepare.records import validate_records
from medpipe.utils.fs import (
    LockBusyError,
    atomic_output_dir,
    check_manifest,
    clean_stale_temps,
    exclusive_lock,
    file_manifest,
    fingerprint,
    is_within,
    scan_tree,
    write_json,
)

#: bump when the engine's output format changes (old outputs are then rebuilt)
ENGINE_VERSION = "3"
#: the file that marks a folder as written by ``medpipe prepare`` (and so replaceable by it)
MARKER = ".medpipe-prepare.json"
#: medpipe's own marker files (``.medpipe-synth.json``, ``.medpipe-prepare.json``): not dataset files
OWN_PREFIX = ".medpipe-"
#: the file ``medpipe synth`` writes at the root of its output: data under it is synthetic
SYNTH_MARKER = ".medpipe-synth.json"
REPORT_JSON, REPORT_MD, DATALIST = "prepare_report.json", "prepare_report.md", "datalist.json"
_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def prepare(spec, src, out, options=None, workers: int | None = None, progress=print) -> dict:
    """Convert dataset ``spec`` as downloaded in ``src`` into a prepared dataset in ``out``.

    Args:
        spec: the dataset's :class:`~medpipe.prepare.spec.DatasetSpec`.
        src: the dataset as downloaded. Never written.
        out: output folder: absent, empty, or written by an earlier ``prepare``; replaced atomically
            (complete or untouched). Must not be inside ``src``.
        options: option name -> value (see ``spec.all_options()``); defaults for the rest.
        workers: processes for checking files (default: all cores, at most 8).
        progress: callable for progress lines (None for silence).

    Returns:
        The report (also in ``out/prepare_report.json``); ``"up_to_date": True`` when nothing
        changed since the last run and no work was done.

    Raises:
        UserError: bad options or folders (the message names them and says what to do);
            DataError (a UserError) when ``src`` is not this dataset or ``--strict`` found problems.

    Example:
        >>> rep = prepare(spec, "PHE-SICH-CT-IDS", "data/phe-sich", {"folds": 5})  # doctest: +SKIP
        >>> rep["records"], rep["folds"][0]["patients"]  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    say = progress or (lambda s: None)
    opts = spec.resolve_options(options)
    conv = spec.load_converter()(spec, opts)
    if conv.test_only:
        check_test_only(spec, opts)
    conv.check_options()
    src, out = check_paths(src, out)
    check_out(out, spec.name)
    located = conv.locate(src)
    workers = workers or default_workers()

    scan = scan_tree(src)
    own = [f for f in scan.files if os.path.basename(f[0]).startswith(OWN_PREFIX)]
    files = [f for f in scan.files if not os.path.basename(f[0]).startswith(OWN_PREFIX)]
    if not files and not scan.problems:
        raise DataError(f"--src {src}: the folder has no files. Unpack the {spec.title} download there first"
                        + (f", or make a synthetic one with `medpipe synth {spec.name} --out {src}`."
                           if spec.synthesizer else "."))
    synth_marker = synthetic_marker(src)
    fp = fingerprint(scan.files + [tuple(p.values()) for p in scan.problems],
                     {"options": opts, "dataset": spec.name, "version": spec.version, "engine": ENGINE_VERSION,
                      "src": str(src), "located": located, "synthetic": synth_marker})
    rebuild_reason = None
    prev = _previous_report(out)
    if prev is not None and prev.get("fingerprint") == fp and prev.get("output_path") == str(out):
        damaged = check_manifest(out, (prev.get("outputs") or {}).get("manifest") or {})
        if not (prev.get("outputs") or {}).get("manifest"):
            damaged = ["it has no record of its files"]
        if not damaged:
            say(f"{out}: up to date (same {len(files) + len(scan.problems)} source files and options); nothing to do.")
            prev["up_to_date"] = True
            return prev
        rebuild_reason = "; ".join(damaged)
        say(f"{out}: damaged since it was prepared ({rebuild_reason}); rebuilding it.")

    check_writable(out)
    try:
        with exclusive_lock(out.parent / f".{out.name}.lock"):
            clean_stale_temps(out)
            check_out(out, spec.name, deep=True)  # again, now that nobody else can be writing it
            return _build(spec, conv, src, out, opts, located, scan, files, own, fp, workers, say, t0,
                          rebuild_reason, synth_marker)
    except LockBusyError as e:
        raise UserError(
            f"--out {out}: another `medpipe prepare` (process {e.pid or 'unknown'}) is writing this folder "
            f"right now. Wait for it to finish (its result will be there), or choose another --out. "
            f"(Lock file: {e.path}.)") from None
    except OSError as e:
        if (e.errno in _WRITE_ERRNOS and e.filename and is_within(e.filename, out.parent)
                and not is_within(e.filename, src)):
            raise UserError(
                f"--out {out}: cannot write {e.filename} ({e.strerror}). Nothing was changed in {out}; "
                f"free some space or choose a folder you can write to.") from e
        raise


def summary_lines(spec, report: dict) -> list[str]:
    """The terminal summary of a run's report (generic lines plus the dataset's own)."""
    conv = spec.load_converter()(spec, report["options"])
    return R.summary_lines(report, conv)


def check_test_only(spec, opts: dict) -> None:
    """A test-only dataset makes no split: refuse a ``--folds`` or ``--test-fraction`` that would ask for one."""
    from medpipe.prepare.spec import COMMON_OPTIONS, OptionError

    default = {o.name: o.default for o in COMMON_OPTIONS}
    for name in ("folds", "test_fraction"):
        if opts[name] != default[name]:
            raise OptionError(f"--{name.replace('_', '-')} {opts[name]:g}: {spec.name} is a test-only dataset (every "
                              f"record goes to the datalist's test set, with no training folds); leave the option "
                              f"out.")


def check_paths(src, out) -> tuple[Path, Path]:
    """``--src`` must be an existing folder; ``--out`` must not be a file nor overlap ``--src``."""
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if not src.exists():
        raise DataError(f"--src {src}: no such folder. Point it at the unpacked download.")
    if not src.is_dir():
        raise DataError(f"--src {src}: is a file, expected the dataset folder.")
    src = src.resolve()
    out = out.resolve() if out.is_symlink() or out.exists() else out.parent.resolve() / out.name
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file. prepare writes a folder there; choose a folder path "
                        f"(created if absent), e.g. --out {out.parent / (out.stem + '-prepared')}.")
    if is_within(out, src):
        raise UserError(f"--out {out} is inside --src {src}; the source is never written. "
                        f"Choose an output folder outside the dataset.")
    if is_within(src, out):
        raise UserError(f"--src {src} is inside --out {out}, which would be replaced. Choose another --out.")
    return src, out


def synthetic_marker(src: Path) -> str | None:
    """The ``medpipe synth`` marker that makes ``src`` synthetic data, or None for a real download.

    ``medpipe synth`` writes :data:`SYNTH_MARKER` at the root of its output; ``--src`` may be that
    root or a folder inside it (e.g. one subset), so the folders above ``src`` are looked at too.
    """
    for d in (src, *src.parents):
        if (d / SYNTH_MARKER).is_file():
            return str(d / SYNTH_MARKER)
    return None


def _marker(out: Path) -> dict | None:
    try:
        m = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("tool") == "medpipe prepare" else None


#: what ``prepare`` wrote before outputs carried a marker and a file list (version 1, phe-sich only)
_LEGACY_NAMES = {"images", "masks", "yolo", DATALIST, "labels.csv", REPORT_JSON, REPORT_MD}


def _legacy_prepared(out: Path, names: list[str]) -> bool:
    """A folder written by medpipe prepare before markers existed, holding nothing else."""
    try:
        rep = json.loads((out / REPORT_JSON).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(rep, dict) and "converter_version" in rep and "dataset" in rep
            and (out / DATALIST).is_file() and set(names) <= _LEGACY_NAMES)


def _foreign_files(out: Path) -> list[str]:
    """Files under a prepared ``out`` that its report does not list (added since): never to be deleted."""
    rep = _previous_report(out) or {}
    manifest = (rep.get("outputs") or {}).get("manifest")
    if not isinstance(manifest, dict):
        return []
    scan = scan_tree(out)
    known = set(manifest) | {REPORT_JSON, MARKER}
    return [f[0] for f in scan.files if f[0] not in known] + [p["path"] for p in scan.problems]


def _refuse(out: Path, dataset: str, what: str, files: list[str]):
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    raise UserError(
        f"--out {out}: {what} ({shown}). prepare replaces its output folder as a whole, so it only "
        f"replaces a folder it wrote before (marked by {MARKER}) or an empty one, and never deletes "
        f"anything else. Move those files away, or choose a new folder, e.g. --out {out / dataset}.")


def check_out(out: Path, dataset: str, deep: bool = False) -> None:
    """Refuse an ``--out`` that is neither absent, empty, nor a folder ``prepare`` wrote.

    ``deep`` (just before replacing it) also refuses a prepared folder to which files were added.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"--out {out}: is a file; choose a folder path.")
    try:
        names = sorted(os.listdir(out))
    except OSError as e:
        raise UserError(f"--out {out}: cannot be read ({e.strerror}); choose another folder.") from None
    if not names or _legacy_prepared(out, names):
        return
    if _marker(out) is None:
        _refuse(out, dataset, "the folder already holds files that `medpipe prepare` did not write", names)
    extra = _foreign_files(out) if deep else []
    if extra:
        _refuse(out, dataset, "files were added to this prepared folder since `medpipe prepare` wrote it", extra)


def check_writable(out: Path) -> None:
    """``--out`` (or the nearest existing parent) must be a writable folder; checked before anything is made."""
    anc = out.parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"--out {out}: {anc} is a file, not a folder. Choose an output path under a folder.")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: cannot write in {anc} (permission denied). Choose a folder you can "
                        f"write to, e.g. --out ~/data/{out.name}.")
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: the folder is not writable, so it cannot be replaced. Fix its "
                        f"permissions or choose another --out.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot create {out.parent} ({e.strerror}). Choose another --out.") from None


def _previous_report(out: Path) -> dict | None:
    if not (out / DATALIST).is_file():
        return None
    try:
        rep = json.loads((out / REPORT_JSON).read_text())
    except (OSError, ValueError):
        return None
    return rep if isinstance(rep, dict) else None


def _convert_unit(conv, src: str, out: str, unit):
    return conv.convert(unit, src, out)


def default_stratum(records, tasks) -> int:
    """A patient's stratum: binary -> any positive; multiclass -> the most frequent class; else any box."""
    t = tasks.get("label")
    if t is not None and t.kind == "binary":
        return int(any(r["label"] for r in records))
    if t is not None and t.kind == "multiclass":
        counts = Counter(r["label"] for r in records)
        return min(counts, key=lambda c: (-counts[c], c))
    if "boxes" in tasks:
        return int(any(r["boxes"] for r in records))
    return 0


def split_patients(conv, per_patient: dict, folds: int, seed: int, test_fraction: float):
    """``(fold_of, test_patients)``: multi-label datasets by iterative stratification, others by stratum."""
    from medpipe.data import splits

    sizes = {p: len(rs) for p, rs in per_patient.items()}
    tasks = conv.tasks()
    ml = next((k for k, t in tasks.items() if t.kind == "multilabel"), None)
    if ml is not None:
        n = len(tasks[ml].class_names)
        plabels = {p: [int(any(r[ml][i] for r in rs)) for i in range(n)] for p, rs in per_patient.items()}
        return splits.multilabel_patient_kfold(plabels, sizes, folds=folds, seed=seed, test_fraction=test_fraction)
    strata = {p: conv.patient_stratum(rs) for p, rs in per_patient.items()}
    return splits.patient_kfold(strata, sizes, folds=folds, seed=seed, test_fraction=test_fraction)


def default_positive(r, tasks) -> int:
    """A record's positivity for the report: label > 0; any multi-label label; else any box."""
    if "label" in tasks:
        return int(r["label"] > 0)
    if "labels" in tasks:
        return int(any(r["labels"]))
    if "boxes" in tasks:
        return int(bool(r["boxes"]))
    return 0


TEST = "test"


def _split_or_explain(spec, conv, per_patient, opts, src):
    """The engine's patient split; too few patients for the folds becomes a UserError saying what to do."""
    try:
        return split_patients(conv, per_patient, opts["folds"], opts["seed"], opts["test_fraction"])
    except ValueError as e:
        import math

        n, tf = len(per_patient), opts["test_fraction"]
        n_train = n - (math.ceil(tf * n) if tf else 0)
        fix = (f"use --folds {n_train} or fewer" if n_train >= 2 else
               "lower --test-fraction" if n >= 2 else "a dataset with at least two patients is needed")
        raise UserError(
            f"--folds {opts['folds']}: {n} patient{'s' if n != 1 else ''} found in {src} ({e}). Every fold "
            f"needs at least one patient" + (f", after --test-fraction {tf:g} holds some out" if tf else "")
            + f": {fix}, or add patients"
            + (f" (e.g. `medpipe synth {spec.name} --patients {opts['folds'] * 2}`)." if spec.synthesizer else ".")
        ) from e


def _own_parts(records, parts, folds: int, dataset: str):
    """Check a converter's :meth:`~medpipe.prepare.converter.Converter.assign_parts` result.

    Returns ``(fold_of, test_patients, part_of)``: patient -> its (first) fold, the sorted test
    patients, and the checked part of every record. Patients found in two parts are left for the
    audit to name.
    """
    parts = list(parts)
    if len(parts) != len(records):
        raise RuntimeError(f"internal error in the {dataset} converter: assign_parts returned {len(parts)} parts "
                           f"for {len(records)} records")
    fold_of: dict[str, int] = {}
    for r, part in zip(records, parts):
        if part == TEST:
            continue
        if isinstance(part, bool) or not isinstance(part, int) or not 0 <= part < folds:
            raise RuntimeError(f"internal error in the {dataset} converter: record {r.get('image')!r} was given "
                               f"part {part!r}; expected a fold in 0..{folds - 1} or {TEST!r}")
        fold_of.setdefault(r["patient"], part)
    test_patients = sorted({r["patient"] for r, part in zip(records, parts) if part == TEST})
    return fold_of, test_patients, parts


def _build(spec, conv, src, out, opts, located, scan, files, own, fp, workers, say, t0, rebuild_reason,
           synth_marker=None):
    plan = conv.plan(src, files, located)
    say(f"prepare {spec.name}: {len(files) + len(scan.problems)} files under {src}"
        + (f" (+{len(own)} medpipe marker)" if own else "") + (f"; {plan.description}" if plan.description else ""))
    inputs = Counter(plan.inputs)
    skipped, anomalies = list(plan.skipped), list(plan.anomalies)
    for p in scan.problems:
        inputs[p["kind"]] += 1
        skipped.append(dict(p))
    ignored = [{"path": f[0], "reason": R.own_file_reason(f[0])} for f in own]
    if not plan.units and not conv.allow_no_records:
        raise DataError(f"--src {src}: no usable {spec.title} files found"
                        + (f" ({len(skipped)} entries skipped; first: {skipped[0]['path']}: {skipped[0]['reason']})"
                           if skipped else "") + ". Check --src.")

    tasks = conv.tasks()
    links = Counter()
    with atomic_output_dir(out) as tmp:
        conv.setup(tmp)
        fn = functools.partial(_convert_unit, conv, str(src), str(tmp))
        results = map_units(fn, plan.units, workers, say, "checked")
        records, inference, used = [], [], 0
        for res in results:
            records += res.records
            inference += res.inference
            skipped += res.skipped
            anomalies += res.anomalies
            used += res.used
            links.update(res.links)
        if not records and not conv.allow_no_records:
            first = skipped[0] if skipped else {"path": "?", "reason": ""}
            raise DataError(f"--src {src}: every input was skipped ({len(skipped)} entries); first: "
                            f"{first['path']}: {first['reason']}. Read the reasons above and check --src.")
        fin = conv.finish(records, src, located)
        used += fin.used
        skipped += fin.skipped
        anomalies += fin.anomalies
        validate_records(records, tasks, tmp, spec.name)
        validate_records(inference, {}, tmp, spec.name)  # unlabelled: image and patient only

        per_patient = defaultdict(list)
        for r in records:
            per_patient[r["patient"]].append(r)
        n_folds = 0 if conv.test_only else opts["folds"]
        parts = [TEST] * len(records) if conv.test_only else \
            conv.assign_parts(records, opts["folds"], opts["seed"], opts["test_fraction"])
        if parts is not None:
            fold_of, test_patients, part_of = _own_parts(records, parts, n_folds, spec.name)
        else:
            fold_of, test_patients = _split_or_explain(spec, conv, per_patient, opts, src)
            part_of = [fold_of.get(r["patient"], TEST) for r in records]
        order = {p: i for i, p in enumerate(sorted(per_patient))}
        # stable: each patient's records keep their order
        ranked = sorted(zip(records, part_of), key=lambda rp: order[rp[0]["patient"]])
        records = [r for r, _ in ranked]
        train, test = [], []
        for r, part in ranked:
            if part == TEST:
                test.append(r)
            else:
                r["fold"] = part
                train.append(r)
        from medpipe.data.splits import audit_patient_split

        audit_patient_split(train, test)

        if opts["strict"] and (anomalies or skipped):
            kinds = Counter(a["kind"] for a in anomalies)
            first = (anomalies or skipped)[0]
            raise DataError(
                f"--strict: {len(anomalies)} anomalies ({', '.join(f'{k} x{v}' for k, v in kinds.items()) or 'none'}) "
                f"and {len(skipped)} skipped entries; first: {first['path']}: "
                f"{first.get('action', first.get('reason'))}. Nothing was written to {out}. "
                f"Run without --strict to prepare anyway and read prepare_report.md.")

        exports = conv.export(tmp, out, train, test)

        patients_meta = {}
        for p in sorted(per_patient):
            patients_meta[p] = {"fold": fold_of.get(p, "test"), **conv.patient_meta(per_patient[p]),
                                **fin.patients.get(p, {})}
        datalist = _datalist(spec, conv, tasks, opts, train, test, patients_meta, synthetic=synth_marker is not None,
                             inference=inference, num_folds=n_folds)
        write_json(tmp / DATALIST, datalist)

        def fold_stats(rs):
            return {"patients": len({r["patient"] for r in rs}), "records": len(rs),
                    "positives": sum(conv.positive(r, tasks) for r in rs), **conv.fold_stats(rs)}

        n_skipped = sum(s.get("files", 1) for s in skipped)
        files_seen = len(files) + len(scan.problems)
        report = {
            "dataset": spec.name, "converter_version": spec.version, "engine_version": ENGINE_VERSION,
            "source": {"path": str(src), **plan.source, "synthetic": synth_marker is not None,
                       **({"synthetic_marker": synth_marker} if synth_marker else {})},
            "output_path": str(out), "options": opts, "workers": workers,
            "tasks": datalist["tasks"], "input": datalist["input"],
            "inputs": dict(sorted(inputs.items())) | {"total": files_seen},
            "records": len(records), "training_records": len(train), "test_records": len(test),
            "patients": len(per_patient),
            "positive_patients": sum(any(conv.positive(r, tasks) for r in rs) for rs in per_patient.values()),
            "positives": sum(conv.positive(r, tasks) for r in records),
            **R.per_class(records, tasks),
            "folds": [{"fold": f, **fold_stats([r for r in train if r["fold"] == f])} for f in range(n_folds)],
            **({"test_only": True} if conv.test_only else {}),
            "test": fold_stats(test) if test else None, "test_patients": test_patients,
            **({"inference_records": len(inference)} if inference else {}),
            **conv.report(records), **fin.report, **exports,
            "skipped": skipped, "anomalies": anomalies,
            "skipped_counts": dict(Counter(s.get("kind", "other") for s in skipped)),
            "anomaly_counts": dict(Counter(a["kind"] for a in anomalies)),
            "ignored": ignored,
            "accounting": {"files_seen": files_seen, "files_in_records": used, "files_skipped": n_skipped,
                           "adds_up": used + n_skipped == files_seen, "ignored_medpipe_files": len(ignored)},
            "link_methods": dict(links), "rebuilt_because": rebuild_reason, "fingerprint": fp,
            "outputs_written": conv.outputs(),
        }
        if not report["accounting"]["adds_up"]:
            raise RuntimeError(f"internal error in the {spec.name} converter: the file accounting does not add "
                               f"up: {report['accounting']}")
        report["timing_s"] = round(time.perf_counter() - t0, 3)
        (tmp / REPORT_MD).write_text(R.render_md(report, spec, conv))
        manifest = file_manifest(tmp, exclude=(REPORT_JSON, MARKER))
        report["outputs"] = {"files": len(manifest), "manifest": manifest}
        write_json(tmp / REPORT_JSON, report)
        from medpipe import __version__

        write_json(tmp / MARKER, {"tool": "medpipe prepare", "dataset": spec.name, "converter_version": spec.version,
                                  "engine_version": ENGINE_VERSION, "medpipe": __version__, "fingerprint": fp})
    report["timing_s"] = round(time.perf_counter() - t0, 3)
    return report


def _datalist(spec, conv, tasks, opts, train, test, patients_meta, synthetic: bool = False, inference=(),
              num_folds: int | None = None) -> dict:
    head = spec.header(tasks)
    head["input"] = {**head["input"], **conv.input_extra()}
    cls = tasks.get("label") or tasks.get("labels")
    det = tasks.get("boxes")
    main = det or cls or next(iter(tasks.values()), None)
    dl = {
        "name": spec.title, "description": spec.description or spec.summary,
        **head,
        "synthetic": bool(synthetic),
        "modality": {"0": spec.input.modality},
        "labels": {str(i): n for i, n in enumerate(cls.class_names)} if cls else {},
        "class_names": list(main.class_names) if main else [],
        "num_folds": opts["folds"] if num_folds is None else num_folds, "seed": opts["seed"],
        **conv.datalist_extra(),
        "numTraining": len(train), "numTest": len(test),
        "training": train,
    }
    if test:
        dl["test"] = test
    if inference:  # unlabelled images (e.g. a challenge's test set): for inference only, never split
        dl["numInference"] = len(inference)
        dl["inference"] = list(inference)
    dl["patients"] = patients_meta
    return dl
