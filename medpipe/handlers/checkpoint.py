"""Loading a trained checkpoint into the evaluated network at the start of evaluation or inference."""

from __future__ import annotations

from collections.abc import Sequence

from ignite.engine import Engine, Events


class LoadWeights:
    """Load ``load_path`` into ``network`` when the engine starts (see :func:`medpipe.networks.weights.load_weights`).

    Unlike MONAI's ``CheckpointLoader``, a mismatch is reported in one paragraph naming the
    checkpoint, and weights of training-only parts (``drop_unexpected``) may be left out.

    Args:
        load_path: the checkpoint (a plain state_dict, ``models/model.pt``).
        network: the network to load into.
        map_location: device to load on.
        drop_unexpected: substrings of checkpoint keys the inference network may lack.
    """

    def __init__(self, load_path: str, network, map_location="cpu", drop_unexpected: Sequence[str] = ()) -> None:
        self.load_path, self.network, self.map_location = load_path, network, map_location
        self.drop_unexpected = tuple(drop_unexpected or ())

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        import logging

        from medpipe.networks.weights import load_weights

        load_weights(self.network, self.load_path, self.drop_unexpected, map_location=self.map_location)
        logging.getLogger("medpipe").info("loaded %s", self.load_path)
