"""The machinery every dataset converter shares: ``medpipe prepare`` minus the dataset.

- :mod:`.spec`: what a dataset declares (:class:`DatasetSpec`, :class:`Task`, :class:`InputSpec`,
  :class:`Option`); cheap to import, no numpy.
- :mod:`.converter`: the :class:`~.converter.Converter` base class a dataset subclasses (discovery,
  per-unit checking, its own exports and report sections).
- :mod:`.engine`: :func:`~.engine.prepare` -- checks, fingerprint, lock, atomic output, worker
  pool, record validation, patient split, datalist and reports.
- :mod:`.records`: the record schema checked against the declared tasks.
- :mod:`.report`: ``prepare_report.md`` and the terminal summary.
- :mod:`.exports`: reusable exports (YOLO tree, labels CSV).
- :mod:`.cache`: the resized 8-bit PNG cache several converters write (``--cache-size``).

Nothing here knows a dataset: each dataset is a package outside ``medpipe`` that declares a
DatasetSpec, listed in the registry the CLI reads (``medpipe.cli.datasets``).
"""

from medpipe.prepare.spec import DatasetSpec, InputSpec, Option, OptionError, Task

__all__ = ["DatasetSpec", "InputSpec", "Option", "OptionError", "Task", "prepare"]


def prepare(spec, src, out, options=None, workers=None, progress=print) -> dict:
    """See :func:`medpipe.prepare.engine.prepare` (imported on first use)."""
    from medpipe.prepare.engine import prepare as _prepare

    return _prepare(spec, src, out, options, workers=workers, progress=progress)
