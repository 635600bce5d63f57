"""RSNA Intracranial Hemorrhage Detection 2019 (head-CT slices as DICOM; any hemorrhage + 5 subtypes per slice).

The dataset's declaration (:data:`DATASET`): tasks, input, options, where its converter and
synthesizer live. Importing this package is cheap (no numpy/pydicom); the work is in

- :mod:`.layout`: file and folder names, the image-id pattern, the label order :data:`~.layout.SUBTYPES`,
  the known corrupt image (the single source of truth);
- :mod:`.tables`: the label file (six rows per image, pivoted; repeated and conflicting rows,
  ``any`` vs the subtypes) and the sample submission;
- :mod:`.convert`: the converter (every header read once in worker processes, slices grouped into
  series by ``SeriesInstanceUID`` and ordered along the slice normal; each slice read in HU with
  :func:`medpipe.io.ct_dicom.read_ct_hu`, the 12-bit encoding fixed, stored once as an RGB PNG of the
  brain, subdural and soft-tissue windows; neighbours linked for 2.5-D models; bad DICOMs skipped
  with their reason; patient-level folds by iterative stratification; ``--test-size``; the
  unlabelled test slices listed for inference);
- :mod:`.phantom`: a head-CT phantom in HU with the five subtypes' shapes;
- :mod:`.synth`: a synthetic download in the real layout and with its quirks.

Example:
    >>> from data_prep.rsna_ich import DATASET
    >>> DATASET.header()["tasks"]["labels"]["class_names"][:2]
    ['any', 'epidural']
"""

from __future__ import annotations

from data_prep.rsna_ich import layout as L
from medpipe.prepare.cache import parse_cache_size
from medpipe.prepare.spec import DatasetSpec, InputSpec, Option, Task, synth_options

DATASET = DatasetSpec(
    name=L.DATASET_NAME,
    title=L.FULL_NAME,
    summary="head-CT slices (DICOM) labelled per slice with any hemorrhage and the epidural, intraparenchymal, "
            "intraventricular, subarachnoid and subdural subtypes",
    description="RSNA Intracranial Hemorrhage Detection 2019 prepared by medpipe: each CT slice stored as an RGB PNG "
                "of three HU windows (brain, subdural, soft tissue), labels = any + 5 subtypes, series ordered "
                "along z with neighbours for 2.5-D models",
    version="1",
    converter="data_prep.rsna_ich.convert:RsnaIchConverter",
    tasks={"labels": Task("multilabel", L.SUBTYPES)},
    input=InputSpec(modality="CT", channels=len(L.CHANNELS)),
    options=(
        Option("test_size", 0, "number of patients held out as the test set, stratified like the folds (0: none; "
                               "or use --test-fraction)", int, min=0, metavar="N"),
        Option("cache_size", 0, "store each slice resized (longer side PX, never enlarged) instead of at the DICOM's "
                                "size (512 in the real set), so training never decodes a full slice (0: full "
                                "size)", parse_cache_size, metavar="PX"),
    ),
    synthesizer="data_prep.rsna_ich.synth:synthesize",
    synth_options=synth_options(
        patients=40, size=64, seed=0, min_patients=5, min_size=32, max_size=512,
        size_hint="Smaller slices cannot show a hemorrhage; the real DICOMs are 512",
        patients_hint="Every subtype needs a patient and `medpipe prepare` needs at least as many as --folds (5)",
    ),
    prepare_examples="""\
        medpipe prepare rsna-ich --src ~/rsna-intracranial-hemorrhage-detection --out data/rsna-ich --cache-size 256
        medpipe prepare rsna-ich --src DIR --out data/rsna-ich --test-size 500 --workers 8
    """,
    synth_examples="""\
        medpipe synth rsna-ich --out data/rsna-ich-raw                   # 40 patients, 64-px slices, a few seconds
        medpipe synth rsna-ich --out /tmp/rsna-ich-256 --patients 100 --size 256
    """,
)

#: ``PrepareOptions(cache_size=256)``: the options of :func:`prepare` as a dataclass
PrepareOptions = DATASET.options_type("PrepareOptions")


def prepare(src, out, options=None, workers: int | None = None, progress=None) -> dict:
    """``medpipe prepare rsna-ich`` from Python: see :func:`medpipe.prepare.engine.prepare`.

    Example:
        >>> rep = prepare("rsna-ich-download", "data/rsna-ich", {"cache_size": 256})  # doctest: +SKIP
    """
    from medpipe.prepare.engine import prepare as run

    return run(DATASET, src, out, options, workers=workers, progress=progress)
