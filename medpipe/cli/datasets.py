"""``medpipe prepare DATASET`` and ``medpipe synth DATASET``, built from the dataset registry.

This is the only place in ``medpipe`` that reads :mod:`data_prep` (the registry of datasets):
everything below the CLI gets what it needs from the prepared dataset or the checkpoint. Each
dataset gets its own sub-parser with the common options plus the ones its
:class:`~medpipe.prepare.spec.DatasetSpec` declares, so ``medpipe prepare DATASET --help`` shows
exactly what applies to it.
"""

from __future__ import annotations

import argparse
import textwrap

PREPARE_EPILOG = """\
    examples:
      medpipe prepare phe-sich --src ~/Downloads/PHE-SICH-CT-IDS --out data/phe-sich
      medpipe prepare phe-sich --help        # the options of one dataset
    """
SYNTH_EPILOG = """\
    examples:
      medpipe synth phe-sich --out data/phe-sich-raw
      medpipe synth phe-sich --help          # the options of one dataset
    """

NNUNET_EPILOG = """\
    examples:
      medpipe export-nnunet --dataset_dir data/phe-sich --out nnUNet_raw --preprocessed nnUNet_preprocessed
      nnUNet_raw=$PWD/nnUNet_raw nnUNet_preprocessed=$PWD/nnUNet_preprocessed \\
        nnUNetv2_plan_and_preprocess -d 501 -c 2d --verify_dataset_integrity
    needs nothing beyond medpipe; training with nnU-Net needs `pip install -e '.[nnunet]'`.
    """


def _examples(text: str) -> str:
    body = textwrap.dedent(text).strip("\n")
    return "examples:\n" + textwrap.indent(body, "  ") + "\n" if body else ""


def add_parsers(sub) -> None:
    from data_prep import specs
    from medpipe.cli import Parser, _positive_int, epilog
    from medpipe.prepare.spec import COMMON_OPTIONS

    fmt = argparse.RawDescriptionHelpFormatter
    all_specs = specs()
    common_names = {o.name for o in COMMON_OPTIONS}

    pp = sub.add_parser("prepare", help="turn a downloaded dataset into a prepared, patient-split dataset",
                        description="Convert a dataset as downloaded into datalist.json, reports and exports, "
                                    "with patient-level folds. Run `medpipe prepare DATASET --help` for the "
                                    "options of one dataset.",
                        epilog=epilog(PREPARE_EPILOG), formatter_class=fmt)
    psub = pp.add_subparsers(dest="dataset", metavar="DATASET", parser_class=Parser, required=True,
                             title="datasets")
    for name, spec in all_specs.items():
        p = psub.add_parser(name, help=f"{spec.title}: {spec.summary}", description=f"Prepare {spec.title}: {spec.summary}.",
                            epilog=_examples(spec.prepare_examples), formatter_class=fmt)
        p.add_argument("--src", required=True, metavar="DIR", help="the dataset as downloaded; never written")
        p.add_argument("--out", required=True, metavar="DIR",
                       help="output folder: absent, empty, or written by an earlier prepare (replaced atomically; "
                            "must not be inside --src)")
        for o in spec.all_options():
            if o.name in common_names:
                o.add_to(p)
        p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="worker processes (default: all cores, at most 8)")
        p.add_argument("--quiet", action="store_true", help="print only the summary")
        own = p.add_argument_group(f"{name} options") if spec.options else None
        for o in spec.options:
            o.add_to(own)
        p.set_defaults(handler=prepare, option_names=[o.name for o in spec.all_options()])

    ps = sub.add_parser("synth", help="write a synthetic dataset in the real download layout",
                        description="Synthesize a dataset in its real download layout (offline demo and tests). "
                                    "Run `medpipe synth DATASET --help` for the options of one dataset.",
                        epilog=epilog(SYNTH_EPILOG), formatter_class=fmt)
    ssub = ps.add_subparsers(dest="dataset", metavar="DATASET", parser_class=Parser, required=True,
                             title="datasets")
    for name, spec in all_specs.items():
        if not spec.synthesizer:
            continue
        p = ssub.add_parser(name, help=f"synthetic {spec.title}", description=f"Synthesize {spec.title} in its "
                            f"real download layout, quirks included.",
                            epilog=_examples(spec.synth_examples), formatter_class=fmt)
        p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; must be empty, absent, or an earlier "
                                                    "synthetic set made with the same options)")
        for o in spec.synth_options:
            o.add_to(p)
        p.set_defaults(handler=synth, option_names=[o.name for o in spec.synth_options])

    pn = sub.add_parser("export-nnunet", help="write a prepared segmentation dataset as nnU-Net v2 raw data, "
                                              "with its patient folds as splits_final.json",
                        description="Write a prepared 2D segmentation dataset (datalist.json with masks) as an "
                                    "nnU-Net v2 raw dataset OUT/DatasetNNN_NAME (imagesTr, labelsTr 0/1, imagesTs, "
                                    "dataset.json, medpipe_cases.csv) and the datalist's patient folds as "
                                    "splits_final.json in PREPROCESSED/DatasetNNN_NAME/, where nnU-Net's trainer "
                                    "reads them, so that nnU-Net fold k validates on our fold k. Atomic; the "
                                    "prepared dataset is only read; an unchanged re-run does nothing.",
                        epilog=epilog(NNUNET_EPILOG), formatter_class=fmt)
    pn.add_argument("--dataset_dir", required=True, metavar="DIR",
                    help="the prepared dataset (medpipe prepare's --out)")
    pn.add_argument("--out", metavar="DIR", default=None, help="nnU-Net raw folder (default: $nnUNet_raw)")
    pn.add_argument("--preprocessed", metavar="DIR", default=None,
                    help="nnU-Net preprocessed folder that receives splits_final.json (default: $nnUNet_preprocessed)")
    pn.add_argument("--id", type=_positive_int, default=501, metavar="N", dest="nnunet_id",
                    help="nnU-Net dataset id, 1..999 (default: 501)")
    pn.add_argument("--name", default=None, metavar="NAME",
                    help="dataset name (default: the datalist's dataset in capitals, e.g. PHESICH)")
    pn.add_argument("--overwrite", action="store_true",
                    help="replace an earlier export of this id made from other data (only a folder this command wrote)")
    pn.set_defaults(handler=export_nnunet)


