"""The GPU path of the MONAI-engine bundles: mixed precision, channels-last, cuDNN autotuning, pinned
memory and ``torch.compile``, each a top-level config id, applied by the shared skeleton.

The ids (``amp``, ``channels_last``, ``cudnn_benchmark``, ``pin_memory``, ``compile``,
``compile_backend``) are defined once, in ``bundles/common/configs/supervised.json#performance``;
each bundle's ``train.json`` takes them from there with ``%`` (so ``--channels_last true`` is an
ordinary override). The skeleton resolves them into one dict with :func:`settings` (checked; the
values that are in force, e.g. no cuDNN autotuning without CUDA) and hands that dict to

- :func:`setup_backends` (an ``initialize`` step after ``set_determinism``, which resets the flag):
  ``torch.backends.cudnn.benchmark``;
- :func:`training_network` (the trainer's network): the network in channels-last memory format
  (``channels_last`` for 2-D convolutions, ``channels_last_3d`` for 3-D), converted in place so the
  evaluator, the optimizer and the checkpoints see the same parameters; on a CPU with native
  bfloat16 (AVX512-BF16 or AMX), ``amp`` runs its forward pass under ``torch.autocast("cpu",
  bfloat16)`` and hands float32 outputs to the loss (MONAI's trainer autocasts to CUDA only, so on
  CPU the skeleton does it; the weights, the optimizer and the checkpoints stay float32);
- :func:`prepare_batch` (trainer and evaluator): input images in the same memory format;
- :func:`loader` (both data loaders): ``pin_memory``;
- MONAI's own ``compile``/``compile_kwargs`` of ``SupervisedTrainer``: the trainer alone runs a
  ``torch.compile``\\ d copy (an ``OptimizedModule`` sharing the parameters); the evaluator, the
  best and last checkpoints keep the plain module, so ``models/model.pt`` and
  ``checkpoint_last.pt`` never hold the ``_orig_mod.`` key prefix of a compiled module and load
  into the eager network exactly as without compilation.

With the defaults on CPU every one of these is a no-op: runs are exactly what they were before.
``--amp true`` on such a CPU roughly halves a DynUNet training step (measured 549 -> 273 ms for 16
64-px patches on 2 AMD EPYC cores); on a CPU without native bfloat16 it is refused with a warning
and the run stays float32.

Example:
    >>> s = settings("cpu", amp=False, channels_last=False, cudnn_benchmark=True, pin_memory=True)
    >>> s["cudnn_benchmark"], s["pin_memory"], s["compile"]
    (False, False, False)
"""

from __future__ import annotations

import logging
import os
import shutil

from medpipe.errors import UserError

log = logging.getLogger("medpipe")

#: the top-level ids of the GPU path, in the order they are documented
IDS = ("amp", "channels_last", "cudnn_benchmark", "pin_memory", "compile", "compile_backend")


#: flag values as command lines give them (fire reads ``--compile true`` as the text "true")
_TEXT_FLAGS = {"true": True, "false": False, "1": True, "0": False}


