"""``medpipe run``: run a pipeline YAML (:mod:`medpipe.pipelines.runner`)."""

from __future__ import annotations

import argparse

EXAMPLES = """\
    examples:
      medpipe run pipelines/phe_sich.yaml                                   # synthetic data, offline
      medpipe run pipelines/phe_sich.yaml --src ~/PHE-SICH-CT-IDS --work_dir runs/phe_real
      medpipe run pipelines/phe_sich.yaml --from sich_seg --seg_epochs 20
      medpipe run pipelines/chest_xray.yaml --kfold all                     # one model per validation fold
      medpipe run pipelines/pneumonia.yaml --external_src ~/hospital_export # internal vs external
      medpipe run pipelines/pneumonia.yaml --help                           # a pipeline's steps and parameters
    """


class PipelineHelp(argparse.Action):
    """``-h/--help``: the usage, then (after a pipeline file) its steps and parameters with defaults and meaning."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        path = getattr(namespace, "pipeline", None)
        if path:
            from medpipe.errors import UserError
            from medpipe.pipelines.runner import params_help

            try:
                print("\n" + params_help(path))
            except UserError as e:
                print(f"\n{e}")
        else:
            print("\n`medpipe run PIPELINE.yaml --help` lists that pipeline's steps and parameters.")
        parser.exit()


def add_parsers(sub) -> None:
    from medpipe.cli import epilog

    pr = sub.add_parser("run", help="run a pipeline (pipelines/NAME.yaml): prepare -> bundles -> report",
                        description="Run the steps of a pipeline YAML, skipping those whose outputs are up to date. "
                                    "Any --KEY VALUE overrides a parameter of the pipeline.",
                        epilog=epilog(EXAMPLES), formatter_class=argparse.RawDescriptionHelpFormatter,
                        add_help=False)
    pr.add_argument("-h", "--help", action=PipelineHelp,
                    help="show this help (after a PIPELINE: its steps and parameters) and exit")
    pr.add_argument("pipeline", help="pipeline YAML, e.g. pipelines/phe_sich.yaml")
    pr.add_argument("--from", dest="from_step", metavar="STEP", help="force STEP and every later step to run")
    pr.add_argument("--only", metavar="STEP", help="run only STEP (its upstream steps must have run)")
    pr.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    from medpipe.engines.tracking import TRACKERS

    pr.add_argument("--tracking", choices=TRACKERS, default=None,
                    help="tracker of the training steps (medpipe train --tracking): mlflow also records each "
                         "model's training in runs/mlruns (default: TensorBoard only)")
    pr.set_defaults(handler=run, accepts_overrides=True)


def run(args, extra: list[str]) -> int:
    from medpipe.bundle.runner import parse_overrides
    from medpipe.pipelines.runner import PipelineRunner, load_pipeline

    pipe = load_pipeline(args.pipeline, parse_overrides(extra))
    return PipelineRunner(pipe, dry_run=args.dry_run, tracking=args.tracking).run(from_step=args.from_step,
                                                                                    only=args.only)