def prepare(args, extra=None) -> int:
    """Run :func:`medpipe.prepare.engine.prepare` and print a summary."""
    from data_prep import get_spec
    from medpipe.prepare.engine import prepare as run
    from medpipe.prepare.engine import summary_lines

    spec = get_spec(args.dataset)
    options = {k: getattr(args, k) for k in args.option_names}
    say = None if args.quiet else (lambda s: print(s, flush=True))
    rep = run(spec, args.src, args.out, options, workers=args.workers, progress=say)
    if rep.get("up_to_date"):
        if args.quiet:
            print(f"{rep['output_path']}: up to date; nothing to do.")
        return 0
    for line in summary_lines(spec, rep):
        print("  " + line)
    print(f"wrote {rep['output_path']}: {', '.join(rep.get('outputs_written') or ['datalist.json'])}")
    return 0


def synth(args, extra=None) -> int:
    """Run the dataset's synthesizer and print what it wrote."""
    from data_prep import get_spec

    spec = get_spec(args.dataset)
    fn = spec.load_synthesizer()
    options = {k: getattr(args, k) for k in args.option_names}
    try:
        summary = fn(args.out, progress=lambda s: print(s, flush=True), **options)
    except OSError as e:
        import errno

        from medpipe.errors import UserError

        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR):
            raise
        raise UserError(f"--out {args.out}: cannot write {e.filename or args.out} ({e.strerror}). Nothing was "
                        f"left behind; choose a folder you can write to.") from e
    slices, images = summary.get("slices"), summary.get("images")
    what = (f"{slices} slices ({summary.get('positive_slices', 0)} with a box), " if slices is not None
            else f"{images} images, " if images is not None else "")
    print(f"synthetic {args.dataset}: {len(summary['patients'])} patients, {what}{summary['files']} dataset files "
          f"in {summary['out']} (plus medpipe's marker file)")
    if summary.get("quirks"):
        print("quirks reproduced: " + "; ".join(q.get("kind", str(q)) if isinstance(q, dict) else str(q)
                                                for q in summary["quirks"]))
    folds = next((o.default for o in spec.all_options() if o.name == "folds"), 5)
    if len(summary["patients"]) < folds:
        print(f"note: {len(summary['patients'])} patients are fewer than the {folds} folds `medpipe prepare` makes by "
              f"default; prepare this set with --folds {max(2, len(summary['patients']))} or fewer.")
    return 0


def export_nnunet(args, extra=None) -> int:
    """Run :func:`medpipe.prepare.nnunet.export_nnunet` and print what it wrote."""
    import os

    from medpipe.errors import UserError
    from medpipe.prepare.nnunet import export_nnunet as run

    raw = args.out or os.environ.get("nnUNet_raw")
    if not raw:
        raise UserError("export-nnunet: no --out given and $nnUNet_raw is not set; pass --out DIR (nnU-Net's raw "
                        "folder, where DatasetNNN_NAME is written).")
    pre = args.preprocessed or os.environ.get("nnUNet_preprocessed")
    rep = run(args.dataset_dir, raw, dataset_id=args.nnunet_id, name=args.name, preprocessed_dir=pre,
              results_dir=os.environ.get("nnUNet_results"), overwrite=args.overwrite,
              progress=lambda s: print(s, flush=True))
    print(f"{rep['dataset_name']}: {rep['num_training']} training cases in {rep['folds']} folds (patients per fold: "
          f"{', '.join(map(str, rep['patients']))}), {rep['num_test']} test cases; labels {rep['labels']}")
    print(f"splits: {rep['splits_file'] or os.path.join(rep['raw'], 'splits_final.json') + ' (raw copy only)'}")
    for note in rep["notes"]:
        print(f"note: {note}")
    return 0
