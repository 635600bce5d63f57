"""NIH ChestX-ray14 layout: the single source of truth for file names, label names and coordinates.

The NIH download (Wang et al., CVPR 2017; https://nihcc.app.box.com/v/ChestXray-NIHCC) is::

    images_001/images/00000001_000.png ... images_012/images/*.png   112,120 frontal chest X-rays,
                                                                     1024x1024 8-bit gray PNG
    Data_Entry_2017.csv          (or Data_Entry_2017_v2020.csv)     one row per image
    BBox_List_2017.csv                                              984 boxes on 880 images
    train_val_list.txt, test_list.txt                               the official patient-level split

``Image Index`` is ``PPPPPPPP_FFF.png``: the 8-digit patient id and the 3-digit follow-up number.
Mirrors re-sort the images into any folder tree (a flat ``images/``, ``train/0_normal/`` ...);
images are found by their ``Image Index`` file name anywhere, and folder names are never labels.

The label file's header has bracketed multi-column names (``OriginalImage[Width,Height]``,
``OriginalImagePixelSpacing[x,y]``: two values each); the 2017 original also ends every line with a
comma (pandas makes an ``Unnamed: 11`` column of it) and older copies write ages as ``058Y``.
``BBox_List_2017.csv``'s header is ``Image Index,Finding Label,Bbox [x,y,w,h],,,`` and its boxes
are ``x, y, w, h`` in the pixels of the 1024x1024 PNG; it calls Infiltration ``Infiltrate``.

CheXNet reproductions use their own random 70/10/20 patient split, shipped as ``train_list.txt``,
``val_list.txt`` and ``test_list.txt`` with ``<Image Index> <14 labels as 0/1>`` per line in
:data:`FINDINGS` order. Its ``test_list.txt`` shares its name with the official list, so list
files are told apart by their content (one token per line, or fifteen).
"""

from __future__ import annotations

import re

DATASET_NAME = "cxr14"
FULL_NAME = "NIH ChestX-ray14"

#: the 14 findings in the fixed order of every ``labels`` vector (CheXNet's order)
FINDINGS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
NO_FINDING = "No Finding"
#: other spellings met in the files -> the finding name (``Infiltrate`` is BBox_List_2017.csv's)
ALIASES = {"Infiltrate": "Infiltration", "Pleural Thickening": "Pleural_Thickening",
           "Pleural-Thickening": "Pleural_Thickening", "No_Finding": NO_FINDING}

#: ``--label-set categories``: the seed project's grouping, plus Normal (= No Finding)
CATEGORIES = {
    "Lung": ("Atelectasis", "Infiltration", "Mass", "Nodule", "Pneumonia", "Consolidation", "Edema",
             "Emphysema", "Fibrosis"),
    "Cardiomegaly": ("Cardiomegaly",),
    "Pleural": ("Effusion", "Pneumothorax", "Pleural_Thickening"),
    "Hernia": ("Hernia",),
    "Normal": (),
}
NORMAL_CATEGORY = "Normal"
LABEL_SETS = ("findings", "categories")


def label_names(label_set: str = "findings") -> tuple[str, ...]:
    """Class names of a label set, in ``labels`` order."""
    return FINDINGS if label_set == "findings" else tuple(CATEGORIES)


def canonical_finding(name: str) -> str | None:
    """The finding name for a spelling in the files (aliases applied), or None when unknown.

    Example:
        >>> canonical_finding("Infiltrate"), canonical_finding("Cardiomegaly"), canonical_finding("Flu")
        ('Infiltration', 'Cardiomegaly', None)
    """
    name = ALIASES.get(name.strip(), name.strip())
    return name if name in FINDINGS or name == NO_FINDING else None


def findings_vector(findings) -> list[int]:
    """14 ints 0/1 for a collection of finding names (``No Finding`` and unknown names ignored)."""
    have = set(findings)
    return [int(f in have) for f in FINDINGS]


