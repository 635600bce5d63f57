"""The ``medpipe`` command: a thin layer over the Python API.

Heavy libraries (torch, monai, ultralytics, pandas) are imported only inside the commands that need
them, so ``medpipe --help`` and ``medpipe prepare --help`` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

DATASETS_PREPARE = ("phe-sich",)
DATASETS_SYNTH = ("phe-sich",)

EXAMPLES = {
    "prepare": """\
        examples:
          medpipe prepare phe-sich --src ~/Downloads/PHE-SICH-CT-IDS --out data/phe-sich
          medpipe prepare phe-sich --src ~/Downloads/PHE-SICH-CT-IDS/SubdatasetC_PNG --out data/phe-sich --folds 5 --test-fraction 0.2
        """,
    "train": """\
        examples:
          medpipe train sich_cls                                   # defaults: data/phe-sich -> runs/sich_cls
          medpipe train sich_seg --max_epochs 5 --image_size 128 --device cpu
        """,
    "evaluate": """\
        examples:
          medpipe evaluate sich_cls --ckpt_path runs/sich_cls/models/model.pt
        """,
    "infer": """\
        examples:
          medpipe infer sich_cls --ckpt_path runs/sich_cls/models/model.pt --input slices/ --output_dir runs/infer
          medpipe infer sich_seg --ckpt_path runs/sich_seg/models/model.pt --input 0001.nii.gz
        """,
    "export": """\
        examples:
          medpipe export sich_cls --ckpt_path runs/sich_cls/models/model.pt --format onnx
          medpipe export sich_seg --ckpt_path runs/sich_seg/models/model.pt --format torchscript --output model.ts
        """,
    "run": """\
        examples:
          medpipe run pipelines/phe_sich.yaml                                   # synthetic data, offline
          medpipe run pipelines/phe_sich.yaml --src ~/PHE-SICH-CT-IDS --work_dir runs/phe_real
          medpipe run pipelines/phe_sich.yaml --from sich_seg --seg_epochs 20
        """,
    "synth": """\
        examples:
          medpipe synth phe-sich --out data/phe-sich-raw                 # small, fast (12 patients, 128 px)
          medpipe synth phe-sich --out /tmp/phe-512 --patients 20 --size 512   # the real geometry
        """,
}


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from medpipe import __version__

    p = argparse.ArgumentParser(
        prog="medpipe",
        description="Reproducible medical imaging pipelines: public datasets as downloaded -> "
                    "prepared datasets -> MONAI bundles (train, evaluate, infer, export).",
        epilog="Run `medpipe COMMAND --help` for the options and an example of each command.",
    )
    p.add_argument("--version", action="version", version=f"medpipe {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    fmt = argparse.RawDescriptionHelpFormatter
    pp = sub.add_parser("prepare", help="turn a downloaded dataset into a prepared, patient-split dataset",
                        description="Convert a dataset as downloaded into datalist.json, reports and exports, "
                                    "with patient-level folds.",
                        epilog=textwrap.dedent(EXAMPLES["prepare"]), formatter_class=fmt)
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

    bundles = ("sich_cls", "sich_seg", "sich_det")
    for name, helptext in (("train", "train a bundle (python -m monai.bundle run ... train.json)"),
                           ("evaluate", "evaluate a checkpoint (train.json + evaluate.json)"),
                           ("infer", "run inference on a folder of slices or a NIfTI volume (inference.json)"),
                           ("export", "export to TorchScript or ONNX and check parity with the eager model")):
        pb = sub.add_parser(name, help=helptext, description=helptext + ". Any --KEY VALUE is passed on as a "
                            "bundle config override; the monai.bundle command is printed before it runs.",
                            epilog=textwrap.dedent(EXAMPLES[name]), formatter_class=fmt)
        pb.add_argument("bundle", choices=bundles, help="bundle name")
        if name in ("evaluate", "infer", "export"):
            pb.add_argument("--ckpt_path", required=name != "evaluate", help="checkpoint (models/model.pt)")
        if name == "infer":
            pb.add_argument("--input", required=True, help="folder of PNG/JPG slices, one slice, or a .nii/.nii.gz volume")
        if name == "export":
            pb.add_argument("--format", required=True, choices=("torchscript", "onnx"))
            pb.add_argument("--output", help="output file (default: next to the checkpoint)")
        pb.add_argument("--dry-run", action="store_true", help="print the monai.bundle command without running it")

    pr = sub.add_parser("run", help="run a pipeline (pipelines/NAME.yaml): prepare -> bundles -> report",
                        description="Run the steps of a pipeline YAML, skipping those whose outputs are up to date. "
                                    "Any --KEY VALUE overrides a parameter of the pipeline.",
                        epilog=textwrap.dedent(EXAMPLES["run"]), formatter_class=fmt)
    pr.add_argument("pipeline", help="pipeline YAML, e.g. pipelines/phe_sich.yaml")
    pr.add_argument("--from", dest="from_step", metavar="STEP", help="force STEP and every later step to run")
    pr.add_argument("--only", metavar="STEP", help="run only STEP (its upstream steps must have run)")
    pr.add_argument("--dry-run", action="store_true", help="print the commands without running them")

    ps = sub.add_parser("synth", help="write a synthetic dataset in the real download layout",
                        description="Synthesize a dataset in its real download layout (offline demo and tests).",
                        epilog=textwrap.dedent(EXAMPLES["synth"]), formatter_class=fmt)
    ps.add_argument("dataset", choices=DATASETS_SYNTH, help="dataset name")
    ps.add_argument("--out", required=True, help="output folder (created; must be empty or absent)")
    ps.add_argument("--patients", type=_positive_int, default=12, help="number of patients (default 12)")
    ps.add_argument("--size", type=_positive_int, default=128, help="slice size in pixels (default 128; real data: 512)")
    ps.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return p


def cmd_prepare(args) -> int:
    from data_prep import get_converter

    conv = get_converter(args.dataset)
    return conv(args)


def cmd_synth(args) -> int:
    from data_prep.synth import get_synthesizer

    synth = get_synthesizer(args.dataset)
    summary = synth(args.out, patients=args.patients, size=args.size, seed=args.seed,
                    progress=lambda s: print(s, flush=True))
    print(f"synthetic {args.dataset}: {len(summary['patients'])} patients, {summary['slices']} slices "
          f"({summary['positive_slices']} with a box), {summary['files']} files in {summary['out']}")
    if summary.get("quirks"):
        print("quirks reproduced: " + "; ".join(map(str, summary["quirks"])))
    return 0


def cmd_run(args, extra: list[str]) -> int:
    from medpipe.bundle.runner import parse_overrides
    from medpipe.pipelines.runner import PipelineRunner, load_pipeline

    overrides = {k: v for k, v in parse_overrides(extra).items()}
    pipe = load_pipeline(args.pipeline, overrides)
    return PipelineRunner(pipe, dry_run=args.dry_run).run(from_step=args.from_step, only=args.only)


def cmd_bundle(args, extra: list[str]) -> int:
    from medpipe.bundle.runner import monai_command, parse_overrides, show_and_run

    ov = parse_overrides(extra)
    for key in ("ckpt_path", "input"):
        if getattr(args, key, None):
            ov.update(parse_overrides([f"--{key}", getattr(args, key)]))
    if args.command == "export":
        from medpipe.bundle.export import export

        return export(args.bundle, ov.pop("ckpt_path"), args.format, args.output, ov)
    configs = {"train": ["train.json"], "evaluate": ["train.json", "evaluate.json"],
               "infer": ["inference.json"]}[args.command]
    return show_and_run(monai_command("run", args.bundle, ov, configs), dry_run=args.dry_run)


COMMANDS = {"prepare": cmd_prepare, "synth": cmd_synth}
BUNDLE_COMMANDS = ("train", "evaluate", "infer", "export", "run")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``medpipe`` console script."""
    from medpipe.utils.env import offline_env

    offline_env()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in BUNDLE_COMMANDS:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not args.command:
        parser.print_help()
        return 2
    from medpipe.errors import UserError

    try:
        if args.command == "run":
            return cmd_run(args, extra)
        if args.command in BUNDLE_COMMANDS:
            return cmd_bundle(args, extra)
        return COMMANDS[args.command](args) or 0
    except UserError as e:
        if args.debug:
            raise
        print(f"medpipe {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FileExistsError as e:
        if args.debug:
            raise
        print(f"medpipe {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medpipe {args.command}: interrupted; outputs were left untouched.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
