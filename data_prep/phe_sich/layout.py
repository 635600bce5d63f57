"""PHE-SICH-CT-IDS layout: the single source of truth for folder names, file names and labels.

The dataset (Ma et al., Comput. Biol. Med. 2024; Figshare doi:10.6084/m9.figshare.23957937,
Kaggle ``naumanalimurad/phe-sich-ct-ids``) ships three subsets of the same 120 patients::

    SubdatasetA_NIFIT/NIFIT/set/NNNN.nii.gz            3D CT volume in HU (512x512x~32, ~0.508x0.508x5 mm)
    SubdatasetA_NIFIT/NIFIT/label/NNNN.nii.gz          3D PHE mask (0/1)
    SubdatasetB_JPG/set/image{N}/NNNN_SS.jpg           windowed 8-bit slice (often PNG-encoded!)
    SubdatasetB_JPG/label/label{N}/NNNN_SS.jpg         PHE mask 0/255
    SubdatasetB_JPG/annotation/annotation{N}/NNNN_SS.xml
    SubdatasetC_PNG/set/image{N}/NNNN_SS.png           windowed 8-bit slice
    SubdatasetC_PNG/label/label{N}/NNNN_SS.png         PHE mask 0/255
    SubdatasetC_PNG/annotation/annotation{N}/NNNN_SS.xml   Pascal VOC, one class named ``a``
    MedInfo.xlsx                                       clinical table, one row per patient

``{N}`` is the patient number without zero padding, ``NNNN`` the 4-digit patient id and ``SS`` the
2-digit slice index starting at 00. The masks and boxes mark the perihaematomal oedema (PHE) region.

Everything else (the converter, the synthetic generator, the dataset spec, tests) reads these names
from here; bundles and inference read them from the prepared datalist's header, which the spec in
:mod:`data_prep.phe_sich` writes from these constants.
"""

from __future__ import annotations

import re

# re-exported: the 2D slices, and the slices the converter cuts from volumes, follow this convention
from medpipe.io.orientation import RADIOLOGICAL, display_to_volume_slice, volume_slice_to_display  # noqa: F401

DATASET_NAME = "phe-sich"
FULL_NAME = "PHE-SICH-CT-IDS"

#: subset key -> folder name as shipped
SUBSET_DIRS = {
    "png": "SubdatasetC_PNG",
    "jpg": "SubdatasetB_JPG",
    "nifti": "SubdatasetA_NIFIT",
}
#: order in which subsets are preferred when several are present (``--subset auto``)
SUBSET_PREFERENCE = ("png", "jpg", "nifti")
#: file extension of the 2D subsets (as named; the content may differ, see ``medpipe.io.images``)
SUBSET_EXT = {"png": ".png", "jpg": ".jpg"}

IMAGE_DIR, MASK_DIR, ANNOTATION_DIR = "set", "label", "annotation"
IMAGE_PREFIX, MASK_PREFIX, ANNOTATION_PREFIX = "image", "label", "annotation"
NIFTI_ROOT = "NIFIT"  # sic: the dataset spells it this way
CLINICAL_FILE = "MedInfo.xlsx"

#: the VOC object class name used by the annotators, and the truthful name medpipe uses for it
VOC_CLASS_NAME = "a"
DEFAULT_CLASS_NAME = "phe"
DEFAULT_LABEL_NAMES = {0: "no_phe", 1: "phe"}


def label_names(class_name: str = DEFAULT_CLASS_NAME) -> tuple[str, str]:
    """Slice label names for a lesion class name (``phe`` -> ``("no_phe", "phe")``)."""
    return f"no_{class_name}", class_name


#: native geometry of the 2D slices and the volumes
NATIVE_SIZE = 512
NATIVE_PIXEL_SPACING_MM = 0.508
NATIVE_SLICE_THICKNESS_MM = 5.0

#: window applied when 2D slices are made from HU volumes (brain window); documented in the report
BRAIN_WINDOW = (40.0, 80.0)  # (level, width) in HU

#: orientation of the 2D slices (and of slices cut from the volumes): see :mod:`medpipe.io.orientation`
ORIENTATION = RADIOLOGICAL

#: ``NNNN_SS`` (or the 3-digit quirk ``NNN_SS``) -> (patient, slice); written to the datalist's ``input``
SLICE_PATTERN = r"^(?P<patient>\d{1,4})_(?P<slice>\d{1,3})$"
SLICE_STEM_RE = re.compile(SLICE_PATTERN)
#: how a patient number is written in records and ids
PATIENT_FORMAT = "{:04d}"
#: ``image12`` / ``label12`` / ``annotation12`` -> 12
FOLDER_RE = re.compile(r"^(?P<prefix>image|label|annotation)(?P<patient>\d+)$")
#: ``0001.nii.gz`` -> 1
VOLUME_RE = re.compile(r"^(?P<patient>\d{1,4})\.nii(\.gz)?$")


def patient_id(number: int) -> str:
    """Canonical 4-digit patient id (``12`` -> ``"0012"``)."""
    return PATIENT_FORMAT.format(int(number))


def slice_stem(patient: int, slice_index: int) -> str:
    """Canonical slice file stem (``(12, 3)`` -> ``"0012_03"``)."""
    return f"{int(patient):04d}_{int(slice_index):02d}"


def parse_slice_stem(stem: str) -> tuple[int, int] | None:
    """Parse ``NNNN_SS`` (also ``NNN_SS``) into ``(patient, slice)``; None when it does not match."""
    m = SLICE_STEM_RE.match(stem)
    if not m:
        return None
    return int(m.group("patient")), int(m.group("slice"))


def slice_dir(subset: str, kind: str, patient: int) -> str:
    """Relative folder of one patient's files in a 2D subset, e.g. ``SubdatasetC_PNG/set/image12``.

    Args:
        subset: ``"png"`` or ``"jpg"``.
        kind: ``"image"``, ``"mask"`` or ``"annotation"``.
        patient: patient number.
    """
    top, prefix = {"image": (IMAGE_DIR, IMAGE_PREFIX), "mask": (MASK_DIR, MASK_PREFIX),
                   "annotation": (ANNOTATION_DIR, ANNOTATION_PREFIX)}[kind]
    return f"{SUBSET_DIRS[subset]}/{top}/{prefix}{int(patient)}"


def volume_path(kind: str, patient: int) -> str:
    """Relative path of a NIfTI volume: ``SubdatasetA_NIFIT/NIFIT/{set,label}/NNNN.nii.gz``."""
    top = {"image": IMAGE_DIR, "mask": MASK_DIR}[kind]
    return f"{SUBSET_DIRS['nifti']}/{NIFTI_ROOT}/{top}/{patient_id(patient)}.nii.gz"
