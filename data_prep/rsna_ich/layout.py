"""RSNA Intracranial Hemorrhage Detection (2019) layout: the single source of truth for names and labels.

The Kaggle download (https://www.kaggle.com/c/rsna-intracranial-hemorrhage-detection) is::

    stage_2_train.csv                 ID,Label     six rows per image: ID_<image>_<subtype>, 0 or 1
    stage_2_train/ID_<image>.dcm      752,803 head-CT slices (512x512, one file per axial slice)
    stage_2_test/ID_<image>.dcm       121,232 unlabelled slices (the challenge's test set)
    stage_2_sample_submission.csv     ID,Label     the test set's rows (Label 0.5)

An image id is ``ID_`` plus 9 hex digits and is also the file name and the ``SOPInstanceUID``;
``PatientID``, ``StudyInstanceUID`` and ``SeriesInstanceUID`` are written the same way (``ID_...``,
not DICOM UIDs). There is no series or patient table: slices are grouped into series by the
header and ordered by ``ImagePositionPatient``. Known quirks of the real files:

- some label rows are repeated (the same ``ID,Label`` twice);
- ``any`` is meant to be the OR of the five subtypes;
- ``WindowCenter``/``WindowWidth`` are multi-valued in part of the files;
- part of the files store HU as 12-bit two's complement declared unsigned with an intercept near 0
  (undone by :func:`medpipe.io.ct_dicom.fix_bits12`);
- ``ID_6431af929`` (:data:`KNOWN_CORRUPT`) does not decode.

Labels are per slice, in :data:`SUBTYPES` order everywhere (records, reports, models). In the real
training set about 14 % of slices are ``any``; subdural 6.3 %, intraparenchymal 4.8 %,
subarachnoid 4.7 %, intraventricular 3.5 %, epidural 0.4 %.
"""

from __future__ import annotations

import re

DATASET_NAME = "rsna-ich"
FULL_NAME = "RSNA Intracranial Hemorrhage Detection"

#: the label order of ``labels`` (``any`` first, then the five subtypes alphabetically, as in the CSV)
SUBTYPES = ("any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
#: the five hemorrhage subtypes (``any`` is their OR)
LESIONS = SUBTYPES[1:]

LABELS_FILE = "stage_2_train.csv"
SUBMISSION_FILE = "stage_2_sample_submission.csv"
TRAIN_DIR = "stage_2_train"
TEST_DIR = "stage_2_test"
DICOM_EXT = ".dcm"
#: label-file columns
COL_ID, COL_LABEL = "ID", "Label"
LABEL_COLUMNS = (COL_ID, COL_LABEL)

#: images whose files are known to be broken in the real download: skipped by name, never opened
KNOWN_CORRUPT = ("ID_6431af929",)
KNOWN_CORRUPT_REASON = "known corrupt image in the RSNA set"

#: an image id (file stem, SOPInstanceUID)
ID_PATTERN = r"^ID_[0-9a-fA-F]{9}$"
ID_RE = re.compile(ID_PATTERN)
#: a label-file ``ID``: ``<image id>_<subtype>``
ROW_ID_RE = re.compile(r"^(?P<image>ID_[0-9a-fA-F]{9})_(?P<subtype>[a-z]+)$")
#: folders whose DICOMs are the unlabelled test set (``stage_2_test``, ``stage_1_test``)
TEST_FOLDER_RE = re.compile(r"^stage_\d+_test(_images)?$", re.I)

#: the channels of the stored images (R, G, B), named windows of :data:`medpipe.io.ct_dicom.CT_WINDOWS`
CHANNELS = ("brain", "subdural", "soft_tissue")


def is_image_id(stem: str) -> bool:
    """Whether a file stem is an image id (``ID_`` + 9 hex digits).

    Example:
        >>> is_image_id("ID_6431af929"), is_image_id("ID_6431af929_any"), is_image_id("scan1")
        (True, False, False)
    """
    return ID_RE.match(stem) is not None


def split_row_id(row_id: str) -> tuple[str, str] | None:
    """A label-file ``ID`` -> ``(image id, subtype)``; None when it is not one of :data:`SUBTYPES`.

    Example:
        >>> split_row_id("ID_12cadc6af_epidural"), split_row_id("ID_12cadc6af_bleed")
        (('ID_12cadc6af', 'epidural'), None)
    """
    m = ROW_ID_RE.match(row_id.strip())
    if not m or m.group("subtype") not in SUBTYPES:
        return None
    return m.group("image"), m.group("subtype")
