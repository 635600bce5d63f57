"""CQ500 (qure.ai head CT: 491 scans, each read by three radiologists) as an external test set.

``medpipe prepare cq500`` turns the download (``reads.csv`` and one ``CQ500CTN CQ500CTN`` folder of
DICOM series per scan) into a prepared dataset whose records look like rsna-ich's (one RGB PNG per
axial slice in the brain, subdural and soft-tissue windows, ``labels`` = any + the five hemorrhage
subtypes in :data:`~data_prep.rsna_ich.layout.SUBTYPES` order, ``neighbors`` for 2.5-D models),
every one in the datalist's ``test`` (``training`` empty, ``num_folds`` 0), so that a model trained
on rsna-ich is scored here with ``medpipe evaluate ... --records test``. The labels are per scan
(the majority of the three readers per finding; ``label_level`` ``scan``), and each reader's reads
are kept, so that the model can be compared with every reader and the readers with one another.
Importing this package is cheap (no numpy/pydicom); the work is in

- :mod:`.layout`: columns of ``reads.csv``, readers, findings, the finding -> subtype mapping, folder
  names and the series rule (the single source of truth);
- :mod:`.tables`: ``reads.csv`` (columns by name, every row checked) and the majority read;
- :mod:`.convert`: the converter (headers read in workers, one series chosen per scan, slices
  windowed and stored; the reads, the reader agreement and the series choice reported);
- :mod:`.synth`: a synthetic download in the real layout (three readers who mostly agree, 2-3 series
  per scan, head phantoms whose hemorrhages match the majority read).

Example:
    >>> from data_prep.cq500 import DATASET
    >>> DATASET.header()["tasks"]["labels"]["class_names"][:3]
    ['any', 'epidural', 'intraparenchymal']
"""

from __future__ import annotations

from data_prep.cq500 import layout as L
from data_prep.rsna_ich.layout import CHANNELS
from medpipe.prepare.cache import parse_cache_size
from medpipe.prepare.spec import DatasetSpec, InputSpec, Option, Task, synth_options

DATASET = DatasetSpec(
    name=L.DATASET_NAME,
    title=L.FULL_NAME,
    summary="head CT (491 scans, DICOM series) read by three radiologists: any hemorrhage + 5 subtypes per scan "
            "(majority read), as a test-only set: every record in `test`, no folds (--folds/--test-fraction do not "
            "apply)",
    description="CQ500 (qure.ai) prepared by medpipe as an external test set: one series per scan (plain, closest to "
                "--slice-thickness), each slice an RGB PNG of three HU windows (brain, subdural, soft tissue); labels "
                "per scan = majority of three readers mapped to any + 5 subtypes; each reader's labels kept",
    version="1",
    converter="data_prep.cq500.convert:Cq500Converter",
    tasks={"labels": Task("multilabel", L.SUBTYPES)},
    input=InputSpec(modality="CT", channels=len(CHANNELS)),
    options=(
        Option("reads", None, f"the reads file (default: the one {L.READS_FILE} under --src)", str, metavar="FILE"),
        Option("slice_thickness", L.DEFAULT_SLICE_THICKNESS,
               "series choice: among a scan's plain axial series (not bone, post contrast, localizer or reformat; "
               f"at least {L.MIN_SLICES} slices) the one whose slice thickness is closest to MM", L.parse_thickness,
               metavar="MM"),
        Option("cache_size", 0, "store each slice resized (longer side PX, never enlarged) instead of at the DICOM's "
                                "size (512); use the --cache-size of the training set (0: full size)",
               parse_cache_size, metavar="PX"),
    ),
    synthesizer="data_prep.cq500.synth:synthesize",
    synth_options=synth_options(
        patients=20, size=64, seed=0, min_patients=4, min_size=32, max_size=512,
        size_hint="Smaller slices cannot show a hemorrhage; the real DICOMs are 512",
        patients_hint="The set needs scans with and without a hemorrhage",
    ),
    prepare_examples="""\
        medpipe prepare cq500 --src ~/Downloads/cq500 --out data/cq500 --cache-size 256
        medpipe prepare cq500 --src DIR --out data/cq500-thin --slice-thickness 0.625 --workers 8
        medpipe prepare cq500 --src DIR --out data/cq500-reads --reads /data/CQ500/reads.csv   # the reads alone
        # then, with a model trained on rsna-ich (same --cache-size):
        medpipe evaluate sich_multilabel --ckpt_path runs/sich_multilabel/models/model.pt --dataset_dir data/cq500 \\
            --records test
    """,
    synth_examples="""\
        medpipe synth cq500 --out data/cq500-raw                 # 20 scans, 64-px slices, 3 series each, ~2 s
        medpipe prepare cq500 --src data/cq500-raw --out data/cq500
    """,
)

#: ``PrepareOptions(slice_thickness=0.625)``: the options of :func:`prepare` as a dataclass
PrepareOptions = DATASET.options_type("PrepareOptions")


def prepare(src, out, options=None, workers: int | None = None, progress=None) -> dict:
    """``medpipe prepare cq500`` from Python: see :func:`medpipe.prepare.engine.prepare`.

    Example:
        >>> rep = prepare("cq500", "data/cq500", {"cache_size": 256})  # doctest: +SKIP
    """
    from medpipe.prepare.engine import prepare as run

    return run(DATASET, src, out, options, workers=workers, progress=progress)
