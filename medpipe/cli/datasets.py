"""``medpipe prepare DATASET`` and ``medpipe synth DATASET``, built from the dataset registry.

This is the only place in ``medpipe`` that reads :mod:`data_prep` (the registry of datasets):
everything below the CLI gets what it needs from the prepared dataset or the checkpoint.
"""

from __future__ import annotations

import argparse

DATASETS_PREPARE = ("phe-sich",)
DATASETS_SYNTH = ("phe-sich",)

PREPARE_EXAMPLES = """\
    examples:
      medpipe prepare phe-sich --src ~/Downloads/PHE-SICH-CT-IDS --out data/phe-sich
      medpipe prepare phe-sich --src ~/Downloads/PHE-SICH-CT-IDS/SubdatasetC_PNG --out data/phe-sich --folds 5 --test-fraction 0.2
    """
SYNTH_EXAMPLES = """\
    examples:
      medpipe synth phe-sich --out data/phe-sich-raw                 # small, fast (12 patients, 128 px)
      medpipe synth phe-sich --out /tmp/phe-512 --patients 20 --size 512   # the real geometry
    """


def add_parsers(sub) -> None:
    from medpipe.cli import _positive_int, epilog

    fmt = argparse.RawDescriptionHelpFormatter
    pp = sub.add_parser("prepare", help="turn a downloaded dataset into a prepared, patient-split dataset",
                        description="Convert a dataset as downloaded into datalist.json, reports and exports, "
                                    "with patient-level folds.",
                        epilog=epilog(PREPARE_EXAMPLES), formatter_class=fmt)
    pp.add_argument("dataset", choices=DATASETS_PREPARE, help="dataset name")
    pp.add_argument("--src", required=True, help="the dataset root as downloaded (or one subset folder); never written")
    pp.add_argument("--out", required=True, help="output folder (written atomically; must not be inside --src)")
    pp.add_argument("--folds", type=int, default=5, help="number of patient-level folds (default 5)")
    pp.add_argument("--seed", type=int, default=12345, help="split seed (default 12345)")
    pp.add_argument("--test-fraction", type=float, default=0.0,
                    help="fraction of patients held out as a test set (default 0)")
    pp.add_argument("--val-fold", type=int, default=0, help="fold used as YOLO val split (default 0)")
    pp.add_argument("--subset", default="auto", choices=("auto", "png", "jpg", "nifti"),
                    help="subset the records come from (auto: PNG, then JPG, then NIfTI)")
    pp.add_argument("--class-name", default=None, help="name of the lesion class (default: phe)")
    pp.add_argument("--link", default="auto", choices=("auto", "hardlink", "symlink", "copy"),
                    help="how images enter the output (auto: hard link, else symlink, else copy)")
    pp.add_argument("--workers", type=_positive_int, default=None, help="worker processes (default: all cores)")
    pp.add_argument("--strict", action="store_true", help="any anomaly or skipped file is an error (nothing written)")
    pp.add_argument("--quiet", action="store_true", help="print only the summary")
    pp.set_defaults(handler=prepare)

    ps = sub.add_parser("synth", help="write a synthetic dataset in the real download layout",
                        description="Synthesize a dataset in its real download layout (offline demo and tests).",
                        epilog=epilog(SYNTH_EXAMPLES), formatter_class=fmt)
    ps.add_argument("dataset", choices=DATASETS_SYNTH, help="dataset name")
    ps.add_argument("--out", required=True, help="output folder (created; must be empty or absent)")
    ps.add_argument("--patients", type=_positive_int, default=12, help="number of patients (default 12)")
    ps.add_argument("--size", type=_positive_int, default=128, help="slice size in pixels (default 128; real data: 512)")
    ps.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ps.set_defaults(handler=synth)


def prepare(args, extra=None) -> int:
    from data_prep import get_converter

    conv = get_converter(args.dataset)
    return conv(args)


def synth(args, extra=None) -> int:
    from data_prep.synth import get_synthesizer

    synth = get_synthesizer(args.dataset)
    summary = synth(args.out, patients=args.patients, size=args.size, seed=args.seed,
                    progress=lambda s: print(s, flush=True))
    print(f"synthetic {args.dataset}: {len(summary['patients'])} patients, {summary['slices']} slices "
          f"({summary['positive_slices']} with a box), {summary['files']} files in {summary['out']}")
    if summary.get("quirks"):
        print("quirks reproduced: " + "; ".join(map(str, summary["quirks"])))
    return 0
