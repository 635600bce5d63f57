"""Deterministic synthetic stand-ins for public datasets, written in their real download layout.

Each generator writes a small dataset that the matching converter in :mod:`data_prep` reads exactly
like the real download, quirks included, so pipelines and tests can run end to end without the
real data (which is large and, for some datasets, behind a licence).

``SYNTHESIZERS`` maps a dataset key to ``"module:function"``; import the function lazily with
:func:`importlib.import_module` so that listing generators stays cheap.
"""

SYNTHESIZERS = {"phe-sich": "data_prep.synth.phe_sich:synthesize"}


def get_synthesizer(name: str):
    """The generator registered for dataset ``name`` (imported on demand)."""
    import importlib

    from medpipe.errors import UserError

    if name not in SYNTHESIZERS:
        raise UserError(f"no synthetic generator for {name!r}; available: {', '.join(SYNTHESIZERS)}")
    mod, fn = SYNTHESIZERS[name].split(":")
    return getattr(importlib.import_module(mod), fn)
