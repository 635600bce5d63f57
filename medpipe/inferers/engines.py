"""Inference engines: the same trained network run eagerly, as TorchScript, or by ONNX Runtime.

:func:`build_engine` is what ``inference.json``'s evaluator runs (``--engine eager|torchscript|onnx``,
default ``eager``). Each engine is an ``nn.Module`` taking and returning torch tensors, so the
bundle's inferer (``SimpleInferer``, the sliding window of a segmenter) and post-processing work
unchanged:

- ``eager``: the network built from the checkpoint's settings, exactly as before (the checkpoint
  loader fills in its weights when the evaluator starts).
- ``torchscript``: ``<checkpoint>.ts`` beside the checkpoint (``models/model.ts``, what
  ``medpipe export BUNDLE --format torchscript`` writes: a traced module MONAI users load with
  ``torch.jit.load`` or ``monai.data.load_net_with_metadata``).
- ``onnx``: ``<checkpoint>.onnx`` (``medpipe export BUNDLE --format onnx``), run by an onnxruntime
  ``InferenceSession``: CPU provider, every graph optimization on (convolution + batch-norm +
  activation fusion), as many intra-op threads as torch uses. The batch axis is dynamic, and for a
  segmenter height and width too.

A missing file is exported on first use by ``medpipe export`` itself (its ``python -m monai.bundle
ckpt_export|onnx_export`` command is printed), next to the checkpoint. Found or freshly exported, the
file is then checked against the eager network holding the checkpoint's weights on a random batch of
2 (max abs diff <= 1e-4) before any input is run: a file exported from another checkpoint (the run
was trained again since) is refused with the command that re-exports it, never used and never
overwritten.

With the pinned torch 2.14.1 every ``torch.jit`` entry point (``trace``, ``script``, ``save``,
``load``) emits a ``FutureWarning`` that TorchScript is deprecated in favour of ``torch.export``.
The ONNX files are made by ``torch.onnx.export``'s default exporter in that version, which is the
``torch.export``-based (dynamo) one, so the fast engine does not depend on ``torch.jit``; the
TorchScript engine stays for MONAI users who load ``.ts`` files (its load warning is silenced here:
choosing ``--engine torchscript`` is deliberate).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from medpipe.errors import UserError

__all__ = ["ENGINES", "TOLERANCE", "OnnxModule", "build_engine", "engine_path", "load_exported", "max_abs_diff"]

#: the engines ``--engine`` takes
ENGINES = ("eager", "torchscript", "onnx")
#: the file of each exported engine, beside the checkpoint (``medpipe export``'s default output)
SUFFIXES = {"torchscript": ".ts", "onnx": ".onnx"}
#: largest absolute difference to the eager network's outputs an engine may show
TOLERANCE = 1e-4

log = logging.getLogger("medpipe")


def engine_path(ckpt_path: str | os.PathLike, engine: str) -> Path:
    """The exported file an engine runs: ``models/model.ts`` / ``models/model.onnx`` for ``models/model.pt``."""
    return Path(ckpt_path).expanduser().absolute().with_suffix(SUFFIXES[engine])


def load_torchscript(path: str | os.PathLike, device="cpu") -> torch.nn.Module:
    """A TorchScript file, loaded on ``device`` in eval mode (torch 2.14's deprecation warning silenced)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        return torch.jit.load(str(path), map_location=torch.device(str(device))).eval()


class OnnxModule(torch.nn.Module):
    """An ONNX file run by onnxruntime, called like the torch network it was exported from.

    Inputs are torch tensors (any device, float32); outputs are torch tensors on the input's device,
    one tensor for a single-output graph, else a tuple.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (default: ``torch.get_num_threads()``, so both runtimes use the
            same cores).
        optimization: onnxruntime graph optimization level: ``all`` (default), ``extended``,
            ``basic`` or ``none``.

    Example:
        >>> net = OnnxModule("runs/sich_cls/models/model.onnx")  # doctest: +SKIP
        >>> net(torch.rand(4, 1, 256, 256)).shape  # doctest: +SKIP
        torch.Size([4, 2])
    """

    LEVELS = ("none", "basic", "extended", "all")

    def __init__(self, path: str | os.PathLike, threads: int | None = None, optimization: str = "all") -> None:
        super().__init__()
        import onnxruntime as ort

        if optimization not in self.LEVELS:
            raise ValueError(f"optimization {optimization!r}: choose one of {', '.join(self.LEVELS)}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[optimization]
        opts.log_severity_level = 3  # warnings about unused initializers etc. are not the user's business
        self.path, self.threads = str(path), opts.intra_op_num_threads
        self.session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor):
        arr = torch.as_tensor(x).detach().to("cpu", torch.float32).contiguous().numpy()
        outs = [torch.from_numpy(o).to(x.device) for o in self.session.run(None, {self.input_name: arr})]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def extra_repr(self) -> str:
        return f"path={self.path!r}, threads={self.threads}"


def load_exported(path: str | os.PathLike, engine: str, device="cpu", threads: int | None = None) -> torch.nn.Module:
    """The module of an exported file: a TorchScript module on ``device``, or an :class:`OnnxModule`."""
    if engine == "torchscript":
        return load_torchscript(path, device)
    if engine == "onnx":
        return OnnxModule(path, threads)
    raise ValueError(f"no exported file for engine {engine!r}")


def _first(out) -> torch.Tensor:
    if isinstance(out, dict):
        out = next(iter(out.values()))
    if isinstance(out, (list, tuple)):
        out = out[0]
    return out


def max_abs_diff(reference: torch.nn.Module, other: torch.nn.Module, shape: Sequence[int], batch: int = 2,
                 seed: int = 0, device="cpu") -> float:
    """Largest absolute difference between two networks' (first) outputs on one random batch.

    The batch is drawn from its own generator, so the global random state (set by the bundle's
    ``set_determinism``) is left as it was.

    Args:
        reference: the eager network (eval mode, weights loaded).
        other: the engine to compare.
        shape: ``[1, C, (D,) H, W]``; the batch size is replaced by ``batch`` (2 checks a dynamic batch axis).
        batch: batch size of the random input.
        seed: seed of the random input.
        device: where the input is made.
    """
    x = torch.randn(batch, *[int(s) for s in shape[1:]], generator=torch.Generator().manual_seed(seed))
    x = x.to(torch.device(str(device)))
    with torch.no_grad():
        a = _first(reference(x)).float().cpu()
        b = _first(other(x)).float().cpu()
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max())


