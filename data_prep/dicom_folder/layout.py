"""An external site's DICOM export: the single source of truth for its keys, label values and names.

A hospital export is a folder tree of DICOM files -- any names (``IM0001``, ``1.2.840...``,
``image.dcm``), with or without an extension, often nested by patient/study/series, sometimes with
a ``DICOMDIR`` index, a ``README.txt`` or other files beside them -- plus a CSV of labels, one row
per key::

    PatientID,pneumonia,comment
    H0001234,yes,
    H0001235,no,follow-up

The key is what joins a row to its DICOMs (:data:`KEYS`): a header element or the file name. The
label column holds the reference standard as the site wrote it; :data:`DEFAULT_POSITIVE_VALUES`
(case-insensitive) are positive and every other non-empty value negative. The labels are binary,
with the class names of ``rsna-pneumonia``'s binary label set by default, so that a classifier
trained there is evaluated here with the same labels (``medpipe evaluate`` checks they match).
"""

from __future__ import annotations

import re

from data_prep.rsna_pneumonia import layout as RSNA

DATASET_NAME = "dicom-folder"
FULL_NAME = "DICOM folder (an external site's export)"

#: ``--key``: how a label row finds its DICOMs -> the :func:`medpipe.io.dicom.header_facts` field
#: holding it (None: the file's name or path under ``--src``)
KEYS = {"PatientID": "patient_id", "StudyInstanceUID": "study_uid", "SOPInstanceUID": "sop_uid", "filename": None}
DEFAULT_KEY = "PatientID"
#: keys under which several DICOMs are normal (a patient's or a study's images): all of them are kept
GROUP_KEYS = ("PatientID", "StudyInstanceUID")
#: CSV column names accepted for a key besides its own name (compared after :func:`normalize_column`)
KEY_COLUMN_ALIASES = {"PatientID": ("patient", "patid"), "StudyInstanceUID": ("studyuid",),
                      "SOPInstanceUID": ("sopuid", "instanceuid"),
                      "filename": ("file", "filepath", "path", "dicom", "dicomfile")}
DEFAULT_LABEL_COLUMN = "label"
DEFAULT_POSITIVE_VALUES = ("1", "true", "yes", "positive", "pneumonia")
#: values that plainly mean negative (only used to suggest which column holds the labels)
NEGATIVE_WORDS = ("0", "false", "no", "negative", "normal", "none", "n", "neg")
#: ``label`` class names (negative, positive): rsna-pneumonia's binary label set, so models transfer
CLASS_NAMES = RSNA.BINARY_NAMES
#: chest radiographs: the modalities rsna-pneumonia accepts
DEFAULT_MODALITIES = RSNA.MODALITIES
#: frontal views; the view-vs-label table lists these first
VIEWS = RSNA.VIEWS
#: file names that say "I am a DICOM" even when the content is not one (then: a damaged DICOM)
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
#: the DICOM Media Storage Directory SOP class (a ``DICOMDIR``: the export's index, not an image)
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
IMAGES_DIR = "images"
#: a stored image's stem is ``<patient>_<index>`` (index of the DICOM among the patient's, by path)
STEM_PATTERN = r"^(?P<patient>.+)_(?P<slice>\d+)$"

_NUMBER_RE = re.compile(r"^[+-]?\d+(\.0*)?$")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


def normalize_column(name: str) -> str:
    """A column name compared loosely: lower case, letters and digits only.

    Example:
        >>> normalize_column(" Patient ID"), normalize_column("patient_id"), normalize_column("PatientID")
        ('patientid', 'patientid', 'patientid')
    """
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def normalize_value(value) -> str:
    """A label value as compared with ``--positive-values``: stripped, lower case, ``1.0`` -> ``1``.

    A spreadsheet that re-saves a 0/1 column with a blank cell writes ``1.0``; it still means 1.

    Example:
        >>> normalize_value(" Yes "), normalize_value("1.0"), normalize_value("+0.00"), normalize_value("1.5")
        ('yes', '1', '0', '1.5')
    """
    s = str(value).strip().lower()
    if _NUMBER_RE.match(s):
        s = str(int(float(s)))
    return s


def parse_value_list(text, what: str = "values") -> str:
    """The ``--positive-values`` / ``--modalities`` parser: a comma list, normalized, written back as ``a,b``.

    Example:
        >>> parse_value_list(" Yes, 1.0 ,TRUE"), parse_value_list(("1", "yes"))
        ('yes,1,true', '1,yes')
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    vals = [normalize_value(v) for v in items if str(v).strip()]
    if not vals:
        raise ValueError(f"expected a comma-separated list of {what}, e.g. 1,yes,true")
    return ",".join(dict.fromkeys(vals))


def parse_modalities(text) -> str:
    """``--modalities``: DICOM Modality codes as ``CR,DX`` (upper case), or ``any``.

    Example:
        >>> parse_modalities("cr, dx"), parse_modalities("ANY")
        ('CR,DX', 'any')
    """
    vals = parse_value_list(text, "DICOM modalities (e.g. CR,DX), or any")
    return "any" if vals == "any" else vals.upper()


def modality_list(text: str) -> tuple[str, ...] | None:
    """The modalities :func:`medpipe.io.dicom.read_dicom` accepts (None: any)."""
    return None if text == "any" else tuple(text.split(","))


def parse_class_names(text) -> str:
    """``--class-names NEG,POS``: two distinct names, written back as ``neg,pos``.

    Example:
        >>> parse_class_names("normal, pneumonia")
        'normal,pneumonia'
    """
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    if len(items) != 2 or not all(items) or items[0] == items[1]:
        raise ValueError(f"expected two distinct names NEGATIVE,POSITIVE (e.g. {','.join(CLASS_NAMES)}), "
                         f"got {text!r}")
    return ",".join(items)


def label_of(value, positives) -> int | None:
    """``1`` when ``value`` is one of ``positives`` (normalized), ``0`` for any other value, None when empty.

    Example:
        >>> [label_of(v, ("1", "yes", "pneumonia")) for v in ("YES", "no", "Pneumonia", "1.0", "0", "", "  ")]
        [1, 0, 1, 1, 0, None, None]
    """
    v = normalize_value(value) if value is not None else ""
    if not v:
        return None
    return int(v in positives)


def safe_stem(patient: str) -> str:
    """A patient id as a file-name prefix: unsafe characters replaced, plus a short hash when anything changed.

    Example:
        >>> safe_stem("H0001234"), safe_stem("A/B 7")
        ('H0001234', 'A_B_7-5621fca5')
    """
    import hashlib

    s = _UNSAFE_RE.sub("_", patient).strip("._")[:64] or "patient"
    return s if s == patient else f"{s}-{hashlib.sha1(patient.encode()).hexdigest()[:8]}"


def is_dicom_name(name: str) -> bool:
    """Whether a file's name claims it is a DICOM (then a file that is not one is a damaged DICOM)."""
    return name.lower().endswith(DICOM_SUFFIXES) or name.upper() == "DICOMDIR"
