"""Run a pipeline YAML: ordered steps, each skipped when its outputs are up to date.

A step's fingerprint is the hash of its resolved arguments and of the output digests of the steps
it runs after; it is stored in ``WORK_DIR/.pipeline/<step>.json`` when the step succeeds. A step
runs again when its fingerprint changed or its outputs are missing; ``--from STEP`` forces STEP and
everything after it, ``--only STEP`` runs just STEP (its upstream steps must have run). A failing
step stops the pipeline; earlier outputs stay as they are.

Steps run the same ``medpipe`` commands a user would type (printed before they run), so their
progress (epochs, ETA) shows on the terminal.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from medpipe.errors import UserError
from medpipe.utils.fs import write_json

ACTIONS = ("synth", "prepare", "bundle", "evaluate", "infer", "report")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Step:
    """One pipeline step as written in the YAML (``args`` still holds ``{param}`` placeholders)."""

    id: str
    action: str
    args: dict
    after: list[str] = field(default_factory=list)
    when: str | None = None
    each_fold: object = None


@dataclass
class Pipeline:
    """A parsed pipeline: name, parameters (defaults merged with overrides) and ordered steps."""

    name: str
    params: dict
    steps: list[Step]
    path: Path


def _coerce(value: str):
    """Command-line override text -> int/float/bool/None/str (YAML rules)."""
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def load_pipeline(path: str | os.PathLike, overrides: dict | None = None) -> Pipeline:
    """Read and check a pipeline YAML; ``overrides`` replace ``params`` (unknown keys are an error).

    Example:
        >>> p = load_pipeline("pipelines/phe_sich.yaml", {"cls_epochs": "2"})  # doctest: +SKIP
        >>> [s.id for s in p.steps]
        ['synth', 'prepare', 'sich_cls', 'sich_det', 'sich_seg', 'report']
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such pipeline file (see pipelines/ for the available ones).")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({e}).") from e
    if not isinstance(spec, dict):
        raise UserError(f"{path}: a pipeline is a mapping with name, params and steps (see pipelines/phe_sich.yaml); "
                        f"this file holds a {type(spec).__name__}.")
    if not isinstance(spec.get("params") or {}, dict) or not isinstance(spec.get("steps") or [], list):
        raise UserError(f"{path}: 'params' must be a mapping and 'steps' a list of steps.")
    params = dict(spec.get("params") or {})
    for k, v in (overrides or {}).items():
        if k not in params:
            import difflib

            close = difflib.get_close_matches(k, params, n=1)
            raise UserError(f"--{k}: not a parameter of {path.name}" + (f"; did you mean --{close[0]}?" if close else "")
                            + f" (parameters: {', '.join(params)}).")
        params[k] = _coerce(v) if isinstance(v, str) else v
    steps, seen = [], set()
    for i, s in enumerate(spec.get("steps") or []):
        if not isinstance(s, dict):
            raise UserError(f"{path}: step {i} must be a mapping with id, action and args.")
        sid = s.get("id")
        if not sid or s.get("action") not in ACTIONS:
            raise UserError(f"{path}: step {i} needs an id and an action in {', '.join(ACTIONS)}.")
        if not isinstance(s.get("args") or {}, dict):
            raise UserError(f"{path}: step {sid}: 'args' must be a mapping.")
        _check_placeholders(path, sid, s.get("args") or {}, params)
        _check_step_args(path, sid, s["action"], s.get("args") or {})
        for a in s.get("after", []):
            if a not in seen:
                raise UserError(f"{path}: step {sid} runs after {a!r}, which is not an earlier step.")
        seen.add(sid)
        if s.get("each_fold") is not None and s["action"] != "bundle":
            raise UserError(f"{path}: step {sid}: 'each_fold' belongs to bundle steps (one model per validation fold).")
        _check_placeholders(path, sid, {"each_fold": s.get("each_fold")}, params)
        steps.append(Step(sid, s["action"], dict(s.get("args") or {}), list(s.get("after") or []), s.get("when"),
                          s.get("each_fold")))
    if not steps:
        raise UserError(f"{path}: no steps.")
    return Pipeline(spec.get("name", path.stem), params, steps, path)


