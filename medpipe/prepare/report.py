"""``prepare_report.md`` and the terminal summary: the same facts as ``prepare_report.json``, for people.

The generic sections (source, split, files and their accounting, folds, anomalies, skipped) are
written here; a dataset adds its own sections through its converter's ``report_md``,
``report_facts`` and ``summary_lines``.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict

#: medpipe's own marker files and what they are
OWN_FILES = {".medpipe-synth.json": "medpipe synth marker", ".medpipe-prepare.json": "medpipe prepare marker"}

#: skipped-entry kinds written by the engine (scan problems), in plain words
SKIP_WORDS = {
    "broken_symlink": "dangling symbolic link",
    "symlink_loop": "symbolic link loop",
    "symlink_duplicate": "symbolic link to a folder already scanned",
    "not_a_file": "special file (not a regular file)",
    "unreadable": "unreadable entry",
}


def own_file_reason(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return f"{OWN_FILES.get(name, 'medpipe marker')}, not a dataset file"


def per_class(records, tasks) -> dict:
    """``{"per_class": {task key: {class name: records}}}`` for multiclass and multilabel tasks."""
    out = {}
    for key, t in tasks.items():
        if t.kind == "multiclass":
            c = Counter(r[key] for r in records)
            out[key] = {n: c.get(i, 0) for i, n in enumerate(t.class_names)}
        elif t.kind == "multilabel":
            out[key] = {n: sum(r[key][i] for r in records) for i, n in enumerate(t.class_names)}
    return {"per_class": out} if out else {}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def skipped_breakdown(rep: dict, words: dict | None = None, limit: int = 6) -> list[str]:
    """The skipped files in plain words: one phrase per group, largest first."""
    words = {**SKIP_WORDS, **(words or {})}
    groups: dict[str, list[dict]] = defaultdict(list)
    for s in rep["skipped"]:
        groups[s.get("kind", "other")].append(s)
    phrases = []
    for kind, items in sorted(groups.items(), key=lambda kv: -sum(s.get("files", 1) for s in kv[1])):
        folders = [s for s in items if "files" in s]
        singles = [s for s in items if "files" not in s]
        for s in folders:
            phrases.append((s["files"], f"{s['files']} files under {s['path']}/ ({s['reason']})"))
        if singles:
            what = words.get(kind, kind.replace("_", " "))
            ex = singles[0]["path"] + (f", {singles[1]['path']}" if len(singles) > 1 else "")
            ex += ", ..." if len(singles) > 2 else ""
            phrases.append((len(singles), f"{_plural(len(singles), 'file')}: {what} ({ex})"))
    phrases.sort(key=lambda p: -p[0])
    lines = [p for _, p in phrases[:limit]]
    if len(phrases) > limit:
        lines.append(f"... and {sum(n for n, _ in phrases[limit:])} more (see prepare_report.json)")
    return lines


def accounting_lines(rep: dict, words: dict | None = None) -> list[str]:
    a = rep["accounting"]
    lines = [f"files in --src: {a['files_seen']} = {a['files_in_records']} used + "
             f"{a['files_skipped']} skipped" + (":" if a["files_skipped"] else "")]
    lines += ["  - " + s for s in skipped_breakdown(rep, words)]
    for i in rep.get("ignored", []):
        lines.append(f"not counted: {i['path']} ({i['reason']})")
    return lines


def summary_lines(rep: dict, conv=None) -> list[str]:
    """A few lines for the terminal after a run."""
    head = f"records: {rep['records']} from {rep['patients']} patients"
    if rep.get("positives") is not None and rep["tasks"]:
        head += f"; positives {rep['positives']} ({rep['positive_patients']} patients with one)"
    lines = [head, *accounting_lines(rep, getattr(conv, "skip_words", None)),
             (f"test only (no training folds): {(rep['test'] or {}).get('patients', 0)}p/"
              f"{(rep['test'] or {}).get('records', 0)}r/{(rep['test'] or {}).get('positives', 0)}+"
              if rep.get("test_only") else
              "folds: " + ", ".join(f"{f['fold']}: {f['patients']}p/{f['records']}r/{f['positives']}+" for f in rep["folds"])
              + (f"; test: {rep['test']['patients']}p/{rep['test']['records']}r" if rep.get("test") else "")),
             f"anomalies: {len(rep['anomalies'])}"
             + (f" ({', '.join(f'{k} x{v}' for k, v in rep['anomaly_counts'].items())})" if rep["anomalies"] else "")]
    if conv is not None:
        lines += conv.summary_lines(rep)
    if rep.get("rebuilt_because"):
        lines.append(f"rebuilt because the previous output was damaged: {rep['rebuilt_because']}")
    lines.append(f"took {rep['timing_s']:.2f} s with {rep['workers']} worker(s)")
    return lines


def render_md(rep: dict, spec, conv) -> str:
    """The human-readable twin of ``prepare_report.json``."""
    o = io.StringIO()

    def p(s: str = "") -> None:
        o.write(s + "\n")

    opts = rep["options"]
    p(f"# Prepared {spec.title}: {rep['records']} records from {rep['patients']} patients")
    p()
    p(f"- source: `{rep['source']['path']}`")
    if rep["source"].get("synthetic"):
        p(f"- **synthetic data**: made by `medpipe synth` (marker `{rep['source'].get('synthetic_marker', '')}`), "
          f"not the real dataset")
    for fact in conv.report_facts(rep):
        p(f"- {fact}")
    p(f"- tasks: " + "; ".join(f"`{k}` {t['kind']} ({', '.join(t['class_names'])})" for k, t in rep["tasks"].items()))
    inp = rep["input"]
    p(f"- input: {inp['modality']}, {inp['channels']} channel(s)"
      + (f", HU window level/width {inp['window'][0]:g}/{inp['window'][1]:g}" if inp.get("window") else "")
      + (f", {inp['orientation']} orientation" if inp.get("orientation") else ""))
    if rep.get("test_only"):
        p(f"- split: none: a test-only dataset, every record is in the datalist's `test` "
          f"({len(rep['test_patients'])} patients); `training` is empty")
    else:
        p(f"- split: {opts['folds']} patient-level folds, seed {opts['seed']}, test patients: {len(rep['test_patients'])}")
    p(f"- records with a positive label: {rep['positives']} ({rep['positive_patients']} patients with one)")
    p(f"- images entered the output by: {', '.join(f'{k} {v}' for k, v in rep['link_methods'].items()) or 'n/a'}"
      f" (--link {opts['link']})")
    p(f"- took {rep['timing_s']:.2f} s with {rep['workers']} worker(s)")
    if rep.get("rebuilt_because"):
        p(f"- rebuilt because the previous output was damaged: {rep['rebuilt_because']}")
    p()
    p("## Files")
    p()
    p("| kind | seen |")
    p("|---|---:|")
    for k, v in rep["inputs"].items():
        p(f"| {k} | {v} |")
    p()
    for line in accounting_lines(rep, conv.skip_words):
        p(line if line.startswith("  - ") else line[:1].upper() + line[1:])
    p()
    p("## Test set" if rep.get("test_only") else "## Folds")
    p()
    first = rep["folds"][0] if rep["folds"] else (rep.get("test") or {})
    extra = [k for k in first if k not in ("fold", "patients", "records", "positives")]
    p(f"| {'set' if rep.get('test_only') else 'fold'} | patients | records | positives |" + "".join(f" {k} |" for k in extra))
    p("|---|---:|---:|---:|" + "---:|" * len(extra))
    rows = [(f["fold"], f) for f in rep["folds"]] + ([("test", rep["test"])] if rep.get("test") else [])
    for name, f in rows:
        p(f"| {name} | {f['patients']} | {f['records']} | {f['positives']} |" + "".join(f" {f.get(k, '')} |" for k in extra))
    for key, counts in (rep.get("per_class") or {}).items():
        p()
        p(f"Records per class of `{key}`: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
    for line in conv.report_md(rep):
        if line.startswith("## "):
            p()
        p(line)
    p()
    p("## Anomalies")
    p()
    if not rep["anomalies"]:
        p("None.")
    by_kind = defaultdict(list)
    for an in rep["anomalies"]:
        by_kind[an["kind"]].append(an)
    for kind, items in sorted(by_kind.items()):
        p(f"- **{kind}** ({len(items)}): e.g. `{items[0]['path']}` -- {items[0]['action']}")
        for extra_item in items[1:3]:
            p(f"  - `{extra_item['path']}` -- {extra_item['action']}")
    p()
    p("## Skipped")
    p()
    if not rep["skipped"]:
        p("Nothing.")
    for s in rep["skipped"][:50]:
        n = f" ({s['files']} files)" if "files" in s else ""
        p(f"- `{s['path']}`{n}: {s['reason']}")
    if len(rep["skipped"]) > 50:
        p(f"- ... and {len(rep['skipped']) - 50} more (see prepare_report.json)")
    if rep.get("ignored"):
        p()
        p("Not counted (medpipe's own files): " + ", ".join(f"`{i['path']}`" for i in rep["ignored"]) + ".")
    return o.getvalue()
