"""Loading a checkpoint's weights into a network rebuilt from its settings, strictly.

A network built for inference may leave out parts only training uses (a U-Net's deep-supervision
heads): their weights are in the checkpoint but not in the network. :func:`load_weights` drops
exactly those (named by ``drop_unexpected`` patterns) and loads everything else strictly, so a
checkpoint that does not fit its network fails with a message instead of loading half the weights.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from medpipe.errors import UserError


def load_weights(network: torch.nn.Module, state, drop_unexpected: Sequence[str] = (), source: str = "checkpoint",
                 map_location="cpu") -> torch.nn.Module:
    """Load ``state`` (a state_dict or a path to one) into ``network``.

    Args:
        network: the network (a ``DistributedDataParallel`` wrapper is unwrapped).
        state: a state_dict, or the path of a file holding one (``torch.load(weights_only=True)``).
        drop_unexpected: substrings; checkpoint keys the network lacks that contain one of them are
            dropped (training-only parts), any other mismatch is an error.
        source: the checkpoint's name for messages.
        map_location: device for loading a path.

    Returns:
        The network.

    Raises:
        UserError: the checkpoint's keys or shapes do not fit the network.
    """
    net = network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network
    if isinstance(state, (str, os.PathLike)):
        source = str(state)
        state = torch.load(state, map_location=map_location, weights_only=True)
    own = net.state_dict()
    state = {k: v for k, v in state.items() if k in own or not any(p in k for p in drop_unexpected)}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        what = "; ".join(s for s in (
            f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
            f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
            f"{len(shapes)} of another shape (e.g. {shapes[0]}: {tuple(state[shapes[0]].shape)} vs "
            f"{tuple(own[shapes[0]].shape)})" if shapes else "") if s)
        raise UserError(f"{source}: its weights do not fit the network rebuilt from its settings ({what}). "
                        f"Was it trained by this bundle and is models/model.json the one written with it?")
    net.load_state_dict(state, strict=True)
    return network


class InferenceView:
    """What ``models/model.pt`` holds: the network's state_dict without its training-only parts.

    Given to MONAI's ``CheckpointSaver`` in place of the network, so the best checkpoint is exactly
    the inference network's weights (``python -m monai.bundle ckpt_export`` loads it strictly into
    the network ``inference.json`` builds), while ``checkpoint_last.pt`` keeps everything for resuming.

    Args:
        network: the trained network (a ``DistributedDataParallel`` wrapper is unwrapped).
        drop: substrings of state_dict keys that only training uses (e.g. deep-supervision heads).
    """

    def __init__(self, network: torch.nn.Module, drop: Sequence[str] = ()) -> None:
        self.network, self.drop = network, tuple(drop or ())

    def _net(self) -> torch.nn.Module:
        n = self.network
        return n.module if isinstance(n, torch.nn.parallel.DistributedDataParallel) else n

    def state_dict(self) -> dict:
        return {k: v for k, v in self._net().state_dict().items() if not any(p in k for p in self.drop)}

    def load_state_dict(self, state: dict) -> None:
        load_weights(self._net(), state, self.drop, source="checkpoint")
