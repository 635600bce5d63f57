"""Argument-namespace adapters between ``medpipe prepare`` and each converter's Python API."""

from __future__ import annotations


def prepare_phe_sich(args) -> int:
    """``medpipe prepare phe-sich``: run :func:`data_prep.phe_sich.prepare` and print a summary."""
    from data_prep import phe_sich

    opts = phe_sich.PrepareOptions(folds=args.folds, seed=args.seed, test_fraction=args.test_fraction,
                                   val_fold=args.val_fold, subset=args.subset, strict=args.strict,
                                   link=args.link,
                                   **({"class_name": args.class_name} if args.class_name else {}))
    say = None if args.quiet else (lambda s: print(s, flush=True))
    rep = phe_sich.prepare(args.src, args.out, opts, workers=args.workers, progress=say)
    if not rep.get("up_to_date"):
        for line in phe_sich.summary_lines(rep):
            print("  " + line)
        print(f"wrote {rep['output_path']}: datalist.json, labels.csv, prepare_report.md, yolo/data.yaml")
    return 0
