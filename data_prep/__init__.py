"""Source datasets as downloaded -> prepared datasets: one folder per dataset, one registry line each.

``DATASETS`` is the explicit registry that ``medpipe prepare`` / ``medpipe synth`` and the pipelines
read: dataset name -> ``"package:ATTRIBUTE"`` of its :class:`medpipe.prepare.spec.DatasetSpec`.
A dataset package (``data_prep/<name>/``) holds ``__init__.py`` (the spec), ``layout.py`` (its
folder/file names, ids and label names), ``convert.py`` (its converter) and ``synth.py`` (a
synthetic download). Importing the registry or a spec is cheap: no numpy, PIL or torch.

Example:
    >>> from data_prep import get_spec
    >>> get_spec("phe-sich").title
    'PHE-SICH-CT-IDS'
"""

from __future__ import annotations

import importlib

DATASETS = {
    "phe-sich": "data_prep.phe_sich:DATASET",
    "cxr14": "data_prep.cxr14:DATASET",
    "rsna-pneumonia": "data_prep.rsna_pneumonia:DATASET",
    "rsna-ich": "data_prep.rsna_ich:DATASET",
    "dicom-folder": "data_prep.dicom_folder:DATASET",
    "ankle-ct": "data_prep.ankle_ct:DATASET",
    "cq500": "data_prep.cq500:DATASET",
}


def get_spec(name: str):
    """The :class:`~medpipe.prepare.spec.DatasetSpec` registered as ``name`` (UserError with a suggestion otherwise)."""
    if name not in DATASETS:
        import difflib

        from medpipe.errors import UserError

        close = difflib.get_close_matches(name, list(DATASETS), n=1, cutoff=0.5)
        raise UserError(f"unknown dataset {name!r}{f'; did you mean {close[0]!r}?' if close else ''} "
                        f"(available: {', '.join(DATASETS)})")
    mod, _, attr = DATASETS[name].partition(":")
    return getattr(importlib.import_module(mod), attr)


def specs() -> dict:
    """Every registered dataset's spec, by name (imports each dataset's ``__init__``, which is cheap)."""
    return {name: get_spec(name) for name in DATASETS}