def _flag(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TEXT_FLAGS:
        return _TEXT_FLAGS[value.strip().lower()]
    raise UserError(f"--{name} {value!r}: expected true or false (bundles/common/configs/supervised.json#performance "
                    f"documents the GPU-path settings).")


def _is_cuda(device) -> bool:
    return str(device).startswith("cuda")


def compile_backends() -> list[str]:
    """Every ``torch.compile`` backend this torch knows (the debugging ones such as ``eager`` included)."""
    import torch._dynamo

    return sorted(torch._dynamo.list_backends(exclude_tags=()))


def c_compiler() -> str | None:
    """The C++ compiler inductor would use on CPU (``$CXX``, else ``g++``/``c++``/``clang++``), None when absent."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def settings(device, amp: bool = False, channels_last: bool = False, cudnn_benchmark: bool = False,
             pin_memory: bool = False, compile: bool = False, compile_backend: str = "inductor") -> dict:
    """The GPU-path settings in force for a run on ``device``, checked (the skeleton's ``engine#performance``).

    Args:
        device: the run's device (``cpu``, ``cuda``, ``cuda:1``, a ``torch.device``).
        amp: mixed precision: float16 autocast by MONAI's trainer and evaluator on CUDA; bfloat16
            autocast of the training network's forward pass on a CPU that has native bfloat16
            (``cpu_bf16`` in the result); off, with a warning, on any other CPU.
        channels_last: network and input images in channels-last memory format.
        cudnn_benchmark: ``torch.backends.cudnn.benchmark`` (CUDA only).
        pin_memory: page-locked host memory in both data loaders, with non-blocking copies (CUDA only).
        compile: train a ``torch.compile`` d copy of the network.
        compile_backend: the ``torch.compile`` backend (``inductor``; ``aot_eager``/``eager`` need no compiler).

    Returns:
        ``{"device", "amp", "cpu_bf16", "channels_last", "cudnn_benchmark", "pin_memory", "compile",
        "compile_backend", "compile_kwargs"}``; JSON-safe (the device as text). ``amp`` is what MONAI's
        engines get (CUDA only), ``cpu_bf16`` the CPU autocast of :func:`training_network`.

    Raises:
        UserError: a value that is not a flag, an unknown backend, or inductor on CPU without a C++ compiler.

    Example:
        >>> settings("cuda", amp=True, cudnn_benchmark=True, compile=True)["compile_kwargs"]
        {'backend': 'inductor'}
    """
    cuda = _is_cuda(device)
    out = {"device": str(device)}
    for name, v in (("amp", amp), ("channels_last", channels_last), ("cudnn_benchmark", cudnn_benchmark),
                    ("pin_memory", pin_memory), ("compile", compile)):
        out[name] = _flag(name, v)
    out["cpu_bf16"] = out["amp"] and not cuda and str(device).startswith("cpu") and cpu_has_bf16()
    if out["amp"] and not cuda and not out["cpu_bf16"]:
        log.warning("--amp true on %s: no native bfloat16 on this device (AVX512-BF16 or AMX), so mixed precision "
                    "would be slower; training stays float32", device)
    for name in ("amp", "cudnn_benchmark", "pin_memory"):
        out[name] = out[name] and cuda
    backend = str(compile_backend or "inductor")
    out["compile_backend"] = backend
    out["compile_kwargs"] = {"backend": backend} if out["compile"] else None
    if out["compile"]:
        have = compile_backends()
        if backend not in have:
            import difflib

            close = difflib.get_close_matches(backend, have, n=1)
            raise UserError(f"--compile_backend {backend}: not a torch.compile backend"
                            + (f"; did you mean {close[0]}?" if close else ".")
                            + " Use inductor (the default; needs a C++ compiler on CPU), aot_eager or eager.")
        if backend == "inductor" and not cuda and c_compiler() is None:
            raise UserError("--compile true on CPU: torch.compile's inductor backend builds C++ kernels and no C++ "
                            "compiler (g++, c++, clang++ or $CXX) was found. Install one, or pass "
                            "--compile_backend aot_eager (compiles the graph without generating code), or leave "
                            "--compile false.")
    return out


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX), so CPU autocast pays off."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class _AutocastForward:
    """A module's bound ``forward`` run under ``torch.autocast(device_type, dtype)``, outputs back in float32.

    Stored on the module instance (``module.forward``), so ``state_dict``, the optimizer and checkpoints
    are untouched; ``copy.deepcopy`` of the module rebinds it to the copy.
    """

    def __init__(self, forward, device_type: str = "cpu", dtype: str = "bfloat16") -> None:
        self.forward = forward
        self.device_type = device_type
        self.dtype = dtype

    def __call__(self, *args, **kwargs):
        import torch

        with torch.autocast(self.device_type, dtype=getattr(torch, self.dtype)):
            out = self.forward(*args, **kwargs)
        return _to_float32(out)


def _to_float32(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (list, tuple)):
        return type(out)(_to_float32(o) for o in out)
    if isinstance(out, dict):
        return {k: _to_float32(v) for k, v in out.items()}
    return out


def setup_backends(perf: dict) -> bool:
    """Set ``torch.backends.cudnn.benchmark`` as ``perf`` says and log the GPU-path settings once.

    Runs after ``monai.utils.set_determinism``, which switches autotuning off. Deterministic cuDNN
    algorithms stay required when set_determinism asked for them: autotuning then picks the fastest
    of those.

    Returns:
        True (so a config can list it as an ``initialize`` step).
    """
    import torch

    if perf["cudnn_benchmark"]:
        torch.backends.cudnn.benchmark = True
    from medpipe.engines.distributed import is_main_rank

    if is_main_rank() and perf.get("cpu_bf16"):
        log.info("CPU mixed precision: bfloat16 autocast of the training network's forward pass")
    if is_main_rank() and _is_cuda(perf["device"]):
        log.info("GPU path: amp %s, channels_last %s, cudnn_benchmark %s, pin_memory %s, compile %s",
                 *(perf[k] for k in ("amp", "channels_last", "cudnn_benchmark", "pin_memory")),
                 perf["compile_backend"] if perf["compile"] else False)
    return True


def memory_format_of(network):
    """The channels-last memory format that fits ``network``'s convolutions: ``torch.channels_last`` when
    its weights are 4-D (2-D convolutions), ``torch.channels_last_3d`` when 5-D, None when it has neither.

    Raises:
        UserError: the network mixes 2-D and 3-D convolutions (no one format fits both).
    """
    import torch

    dims = {p.dim() for p in network.parameters()} & {4, 5}
    if dims == {4, 5}:
        raise UserError("--channels_last true: this network has both 2-D and 3-D convolution weights, and no one "
                        "channels-last memory format fits both; leave --channels_last false for it.")
    if not dims:
        return None
    return torch.channels_last if dims == {4} else torch.channels_last_3d


def training_network(network, perf: dict):
    """``network`` for the trainer: converted in place to channels-last when ``perf`` asks for it, its
    forward pass under bfloat16 CPU autocast when ``perf["cpu_bf16"]``.

    In place (``Module.to`` keeps the parameter objects), so the optimizer built on
    ``network.parameters()``, the evaluator and the checkpoint savers all see the converted weights; a
    ``DistributedDataParallel`` wrapper is converted through its module. Compilation is MONAI's
    (``SupervisedTrainer(compile=...)``), never applied to this object.
    """
    inner = getattr(network, "module", network)
    if perf.get("cpu_bf16") and not isinstance(inner.__dict__.get("forward"), _AutocastForward):
        inner.forward = _AutocastForward(inner.forward)
    if not perf.get("channels_last"):
        return network
    fmt = memory_format_of(inner)
    if fmt is None:
        log.warning("--channels_last true: the network has no 2-D or 3-D convolution weights; left as it is")
        return network
    inner.to(memory_format=fmt)
    return network


def running_settings() -> dict | None:
    """``engine#performance`` of the config being run (None outside a bundle run or for a config without it)."""
    from medpipe.engines.recording import current_config_parser

    parser = current_config_parser()
    if parser is None or "channels_last" not in (parser.get() or {}):
        return None
    return parser.get_parsed_content("engine#performance")


class ChannelsLastBatch:
    """A MONAI ``prepare_batch``: :func:`monai.engines.default_prepare_batch`, then the input images (4-D
    or 5-D tensors) in channels-last memory format; labels are left as they are.

    Args:
        inner: the prepare_batch it wraps (default: MONAI's).
    """

    def __init__(self, inner=None) -> None:
        from monai.engines import default_prepare_batch

        self.inner = inner or default_prepare_batch

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        batch = self.inner(batchdata, device, non_blocking, **kwargs)
        if isinstance(batch, tuple) and batch:
            return (to_channels_last(batch[0]),) + batch[1:]
        return to_channels_last(batch)


def to_channels_last(x):
    """A 4-D tensor in ``torch.channels_last``, a 5-D one in ``torch.channels_last_3d``; anything else unchanged.

    Example:
        >>> import torch
        >>> to_channels_last(torch.zeros(2, 3, 4, 5)).is_contiguous(memory_format=torch.channels_last)
        True
    """
    import torch

    if isinstance(x, torch.Tensor) and x.dim() in (4, 5):
        return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
    return x


def prepare_batch(perf: dict):
    """The ``prepare_batch`` of the trainer and evaluator: MONAI's default, or :class:`ChannelsLastBatch`."""
    if perf.get("channels_last"):
        return ChannelsLastBatch()
    from monai.engines import default_prepare_batch

    return default_prepare_batch


def loader(data_loader, perf: dict):
    """``data_loader`` with ``pin_memory`` as ``perf`` says (the loaders are each bundle's; the setting is one).

    ``DataLoader.pin_memory`` is read each time an iterator starts, so setting it on the built loader
    is the same as passing it to the constructor.
    """
    if data_loader is not None and hasattr(data_loader, "pin_memory"):
        data_loader.pin_memory = bool(perf.get("pin_memory"))
    return data_loader

