"""The bundle smoke-test table, tiny prepared datasets, and helpers to run bundles exactly as users do
(subprocesses, from the repository root, under a network guard).

``BUNDLE_ROWS`` has one row per registered bundle (``medpipe.bundle.BUNDLES``): the arguments that make
its training tiny and fast. A new bundle adds a row here; tests/bundles/test_bundles.py runs the same
train -> evaluate -> infer -> export -> resume (-> torchrun) checks over every row, each on a tiny
version of the bundle's registered dataset (``TINY_DATASETS``: the dataset's own synthesizer, then
``medpipe prepare``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

#: per-run arguments that only make runs small and fast on CPU (never model-defining settings)
RUNTIME = ["--num_workers", "0", "--device", "cpu"]
#: one row per bundle: training arguments for a tiny run (model-defining ones included: they travel
#: with the checkpoint), extra runtime arguments, and whether it has a torchrun config
BUNDLE_ROWS = {
    "sich_cls": {"train": ["--image_size", "32", "--batch_size", "8"], "runtime": [], "ddp": True},
    # 2.5D (the slices above and below as channels), as the cpu_budget preset trains it
    "sich_seg": {"train": ["--image_size", "64", "--batch_size", "4", "--context", "1"], "runtime": [], "ddp": True},
    # one torch thread: a second OpenMP thread spins instead of helping when other jobs share the cores
    # fold 1, not prepare's YOLO val fold (0): proves the bundle's fold decides the split
    "sich_det": {"train": ["--image_size", "64", "--batch_size", "4", "--fold", "1"], "runtime": ["--threads", "1"],
                 "ddp": False},
    # DenseNet121 as by default, on 64-px crops of 72-px images (Grad-CAM of the last block is then 2x2)
    "cxr14_cls": {"train": ["--image_size", "64", "--resize_size", "72", "--batch_size", "8"],
                  "runtime": [], "ddp": True},
    "cxr_pneumonia": {"train": ["--image_size", "56", "--resize_size", "64", "--batch_size", "8"],
                      "runtime": [], "ddp": True},
    # the YOLO engine of sich_det on the RSNA opacity boxes; one torch thread as for sich_det
    "cxr_pneumonia_det": {"train": ["--image_size", "64", "--batch_size", "4"], "runtime": ["--threads", "1"],
                          "ddp": False},
    # ResNet18 + attention on 32-px slices (area-resized from the 64-px synthetic ankles)
    "ankle_ct_cls": {"train": ["--image_size", "32", "--batch_size", "8"], "runtime": [], "ddp": True},
    # ResNet18 on 2.5D input (three windows of the slice and its neighbours: 9 channels), 32 px
    "sich_multilabel": {"train": ["--image_size", "32", "--batch_size", "8", "--network_name", "resnet18",
                                  "--context", "1"], "runtime": [], "ddp": True},
}
#: how each registered dataset is made tiny: its synthesizer's options, then prepare's
TINY_DATASETS = {
    "phe-sich": {"synth": {"patients": 6, "size": 64, "seed": 1, "slices": (8, 10), "subsets": ("png", "nifti")},
                 "prepare": {"folds": 3}},
    "cxr14": {"synth": {"patients": 15, "size": 64, "seed": 1}, "prepare": {"folds": 3}},
    "rsna-pneumonia": {"synth": {"patients": 15, "size": 64, "seed": 1}, "prepare": {"folds": 3, "test_size": 3}},
    "ankle-ct": {"synth": {"patients": 10, "size": 64, "seed": 1, "slices": 8}, "prepare": {"folds": 3}},
    "rsna-ich": {"synth": {"patients": 10, "size": 64, "seed": 1}, "prepare": {"folds": 3}},
}

GUARD = '''
"""Test-only network guard, loaded at interpreter start through PYTHONPATH: record and refuse."""
import os, socket, traceback

_LOG = os.environ.get("MEDPIPE_NET_GUARD_LOG")


def _record(what):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()} {what}\\n" + "".join(traceback.format_stack(limit=8)) + "\\n")


def _getaddrinfo(host, *a, **k):
    _record(f"getaddrinfo {host!r}")
    raise socket.gaierror(socket.EAI_NONAME, "network disabled by the test guard")


def _create_connection(address, *a, **k):
    _record(f"create_connection {address!r}")
    raise OSError("network disabled by the test guard")


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _guarded(orig):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _record(f"connect {address!r}")
            raise OSError("network disabled by the test guard")
        return orig(self, address)  # local (AF_UNIX) sockets stay usable
    return connect


socket.getaddrinfo = _getaddrinfo
socket.create_connection = _create_connection
socket.socket.connect = _guarded(_connect)
socket.socket.connect_ex = _guarded(_connect_ex)
'''


def bundle_env() -> dict:
    env = dict(os.environ)
    cache = REPO / ".cache"
    env.update({"HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "MPLCONFIGDIR": str(cache / "matplotlib"),
                "YOLO_CONFIG_DIR": str(cache / "ultralytics"), "XDG_CACHE_HOME": str(cache / "xdg"),
                "OMP_NUM_THREADS": "2"})
    return env


@pytest.fixture(scope="session")
def net_guard(tmp_path_factory):
    """PYTHONPATH with a sitecustomize that refuses and records every network attempt of the processes
    the bundle tests start; :func:`run_bundle` fails a run that tried."""
    d = tmp_path_factory.mktemp("netguard")
    (d / "sitecustomize.py").write_text(GUARD)
    log = d / "attempts.log"
    old = {k: os.environ.get(k) for k in ("PYTHONPATH", "MEDPIPE_NET_GUARD_LOG")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(d)] + [p for p in [old["PYTHONPATH"]] if p])
    os.environ["MEDPIPE_NET_GUARD_LOG"] = str(log)
    yield log
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


#: a process that imports torch, MONAI and medpipe once and forks one child per command: importing
#: MONAI alone takes 10-15 s on the CI machine, which a fresh interpreter per command would pay ~40 times
ZYGOTE = r"""
import json, os, runpy, sys, traceback
import torch, ignite, monai, monai.bundle, monai.bundle.scripts, fire  # noqa: E401 - the expensive imports
import medpipe.cli, medpipe.bundle.runner, medpipe.bundle.export, medpipe.data.datalist  # noqa: E401
import medpipe.handlers.classification, medpipe.handlers.segmentation, medpipe.handlers.training  # noqa: E401
reply = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # anything the warm interpreter itself prints must not mix with the replies
for line in sys.stdin:
    req = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
            for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
                f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(f, fd)
                os.close(f)
            sys.stdin = open(os.devnull)
            sys.argv = [req["module"]] + req["args"]
            try:
                runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 1
        finally:
            try:
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(code)
    reply.write(json.dumps({"pid": pid}) + "\n")
    _, status = os.waitpid(pid, 0)
    reply.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
