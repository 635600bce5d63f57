"""CQ500 (qure.ai head CT): the single source of truth for its file names, reads columns, label mapping
and series choice.

The download (http://headctstudy.qure.ai/dataset) is one zip per scan, unpacked as::

    reads.csv                                          one row per scan, three radiologists' reads
    CQ500CT12 CQ500CT12/Unknown Study/CT PLAIN THIN/CT000000.dcm   one DICOM per axial slice
    CQ500CT12 CQ500CT12/Unknown Study/CT Plain/CT000000.dcm        several series per study
    CQ500CT12 CQ500CT12/Unknown Study/CT BONE/CT000000.dcm         (bone kernel, thin, 5 mm, ...)

``reads.csv`` (:data:`COLUMNS`): ``name`` (``CQ500-CT-12``: the scan, also its patient), ``Category``
(``B1`` or ``B2``: the two batches of the study), then for each reader ``R1``..``R3`` one 0/1 column
per finding (:data:`FINDINGS`), ``R1:ICH`` ... ``R3:MidlineShift``. The scan number ``N`` of
``CQ500-CT-N`` is also in the image folder's name (``CQ500CTN CQ500CTN``); the series folder is
named by its ``SeriesDescription``. The reads are per scan: the slices carry no labels of their own.

Labels: the six hemorrhage labels in :data:`SUBTYPES` order (``data_prep.rsna_ich``'s, so a model
trained there is evaluated here) come from the findings by :data:`TO_SUBTYPE` (``ICH`` -> ``any``,
``EDH`` -> ``epidural``, ...); a scan's label is the majority of the three readers for each finding.

Series choice (:func:`choose_series`, ``--slice-thickness MM``, default 5): a study holds several
reconstructions of one scan. A series is *excluded* when its ``SeriesDescription`` or
``ConvolutionKernel`` says bone, post contrast, localizer/scout or a reformat (sagittal, coronal,
MPR, MIP, 3D), when it is not CT, or when it has fewer than :data:`MIN_SLICES` slices; among the
remaining plain axial series the one whose slice thickness is closest to ``--slice-thickness`` is
chosen (ties: more slices, then the description, then the UID). The others are listed per scan in
the report and their files counted as skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from data_prep.rsna_ich.layout import SUBTYPES

DATASET_NAME = "cq500"
FULL_NAME = "CQ500 (qure.ai head CT)"

READS_FILE = "reads.csv"
#: the readers, in column order
READERS = ("R1", "R2", "R3")
#: the findings each reader gives per scan, in column order
FINDINGS = ("ICH", "IPH", "IVH", "SDH", "EDH", "SAH", "BleedLocation-Left", "BleedLocation-Right", "ChronicBleed",
            "Fracture", "CalvarialFracture", "OtherFracture", "MassEffect", "MidlineShift")
COL_NAME, COL_CATEGORY = "name", "Category"
#: the header of reads.csv, exactly
COLUMNS = (COL_NAME, COL_CATEGORY) + tuple(f"{r}:{f}" for r in READERS for f in FINDINGS)
#: the findings that are hemorrhage labels -> their name in :data:`SUBTYPES` (the one place of this mapping)
TO_SUBTYPE = {"ICH": "any", "EDH": "epidural", "IPH": "intraparenchymal", "IVH": "intraventricular",
              "SAH": "subarachnoid", "SDH": "subdural"}
#: the finding of each label of :data:`SUBTYPES`, in that order
SUBTYPE_FINDINGS = tuple(next(f for f, s in TO_SUBTYPE.items() if s == sub) for sub in SUBTYPES)
#: the findings that are not hemorrhage labels (kept per scan as ``findings``)
OTHER_FINDINGS = tuple(f for f in FINDINGS if f not in TO_SUBTYPE)

#: ``CQ500-CT-N``, the scan (and patient) name of the reads file
SCAN_RE = re.compile(r"^CQ500-CT-(\d+)$")
#: an image folder: ``CQ500CTN CQ500CTN`` (also ``CQ500-CT-N`` and ``CQ500CTN`` alone)
FOLDER_RE = re.compile(r"^CQ500-?CT-?(\d+)(?:[ _]+CQ500-?CT-?(\d+))?$", re.I)

IMAGES_DIR = "images"
DEFAULT_SLICE_THICKNESS = 5.0
#: series with fewer slices are not a head scan (localizers, single images)
MIN_SLICES = 5
#: a series whose description or kernel matches one of these is never chosen: reason -> pattern
EXCLUDE_PATTERNS = {
    "bone": re.compile(r"bone", re.I),
    "post contrast": re.compile(r"post[\s_-]*contrast|\bc\+", re.I),
    "localizer": re.compile(r"locali[sz]er|scout|topogram|surview", re.I),
    "reformat": re.compile(r"\b(sag|sagittal|cor|coronal|mpr|mip|3d)\b", re.I),
}
SERIES_RULE = (f"exclude series whose SeriesDescription or ConvolutionKernel says bone, post contrast, "
               f"localizer/scout or a reformat (sagittal, coronal, MPR, MIP, 3D), that are not CT, or that have "
               f"fewer than {MIN_SLICES} slices; among the remaining plain axial series choose the one whose slice "
               f"thickness is closest to --slice-thickness (ties: more slices, then the description)")


def scan_name(number: int) -> str:
    """The scan (and patient) name of scan number ``number``.

    Example:
        >>> scan_name(12)
        'CQ500-CT-12'
    """
    return f"CQ500-CT-{int(number)}"


def scan_number(name: str) -> int | None:
    """The number of a reads-file scan name (None when it is not ``CQ500-CT-N``).

    Example:
        >>> scan_number("CQ500-CT-427"), scan_number(" CQ500-CT-7 "), scan_number("CT-7")
        (427, 7, None)
    """
    m = SCAN_RE.match(str(name).strip())
    return int(m.group(1)) if m else None


def folder_scan(name: str) -> int | None:
    """The scan number an image folder's name holds (None when it is not a scan folder).

    Example:
        >>> folder_scan("CQ500CT12 CQ500CT12"), folder_scan("CQ500-CT-12"), folder_scan("Unknown Study")
        (12, 12, None)
    """
    m = FOLDER_RE.match(name.strip())
    return int(m.group(1)) if m else None


def scan_of_path(rel: str) -> tuple[int, str] | None:
    """``(scan number, scan folder path)`` of a file under ``--src``, from the first folder named like a scan.

    Example:
        >>> scan_of_path("cq500/CQ500CT3 CQ500CT3/Unknown Study/CT Plain/CT000001.dcm")
        (3, 'cq500/CQ500CT3 CQ500CT3')
        >>> scan_of_path("reads.csv") is None
        True
    """
    parts = rel.split("/")[:-1]
    for i, p in enumerate(parts):
        n = folder_scan(p)
        if n is not None:
            return n, "/".join(parts[: i + 1])
    return None


def to_subtypes(values: Mapping[str, int]) -> list[int]:
    """Finding -> 0/1 values as the six labels in :data:`SUBTYPES` order.

    Example:
        >>> to_subtypes({"ICH": 1, "IPH": 1, "IVH": 0, "SDH": 0, "EDH": 0, "SAH": 1, "Fracture": 1})
        [1, 0, 1, 0, 1, 0]
    """
    return [int(values[f]) for f in SUBTYPE_FINDINGS]


def exclusion(description: str | None, kernel: str | None, modality: str | None, slices: int) -> str | None:
    """Why a series is never chosen (None: it is a plain axial series that may be).

    Example:
        >>> exclusion("CT BONE", "BONE", "CT", 30), exclusion("CT Plain", "STANDARD", "CT", 3)
        ('bone (description/kernel)', 'fewer than 5 slices (3)')
        >>> exclusion("CT PRE CONTRAST 5MM STD", "STANDARD", "CT", 30) is None
        True
    """
    text = f"{description or ''} {kernel or ''}"
    for why, pat in EXCLUDE_PATTERNS.items():
        if pat.search(text):
            return f"{why} (description/kernel)"
    if modality not in (None, "CT"):
        return f"modality {modality}, not CT"
    if slices < MIN_SLICES:
        return f"fewer than {MIN_SLICES} slices ({slices})"
    return None


def choose_series(series: Sequence[Mapping], slice_thickness: float = DEFAULT_SLICE_THICKNESS):
    """Apply the series rule (see the module docstring) to one study's series.

    Args:
        series: one mapping per series with ``uid``, ``description``, ``kernel``, ``modality``,
            ``thickness`` (mm; None when unknown: ranked last) and ``slices``.
        slice_thickness: the wanted slice thickness in mm (``--slice-thickness``).

    Returns:
        ``(chosen, others)``: the chosen series (None when no series qualifies) and every other one
        as ``(series, reason, excluded)``, ``excluded`` True when the rule excluded it.

    Example:
        >>> s = [{"uid": "1", "description": "CT PLAIN THIN", "kernel": "STANDARD", "modality": "CT",
        ...       "thickness": 0.625, "slices": 250},
        ...      {"uid": "2", "description": "CT Plain", "kernel": "STANDARD", "modality": "CT", "thickness": 5.0,
        ...       "slices": 32},
        ...      {"uid": "3", "description": "CT BONE", "kernel": "BONE", "modality": "CT", "thickness": 5.0,
        ...       "slices": 32}]
        >>> chosen, others = choose_series(s, 5.0)
        >>> chosen["description"]
        'CT Plain'
        >>> [(o["description"], why) for o, why, _ in others]  # doctest: +NORMALIZE_WHITESPACE
        [('CT PLAIN THIN', 'not chosen: 0.625 mm (CT Plain: 5 mm is closer to 5 mm)'),
         ('CT BONE', 'excluded: bone (description/kernel)')]
    """
    others, eligible = [], []
    for s in series:
        why = exclusion(s.get("description"), s.get("kernel"), s.get("modality"), int(s.get("slices") or 0))
        if why:
            others.append((s, f"excluded: {why}", True))
        else:
            eligible.append(s)
    if not eligible:
        return None, others

    def rank(s):
        t = s.get("thickness")
        return (abs(t - slice_thickness) if t is not None else float("inf"), -int(s["slices"]),
                s.get("description") or "", s.get("uid") or "")

    eligible.sort(key=rank)
    chosen = eligible[0]
    shown = f"{chosen.get('description') or chosen.get('uid')}: {fmt_mm(chosen.get('thickness'))}"
    rest = [(s, f"not chosen: {fmt_mm(s.get('thickness'))}"
                + (f", {s['slices']} slices" if s.get("thickness") == chosen.get("thickness") else "")
                + f" ({shown} is closer to {fmt_mm(slice_thickness)})", False) for s in eligible[1:]]
    order = {id(s): i for i, s in enumerate(series)}
    return chosen, sorted(rest + others, key=lambda o: order[id(o[0])])


def fmt_mm(v: float | None) -> str:
    """A thickness for people: ``5 mm``, ``0.625 mm``, ``unknown thickness``."""
    return "unknown thickness" if v is None else f"{float(v):g} mm"


def parse_thickness(s) -> float:
    """``--slice-thickness``: a positive number of mm, at most 20."""
    v = float(s)
    if not 0 < v <= 20:
        raise ValueError("expected a slice thickness in mm from 0 to 20, e.g. 5 (the 5 mm plain series)")
    return v
