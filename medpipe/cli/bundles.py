"""``medpipe train|evaluate|infer|export BUNDLE``: thin wrappers over ``monai.bundle``."""

from __future__ import annotations

import argparse

from medpipe.bundle import BUNDLES

#: ``medpipe infer --engine`` choices (as medpipe.inferers.engines.ENGINES, which imports torch)
ENGINES = ("eager", "torchscript", "onnx")

EXAMPLES = {
    "train": """\
        examples:
          medpipe train sich_cls                                   # defaults: data/phe-sich -> runs/sich_cls
          medpipe train sich_seg --max_epochs 5 --image_size 128 --device cpu
          medpipe train cxr14_cls --dataset_dir data/cxr14 --image_size 128 --network_name xception
          medpipe train sich_cls --tracking mlflow                 # also an MLflow run in runs/mlruns
        """,
    "evaluate": """\
        examples:
          medpipe evaluate sich_cls --ckpt_path runs/sich_cls/models/model.pt
          medpipe evaluate cxr14_cls --ckpt_path runs/cxr14_cls/models/model.pt --records test --tta ten_crop
          medpipe evaluate cxr_pneumonia --ckpt_path runs/cxr_pneumonia/models/model.pt --dataset_dir data/hospital --records test
        """,
    "infer": """\
        examples:
          medpipe infer sich_cls --ckpt_path runs/sich_cls/models/model.pt --input slices/ --output_dir runs/infer
          medpipe infer sich_seg --ckpt_path runs/sich_seg/models/model.pt --input 0001.nii.gz
          medpipe infer cxr_pneumonia --ckpt_path runs/cxr_pneumonia/models/model.pt --input stage_2_test_images/
          medpipe infer sich_cls --ckpt_path runs/sich_cls/models/model.pt --input slices/ --engine onnx
        """,
    "export": """\
        examples:
          medpipe export sich_cls --ckpt_path runs/sich_cls/models/model.pt --format onnx
          medpipe export sich_seg --ckpt_path runs/sich_seg/models/model.pt --format torchscript --output model.ts
        """,
}
USAGE = {"train": "medpipe train [-h] [--dry-run] BUNDLE [--KEY VALUE ...]",
         "evaluate": "medpipe evaluate [-h] [--dry-run] BUNDLE --ckpt_path P [--dataset_dir D] [--records R] "
                     "[--output_dir O] [--KEY VALUE ...]",
         "infer": "medpipe infer [-h] [--dry-run] BUNDLE --ckpt_path P --input PATH [--output_dir O] "
                  "[--engine {eager,torchscript,onnx}] [--KEY VALUE ...]",
         "export": "medpipe export [-h] [--dry-run] BUNDLE --ckpt_path P --format {torchscript,onnx} [--output PATH]"}
HELP = {"train": "train a bundle (python -m monai.bundle run ... train.json)",
        "evaluate": "evaluate a checkpoint (train.json + evaluate.json)",
        "infer": "run inference on a folder of slices or a NIfTI volume (inference.json)",
        "export": "export to TorchScript or ONNX and check parity with the eager model"}


class BundleHelp(argparse.Action):
    """``-h/--help``: the command's usage, then (after a bundle name) that bundle's settings and docs."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        bundle = getattr(namespace, "bundle", None)
        if bundle in BUNDLES:
            from medpipe.bundle.helptext import settings_section
            from medpipe.bundle.runner import repo_root

            print()
            print(settings_section(repo_root(), bundle, parser.prog.split()[-1]))
        else:
            print(f"\n`{parser.prog} BUNDLE --help` lists that bundle's settings with their defaults.")
        parser.exit()


def add_parsers(sub) -> None:
    from medpipe.cli import epilog

    for name, helptext in HELP.items():
        pb = sub.add_parser(name, help=helptext, description=helptext + ". Any --KEY VALUE is passed on as a "
                            "bundle config override; the monai.bundle command is printed before it runs.",
                            epilog=epilog(EXAMPLES[name]), formatter_class=argparse.RawDescriptionHelpFormatter,
                            add_help=False, usage=USAGE[name])
        pb.add_argument("-h", "--help", action=BundleHelp, help="show this help (with a BUNDLE: its settings) and exit")
        pb.add_argument("bundle", choices=tuple(BUNDLES), help="bundle name: " + ", ".join(
            f"{n} ({s.title})" for n, s in BUNDLES.items()))
        if name in ("evaluate", "infer", "export"):
            pb.add_argument("--ckpt_path", required=name != "evaluate", help="checkpoint (models/model.pt)")
        if name == "infer":
            pb.add_argument("--input", required=True, help="folder of PNG/JPG slices, one slice, or a .nii/.nii.gz volume")
            pb.add_argument("--engine", choices=ENGINES, help="what runs the network: eager (PyTorch, default), "
                            "torchscript (models/model.ts) or onnx (models/model.onnx on onnxruntime); a missing "
                            "file is exported next to the checkpoint on first use, and any is checked against "
                            "the eager network (max abs diff <= 1e-4) before it runs")
        if name == "export":
            pb.add_argument("--format", required=True, choices=("torchscript", "onnx"))
            pb.add_argument("--output", help="output file (default: next to the checkpoint)")
        pb.add_argument("--dry-run", action="store_true", help="print the monai.bundle command without running it")
        pb.set_defaults(handler=run, accepts_overrides=True)


def run(args, extra: list[str]) -> int:
    from medpipe.bundle.runner import parse_overrides, run_bundle

    ov = parse_overrides(extra)
    for key in ("ckpt_path", "input"):
        if getattr(args, key, None):
            ov.update(parse_overrides([f"--{key}", getattr(args, key)]))
    engine = getattr(args, "engine", None)
    if engine:
        from medpipe.bundle.registry import get_bundle

        if get_bundle(args.bundle).engine == "monai":
            ov["engine"] = engine
        elif engine != "eager":
            from medpipe.errors import UserError

            raise UserError(f"--engine {engine}: {args.bundle} runs on the ultralytics engine, whose predictor "
                            f"runs its own PyTorch model; only --engine eager is available for it. To run an "
                            f"exported model, write it with `medpipe export {args.bundle} --ckpt_path "
                            f"{args.ckpt_path} --format {engine}` and load it as the section 'Use the exported "
                            f"model' of bundles/{args.bundle}/docs/README.md shows.")
    if args.command == "export":
        from medpipe.bundle.export import export

        return export(args.bundle, ov.pop("ckpt_path"), args.format, args.output, ov, dry_run=args.dry_run)
    return run_bundle(args.command, args.bundle, ov, dry_run=args.dry_run)