def categories_vector(findings_vec) -> list[int]:
    """The 5 category ints for a 14-finding vector: a category is 1 when any of its findings is;
    Normal is 1 when no finding is.

    Example:
        >>> categories_vector(findings_vector(["Effusion", "Mass"]))
        [1, 0, 1, 0, 0]
        >>> categories_vector([0] * 14)
        [0, 0, 0, 0, 1]
    """
    have = {f for f, v in zip(FINDINGS, findings_vec) if v}
    return [int(not have) if not members else int(bool(have & set(members))) for members in CATEGORIES.values()]


# ------------------------------------------------------------------------------------ files

#: label files, preferred first when several are found (v2020 corrects ages and some labels)
LABEL_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
BBOX_FILE = "BBox_List_2017.csv"
#: the official split (NIH): one Image Index per line
OFFICIAL_LISTS = {"train_val": "train_val_list.txt", "test": "test_list.txt"}
#: CheXNet's random split: ``<Image Index> <14 labels>`` per line
CHEXNET_LISTS = {"train": "train_list.txt", "val": "val_list.txt", "test": "test_list.txt"}
SPLITS = ("patient", "official", "chexnet")

#: label-file columns (normalized: lower case, spaces and brackets' contents dropped)
COL_IMAGE, COL_FINDINGS, COL_FOLLOW_UP, COL_PATIENT = "Image Index", "Finding Labels", "Follow-up #", "Patient ID"
COL_AGE, COL_SEX, COL_VIEW = "Patient Age", "Patient Gender", "View Position"
COL_ORIGINAL_SIZE, COL_SPACING = "OriginalImage[Width,Height]", "OriginalImagePixelSpacing[x,y]"
REQUIRED_COLUMNS = (COL_IMAGE, COL_FINDINGS)
#: the header of the 2017 original, trailing comma included (the synthesizer writes it)
DATA_ENTRY_2017_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
                          "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"

#: NIH image folders: ``images_001/images`` .. ``images_012/images``
NIH_FOLDER_FORMAT = "images_{:03d}/images"
IMAGE_EXT = ".png"

#: ``00000001_000.png`` -> patient ``00000001``, follow-up ``000``
IMAGE_INDEX_RE = re.compile(r"^(?P<patient>\d{8})_(?P<follow_up>\d{3})\.png$")
#: written to the datalist's ``input``: inference names a stored file's patient from its stem
#: (the ``slice`` group is the follow-up number)
STEM_PATTERN = r"^(?P<patient>\d{8})_(?P<slice>\d{3})$"
PATIENT_FORMAT = "{:08d}"

#: the PNGs' size: BBox_List_2017.csv coordinates are in this space (scaled per axis to the stored image)
BOX_SPACE = 1024

#: folder names that mirrors use to sort images into normal / abnormal (never used as labels;
#: a disagreement with the label file is reported)
NORMAL_FOLDER_RE = re.compile(r"^(\d+[_-])?(normal|no[_ -]?finding|negative|healthy)$", re.I)
ABNORMAL_FOLDER_RE = re.compile(r"^(\d+[_-])?(abnormal|finding|findings|positive|disease[ds]?|sick)$", re.I)


def patient_id(number) -> str:
    """Canonical 8-digit patient id (``1`` -> ``"00000001"``)."""
    return PATIENT_FORMAT.format(int(number))


def image_index(patient, follow_up: int) -> str:
    """``(1, 0)`` -> ``"00000001_000.png"``."""
    return f"{int(patient):08d}_{int(follow_up):03d}{IMAGE_EXT}"


def parse_image_index(name: str) -> tuple[str, int] | None:
    """``"00000001_002.png"`` -> ``("00000001", 2)``; None when the name is not an Image Index."""
    m = IMAGE_INDEX_RE.match(name)
    return (m.group("patient"), int(m.group("follow_up"))) if m else None


def folder_hint(parts) -> tuple[str, int] | None:
    """``(folder, 0|1)`` when one of a file's folders claims normal (0) or abnormal (1), else None."""
    for part in reversed(list(parts)):
        if NORMAL_FOLDER_RE.match(part):
            return part, 0
        if ABNORMAL_FOLDER_RE.match(part):
            return part, 1
    return None
