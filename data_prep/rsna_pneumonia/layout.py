"""RSNA Pneumonia Detection Challenge (stage 2) layout: the single source of truth for names and labels.

The Kaggle download (https://www.kaggle.com/c/rsna-pneumonia-detection-challenge) is::

    stage_2_train_labels.csv            patientId,x,y,width,height,Target   one row per box; a
                                        patient without opacity has one row with the box fields blank
    stage_2_detailed_class_info.csv     patientId,class                     also one row per box
    stage_2_train_images/<patientId>.dcm   26,684 chest radiographs (CR, 1024x1024, 8-bit,
                                           JPEG Baseline, MONOCHROME2), one per patient
    stage_2_test_images/<patientId>.dcm    3,000 unlabelled radiographs (the challenge's test set)
    stage_2_sample_submission.csv       patientId,PredictionString          the test set's ids

Boxes are ``x, y, width, height`` in pixels of the DICOM image. ``Target`` is 1 for a patient with
lung opacity (then every row of the patient has a box). The detailed class is one of
:data:`CLASSES`; ``Lung Opacity`` goes with ``Target`` 1. ``patientId`` is a UUID and is also
the file name. The copy of ``stage_2_detailed_class_info.csv`` in ``../shared/data/RSNA-Pneumonia``
lacks one patient that the label file has (``489a175a-...``, one box, Target 1).
"""

from __future__ import annotations

import re

DATASET_NAME = "rsna-pneumonia"
FULL_NAME = "RSNA Pneumonia Detection Challenge"

LABELS_FILE = "stage_2_train_labels.csv"
CLASS_FILE = "stage_2_detailed_class_info.csv"
SUBMISSION_FILE = "stage_2_sample_submission.csv"
TRAIN_DIR = "stage_2_train_images"
TEST_DIR = "stage_2_test_images"
DICOM_EXT = ".dcm"

#: label-file columns, in the file's order
COL_PATIENT, COL_X, COL_Y, COL_W, COL_H, COL_TARGET = "patientId", "x", "y", "width", "height", "Target"
LABEL_COLUMNS = (COL_PATIENT, COL_X, COL_Y, COL_W, COL_H, COL_TARGET)
COL_CLASS = "class"
CLASS_COLUMNS = (COL_PATIENT, COL_CLASS)
SUBMISSION_COLUMNS = (COL_PATIENT, "PredictionString")

LUNG_OPACITY, NOT_NORMAL, NORMAL = "Lung Opacity", "No Lung Opacity / Not Normal", "Normal"
#: the detailed classes as the class file writes them
CLASSES = (LUNG_OPACITY, NOT_NORMAL, NORMAL)
#: ``--label-set``: binary = ``Target``; three-class = the detailed class, ordered by how abnormal
LABEL_SETS = ("binary", "three-class")
BINARY_NAMES = ("no_opacity", "lung_opacity")
THREE_CLASS_NAMES = (NORMAL, NOT_NORMAL, LUNG_OPACITY)
#: the one detection class (``boxes``)
BOX_CLASS = "lung_opacity"
#: datasets whose images this one shares (written to the datalist as ``overlaps_with``: an evaluation of
#: a model trained here on one of them warns that it may not be external)
OVERLAPS_WITH = {"cxr14": "RSNA Pneumonia's images are a subset of NIH ChestX-ray14 (same patients, re-read): "
                          "a ChestX-ray14 test set may contain the training images themselves"}

#: modalities accepted as chest radiographs (the challenge's files are all CR)
MODALITIES = ("CR", "DX")
#: frontal views; ViewPosition AP (portable, often in bed) vs PA is a known shortcut for the label
VIEWS = ("AP", "PA")

#: a stored file's stem is the patientId (inference names rows from it)
STEM_PATTERN = r"^(?P<patient>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
PATIENT_RE = re.compile(STEM_PATTERN)
#: folders whose DICOMs are the unlabelled test set (``stage_2_test_images``, ``stage_1_test_images``)
TEST_FOLDER_RE = re.compile(r"^stage_\d+_test_images$", re.I)


def label_names(label_set: str = "binary") -> tuple[str, ...]:
    """Class names of ``label`` in index order.

    Example:
        >>> label_names("three-class")
        ('Normal', 'No Lung Opacity / Not Normal', 'Lung Opacity')
    """
    return BINARY_NAMES if label_set == "binary" else THREE_CLASS_NAMES


def label_of(target: int, class_name: str | None, label_set: str) -> int | None:
    """The ``label`` value: ``Target`` (binary) or the detailed class's index (three-class; None when unknown).

    Example:
        >>> label_of(1, "Lung Opacity", "binary"), label_of(0, "Normal", "three-class"), label_of(0, None, "three-class")
        (1, 0, None)
    """
    if label_set == "binary":
        return int(target)
    return THREE_CLASS_NAMES.index(class_name) if class_name in THREE_CLASS_NAMES else None


def is_patient_id(stem: str) -> bool:
    """Whether a file stem is a patientId (a UUID)."""
    return PATIENT_RE.match(stem) is not None
