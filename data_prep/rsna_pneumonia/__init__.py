"""RSNA Pneumonia Detection Challenge, stage 2 (frontal chest radiographs as DICOM, lung-opacity boxes).

The dataset's declaration (:data:`DATASET`): tasks, input, options, where its converter and
synthesizer live. Importing this package is cheap (no numpy/pydicom); the work is in

- :mod:`.layout`: file and folder names, columns, class names and label sets (the single source of truth);
- :mod:`.tables`: the label file, the detailed class file and the sample submission, quirks included;
- :mod:`.convert`: the converter (DICOMs read with :func:`medpipe.io.dicom.read_dicom` in worker
  processes, stored as 8-bit gray PNGs, optionally resized; boxes scaled; bad DICOMs skipped with
  their reason; patient-level folds and ``--test-size``; the test images listed for inference;
  YOLO export; the view-vs-label table);
- :mod:`.synth`: a synthetic download in the real layout (DICOMs pydicom and SimpleITK read).

Example:
    >>> from data_prep.rsna_pneumonia import DATASET
    >>> sorted(DATASET.header()["tasks"])
    ['boxes', 'label']
"""

from __future__ import annotations

from data_prep.rsna_pneumonia import layout as L
from medpipe.prepare.cache import parse_cache_size
from medpipe.prepare.spec import DatasetSpec, InputSpec, Option, Task, synth_options

DATASET = DatasetSpec(
    name=L.DATASET_NAME,
    title=L.FULL_NAME,
    summary="frontal chest radiographs (DICOM) with lung-opacity labels and boxes; Normal / Not Normal / "
            "Lung Opacity classes",
    description="RSNA Pneumonia Detection Challenge (stage 2) prepared by medpipe: DICOMs stored as 8-bit gray PNGs, "
                "label = Target (or the three detailed classes), boxes of lung opacity",
    version="1",
    converter="data_prep.rsna_pneumonia.convert:RsnaPneumoniaConverter",
    tasks={"label": Task("binary", L.label_names("binary")), "boxes": Task("detection", (L.BOX_CLASS,))},
    input=InputSpec(modality="XR", channels=1, slice_pattern=L.STEM_PATTERN),
    options=(
        Option("label_set", "binary", "binary: label = Target (lung opacity); three-class: 0 Normal, 1 No Lung "
                                      "Opacity / Not Normal, 2 Lung Opacity (from the detailed class file)",
               str, choices=L.LABEL_SETS),
        Option("test_size", 0, "number of patients held out as the test set, stratified like the folds (the "
                               "seed project held out 300; 0: none)", int, min=0, metavar="N"),
        Option("cache_size", 0, "store each image resized (longer side PX, never enlarged) instead of at the "
                                "DICOM's size, boxes scaled to it, so training never decodes a 1024-px image "
                                "(0: full size)", parse_cache_size, metavar="PX"),
        Option("intensity", "bits", "DICOM values -> 8 bit: bits (the BitsStored range after the rescale; the "
                                    "same for every file), window (the header's WindowCenter/Width when present), "
                                    "minmax (each image's own range)", str, choices=("bits", "window", "minmax")),
        Option("val_fold", 0, "fold used as the YOLO val split", int, min=0, metavar="K"),
    ),
    synthesizer="data_prep.rsna_pneumonia.synth:synthesize",
    synth_options=synth_options(
        patients=60, size=256, seed=0, min_patients=5, min_size=64, max_size=1024,
        size_hint="Smaller images cannot show an opacity; the real DICOMs are 1024",
        patients_hint="Every class needs a patient and `medpipe prepare` needs at least as many as --folds (5)",
    ) + (
        Option("complete_class_info", False, "write every row of stage_2_detailed_class_info.csv (by default one "
                                             "positive patient's rows are missing, as in the shared copy)", bool),
    ),
    prepare_examples="""\
        medpipe prepare rsna-pneumonia --src ~/Downloads/rsna-pneumonia --out data/rsna --cache-size 256 --test-size 300
        medpipe prepare rsna-pneumonia --src DIR --out data/rsna-3c --label-set three-class --cache-size 256
        medpipe prepare rsna-pneumonia --src DIR --out data/rsna-win --intensity window --workers 8
    """,
    synth_examples="""\
        medpipe synth rsna-pneumonia --out data/rsna-raw                  # 60 patients, 256-px DICOMs, ~3 s
        medpipe synth rsna-pneumonia --out /tmp/rsna-1024 --patients 200 --size 1024
    """,
)

#: ``PrepareOptions(label_set="three-class")``: the options of :func:`prepare` as a dataclass
PrepareOptions = DATASET.options_type("PrepareOptions")


def prepare(src, out, options=None, workers: int | None = None, progress=None) -> dict:
    """``medpipe prepare rsna-pneumonia`` from Python: see :func:`medpipe.prepare.engine.prepare`.

    Example:
        >>> rep = prepare("rsna-pneumonia-detection-challenge", "data/rsna", {"cache_size": 256})  # doctest: +SKIP
    """
    from medpipe.prepare.engine import prepare as run

    return run(DATASET, src, out, options, workers=workers, progress=progress)