def params_help(path: str | os.PathLike) -> str:
    """The pipeline's steps and each ``--KEY`` with its default and the comment written beside it in the YAML.

    Example:
        >>> print(params_help("pipelines/chest_xray.yaml"))  # doctest: +SKIP
        pipelines/chest_xray.yaml: prepare (cxr14) -> cxr14_cls ... -> report
        steps: synth (when src is null), prepare, cxr14_cls (one model per fold: {kfold}), report
        parameters (--KEY VALUE):
          --src           null   the dataset as downloaded; null synthesizes one (the offline default)
        ...
    """
    p = load_pipeline(path)
    comments, in_params = {}, False
    for line in Path(path).read_text().splitlines():
        if re.match(r"^params\s*:", line):
            in_params = True
            continue
        if in_params and re.match(r"^\S", line):
            break
        m = re.match(r"^\s+([A-Za-z_]\w*)\s*:[^#]*#\s*(.*)$", line) if in_params else None
        if m:
            comments[m.group(1)] = m.group(2).strip()
    import yaml

    steps = ", ".join(s.id + (f" (when {s.when})" if s.when else "")
                      + (f" (one model per fold: {s.each_fold})" if s.each_fold is not None else "") for s in p.steps)
    width = max(len(k) for k in p.params) + 2 if p.params else 0
    dw = min(24, max((len("null" if v is None else str(v)) for v in p.params.values()), default=4))
    lines = [f"{path}: {yaml.safe_load(Path(path).read_text()).get('description', p.name)}", f"steps: {steps}",
             "parameters (--KEY VALUE):"]
    for k, v in p.params.items():
        default = "null" if v is None else str(v)
        lines.append(f"  --{k:<{width}} {default:<{dw}}  {comments.get(k, '')}".rstrip())
    return "\n".join(lines)


#: arguments each non-bundle action takes
ACTION_ARGS = {"synth": {"dataset", "out", "patients", "size", "seed"},
               "prepare": {"dataset", "src", "src_if_null", "out", "folds", "seed", "val_fold", "workers", "test_fraction",
                           "options"},
               "evaluate": {"bundle", "ckpt_path", "dataset_dir", "records", "output_dir", "num_workers", "device"},
               "infer": {"bundle", "ckpt_path", "input", "output_dir", "num_workers", "device"},
               "report": {"work_dir", "data_dir", "out", "bundles"}}


