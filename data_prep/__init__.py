"""Converters from public datasets as downloaded to prepared datasets (one module per source dataset).

``DATASETS`` is the explicit registry the CLI uses: dataset name -> "module:function" taking the
parsed ``medpipe prepare`` arguments.
"""

from __future__ import annotations

import importlib

DATASETS = {
    "phe-sich": "data_prep.cli_adapters:prepare_phe_sich",
}


def get_converter(name: str):
    """The ``prepare`` entry point registered for dataset ``name``."""
    from medpipe.errors import UserError

    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    mod, fn = DATASETS[name].split(":")
    return getattr(importlib.import_module(mod), fn)
