"""PHE-SICH-CT-IDS (perihaematomal oedema in spontaneous intracerebral haemorrhage, head CT).

The dataset's declaration (:data:`DATASET`): tasks, input, options, where its converter and
synthesizer live. Importing this package is cheap (no numpy/PIL); the work is in

- :mod:`.layout`: folder and file names, ids, window, label names (the single source of truth);
- :mod:`.convert`: the converter (discovery, pairing, per-patient checks, NIfTI slicing, clinical
  table, ``labels.csv`` and YOLO exports, report sections);
- :mod:`.synth`: the synthetic download, quirks included.

Example:
    >>> from data_prep.phe_sich import DATASET
    >>> DATASET.header()["tasks"]["boxes"]
    {'kind': 'detection', 'class_names': ['phe']}
"""

from __future__ import annotations

from data_prep.phe_sich import layout as L
from medpipe.prepare.spec import DatasetSpec, InputSpec, Option, Task, synth_options


def _class_name(s: str) -> str:
    s = str(s).strip()
    if not s or any(c in s for c in "\n\r\t"):
        raise ValueError("a class name must be a non-empty single line")
    return s


def _subsets(s) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in s.split(",") if p.strip()) if isinstance(s, str) else tuple(s)
    if not parts or any(p not in L.SUBSET_DIRS for p in parts):
        raise ValueError(f"expected a comma-separated selection of {', '.join(L.SUBSET_DIRS)}")
    return parts


def _slices(s) -> tuple[int, int]:
    lo, hi = (int(x) for x in (s.split(",") if isinstance(s, str) else s))
    return lo, hi


DATASET = DatasetSpec(
    name=L.DATASET_NAME,
    title=L.FULL_NAME,
    summary="head CT slices with perihaematomal oedema (PHE) masks, boxes and slice labels "
            "(from the PNG, JPG or NIfTI subset)",
    description="PHE-SICH-CT-IDS slices prepared by medpipe (perihaematomal oedema masks and boxes)",
    version="2.0",
    converter="data_prep.phe_sich.convert:PheSichConverter",
    tasks={"label": Task("binary", L.label_names()),
           "mask": Task("segmentation", ("background", L.DEFAULT_CLASS_NAME)),
           "boxes": Task("detection", (L.DEFAULT_CLASS_NAME,))},
    input=InputSpec(modality="CT", channels=1, window=L.BRAIN_WINDOW, orientation=L.ORIENTATION,
                    slice_pattern=L.SLICE_PATTERN, patient_format=L.PATIENT_FORMAT),
    options=(
        Option("subset", "auto", "subset the records come from (auto: PNG, then JPG, then NIfTI)", str,
               choices=("auto", *L.SUBSET_DIRS)),
        Option("class_name", L.DEFAULT_CLASS_NAME, "name of the lesion class (slice labels become no_NAME/NAME)",
               _class_name, metavar="NAME"),
        Option("val_fold", 0, "fold used as the YOLO val split", int, min=0, metavar="K"),
    ),
    synthesizer="data_prep.phe_sich.synth:synthesize",
    synth_options=synth_options(
        patients=12, size=128, seed=0, min_patients=2, min_size=64, max_size=2048,
        size_hint="Smaller slices cannot hold the skull, the ventricles and a lesion rim; the real slices are 512",
        patients_hint="The quirks need two patients; `medpipe prepare` needs at least as many as --folds (5)",
    ) + (
        Option("subsets", "png,jpg,nifti", "subsets to write, comma-separated (png, jpg, nifti)", _subsets,
               metavar="LIST"),
        Option("slices", "12,16", "min,max axial slices per patient (6..100)", _slices, metavar="MIN,MAX"),
    ),
    prepare_examples="""\
        medpipe prepare phe-sich --src ~/Downloads/PHE-SICH-CT-IDS --out data/phe-sich
        medpipe prepare phe-sich --src ~/Downloads/PHE-SICH-CT-IDS/SubdatasetC_PNG --out data/phe-sich --folds 5 --test-fraction 0.2
    """,
    synth_examples="""\
        medpipe synth phe-sich --out data/phe-sich-raw                 # small, fast (12 patients, 128 px)
        medpipe synth phe-sich --out /tmp/phe-512 --patients 20 --size 512   # the real geometry
    """,
)

#: ``PrepareOptions(folds=3, subset="nifti")``: the options of :func:`prepare` as a dataclass
PrepareOptions = DATASET.options_type("PrepareOptions")


def prepare(src, out, options=None, workers: int | None = None, progress=None) -> dict:
    """``medpipe prepare phe-sich`` from Python: see :func:`medpipe.prepare.engine.prepare`.

    Example:
        >>> rep = prepare("PHE-SICH-CT-IDS", "data/phe-sich", PrepareOptions(folds=5))  # doctest: +SKIP
    """
    from medpipe.prepare.engine import prepare as run

    return run(DATASET, src, out, options, workers=workers, progress=progress)