def _placeholders(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _placeholders(v)
    elif isinstance(value, list):
        for v in value:
            yield from _placeholders(v)
    elif isinstance(value, str):
        yield from _PLACEHOLDER.findall(value)


def _check_placeholders(path: Path, sid: str, args: dict, params: dict) -> None:
    import difflib

    for name in _placeholders(args):
        if name not in params:
            close = difflib.get_close_matches(name, params, n=1)
            raise UserError(f"{path}: step {sid} uses {{{name}}}, which is not a parameter"
                            + (f"; did you mean {{{close[0]}}}?" if close else "")
                            + f" (parameters: {', '.join(params)}).")


def _check_step_args(path: Path, sid: str, action: str, args: dict) -> None:
    """Refuse misspelt step arguments (e.g. ``max_epoch:``) with a suggestion, as the CLI does."""
    import difflib

    if action == "bundle":
        from medpipe.bundle.overrides import check_keys
        from medpipe.bundle.runner import config_files, raw_config

        b = args.get("bundle")
        if not isinstance(b, str) or "{" in b:
            raise UserError(f"{path}: step {sid}: 'bundle' must name a bundle.")
        try:
            check_keys([k for k in args if k not in ("bundle", "evaluate_args")],
                       raw_config(config_files(b, "train")), f"{b} (step {sid} of {path.name})")
            check_keys(list(args.get("evaluate_args") or {}), raw_config(config_files(b, "evaluate")),
                       f"{b} evaluation (step {sid} of {path.name})")
        except UserError as e:
            raise UserError(f"{path}: step {sid}: {e}") from None
        return
    unknown = [k for k in args if k not in ACTION_ARGS[action]]
    if unknown:
        close = difflib.get_close_matches(unknown[0], ACTION_ARGS[action], n=1)
        raise UserError(f"{path}: step {sid}: {unknown[0]!r} is not an argument of a {action} step"
                        + (f"; did you mean {close[0]!r}?" if close else "")
                        + f" (arguments: {', '.join(sorted(ACTION_ARGS[action]))}).")


def resolve(value, params: dict):
    """Substitute ``{param}`` placeholders (recursively); a lone placeholder keeps the parameter's type."""
    if isinstance(value, dict):
        return {k: resolve(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, params) for v in value]
    if isinstance(value, str):
        m = _PLACEHOLDER.fullmatch(value)
        if m:
            return params[m.group(1)]
        return _PLACEHOLDER.sub(lambda mm: str(params[mm.group(1)]), value)
    return value


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


class PipelineRunner:
    """Runs a :class:`Pipeline` (see the module docstring).

    Args:
        pipeline: the parsed pipeline.
        python: interpreter for the step commands (default: this one).
        dry_run: print what would run, run nothing.
        tracking: ``--tracking`` of every training step (``mlflow``: each model's training is also an
            MLflow run); not part of a step's fingerprint, so it never makes a finished step run again.
    """

    def __init__(self, pipeline: Pipeline, python: str | None = None, dry_run: bool = False,
                 tracking: str | None = None) -> None:
        self.p = pipeline
        self.python = python or sys.executable
        self.dry_run = dry_run
        self.tracking = tracking
        self.work_dir = Path(str(pipeline.params.get("work_dir", f"runs/{pipeline.name}"))).absolute()
        self.stamp_dir = self.work_dir / ".pipeline"
        self._upstream: dict = {}
        self._forced = False

    # ---------------------------------------------------------------- stamps

    def _stamp(self, sid: str) -> dict | None:
        f = self.stamp_dir / f"{sid}.json"
        return json.loads(f.read_text()) if f.is_file() else None

    def _write_stamp(self, sid: str, stamp: dict) -> None:
        self.stamp_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.stamp_dir / f"{sid}.json", stamp, atomic=True)

    def _enabled(self, step: Step) -> bool:
        if not step.when:
            return True
        m = re.fullmatch(r"\s*(\w+)\s+is\s+(not\s+)?null\s*", step.when)
        if not m:
            raise UserError(f"{self.p.path}: step {step.id}: unsupported condition {step.when!r} (use 'X is null' / 'X is not null').")
        is_null = self.p.params.get(m.group(1)) is None
        return is_null != bool(m.group(2))

    # ---------------------------------------------------------------- actions

    def _cmd(self, *args) -> list[str]:
        return [self.python, "-m", "medpipe", *[str(a) for a in args]]

    def _run(self, cmd: list) -> None:
        cmd = [str(c) for c in cmd]
        shown = ["medpipe"] + cmd[3:]
        print("  $ " + " ".join(shown), flush=True)
        if self.dry_run:
            return
        if cmd[3] in WARM_COMMANDS and hasattr(os, "fork") and self.python == sys.executable:
            rc = warm_fork_call(cmd[3:])
        else:
            rc = subprocess.call(cmd)
        if rc != 0:
            raise StepFailed(f"`{' '.join(shown)}` exited with status {rc}")

    def _outputs(self, step: Step, a: dict) -> tuple[list[Path], str]:
        """Files that must exist for the step to count as done, and a digest of what it produced."""
        if step.action == "synth":
            marker = Path(a["out"]) / ".medpipe-synth.json"
            return [marker], _file_sha(marker) or ""
        if step.action == "prepare":
            dl = Path(a["out"]) / "datalist.json"
            return [dl], _file_sha(dl) or ""
        if step.action == "evaluate":
            m = Path(a["output_dir"]) / "eval" / "metrics.json"
            return [m], _file_sha(m) or ""
        if step.action == "infer":
            p = Path(a["output_dir"]) / "predictions.csv"
            return [p], _file_sha(p) or ""
        if step.action == "bundle":
            out = Path(a["output_dir"])
            folds = self._folds(step, a)
            if folds is None:
                files = [out / "eval" / "metrics.json"]
                return files, _sha([_file_sha(f) for f in files + [out / "models" / "model.pt"]])
            from medpipe.evaluation.kfold import KFOLD_FILE, fold_dir

            files = [out / KFOLD_FILE] + [fold_dir(out, k) / "eval" / "metrics.json" for k in folds]
            return files, _sha([_file_sha(f) for f in files]
                               + [_file_sha(fold_dir(out, k) / "models" / "model.pt") for k in folds])
        report = Path(a["out"]) / "report.html"
        return [report], _file_sha(report) or ""

    def _do(self, step: Step, a: dict) -> None:
        if step.action == "synth":
            out = Path(a["out"])
            if (out / ".medpipe-synth.json").is_file() and not self.dry_run:
                import shutil

                shutil.rmtree(out)  # our own synthetic data made with other settings: make it anew
            self._run(self._cmd("synth", a["dataset"], "--out", out, "--patients", a.get("patients", 12),
                                "--size", a.get("size", 128), "--seed", a.get("seed", 0)))
        elif step.action == "prepare":
            src = a.get("src") or a.get("src_if_null")
            cmd = self._cmd("prepare", a["dataset"], "--src", src, "--out", a["out"])
            for k in ("folds", "seed", "val_fold", "workers", "test_fraction"):
                if a.get(k) is not None:
                    cmd += [f"--{k.replace('_', '-')}", a[k]]
            for k, v in (a.get("options") or {}).items():  # the dataset's own options (medpipe prepare DATASET --help)
                if v is not None and v is not False:
                    cmd += [f"--{str(k).replace('_', '-')}"] + ([] if v is True else [v])
            self._run(cmd)
        elif step.action == "evaluate":  # a trained model on another set (held-out patients, an external site)
            cmd = self._cmd("evaluate", a["bundle"], "--ckpt_path", a["ckpt_path"])
            for k in ("dataset_dir", "records", "output_dir", "num_workers", "device"):
                if a.get(k) is not None:
                    cmd += [f"--{k}", a[k]]
            self._run(cmd)
        elif step.action == "infer":  # a trained model (e.g. given by its checkpoint) applied to a folder of images
            cmd = self._cmd("infer", a["bundle"], "--ckpt_path", a["ckpt_path"], "--input", a["input"])
            for k in ("output_dir", "num_workers", "device"):
                if a.get(k) is not None:
                    cmd += [f"--{k}", a[k]]
            self._run(cmd)
        elif step.action == "bundle":
            folds = self._folds(step, a)
            if folds is None:
                self._train_evaluate(a)
                return
            from medpipe.evaluation.kfold import fold_dir, summarize_folds

            for i, k in enumerate(folds, 1):
                fa = {**a, "fold": k, "output_dir": str(fold_dir(a["output_dir"], k))}
                key, fp = f"{step.id}.fold_{k}", _sha({"args": fa, "upstream": self._upstream})
                st = self._stamp(key)
                done = Path(fa["output_dir"]) / "eval" / "metrics.json"
                if st and st.get("fingerprint") == fp and done.is_file() and not self._forced:
                    print(f"  model {i}/{len(folds)} (validation fold {k}): up to date, skipped", flush=True)
                    continue
                print(f"  model {i}/{len(folds)} (validation fold {k}) -> {fa['output_dir']}", flush=True)
                self._train_evaluate(fa)
                if not self.dry_run:
                    self._write_stamp(key, {"fingerprint": fp})
            if not self.dry_run:
                s = summarize_folds(a["output_dir"], folds)
                m = s["metrics"].get("auroc_mean") or s["metrics"].get("auroc") or {}
                if m.get("mean") is not None:
                    sd = f" ± {m['sd']:.3f}" if m.get("sd") is not None else ""
                    print(f"  {len(folds)} folds: AUROC {m['mean']:.3f}{sd} (mean ± sd over folds); "
                          f"{Path(a['output_dir']) / 'kfold.json'}", flush=True)
        else:
            from medpipe.reporting.html import build_report

            print(f"  building the report from {a['work_dir']}", flush=True)
            if not self.dry_run:
                paths = build_report(a["work_dir"], a["out"], pipeline=self.p.name, params=self.p.params,
                                     data_dir=a.get("data_dir"), bundles=a.get("bundles"))
                print(f"  report: {paths['html']}", flush=True)

    def _train_evaluate(self, a: dict) -> None:
        """``medpipe train`` then ``medpipe evaluate`` of its checkpoint, with the step's arguments."""
        b = a["bundle"]
        ov = {k: v for k, v in a.items() if k not in ("bundle", "evaluate_args") and v is not None}
        flat = [x for k, v in ov.items() for x in (f"--{k}", v)]
        tracking = ["--tracking", self.tracking] if self.tracking else []
        self._run(self._cmd("train", b, *flat, *tracking))
        ckpt = Path(a["output_dir"]) / "models" / "model.pt"
        # how the model was trained (budget, preset) is the checkpoint's business, not the evaluation's
        ev = {k: v for k, v in ov.items() if k not in ("max_epochs", "time_limit_s", "preset")}
        ev.update({k: v for k, v in (a.get("evaluate_args") or {}).items() if v is not None})
        flat = [x for k, v in ev.items() for x in (f"--{k}", v)]
        self._run(self._cmd("evaluate", b, "--ckpt_path", ckpt, *flat))

    def _folds(self, step: Step, a: dict) -> list[int] | None:
        """The validation folds a bundle step trains one model each for; None: one model (``fold``)."""
        spec = resolve(step.each_fold, self.p.params)
        if spec in (None, False, "none", 1):
            return None
        if isinstance(spec, list) and all(isinstance(k, int) for k in spec) and spec:
            return sorted(set(spec))
        if spec in (True, "all"):
            ds = Path(str(a.get("dataset_dir") or ""))
            dl = ds / "datalist.json"
            if not dl.is_file():
                if self.dry_run:
                    return None
                raise UserError(f"{dl}: missing; 'each_fold: all' of step {step.id} reads the folds of the "
                                f"prepared dataset (run the prepare step first).")
            return sorted({int(r["fold"]) for r in json.loads(dl.read_text()).get("training", [])})
        raise UserError(f"{self.p.path}: step {step.id}: each_fold is {spec!r}; use null (one model, validation "
                        f"fold 'fold'), all (one model per fold) or a list of folds such as [0, 1, 2].")

    # ---------------------------------------------------------------- driver

    def run(self, from_step: str | None = None, only: str | None = None) -> int:
        ids = [s.id for s in self.p.steps]
        for name, v in (("--from", from_step), ("--only", only)):
            if v and v not in ids:
                raise UserError(f"{name} {v}: no such step in {self.p.path.name} (steps: {', '.join(ids)}).")
        forced = set(ids[ids.index(from_step):]) if from_step else set()
        digests: dict[str, str] = {}
        t_all = time.perf_counter()
        print(f"pipeline {self.p.name}: {len(ids)} steps, work_dir {self.work_dir}", flush=True)
        for i, step in enumerate(self.p.steps, 1):
            head = f"[{i}/{len(ids)}] {step.id}"
            if not self._enabled(step):
                print(f"{head}: skipped (condition '{step.when}' is false)", flush=True)
                continue
            args = resolve(step.args, self.p.params)
            upstream = {u: digests.get(u, (self._stamp(u) or {}).get("digest")) for u in step.after}
            fp = {"action": step.action, "args": args, "upstream": upstream}
            if step.each_fold is not None:
                fp["each_fold"] = resolve(step.each_fold, self.p.params)
            fp = _sha(fp)
            if only and step.id != only:
                st = self._stamp(step.id)
                if st:
                    digests[step.id] = st.get("digest")
                continue
            if only:
                missing = [u for u, d in upstream.items() if d is None and self._enabled(self._step(u))]
                if missing:
                    raise UserError(f"--only {only}: run {', '.join(missing)} first (no outputs recorded for them).")
            outputs, _ = self._outputs(step, args)
            st = self._stamp(step.id)
            # prepare always runs: it checks its own source files and does nothing (in well under a
            # second) when they are unchanged; its datalist digest then keeps later steps skipped
            if step.action != "prepare" and step.id not in forced and not only and st \
                    and st.get("fingerprint") == fp and all(o.exists() for o in outputs):
                print(f"{head}: up to date, skipped", flush=True)
                digests[step.id] = st.get("digest")
                continue
            print(f"{head}: running ({step.action})", flush=True)
            self._upstream, self._forced = upstream, step.id in forced or bool(only)
            t0 = time.perf_counter()
            try:
                self._do(step, args)
            except StepFailed as e:
                print(f"\npipeline stopped: step {step.id!r} failed: {e}. Outputs of the earlier steps are intact; "
                      f"fix the cause and re-run `medpipe run {self.p.path} --from {step.id}`.", file=sys.stderr)
                return 1
            if self.dry_run:
                continue
            outputs, digest = self._outputs(step, args)
            absent = [str(o) for o in outputs if not o.exists()]
            if absent:
                print(f"\npipeline stopped: step {step.id!r} finished but did not write {', '.join(absent)}.",
                      file=sys.stderr)
                return 1
            digests[step.id] = digest
            self._write_stamp(step.id, {"fingerprint": fp, "digest": digest, "args": args,
                                        "seconds": round(time.perf_counter() - t0, 1),
                                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
            print(f"{head}: done in {time.perf_counter() - t0:.0f} s", flush=True)
        print(f"pipeline {self.p.name}: finished in {time.perf_counter() - t_all:.0f} s; outputs in {self.work_dir}")
        if not self.dry_run:
            self._print_where()
        return 0

    def _print_where(self) -> None:
        """Where to look: the report and the TensorBoard command for the bundle runs."""
        for step in self.p.steps:
            a = resolve(step.args, self.p.params)
            if step.action == "report" and (Path(a["out"]) / "report.html").is_file():
                print(f"report: {Path(a['out']).absolute() / 'report.html'} (Markdown twin: report.md)")
        tb = []
        for s in self.p.steps:
            if s.action == "bundle":
                a = resolve(s.args, self.p.params)
                out = Path(a["output_dir"]).absolute()
                # one model per fold: TensorBoard reads every fold_<k>/tb below the step's folder
                tb.append((s.id, out if self._folds(s, a) else out / "tb"))
        tb = [(n, p) for n, p in tb if p.is_dir()]
        if tb:
            from medpipe.reporting.summary import tensorboard_command

            print("watch the runs: " + tensorboard_command(tb))

    def _step(self, sid: str) -> Step:
        return next(s for s in self.p.steps if s.id == sid)


#: medpipe commands that import torch and MONAI: run as forks of this (warmed) process
WARM_COMMANDS = ("train", "evaluate", "infer", "export")
_WARM: list[bool] = []


def warm_fork_call(args: list[str]) -> int:
    """Run ``medpipe ARGS`` in a forked child of this process, after importing torch and MONAI here once.

    The command runs exactly as ``python -m medpipe ARGS`` would (its own process, output and exit
    status), without paying the 10-15 s it takes to import MONAI for every step. Nothing heavy runs in
    this process (no tensor op, no threads), so forking after the imports is safe; ultralytics is
    left to the children (its import changes thread settings).
    """
    if not _WARM:
        import ignite  # noqa: F401
        import monai.bundle.scripts  # noqa: F401
        import torch  # noqa: F401

        import medpipe.bundle.runner  # noqa: F401
        _WARM.append(True)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: the command, then exit without returning into the runner
        code = 1
        try:
            from medpipe.cli import main

            code = main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - report and exit like an interpreter would
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 1)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        except KeyboardInterrupt:  # the child got the same Ctrl-C: wait for it to stop, then stop too
            os.waitpid(pid, 0)
            raise


class StepFailed(RuntimeError):
    """A step's command failed."""
