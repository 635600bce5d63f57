"""The ``medpipe`` command: a thin layer over the Python API.

One module per group of commands: :mod:`.datasets` (``prepare``, ``synth``), :mod:`.bundles`
(``train``, ``evaluate``, ``infer``, ``export``) and :mod:`.pipelines` (``run``). Heavy libraries
(torch, monai, ultralytics, pandas) are imported only inside the commands that need them, so
``medpipe --help`` and ``medpipe prepare --help`` start in a fraction of a second.

Errors that are the user's to fix (:class:`medpipe.errors.UserError`, also when MONAI wraps one
raised inside a bundle config) print as one paragraph and exit with status 2; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import difflib
import signal
import sys
import textwrap

from medpipe.cli import bundles, datasets, metrics, pipelines

#: command name -> module that adds its parser (``add_parsers``) and runs it (``run``)
GROUPS = (datasets, bundles, pipelines, metrics)


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


class Parser(argparse.ArgumentParser):
    """argparse with a "did you mean" for unknown choices (commands, datasets, bundles) and exit status 2."""

    def error(self, message: str):  # noqa: D102 - argparse API
        if "invalid choice:" in message:
            import re

            m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
            if m:
                choices = [c.strip().strip("'") for c in m.group(2).split(",")]
                close = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.5)
                if close:
                    message += f"; did you mean {close[0]!r}?"
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (sub-commands added by each group module)."""
    from medpipe import __version__

    p = Parser(
        prog="medpipe",
        description="Reproducible medical imaging pipelines: public datasets as downloaded -> "
                    "prepared datasets -> MONAI bundles (train, evaluate, infer, export).",
        epilog="Run `medpipe COMMAND --help` for the options and an example of each command.",
    )
    p.add_argument("--version", action="version", version=f"medpipe {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for group in GROUPS:
        group.add_parsers(sub)
    return p


def epilog(text: str) -> str:
    """An argparse epilog from an indented example block."""
    return textwrap.dedent(text)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``medpipe`` console script."""
    from medpipe.utils.env import offline_env

    offline_env()
    if argv is None and hasattr(signal, "SIGPIPE"):  # `medpipe ... | head` ends quietly, as shell tools do
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from medpipe.errors import find_user_error

    try:
        return args.handler(args, extra) or 0
    except KeyboardInterrupt:
        print(f"medpipe {args.command}: interrupted; outputs were left untouched.", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - user errors become one paragraph; the rest keep their traceback
        user = find_user_error(e)
        if user is None and isinstance(e, FileExistsError):
            user = e
        if user is None or debug or args.debug:
            raise
        print(f"medpipe {args.command}: error: {user}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
