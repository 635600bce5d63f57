"""What a dataset declares: its tasks, how its inputs are fed, its options, where its code lives.

A dataset plugs into ``medpipe prepare`` / ``medpipe synth`` with one :class:`DatasetSpec`, built
at import time of its package and therefore pure data: no numpy, PIL or torch here, so that the
CLI can list every dataset and build its ``--help`` in a fraction of a second. The code that does
the work (a :class:`medpipe.prepare.converter.Converter` subclass, a synthesizer function) is named
by a ``"module:attribute"`` string and imported only when it runs.

Example:
    >>> spec = DatasetSpec(
    ...     name="toy", title="Toy", summary="a toy dataset", version="1",
    ...     converter="toy.convert:Converter",
    ...     tasks={"label": Task("binary", ("normal", "abnormal"))},
    ...     input=InputSpec(modality="XR"))
    >>> spec.header()["tasks"]
    {'label': {'kind': 'binary', 'class_names': ['normal', 'abnormal']}}
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from medpipe.errors import UserError

#: task kind -> the record key that carries its labels (CONTRACT "Prepared dataset")
RECORD_KEYS = {"binary": "label", "multiclass": "label", "multilabel": "labels",
               "segmentation": "mask", "detection": "boxes"}
TASK_KINDS = tuple(RECORD_KEYS)
CLASSIFICATION_KINDS = ("binary", "multiclass", "multilabel")
LINK_MODES = ("copy", "hardlink", "symlink", "auto")


class OptionError(UserError, ValueError):
    """A bad option value; names the option (``--folds 0: ...``) and what to give instead.

    Also a :class:`ValueError`, so Python callers of a synthesizer can catch it as one.
    """


@dataclass(frozen=True)
class Task:
    """One labelled target of a dataset.

    Args:
        kind: ``binary`` | ``multiclass`` | ``multilabel`` | ``segmentation`` | ``detection``.
        class_names: class names in index order: binary ``(negative, positive)``; multiclass one per
            ``label`` value; multilabel one per position of ``labels``; segmentation one per mask
            value index, background first; detection one per box class.
    """

    kind: str
    class_names: tuple[str, ...]

    def __post_init__(self):
        if self.kind not in RECORD_KEYS:
            raise ValueError(f"task kind {self.kind!r}: expected one of {', '.join(TASK_KINDS)}")
        names = tuple(self.class_names)
        object.__setattr__(self, "class_names", names)
        need = {"binary": (2, 2), "multiclass": (2, None), "multilabel": (1, None),
                "segmentation": (2, None), "detection": (1, None)}[self.kind]
        if len(names) < need[0] or (need[1] and len(names) > need[1]) or len(set(names)) != len(names) \
                or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"{self.kind} task: class_names {names!r} must be {need[0]}"
                             f"{'' if need[1] == need[0] else '+'} distinct non-empty strings")

    @property
    def key(self) -> str:
        """The record key holding this task's labels (``label``, ``labels``, ``mask`` or ``boxes``)."""
        return RECORD_KEYS[self.kind]

    def to_json(self) -> dict:
        return {"kind": self.kind, "class_names": list(self.class_names)}


@dataclass(frozen=True)
class InputSpec:
    """How the stored images must be fed to a network (written to the datalist's ``input``).

    Args:
        modality: ``CT``, ``XR``, ``MR``, ...
        channels: channels a network sees (1 for gray).
        window: HU ``(level, width)`` a volume is converted with to the stored 8-bit slices; None
            when the source is already 8-bit and there is no volume path.
        orientation: in-plane convention of the stored slices (``radiological``, see
            :mod:`medpipe.io.orientation`), None when it does not apply.
        slice_pattern: regular expression with named groups ``patient`` (and ``slice``) that a stored
            file's stem matches, so inference on a folder can name its rows; None when file names
            carry no patient.
        patient_format: ``str.format`` pattern that writes a parsed patient number as in records.
    """

    modality: str
    channels: int = 1
    window: tuple[float, float] | None = None
    orientation: str | None = None
    slice_pattern: str | None = None
    patient_format: str = "{}"

    def to_json(self) -> dict:
        return {"modality": self.modality, "channels": self.channels,
                "window": [float(v) for v in self.window] if self.window else None,
                "orientation": self.orientation, "slice_pattern": self.slice_pattern,
                "patient_format": self.patient_format}


