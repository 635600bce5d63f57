"""NIH ChestX-ray14 (frontal chest X-rays, 14 findings, multi-label).

The dataset's declaration (:data:`DATASET`): tasks, input, options, where its converter and
synthesizer live. Importing this package is cheap (no numpy/PIL); the work is in

- :mod:`.layout`: file names, the 14 finding names in their fixed order, the categories, the box
  coordinate space (the single source of truth);
- :mod:`.tables`: the label file, box list and split list readers (header quirks included);
- :mod:`.convert`: the converter (images found by name anywhere under ``--src``, cheap checks, gray
  conversion, optional resized cache, boxes scaled, the three splits, the prevalence/bias report);
- :mod:`.synth`: the synthetic download, quirks included, with visible and learnable findings.

Example:
    >>> from data_prep.cxr14 import DATASET
    >>> DATASET.header()["tasks"]["labels"]["class_names"][:3]
    ['Atelectasis', 'Cardiomegaly', 'Effusion']
"""

from __future__ import annotations

from data_prep.cxr14 import layout as L
from medpipe.prepare.cache import MAX_CACHE, MIN_CACHE  # noqa: F401 - re-exported (``--cache-size`` bounds)
from medpipe.prepare.cache import parse_cache_size as _cache_size
from medpipe.prepare.spec import DatasetSpec, InputSpec, Option, Task, synth_options


DATASET = DatasetSpec(
    name=L.DATASET_NAME,
    title=L.FULL_NAME,
    summary="frontal chest X-rays with 14 finding labels (multi-label), NIH boxes, official/CheXNet splits",
    description="NIH ChestX-ray14 prepared by medpipe (14 findings, multi-label; NIH boxes in nih_boxes)",
    version="1",
    converter="data_prep.cxr14.convert:Cxr14Converter",
    tasks={"labels": Task("multilabel", L.FINDINGS)},
    input=InputSpec(modality="XR", channels=1, slice_pattern=L.STEM_PATTERN, patient_format=L.PATIENT_FORMAT),
    options=(
        Option("split", "patient", "patient: K patient-level folds stratified over all labels (+ --test-fraction); "
                                   "official: NIH train_val_list.txt/test_list.txt; chexnet: CheXNet's "
                                   "train/val/test_list.txt (val list = fold 0)", str, choices=L.SPLITS),
        Option("label_set", "findings", "findings: the 14 findings; categories: Lung, Cardiomegaly, Pleural, Hernia, "
                                        "Normal", str, choices=L.LABEL_SETS),
        Option("label_file", "", "the label file (Data_Entry_2017.csv or Data_Entry_2017_v2020.csv) when it is not "
                                 "under --src, or to choose one", str, metavar="CSV"),
        Option("cache_size", 0, "store each image resized (longer side PX, never enlarged; 8-bit gray) instead of "
                                "the original, boxes scaled to it, so training never decodes 1024-px images "
                                "(0: store the originals)", _cache_size, metavar="PX"),
        Option("verify", "header", "header: check each PNG's header and end (fast); decode: decode every pixel "
                                   "(finds damage inside the pixel data)", str, choices=("header", "decode")),
    ),
    synthesizer="data_prep.cxr14.synth:synthesize",
    synth_options=synth_options(
        patients=40, size=128, seed=0, min_patients=5, min_size=64, max_size=1024,
        size_hint="Smaller images cannot show a nodule; the real PNGs are 1024",
        patients_hint="`medpipe prepare` needs at least as many patients as --folds (5), and every finding "
                      "needs a few patients (60+ for all 14)",
    ) + (
        Option("variant", "2017", "label file to write: 2017 (Data_Entry_2017.csv: trailing comma, some ages "
                                  "like 058Y) or v2020 (Data_Entry_2017_v2020.csv)", str, choices=("2017", "v2020")),
        Option("chexnet_lists", False, "also write CheXNet-style labels/{train,val,test}_list.txt", bool),
    ),
    prepare_examples="""\
        medpipe prepare cxr14 --src ~/Downloads/ChestX-ray14 --out data/cxr14 --cache-size 256
        medpipe prepare cxr14 --src ~/Downloads/ChestX-ray14 --out data/cxr14-official --split official
        medpipe prepare cxr14 --src ../shared/data/ChestX-ray14 --out data/cxr14-chexnet --split chexnet
        medpipe prepare cxr14 --src DIR --out data/cxr14-cat --label-set categories --test-fraction 0.2
    """,
    synth_examples="""\
        medpipe synth cxr14 --out data/cxr14-raw                    # 40 patients x ~3 images, 128 px, ~1 s
        medpipe synth cxr14 --out /tmp/cxr14-big --patients 200 --size 256 --chexnet-lists
    """,
)

#: ``PrepareOptions(split="official")``: the options of :func:`prepare` as a dataclass
PrepareOptions = DATASET.options_type("PrepareOptions")


def prepare(src, out, options=None, workers: int | None = None, progress=None) -> dict:
    """``medpipe prepare cxr14`` from Python: see :func:`medpipe.prepare.engine.prepare`.

    Example:
        >>> rep = prepare("ChestX-ray14", "data/cxr14", {"split": "chexnet"})  # doctest: +SKIP
    """
    from medpipe.prepare.engine import prepare as run

    return run(DATASET, src, out, options, workers=workers, progress=progress)