def _export_on_first_use(bundle: str, ckpt: Path, engine: str, path: Path) -> None:
    from medpipe.bundle.export import export

    if not os.access(path.parent, os.W_OK):
        raise UserError(f"--engine {engine}: {path} does not exist and cannot be written ({path.parent} is not "
                        f"writable). Copy the checkpoint with its model.json to a folder you can write in, or run "
                        f"`medpipe export {bundle} --ckpt_path {ckpt} --format {engine}` where the checkpoint "
                        f"can be written beside.")
    log.info("--engine %s: %s is missing; exporting it now (once) with medpipe export", engine, path.name)
    if export(bundle, str(ckpt), engine) != 0:
        raise UserError(f"--engine {engine}: the export of {ckpt} to {path} does not reproduce the eager network "
                        f"(see the parity line above); use --engine eager, and report the network that fails.")


def build_engine(engine: str, network: torch.nn.Module, ckpt_path: str, drop: Sequence[str] = (),
                 device="cpu", threads: int | None = None) -> torch.nn.Module:
    """The network ``inference.json``'s evaluator runs for ``--engine``.

    Args:
        engine: ``eager``, ``torchscript`` or ``onnx``.
        network: the eager network built from the checkpoint's settings (``@network``).
        ckpt_path: the checkpoint (``models/model.pt`` with its ``model.json``).
        drop: checkpoint keys only training uses (``@training_only_weights``).
        device: the inference device (the ONNX engine runs on the CPU whatever it is).
        threads: ONNX Runtime intra-op threads (default: torch's).

    Returns:
        ``network`` itself for ``eager``; else the exported module, checked against ``network``
        with the checkpoint's weights (max abs diff <= 1e-4 on a random batch of 2).

    Raises:
        UserError: an unknown engine, a bundle without exportable network, an exported file that
            does not match the checkpoint, or one that is missing and cannot be written.

    Example:
        In ``bundles/common/configs/inference.json``::

            "evaluator": {"network": {"_target_": "medpipe.inferers.engines.build_engine",
                                      "engine": "@engine", "network": "@network", "ckpt_path": "@ckpt_path",
                                      "drop": "@training_only_weights", "device": "@device"}, ...}
    """
    engine = str(engine)
    if engine not in ENGINES:
        raise UserError(f"--engine {engine}: choose {', '.join(ENGINES)} (eager: the PyTorch network; torchscript: "
                        f"models/model.ts; onnx: models/model.onnx run by onnxruntime).")
    if engine == "eager":
        return network
    from medpipe.bundle.checkpoint import read_sidecar
    from medpipe.bundle.export import input_shape
    from medpipe.networks.weights import load_weights

    ckpt = Path(ckpt_path).expanduser().absolute()
    rec = read_sidecar(ckpt, what="--ckpt_path")
    bundle = rec["bundle"]
    path = engine_path(ckpt, engine)
    if not path.is_file():
        _export_on_first_use(bundle, ckpt, engine, path)
    if engine == "onnx" and str(device) != "cpu":
        log.warning("--engine onnx runs on the CPU (onnxruntime CPUExecutionProvider), not on %s", device)
    module = load_exported(path, engine, device, threads)
    load_weights(network, str(ckpt), drop, map_location=str(device))
    network.eval()
    diff = max_abs_diff(network, module, input_shape(rec["settings"]), device=device)
    if not diff <= TOLERANCE:
        raise UserError(f"--engine {engine}: {path} does not reproduce the checkpoint {ckpt} (max abs diff {diff:.2e} "
                        f"> {TOLERANCE:g} on a random batch): it was exported from another checkpoint or settings. "
                        f"Export it again with `medpipe export {bundle} --ckpt_path {ckpt} --format {engine}` "
                        f"(it replaces {path.name}), or use --engine eager.")
    log.info("--engine %s: %s (max abs diff to the eager network %.1e)", engine, path, diff)
    return module
