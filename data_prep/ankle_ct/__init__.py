"""ankle-ct: 7-class ankle CT classification on the user's own scans (volumes or slices plus a manifest).

``medpipe prepare ankle-ct --src DIR --manifest labels.csv`` turns NIfTI volumes, DICOM series
folders and 2D slices named by a manifest into bone-windowed axial PNG slices with a multiclass
``label`` (:data:`~data_prep.ankle_ct.layout.CLASS_NAMES`), split into patient-level folds
stratified by class. Importing this package is cheap (no numpy/SimpleITK); the work is in

- :mod:`.layout`: class names, manifest columns, window, stored names (the single source of truth);
- :mod:`.tables`: the manifest (CSV or Excel; columns by name; every row checked);
- :mod:`.convert`: the converter (rows joined to files, volumes read and sliced, the reports);
- :mod:`.synth`: a synthetic set of ankle-like bone phantoms in HU, one pattern per class.

Example:
    >>> from data_prep.ankle_ct import DATASET
    >>> DATASET.header()["tasks"]["label"]["kind"], len(DATASET.header()["tasks"]["label"]["class_names"])
    ('multiclass', 7)
"""

from __future__ import annotations

from data_prep.ankle_ct import layout as L
from medpipe.prepare.spec import DatasetSpec, InputSpec, Option, Task, synth_options


def _spacing(s) -> float:
    v = float(s)
    if v != 0 and not 0.05 <= v <= 10:
        raise ValueError("expected 0 (keep the scan's spacing) or a spacing from 0.05 to 10 mm, e.g. 0.5")
    return v


DATASET = DatasetSpec(
    name=L.DATASET_NAME,
    title=L.FULL_NAME,
    summary="your ankle CTs (NIfTI volumes, DICOM series folders or PNG/DICOM slices) labelled by a manifest "
            "(image, label 0-6 or class name, patient[, side, slices]) -> bone-windowed axial slices, 7 classes",
    description="Ankle CT axial slices prepared by medpipe: bone window, RAS-canonical radiological slices, "
                "7-class label per image from the user's manifest",
    version="2",
    converter="data_prep.ankle_ct.convert:AnkleCtConverter",
    tasks={"label": Task("multiclass", L.CLASS_NAMES)},
    input=InputSpec(modality="CT", channels=1, window=L.BONE_WINDOW, orientation=L.ORIENTATION,
                    slice_pattern=L.STEM_PATTERN),
    options=(
        Option("manifest", None, "the manifest: CSV/TSV or Excel (.xlsx), one row per image (default: labels.csv "
                                 "or the one table at the top of --src)", str, metavar="FILE"),
        Option("classes", ",".join(L.CLASS_NAMES), "the 7 class names in label order (labels may be written as "
                                                   "these names or as 0-6)", L.parse_classes, metavar="LIST"),
        Option("image_column", L.COLUMNS["image_column"], "manifest column: path under --src of a NIfTI file, a "
                                                          "DICOM series folder or a PNG/DICOM slice", str,
               metavar="NAME"),
        Option("label_column", L.COLUMNS["label_column"], "manifest column: class number 0-6 or class name", str,
               metavar="NAME"),
        Option("patient_column", L.COLUMNS["patient_column"], "manifest column: patient id (the split unit)", str,
               metavar="NAME"),
        Option("side_column", L.COLUMNS["side_column"], "manifest column (optional): L or R", str, metavar="NAME"),
        Option("slices_column", L.COLUMNS["slices_column"], "manifest column (optional): inclusive axial slice "
                                                            "range such as 40:80 (empty: every slice)", str,
               metavar="NAME"),
        Option("window_level", L.BONE_WINDOW[0], "bone window level (HU)", float, min=-1024, max=4000, metavar="HU"),
        Option("window_width", L.BONE_WINDOW[1], "bone window width (HU)", float, min=1, max=8000, metavar="HU"),
        Option("spacing", 0.0, "store slices resampled to this in-plane spacing in mm (0: keep the scan's)",
               _spacing, metavar="MM"),
        Option("mirror_left", False, "mirror left ankles (side L) so every ankle looks like a right one", bool),
    ),
    synthesizer="data_prep.ankle_ct.synth:synthesize",
    synth_options=synth_options(
        patients=30, size=64, seed=0, min_patients=2, min_size=32, max_size=512,
        size_hint="Smaller slices cannot hold the tibia, fibula and a fracture line",
        patients_hint="`medpipe prepare` needs at least as many patients as --folds (5)",
    ) + (Option("slices", 24, "axial slices per volume", int, min=8, max=256, metavar="K"),),
    prepare_examples="""\
        medpipe prepare ankle-ct --src /data/ankle-scans --out data/ankle --manifest /data/ankle-scans/labels.csv
        medpipe prepare ankle-ct --src DIR --out data/ankle --manifest labels.xlsx --image-column File \\
            --label-column Diagnosis --patient-column "Patient ID" --mirror-left --spacing 0.5
        medpipe prepare ankle-ct --src DIR --out data/ankle --window-level 500 --window-width 2000 \\
            --classes normal,weber_b,medial,talus,fragment,narrowing,syndesmosis
    """,
    synth_examples="""\
        medpipe synth ankle-ct --out data/ankle-raw                 # 30 patients, 64x64x24 volumes, ~2 s
        medpipe prepare ankle-ct --src data/ankle-raw --out data/ankle --manifest data/ankle-raw/labels.csv
    """,
)

#: ``PrepareOptions(mirror_left=True)``: the options of :func:`prepare` as a dataclass
PrepareOptions = DATASET.options_type("PrepareOptions")


def prepare(src, out, options=None, workers: int | None = None, progress=None) -> dict:
    """``medpipe prepare ankle-ct`` from Python: see :func:`medpipe.prepare.engine.prepare`.

    Example:
        >>> rep = prepare("ankle-scans", "data/ankle", {"manifest": "ankle-scans/labels.csv"})  # doctest: +SKIP
    """
    from medpipe.prepare.engine import prepare as run

    return run(DATASET, src, out, options, workers=workers, progress=progress)
