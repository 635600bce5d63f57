"""Deterministic synthetic stand-ins for public datasets, written in their real download layout.

Each generator writes a small dataset that the matching converter in :mod:`data_prep` reads exactly
like the real download, quirks included, so pipelines and tests can run end to end without the
real data (which is large and, for some datasets, behind a licence).

``SYNTHESIZERS`` maps a dataset key to ``"module:function"``; import the function lazily with
:func:`importlib.import_module` so that listing generators stays cheap.
"""

SYNTHESIZERS = {"phe-sich": "data_prep.synth.phe_sich:synthesize"}
