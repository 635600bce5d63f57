"""An external site's DICOM export (a folder tree of DICOMs plus a label CSV) as a test-only dataset.

The independent hospital test of a classifier trained elsewhere: ``medpipe prepare dicom-folder``
turns the export into a prepared dataset whose records look like rsna-pneumonia's (8-bit gray
PNGs, ``patient``, ``label`` with rsna-pneumonia's binary class names, ``view``, ``age``, ``sex``,
``pixel_spacing``, ``source``), every one in the datalist's ``test`` (``training`` empty,
``num_folds`` 0), so that ``medpipe evaluate cxr_pneumonia --ckpt_path ... --dataset_dir DIR
--records test`` scores the model there. Importing this package is cheap (no numpy/pydicom); the
work is in

- :mod:`.layout`: keys, label values, class names, stored names (the single source of truth);
- :mod:`.tables`: the label CSV (columns by name, rows per key, conflicts and repeats);
- :mod:`.convert`: the converter (DICOMs found by content, joined to the table by ``--key``, read
  with :func:`medpipe.io.dicom.read_dicom` in workers, stored as PNGs; the reports);
- :mod:`.synth`: a synthetic export (nested study/series folders, files without an extension, a
  README, a patient with two images, a label row without a DICOM and a DICOM without a label row).

Example:
    >>> from data_prep.dicom_folder import DATASET
    >>> DATASET.header()["tasks"]
    {'label': {'kind': 'binary', 'class_names': ['no_opacity', 'lung_opacity']}}
"""

from __future__ import annotations

from data_prep.dicom_folder import layout as L
from data_prep.rsna_pneumonia import DATASET as RSNA
from medpipe.prepare.cache import parse_cache_size
from medpipe.prepare.spec import DatasetSpec, InputSpec, Option, Task, synth_options

DATASET = DatasetSpec(
    name=L.DATASET_NAME,
    title=L.FULL_NAME,
    summary="a hospital's export (DICOMs in any folders, a label CSV joined by PatientID, a UID or the file "
            "name) as a test-only set: every record in `test`, no folds (--folds/--test-fraction do not apply)",
    description="An external site's DICOM export prepared by medpipe as an independent test set: DICOMs stored as "
                "8-bit gray PNGs, label from the site's CSV (binary, rsna-pneumonia's class names by default)",
    version="1",
    converter="data_prep.dicom_folder.convert:DicomFolderConverter",
    tasks={"label": Task("binary", L.CLASS_NAMES)},
    input=InputSpec(modality="XR", channels=1, slice_pattern=L.STEM_PATTERN),
    options=(
        Option("labels", None, "the label CSV (default: the one *.csv under --src; an error names them when there "
                               "are none or several)", str, metavar="CSV"),
        Option("key", L.DEFAULT_KEY, f"what joins a label row to its DICOMs: a header element or the file's name "
                                     f"(or its path under --src); several DICOMs of one PatientID or "
                                     f"StudyInstanceUID are all kept", str, choices=tuple(L.KEYS)),
        Option("key_column", None, "the CSV column holding the key (default: the --key name, or a close spelling "
                                   "such as patient_id)", str, metavar="NAME"),
        Option("label_column", L.DEFAULT_LABEL_COLUMN, "the CSV column holding the reference label; rows of one key "
                                                       "that agree count once, rows that disagree skip its DICOMs "
                                                       "(an anomaly naming the lines; --strict stops instead)", str,
               metavar="NAME"),
        Option("positive_values", ",".join(L.DEFAULT_POSITIVE_VALUES),
               "label values that mean positive (comma list, case-insensitive; 1.0 reads as 1); every other "
               "non-empty value is negative, an empty one skips the row", L.parse_value_list, metavar="LIST"),
        Option("class_names", ",".join(L.CLASS_NAMES),
               "NEG,POS names of label 0 and 1 (default: rsna-pneumonia's binary label set, which a model trained "
               "there must find to be evaluated here)", L.parse_class_names, metavar="NEG,POS"),
        Option("cache_size", 0, "store each image resized (longer side PX, never enlarged) instead of at the DICOM's "
                                "size; use the --cache-size of the training set (0: full size)", parse_cache_size,
               metavar="PX"),
        next(o for o in RSNA.options if o.name == "intensity"),
        Option("modalities", ",".join(L.DEFAULT_MODALITIES), "DICOM Modality values accepted (comma list, or any); "
                                                              "others are skipped as wrong_modality",
               L.parse_modalities, metavar="LIST"),
    ),
    synthesizer="data_prep.dicom_folder.synth:synthesize",
    synth_options=synth_options(
        patients=40, size=256, seed=0, min_patients=4, min_size=64, max_size=1024,
        size_hint="Smaller images cannot show an opacity",
        patients_hint="The export needs a positive and a negative patient and one with two images",
    ),
    prepare_examples="""\
        medpipe prepare dicom-folder --src /media/hospital-export --out data/hospital --key PatientID \\
            --label-column pneumonia --cache-size 256
        medpipe prepare dicom-folder --src DIR --out data/site-b --labels reads.csv --key StudyInstanceUID \\
            --label-column finding --positive-values "pneumonia,consolidation"
        medpipe prepare dicom-folder --src DIR --out data/site-c --key filename --key-column "Image File" \\
            --intensity window --modalities any --class-names normal,pneumonia
        # then, with a model trained on rsna-pneumonia (same --cache-size, default --class-names):
        medpipe evaluate cxr_pneumonia --ckpt_path runs/cxr_pneumonia/models/model.pt --dataset_dir data/hospital \\
            --records test
    """,
    synth_examples="""\
        medpipe synth dicom-folder --out data/hospital-raw                  # 40 patients, 256-px DICOMs, ~2 s
        medpipe prepare dicom-folder --src data/hospital-raw --out data/hospital --label-column pneumonia --cache-size 256
    """,
)

#: ``PrepareOptions(key="StudyInstanceUID")``: the options of :func:`prepare` as a dataclass
PrepareOptions = DATASET.options_type("PrepareOptions")


def prepare(src, out, options=None, workers: int | None = None, progress=None) -> dict:
    """``medpipe prepare dicom-folder`` from Python: see :func:`medpipe.prepare.engine.prepare`.

    Example:
        >>> rep = prepare("hospital-export", "data/hospital", {"label_column": "pneumonia"})  # doctest: +SKIP
    """
    from medpipe.prepare.engine import prepare as run

    return run(DATASET, src, out, options, workers=workers, progress=progress)
