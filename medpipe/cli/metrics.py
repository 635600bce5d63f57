"""``medpipe metrics``: metric helpers over files (:mod:`medpipe.metrics.confusion`)."""

from __future__ import annotations

import argparse

EXAMPLES = """\
    examples:
      medpipe metrics confusion published_cm.csv                      # a paper's matrix, rows = truth
      medpipe metrics confusion cm.csv --classes none,epidural,subdural --json cm_metrics.json
    """

CONFUSION_EXAMPLES = """\
    MATRIX.csv holds counts, rows = true class, columns = predicted class; a plain square, or with
    class names as a header row and as the first column (separated by , ; or tab), e.g.:

      true\\pred,a,b,c
      a,50,3,1
      b,4,40,6
      c,0,0,0

    Macro means are over the classes present (support > 0); an absent class is listed and has no
    sensitivity. The "absent classes counted as 0" line shows the convention some papers use.

    examples:
      medpipe metrics confusion published_cm.csv
      medpipe metrics confusion cm.csv --classes none,epidural,subdural --json cm_metrics.json
    """


def add_parsers(sub) -> None:
    from medpipe.cli import Parser, epilog

    pm = sub.add_parser("metrics", help="metric helpers, e.g. `metrics confusion MATRIX.csv` (any confusion matrix)",
                        description="Metric helpers that work on files, e.g. the metrics of any confusion matrix.",
                        epilog=epilog(EXAMPLES), formatter_class=argparse.RawDescriptionHelpFormatter)
    msub = pm.add_subparsers(dest="metrics_command", metavar="HELPER", parser_class=Parser)
    pc = msub.add_parser("confusion", help="accuracy, balanced accuracy, kappa, per-class and macro rates "
                                           "from a confusion matrix CSV",
                         description="Compute medpipe's multiclass metrics from any confusion matrix (e.g. a "
                                     "published one, to put beside ours) and print them in both conventions: "
                                     "macro over present classes, and absent classes counted as 0.",
                         epilog=epilog(CONFUSION_EXAMPLES), formatter_class=argparse.RawDescriptionHelpFormatter)
    pc.add_argument("matrix", metavar="MATRIX.csv", help="confusion matrix of counts, rows = true class")
    pc.add_argument("--classes", metavar="A,B,C",
                    help="class names in row order (comma separated); must match the file's names if it has any")
    pc.add_argument("--json", metavar="OUT.json", dest="json_out", help="also write the metrics as JSON")
    pc.set_defaults(handler=run_confusion)
    pm.set_defaults(handler=lambda args, extra: _no_helper(pm))


def _no_helper(parser) -> int:
    parser.print_help()
    return 2


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def format_confusion_report(m: dict, source: str = "") -> str:
    """The readable table printed by ``medpipe metrics confusion`` for a :func:`metrics_from_confusion` dict."""
    names = list(m["per_class"])
    c, absent = m["num_classes"], m["absent_classes"]
    w = max(5, *(len(n) for n in names))
    lines = [f"confusion matrix{' ' + source if source else ''}: {c} classes, {m['n']} samples (rows = truth)", "",
             f"{'class':<{w}}  {'support':>7}  {'sensitivity':>11}  {'specificity':>11}  {'precision':>9}  {'F1':>6}"]
    for name, r in m["per_class"].items():
        note = "  absent: no true sample" if name in absent else ""
        lines.append(f"{name:<{w}}  {r['support']:>7}  {_f(r['sensitivity']):>11}  {_f(r['specificity']):>11}  "
                     f"{_f(r['precision']):>9}  {_f(r['f1']):>6}{note}")
    n_present = c - len(absent)
    z = m["macro_absent_as_zero"]
    lines += [
        "",
        f"accuracy           {_f(m['accuracy'])}",
        f"balanced accuracy  {_f(m['balanced_accuracy'])}  (mean sensitivity over the {n_present} present classes)",
        f"Cohen's kappa      {_f(m['kappa'])}",
        "",
        f"macro over the {n_present} present classes: sensitivity {_f(m['sensitivity'])}  specificity "
        f"{_f(m['specificity'])}  precision {_f(m['precision'])}  F1 {_f(m['f1'])}",
        f"absent classes counted as 0, over all {c} classes (the convention some papers use): sensitivity "
        f"{_f(z['sensitivity'])}  precision {_f(z['precision'])}  F1 {_f(z['f1'])}",
        f"absent classes: {', '.join(absent) if absent else 'none (both conventions agree)'}",
    ]
    return "\n".join(lines)


def run_confusion(args, extra: list[str]) -> int:
    from medpipe.errors import UserError
    from medpipe.metrics.confusion import metrics_from_confusion, read_confusion_csv
    from medpipe.utils.fs import write_json

    matrix, names = read_confusion_csv(args.matrix)
    if args.classes:
        given = [s.strip() for s in args.classes.split(",")]
        if len(given) != len(matrix):
            raise UserError(f"--classes names {len(given)} classes {given} but {args.matrix} is a "
                            f"{len(matrix)} x {len(matrix)} matrix; give one name per row, in row order.")
        if names is not None and given != names:
            raise UserError(f"--classes {given} differs from the class names in {args.matrix} ({names}); "
                            "drop --classes or make it match the file.")
        names = given
    try:
        m = metrics_from_confusion(matrix, names)
    except ValueError as e:
        raise UserError(f"{args.matrix}: {e}.") from None
    m = {"source": str(args.matrix), **m}
    print(format_confusion_report(m, str(args.matrix)))
    if args.json_out:
        write_json(args.json_out, m, atomic=True)
        print(f"\nwrote {args.json_out}")
    return 0
