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
