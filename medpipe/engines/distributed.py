"""Distributed (torchrun / DDP) helpers the shared bundle skeleton calls, so no config repeats them.

``multi_gpu_train.json`` sets ``distributed: true``; the skeleton's first ``initialize`` step is
:func:`setup`, which joins the process group and (the ENVIRONMENT.md trap) lets ignite join its
group on every rank before any rank-0-only handler is created. Handlers that write files or logs
are gated with :func:`is_main_rank`.
"""

from __future__ import annotations

import os


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without DDP)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_rank() -> bool:
    """True on the process that writes files and logs (rank 0, or the only process)."""
    return rank() == 0


def setup(enabled: bool = False) -> bool:
    """Join the torchrun process group when ``enabled`` (nccl on GPUs, gloo on CPU); no-op otherwise."""
    if not enabled:
        return False
    import ignite.distributed as idist
    import torch
    import torch.distributed as dist

    if "LOCAL_RANK" not in os.environ:
        from medpipe.errors import UserError

        raise UserError("multi_gpu_train.json runs under torchrun: start it with "
                        "`torchrun --standalone --nproc_per_node=N -m monai.bundle run --config_file "
                        "\"['bundles/B/configs/train.json','bundles/B/configs/multi_gpu_train.json']\"`.")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    idist.sync()
    if torch.cuda.is_available():
        torch.cuda.set_device(local_device())
    return True


def default_device():
    """The device a run uses by default: ``cuda:LOCAL_RANK`` under torchrun, ``cuda`` when present, else ``cpu``."""
    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    return local_device() if "LOCAL_RANK" in os.environ else torch.device("cuda")


def local_device():
    """``cuda:LOCAL_RANK`` when GPUs are present, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def wrap(network, device):
    """``DistributedDataParallel`` around ``network`` (already on ``device``) when distributed, else ``network``.

    With ``channels_last`` on (the running config's ``engine#performance``, see
    :mod:`medpipe.engines.performance`), the network is converted before it is wrapped: DDP lays out
    its gradient buckets by the parameters' strides when it is built, and a later conversion would
    cost a copy of every gradient at every step.
    """
    import torch

    if not is_distributed():
        return network
    from medpipe.engines.performance import running_settings, training_network

    perf = running_settings()
    if perf:
        training_network(network, perf)
    ids = [device] if torch.cuda.is_available() else None
    return torch.nn.parallel.DistributedDataParallel(network, device_ids=ids)


def sampler(dataset, shuffle: bool, even_divisible: bool, fallback=None):
    """MONAI's ``DistributedSampler`` over ``dataset`` when distributed, else ``fallback`` (None: the loader's order)."""
    if not is_distributed():
        return fallback
    from monai.data import DistributedSampler

    return DistributedSampler(dataset, even_divisible=even_divisible, shuffle=shuffle)


def barrier() -> None:
    """Wait for every rank (no-op without DDP)."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def teardown() -> None:
    """Leave the process group if one was joined, all ranks together.

    The barrier keeps every rank in the group until rank 0 has written its last checkpoint and
    logs: a rank that leaves and exits early cannot take a slower rank's unsaved work down with it
    (torchrun stops every rank when one exits abnormally). After leaving, a garbage collection
    releases the collective work objects gloo still holds while the interpreter is fully alive;
    freeing them during interpreter shutdown can abort the process (pytorch/pytorch#179291).
    """
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
        gc.collect()


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (so all ranks take the same decision, e.g. a time limit)."""
    if not is_distributed():
        return bool(flag)
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64,
                     device=local_device() if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(t, src=0)
    return bool(t.item())
