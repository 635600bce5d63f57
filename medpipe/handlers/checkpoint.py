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


class RecordDecision:
    """At the end of an evaluation, store its decision thresholds with the checkpoint (``models/model.json``).

    Inference then decides as the evaluation did (:func:`medpipe.bundle.checkpoint.record_decision`;
    only the run's own validation fold may set them).

    Args:
        ckpt_path: the evaluated checkpoint.
        values: thresholds known up front (e.g. ``{"threshold": 0.5}``).
        from_json: ``(path, [keys])``, or a list of such pairs: thresholds the evaluation wrote to JSON
            files (e.g. the area threshold in ``eval/seg_to_cls_metrics.json``).
        dataset_dir: the evaluated dataset.
        records: the evaluated records (``val`` only stores).
    """

    def __init__(self, ckpt_path: str, values: dict | None = None, from_json: Sequence | None = None,
                 dataset_dir: str | None = None, records: str = "val") -> None:
        self.ckpt_path, self.values, self.from_json = ckpt_path, dict(values or {}), from_json
        self.dataset_dir, self.records = dataset_dir, records

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine = None) -> None:
        import json
        import logging
        from pathlib import Path

        from medpipe.bundle.checkpoint import record_decision
        from medpipe.engines.distributed import is_main_rank

        if not is_main_rank():
            return
        values = dict(self.values)
        sources = self.from_json or []
        if sources and isinstance(sources[0], str):  # one (path, keys) pair
            sources = [sources]
        for path, keys in sources:
            if Path(path).is_file():
                data = json.loads(Path(path).read_text())
                values.update({k: data[k] for k in keys if k in data})
        if values and record_decision(self.ckpt_path, values, self.dataset_dir, self.records):
            logging.getLogger("medpipe").info("stored with the checkpoint for inference: %s",
                                              ", ".join(f"{k} {v}" for k, v in values.items()))