@dataclass(frozen=True)
class Option:
    """A command-line option of ``prepare`` or ``synth`` (``name`` ``val_fold`` -> ``--val-fold``).

    Args:
        name: Python identifier; the key in the options mapping and the report.
        default: the default value (also its type when ``type`` is omitted).
        help: one line for ``--help``.
        type: ``int``, ``float``, ``str``, ``bool`` (a flag) or a parser ``str -> value``.
        choices: the allowed values.
        min, max: inclusive bounds; ``below``: exclusive upper bound.
        hint: what to do when the value is refused (appended to the message).
        metavar: how ``--help`` shows the value.
    """

    name: str
    default: Any = None
    help: str = ""
    type: Callable | None = None
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    below: float | None = None
    hint: str = ""
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def kind(self) -> Callable:
        if self.type is not None:
            return self.type
        return type(self.default) if self.default is not None else str

    def check(self, value):
        """The value converted and validated; :class:`OptionError` naming the option otherwise."""
        if value is None and self.default is None:
            return None
        kind = self.kind
        try:
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValueError
                v = value
            elif kind is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                v = int(value)
            else:
                v = kind(value)
        except (TypeError, ValueError) as e:
            what = (f"expected {kind.__name__}" if kind in (int, float, str, bool)
                    else str(e) or "not a valid value")
            raise OptionError(f"{self.flag} {value!r}: {what}{'; ' + self.hint if self.hint else ''}.") from None
        if self.choices is not None and v not in self.choices:
            close = difflib.get_close_matches(str(v), [str(c) for c in self.choices], n=1)
            raise OptionError(f"{self.flag} {v}: expected one of {', '.join(map(str, self.choices))}"
                              f"{f'; did you mean {close[0]}?' if close else '.'}")
        bad = ((self.min is not None and v < self.min) or (self.max is not None and v > self.max)
               or (self.below is not None and v >= self.below))
        if bad:
            lo = "" if self.min is None else f">= {self.min:g}"
            hi = "" if self.max is None else f"<= {self.max:g}"
            hi = hi or ("" if self.below is None else f"< {self.below:g}")
            rng = " and ".join(x for x in (lo, hi) if x)
            raise OptionError(f"{self.flag} {v}: must be {rng}{' (' + self.help + ')' if self.help else ''}"
                              f"{'. ' + self.hint if self.hint else ''}.")
        return v

    def add_to(self, parser) -> None:
        """Add this option to an argparse parser (validation happens in :meth:`check`)."""
        kind = self.kind
        if kind is bool:
            parser.add_argument(self.flag, dest=self.name, action="store_true", default=bool(self.default),
                                help=self.help)
            return
        shown = f" (default {self.default})" if self.default not in (None, "") else ""
        parser.add_argument(self.flag, dest=self.name, default=self.default, metavar=self.metavar,
                            type=_cli_type(self, kind), choices=self.choices,
                            help=self.help + shown)


def _cli_type(opt: Option, kind: Callable) -> Callable:
    import argparse

    def parse(s: str):
        try:
            return opt.check(kind(s) if kind in (int, float) else s)
        except (ValueError, OptionError) as e:
            msg = str(e) if isinstance(e, OptionError) else f"expected {getattr(kind, '__name__', 'a value')}, got {s!r}"
            raise argparse.ArgumentTypeError(msg.replace(f"{opt.flag} ", "", 1)) from None

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


#: options every dataset's ``prepare`` has (``--src``, ``--out``, ``--workers``, ``--quiet`` are run
#: settings, not options: they do not change what is written)
COMMON_OPTIONS = (
    Option("folds", 5, "patient-level folds", int, min=2, metavar="K",
           hint="Cross-validation needs at least two folds, e.g. --folds 5"),
    Option("seed", 12345, "split seed", int, metavar="S"),
    Option("test_fraction", 0.0, "fraction of patients held out as a test set", float, min=0.0, below=1.0,
           metavar="F",
           hint="Give a fraction such as 0.2, or 0 for no test set"),
    Option("strict", False, "any anomaly or skipped file is an error (nothing is written)", bool),
    Option("link", "copy", "how images enter --out: copy (the output is independent of --src), hardlink, "
                           "symlink, or auto (hard link, else symlink, else copy); a linked file edited in "
                           "--out is edited in --src too", str, choices=LINK_MODES),
)


