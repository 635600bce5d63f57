"""The part of ``prepare`` a dataset writes: discovery, per-unit checking, its own exports and report.

:func:`medpipe.prepare.engine.prepare` does everything else (argument and folder checks, the
up-to-date check, locking, the atomic output, the worker pool, record validation, the split, the
datalist and the reports). A dataset subclasses :class:`Converter` and overrides

- :meth:`Converter.locate` (optional): is ``--src`` this dataset at all? (cheap, before scanning);
- :meth:`Converter.plan`: from the scanned file list, the work units (usually one per patient)
  plus what is skipped or odd before any file is opened;
- :meth:`Converter.convert`: one unit -> records, written into the output folder (runs in worker
  processes, so it must only use its arguments and ``self``);
- optionally :meth:`finish`, :meth:`export`, :meth:`report_md`, :meth:`summary_lines` and the
  other hooks below.

Every input file must end up either in a record (counted in ``used``) or in ``skipped``; the
engine checks that the counts add up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Plan:
    """What :meth:`Converter.plan` found.

    Attributes:
        units: picklable work items, each passed to :meth:`Converter.convert` (one per patient).
        inputs: files seen by kind (``image``, ``mask``, ``annotation``, ``other``, ...).
        skipped: ``{"path", "reason", "kind"[, "files": n]}`` for inputs not used (``files`` when one
            entry stands for a whole folder of n files).
        anomalies: ``{"path", "kind", "action"}`` found while pairing.
        description: one progress line: what was found and where the records come from.
        source: extra keys for the report's ``source`` section.
    """

    units: list = field(default_factory=list)
    inputs: Counter = field(default_factory=Counter)
    skipped: list[dict] = field(default_factory=list)
    anomalies: list[dict] = field(default_factory=list)
    description: str = ""
    source: dict = field(default_factory=dict)


@dataclass
class UnitResult:
    """What one :meth:`Converter.convert` call produced: records, skipped, anomalies, inputs used, link methods.

    ``inference`` holds entries for unlabelled images (a challenge's test images): ``image`` and
    ``patient`` like a record, no labels; they are written to the datalist's ``"inference"`` list,
    never split into folds or ``test``. Their files count as used.
    """

    records: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    anomalies: list[dict] = field(default_factory=list)
    used: int = 0
    links: Counter = field(default_factory=Counter)
    inference: list[dict] = field(default_factory=list)


@dataclass
class Finish:
    """What :meth:`Converter.finish` adds after all units: files used or skipped outside units, patient data."""

    used: int = 0
    skipped: list[dict] = field(default_factory=list)
    anomalies: list[dict] = field(default_factory=list)
    patients: dict[str, dict] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


class Converter:
    """Base class of a dataset's converter. ``self.spec`` is its DatasetSpec, ``self.options`` the checked options."""

    #: output sub-folders made before the units run (e.g. ``("images", "masks")``)
    folders: tuple[str, ...] = ()
    #: skipped-entry kind -> plain words for the summary (e.g. ``{"no_image": "annotation without an image"}``)
    skip_words: dict[str, str] = {}
    #: True for a dataset that is only ever a test set (an external site's export, to evaluate a model
    #: trained elsewhere): every record goes to the datalist's ``test``, ``training`` is empty,
    #: ``num_folds`` is 0 and ``--folds``/``--test-fraction`` are refused (no split is made)
    test_only: bool = False
    #: True for a dataset whose label tables are worth preparing without any image (e.g. a reads file
    #: alone): the run then writes a datalist without records instead of failing "no usable files"
    allow_no_records: bool = False

    def __init__(self, spec, options: dict):
        self.spec = spec
        self.options = dict(options)

    # ------------------------------------------------------------------ options and discovery

    def check_options(self) -> None:
        """Checks between options (e.g. ``--val-fold`` < ``--folds``); raise OptionError."""

    def tasks(self) -> dict:
        """The tasks of this run (default: the spec's; override when an option renames a class)."""
        return dict(self.spec.tasks)

    def locate(self, src: Path) -> dict:
        """Check that ``src`` holds this dataset before scanning; return facts for :meth:`plan` (and the fingerprint).

        Raise :class:`medpipe.errors.DataError` naming ``src`` and what was expected otherwise.
        """
        return {}

    def plan(self, src: Path, files: list[tuple[str, int, int]], located: dict) -> Plan:
        """Sort the scanned files (``(relpath, size, mtime_ns)``, medpipe's own markers removed) into work units."""
        raise NotImplementedError

    # ------------------------------------------------------------------ work (worker processes)

    def setup(self, out: Path) -> None:
        """Prepare the (temporary) output folder before the units run."""
        for d in self.folders:
            (out / d).mkdir(parents=True, exist_ok=True)

    def convert(self, unit, src: str, out: str) -> UnitResult:
        """Check one unit's files and write its outputs under ``out``; paths in records relative to ``out``."""
        raise NotImplementedError

    def finish(self, records: list[dict], src: Path, located: dict) -> Finish:
        """After all units (e.g. read a clinical table); the default adds nothing."""
        return Finish()

    # ------------------------------------------------------------------ split

    def patient_stratum(self, records: list[dict]):
        """Stratum of one patient for a binary/multiclass split (default: see :func:`engine.default_stratum`)."""
        from medpipe.prepare.engine import default_stratum

        return default_stratum(records, self.tasks())

    def assign_parts(self, records: list[dict], folds: int, seed: int, test_fraction: float) -> list | None:
        """The dataset's own split, for datasets that ship one (e.g. official train/test lists).

        Return None (the default) to let the engine split patients into ``folds`` stratified folds
        (plus ``test_fraction``); otherwise a list parallel to ``records`` giving each record's part:
        an int fold in ``0..folds-1`` or the string ``"test"``. The engine audits the result like its
        own split: a patient whose records land in two parts fails the run, naming the patient.
        """
        return None

    def positive(self, record: dict, tasks: dict) -> int:
        """1 when a record counts as positive in the report's ``positives`` (default: see
        :func:`engine.default_positive`; override when, e.g., a multi-label set has a "normal" label)."""
        from medpipe.prepare.engine import default_positive

        return default_positive(record, tasks)

    # ------------------------------------------------------------------ outputs

    def export(self, out: Path, final_out: Path, train: list[dict], test: list[dict]) -> dict:
        """Write dataset-specific files (e.g. ``labels.csv``, a YOLO tree); return report sections."""
        return {}

    def outputs(self) -> list[str]:
        """Names of the dataset-specific outputs, for the terminal summary."""
        return []

    def datalist_extra(self) -> dict:
        """Extra datalist header keys (e.g. ``subset``)."""
        return {}

    def input_extra(self) -> dict:
        """Keys of the datalist's ``input`` header that this run's options change (e.g. the HU ``window``
        a ``--window-level`` chose); they replace the dataset's declared defaults."""
        return {}

    def patient_meta(self, records: list[dict]) -> dict:
        """Per-patient entry of the datalist's ``patients`` (the engine adds ``fold``)."""
        return {"records": len(records)}

    def fold_stats(self, records: list[dict]) -> dict:
        """Dataset-specific per-fold counts added to the report's ``folds`` rows."""
        return {}

    def report(self, records: list[dict]) -> dict:
        """Dataset-specific report sections computed from all records."""
        return {}

    def report_md(self, report: dict) -> list[str]:
        """Markdown lines of the dataset's own report sections (each section starts with ``## ``)."""
        return []

    def report_facts(self, report: dict) -> list[str]:
        """Bullet lines for the head of ``prepare_report.md`` (no leading ``- ``)."""
        return []

    def summary_lines(self, report: dict) -> list[str]:
        """Extra terminal lines after a run."""
        return []
