"""What every ``medpipe synth`` generator shares: its marker file and the "already made?" check.

A synthesizer writes its dataset through :func:`medpipe.utils.fs.atomic_output_dir` and finishes
with :func:`write_marker`; before starting it calls :func:`existing`, so that running it again
with the same arguments on a finished folder does nothing, and a folder holding anything else is
refused. The marker (:data:`MARKER`) is also what makes ``medpipe prepare`` record the data as
synthetic (``source.synthetic`` in its report, ``synthetic`` in the datalist).

Example:
    >>> from medpipe.prepare.synthetic import existing
    >>> existing("/nonexistent/folder", {"patients": 4}) is None
    True
"""

from __future__ import annotations

import json
from pathlib import Path

#: the marker file at the root of a synthetic set (``medpipe prepare`` does not count it as data)
MARKER = ".medpipe-synth.json"


def existing(out: str | Path, args: dict) -> dict | None:
    """The stored summary when ``out`` already holds the synthetic set made with ``args``.

    Returns None when ``out`` is absent or empty (so it is to be made).

    Raises:
        FileExistsError: ``out`` is a file, or a non-empty folder that is not this synthetic set.
    """
    out = Path(out)
    if not out.exists():
        return None
    if not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; choose another output path")
    if not any(out.iterdir()):
        return None
    stored = None
    if (out / MARKER).is_file():
        try:
            stored = json.loads((out / MARKER).read_text())
        except (OSError, ValueError):
            stored = None
    if isinstance(stored, dict) and stored.get("args") == args:
        return {**stored["summary"], "out": str(out)}
    why = (f"it was synthesized with different arguments ({stored.get('args')})" if isinstance(stored, dict)
           else "it is not a synthetic set made by this generator")
    raise FileExistsError(f"{out} is not empty and {why}; delete it or choose another output folder "
                          f"(requested: {args})")


def write_marker(folder: str | Path, args: dict, summary: dict) -> None:
    """Write the marker holding the arguments and the summary (call last, inside the atomic folder)."""
    (Path(folder) / MARKER).write_text(json.dumps({"args": args, "summary": summary}, indent=2) + "\n")


def _is_int(x) -> bool:
    import numbers

    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_synth_args(patients, size, seed, *, min_patients: int, min_size: int, max_size: int,
                     patients_why: str, size_why: str, version) -> dict:
    """The checked ``--patients``/``--size``/``--seed`` of a synthesizer, with its generator version, or an
    :class:`~medpipe.prepare.spec.OptionError` saying the range and why.

    Args:
        patients, size, seed: as given.
        min_patients, min_size, max_size: the ranges (patients up to 99,999).
        patients_why: why fewer patients cannot work (ends the message).
        size_why: why smaller images cannot work.
        version: the synthesizer's generator version (recorded in the marker).

    Example:
        >>> check_synth_args(4, 64, 0, min_patients=2, min_size=32, max_size=512, patients_why="", size_why="",
        ...                  version=1)
        {'patients': 4, 'size': 64, 'seed': 0, 'generator_version': 1}
    """
    from medpipe.prepare.spec import OptionError

    if not _is_int(patients) or not min_patients <= patients <= 99_999:
        raise OptionError(f"--patients {patients!r}: must be an integer from {min_patients} to 99999 ({patients_why}).")
    if not _is_int(size) or not min_size <= size <= max_size:
        raise OptionError(f"--size {size!r}: must be an integer from {min_size} to {max_size} pixels; {size_why}.")
    if not _is_int(seed) or seed < 0:
        raise OptionError(f"--seed {seed!r}: must be a non-negative integer.")
    return {"patients": int(patients), "size": int(size), "seed": int(seed), "generator_version": version}