"""


class Zygote:
    """Runs ``python -m MODULE ARGS`` commands as forks of one warm interpreter (see :data:`ZYGOTE`)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], cwd=REPO, env=bundle_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.n = 0

    def run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        import select
        import signal

        self.n += 1
        out, err = self.workdir / f"{self.n}.out", self.workdir / f"{self.n}.err"
        req = {"module": args[0], "args": args[1:], "cwd": str(REPO), "env": bundle_env(), "stdout": str(out),
               "stderr": str(err)}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        pid = json.loads(self.proc.stdout.readline())["pid"]
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            self.proc.stdout.readline()
            raise subprocess.TimeoutExpired(args, timeout)
        rc = json.loads(self.proc.stdout.readline())["rc"]
        return subprocess.CompletedProcess(["python", "-m", *args], rc, out.read_text(errors="replace"),
                                           err.read_text(errors="replace"))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


_ZYGOTE: list[Zygote] = []


@pytest.fixture(scope="session", autouse=True)
def _zygote(net_guard, tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    _ZYGOTE.append(z)
    yield z
    _ZYGOTE.remove(z)
    z.close()


def run_bundle(args: list[str], timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle ...`` (or ``-m medpipe ...``) from the repository root, as a user would
    (a fork of the warm interpreter: a process of its own, with its own exit status and output).

    With the network guard active, a run that tried to reach the network fails the test.
    """
    log = Path(os.environ.get("MEDPIPE_NET_GUARD_LOG", "/nonexistent"))
    before = log.read_text() if log.exists() else ""
    if _ZYGOTE:
        proc = _ZYGOTE[0].run(args, timeout)
    else:
        proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=bundle_env(), capture_output=True,
                              text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    after = log.read_text() if log.exists() else ""
    assert after == before, f"network attempts during {' '.join(args[:4])}:\n{after[len(before):][:3000]}"
    return proc


_TINY: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """``tiny_dataset(name)``: the registered dataset ``name`` synthesized at the size of ``TINY_DATASETS``
    and prepared (once per session): the prepared folder."""
    from data_prep import get_spec
    from medpipe.prepare.engine import prepare

    def get(name: str) -> Path:
        if name not in _TINY:
            spec, row = get_spec(name), TINY_DATASETS[name]
            root = tmp_path_factory.mktemp(f"tiny_{name}")
            spec.load_synthesizer()(root / "raw", progress=None, **row["synth"])
            prepare(spec, root / "raw", root / "prepared", row["prepare"], workers=1, progress=None)
            _TINY[name] = root / "prepared"
        return _TINY[name]

    return get


@pytest.fixture(scope="session")
def tiny_phe(tiny_dataset) -> Path:
    """synth (6 patients, 64 px) -> prepare (3 folds): the prepared PHE-SICH dataset folder."""
    return tiny_dataset("phe-sich")


def dataset_of(bundle: str, tiny_dataset) -> Path:
    """The tiny prepared dataset of ``bundle``'s registered dataset."""
    from medpipe.bundle import BUNDLES

    return tiny_dataset(BUNDLES[bundle].dataset)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


_TRAINED: dict[str, Path] = {}


@pytest.fixture(scope="session")
def trained_bundle(net_guard, tiny_dataset, tmp_path_factory):
    """``trained_bundle(name)``: the bundle trained for 2 epochs on its tiny dataset with ``medpipe train``
    (once per session; the training log is kept in ``train_log.txt``)."""

    def get(name: str) -> Path:
        if name not in _TRAINED:
            row = BUNDLE_ROWS[name]
            out = tmp_path_factory.mktemp(f"{name}_run")
            t0 = time.perf_counter()
            proc = run_bundle(["medpipe", "train", name, "--dataset_dir", str(dataset_of(name, tiny_dataset)),
                               "--output_dir", str(out),
                               "--max_epochs", "2", *row["train"], *RUNTIME, *row["runtime"]])
            (out / "train_log.txt").write_text(proc.stdout + proc.stderr + f"\n[{time.perf_counter() - t0:.1f} s]\n")
            _TRAINED[name] = out
        return _TRAINED[name]

    return get


def train_tiny(bundle_configs: str, dataset: Path, out: Path, fast: list[str], epochs: int = 2) -> Path:
    """Train a bundle on the tiny dataset for ``epochs`` epochs into ``out`` (python -m monai.bundle run)."""
    run_bundle(["monai.bundle", "run", "--config_file", f"{bundle_configs}/train.json", "--dataset_dir", str(dataset),
                "--output_dir", str(out), "--max_epochs", str(epochs), *fast])
    return out


def start_then_kill(args: list[str], marker: Path, timeout: float = 300) -> None:
    """Start ``python -m *args``; SIGKILL it as soon as ``marker`` exists (or it exits / times out)."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=bundle_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + timeout
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
