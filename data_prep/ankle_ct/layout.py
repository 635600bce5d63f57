"""ankle-ct: the single source of truth for its class names, manifest columns, window and stored names.

Users bring their own scans: a folder (``--src``) plus a manifest (``--manifest labels.csv``, or an
Excel sheet) with one row per image::

    image,label,patient,side,slices
    A0001/ankle_R.nii.gz,lateral_malleolus_fracture,A0001,R,8:15
    A0002/series1,0,A0002,L,
    A0003/slice_041.png,3,A0003,,

``image`` is a path under ``--src``: a NIfTI volume (``.nii``/``.nii.gz``), a folder holding one
DICOM series, or a 2D slice (PNG, or a single DICOM file). ``label`` is a class index ``0..6`` or a
class name (:data:`CLASS_NAMES`, renamed with ``--classes``). ``side`` is ``L``/``R`` (optional);
``slices`` an inclusive range of axial slice indices ``A:B`` (counted inferior -> superior in the
RAS-canonical volume) when only those slices show the finding (optional; empty: every slice).
"""

from __future__ import annotations

import re

from data_prep.dicom_folder.layout import normalize_column, safe_stem  # noqa: F401 - re-exported
from medpipe.io.orientation import RADIOLOGICAL

DATASET_NAME = "ankle-ct"
FULL_NAME = "Ankle CT (7-class, user-supplied scans)"

#: ``label`` class names in index order (``--classes`` renames them; the count is fixed)
CLASS_NAMES = (
    "normal",                      # 0
    "lateral_malleolus_fracture",  # 1: fracture line through the distal fibula (the most frequent)
    "medial_malleolus_fracture",   # 2: fracture line through the medial tibia
    "talus_fracture",              # 3: fracture line through the talus
    "displaced_fragment",          # 4: a loose bone fragment beside the joint
    "joint_space_narrowing",       # 5: tibiotalar joint space lost
    "syndesmotic_widening",        # 6: fibula pulled away from the tibia
)
NUM_CLASSES = len(CLASS_NAMES)
#: class frequencies of the synthetic set (class 1 about 40 %, like the seed data)
CLASS_FREQUENCIES = (0.20, 0.40, 0.12, 0.10, 0.08, 0.06, 0.04)

#: bone window (level, width) in HU: the default of ``--window-level`` / ``--window-width``
BONE_WINDOW = (400.0, 1800.0)
ORIENTATION = RADIOLOGICAL

#: manifest column option -> default column name
COLUMNS = {"image_column": "image", "label_column": "label", "patient_column": "patient",
           "side_column": "side", "slices_column": "slices"}
REQUIRED_COLUMNS = ("image_column", "label_column", "patient_column")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
DEFAULT_MANIFEST = "labels.csv"

VOLUME_SUFFIXES = (".nii", ".nii.gz")
IMAGE_SUFFIXES = (".png",)
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")

IMAGES_DIR = "images"
#: where the whole (windowed, resampled, mirrored) volumes go, one ``.npz`` per image: what 3-D models train on
VOLUMES_DIR = "volumes"
#: a stored slice's stem: ``<patient>__<volume tag>_<slice>``
STEM_PATTERN = r"^(?P<patient>.+?)__.+_(?P<slice>\d+)$"

SIDES = {"l": "L", "left": "L", "r": "R", "right": "R"}
_RANGE_RE = re.compile(r"^\s*(\d+)\s*(?:[:\-]\s*(\d+)\s*)?$")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


def parse_classes(text) -> str:
    """``--classes``: :data:`NUM_CLASSES` distinct names in index order, written back as ``a,b,...``.

    Example:
        >>> parse_classes("a, b,c,d,e,f,g")
        'a,b,c,d,e,f,g'
    """
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    if len(items) != NUM_CLASSES or not all(items) or len(set(items)) != len(items):
        raise ValueError(f"expected {NUM_CLASSES} distinct comma-separated class names in label order "
                         f"(e.g. {','.join(CLASS_NAMES)}), got {text!r}")
    return ",".join(items)