def synth_options(patients: int = 12, size: int = 128, seed: int = 0, min_patients: int = 2,
                  min_size: int = 1, max_size: int | None = None, size_hint: str = "",
                  patients_hint: str = "") -> tuple[Option, ...]:
    """The common ``synth`` options (``--patients``, ``--size``, ``--seed``) with a dataset's defaults and limits."""
    return (
        Option("patients", patients, "number of patients", int, min=min_patients, hint=patients_hint, metavar="N"),
        Option("size", size, "image width and height in pixels", int, min=min_size, max=max_size, hint=size_hint,
               metavar="PX"),
        Option("seed", seed, "random seed", int, min=0, metavar="S"),
    )


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset as ``medpipe prepare`` / ``medpipe synth`` / the pipelines see it.

    Args:
        name: registry and CLI name (``phe-sich``).
        title: full name (``PHE-SICH-CT-IDS``), the datalist's ``name``.
        summary: one line for ``medpipe prepare --help``.
        version: converter version; bump when the output for the same input changes (old outputs
            are then rebuilt).
        converter: ``"module:Class"`` of its :class:`~medpipe.prepare.converter.Converter`.
        tasks: record key -> :class:`Task` (keys ``label``/``labels``/``mask``/``boxes``; the key must
            be the one of the task's kind).
        input: :class:`InputSpec`.
        options: the dataset's own ``prepare`` options (the :data:`COMMON_OPTIONS` are added).
        synthesizer: ``"module:function"`` called as ``function(out, progress=..., **synth options)``
            returning a summary dict with ``patients``, ``files`` and ``out``; None when there is none.
        synth_options: all ``synth`` options (see :func:`synth_options`, plus extras).
        prepare_examples, synth_examples: example lines for ``--help``.
        description: the datalist's ``description``.
    """

    name: str
    title: str
    summary: str
    version: str
    converter: str
    tasks: Mapping[str, Task]
    input: InputSpec
    options: tuple[Option, ...] = ()
    synthesizer: str | None = None
    synth_options: tuple[Option, ...] = ()
    prepare_examples: str = ""
    synth_examples: str = ""
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for key, task in self.tasks.items():
            if key != task.key:
                raise ValueError(f"{self.name}: task {key!r} is {task.kind}, whose record key is {task.key!r}")
        names = [o.name for o in self.all_options()]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"{self.name}: options declared twice: {sorted(dup)}")

    def all_options(self) -> tuple[Option, ...]:
        """Common ``prepare`` options followed by the dataset's own."""
        return COMMON_OPTIONS + tuple(self.options)

    def resolve_options(self, given=None, which: str = "prepare") -> dict:
        """Defaults overlaid with ``given``, each value checked; unknown names refused with a suggestion."""
        import dataclasses

        decl = self.all_options() if which == "prepare" else tuple(self.synth_options)
        by_name = {o.name: o for o in decl}
        if dataclasses.is_dataclass(given) and not isinstance(given, type):
            given = dataclasses.asdict(given)
        given = dict(given or {})
        unknown = [k for k in given if k not in by_name]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(by_name), n=1)
            raise OptionError(f"{which} {self.name}: unknown option {unknown[0]!r}"
                              f"{f'; did you mean {close[0]!r}?' if close else ''} "
                              f"(options: {', '.join(by_name)}).")
        return {o.name: o.check(given.get(o.name, o.default)) for o in decl}

    def options_type(self, name: str = "Options") -> type:
        """A dataclass with one field per ``prepare`` option and its default (for Python callers)."""
        import dataclasses

        return dataclasses.make_dataclass(name, [(o.name, object, dataclasses.field(default=o.default))
                                                 for o in self.all_options()])

    def header(self, tasks: Mapping[str, Task] | None = None) -> dict:
        """The datalist header keys that say what the labels are and how inputs are fed."""
        tasks = self.tasks if tasks is None else tasks
        return {"dataset": self.name, "tasks": {k: t.to_json() for k, t in tasks.items()},
                "input": self.input.to_json()}

    def load_converter(self):
        """The converter class (imported now)."""
        return _load(self.converter)

    def load_synthesizer(self):
        """The synthesizer function (imported now); :class:`UserError` when the dataset has none."""
        if not self.synthesizer:
            raise UserError(f"{self.name}: no synthetic generator for this dataset.")
        return _load(self.synthesizer)


def _load(target: str):
    import importlib

    mod, _, attr = target.partition(":")
    return getattr(importlib.import_module(mod), attr)