def parse_label(value, names) -> tuple[int | None, str | None]:
    """A manifest label -> ``(index, None)``, or ``(None, problem kind)``.

    Kinds: ``empty_label``, ``label_out_of_range`` (a number outside ``0..K-1``), ``unknown_class``.

    Example:
        >>> names = ("normal", "fracture", "c", "d", "e", "f", "g")
        >>> [parse_label(v, names) for v in ("1", "2.0", " Fracture ", "7", "broken", "")]
        [(1, None), (2, None), (1, None), (None, 'label_out_of_range'), (None, 'unknown_class'), (None, 'empty_label')]
    """
    s = "" if value is None else str(value).strip()
    if not s or s.lower() == "nan":
        return None, "empty_label"
    try:
        f = float(s)
    except ValueError:
        low = {n.lower(): i for i, n in enumerate(names)}
        i = low.get(s.lower())
        return (i, None) if i is not None else (None, "unknown_class")
    if not f.is_integer() or not 0 <= f < len(names):
        return None, "label_out_of_range"
    return int(f), None


def parse_side(value) -> tuple[str | None, bool]:
    """A manifest side -> ``("L" | "R" | None, ok)``; empty is ``(None, True)``.

    Example:
        >>> parse_side("left"), parse_side(" r "), parse_side(""), parse_side("both")
        (('L', True), ('R', True), (None, True), (None, False))
    """
    s = "" if value is None else str(value).strip().lower()
    if not s or s == "nan":
        return None, True
    return SIDES.get(s), s in SIDES


def parse_slices(value) -> tuple[tuple[int, int] | None, bool]:
    """A manifest slice range ``A:B`` (inclusive; also ``A-B`` or one index) -> ``((A, B) | None, ok)``.

    Example:
        >>> parse_slices("40:80"), parse_slices("7"), parse_slices(""), parse_slices("80:40"), parse_slices("x")
        (((40, 80), True), ((7, 7), True), (None, True), (None, False), (None, False))
    """
    s = "" if value is None else str(value).strip()
    if not s or s.lower() == "nan":
        return None, True
    m = _RANGE_RE.match(s)
    if not m:
        return None, False
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) is not None else a
    return ((a, b), True) if a <= b else (None, False)


def image_kind(rel: str) -> str:
    """What a file is by its name: ``volume`` (NIfTI), ``image`` (PNG), ``dicom`` or ``other``."""
    low = rel.lower()
    if low.endswith(VOLUME_SUFFIXES):
        return "volume"
    if low.endswith(IMAGE_SUFFIXES):
        return "image"
    if low.endswith(DICOM_SUFFIXES) or "." not in low.rsplit("/", 1)[-1]:
        return "dicom"
    if low.endswith(MANIFEST_SUFFIXES):
        return "table"
    return "other"


def volume_tag(image: str) -> str:
    """A short, file-name-safe tag of a manifest image path (its name plus a hash of the full path).

    Example:
        >>> volume_tag("A0001/ankle_R.nii.gz")
        'ankle_R-da8ebd80'
    """
    import hashlib

    name = image.rstrip("/").rsplit("/", 1)[-1]
    for suf in (".nii.gz", ".nii", ".png", ".dcm"):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
    name = _UNSAFE_RE.sub("_", name).strip("._")[:32] or "image"
    return f"{name}-{hashlib.sha1(image.encode()).hexdigest()[:8]}"


def slice_stem(patient: str, image: str, k: int) -> str:
    """Stored name (without ``.png``) of slice ``k`` of a manifest image: ``<patient>__<tag>_<kkk>``."""
    return f"{safe_stem(patient)}__{volume_tag(image)}_{k:03d}"


def volume_stem(patient: str, image: str) -> str:
    """Stored name (without ``.npz``) of a manifest image's whole volume: ``<patient>__<tag>``."""
    return f"{safe_stem(patient)}__{volume_tag(image)}"


def normalize_image_path(value) -> str:
    """A manifest ``image`` cell as a path under ``--src``: ``\\`` -> ``/``, ``./`` and a trailing ``/`` dropped.

    Example:
        >>> normalize_image_path(" .\\\\A1\\\\series1\\\\ ")
        'A1/series1'
    """
    v = "" if value is None else str(value).strip().replace("\\", "/")
    while v.startswith("./"):
        v = v[2:]
    return v.rstrip("/")
