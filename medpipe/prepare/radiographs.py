"""Report pieces every dataset of 2-D radiographs read from DICOM shares (rsna-pneumonia, dicom-folder).

- :func:`view_vs_label`: records per acquisition view and class, and the positive rate per view
  (AP films carry more findings than PA films: a shortcut a model can learn, so every such dataset
  tabulates it);
- :func:`dicom_summary` and :func:`demographics`: what the DICOM headers held (photometric
  interpretation, transfer syntax, bits stored, rescale, inversion, modality, sizes; sex and age);
- :func:`header_lines`: the Markdown lines of ``prepare_report.md`` for the last two;
- :func:`header_anomalies`: what a radiograph's header lacks or has odd (the record is kept);
- :func:`example_anomalies`: a few named examples of one kind of anomaly, then how many more;
- :func:`convert_dicom`: one DICOM read into a stored 8-bit PNG inside a converter's worker, a bad
  file skipped with its reason.

Records need ``view``, ``label``, ``sex``, ``age``, ``width``/``height`` and ``source`` (the header
facts of :func:`medpipe.io.dicom.read_dicom` plus the DICOM's ``width``/``height``).
"""

from __future__ import annotations

import statistics
from collections import Counter

#: views listed first, in this order
VIEWS = ("AP", "PA")


def view_vs_label(records: list[dict], names, positive_key: str | None = None) -> dict:
    """Records per view and class, and the positive rate per view (``AP``, ``PA`` first; ``none`` when absent).

    Args:
        records: the prepared records (``view``, ``label``).
        names: the class names (``label`` indexes them).
        positive_key: the record key that says positive (0/1) when the classes are not simply
            negative/positive (e.g. rsna-pneumonia's ``target`` in its three-class set); default: the
            last class.

    Example:
        >>> vv = view_vs_label([{"view": "AP", "label": 1}, {"view": "PA", "label": 0}, {"view": None, "label": 1}],
        ...                    ("n", "p"))
        >>> vv["table"], vv["positive_rate"]
        ({'AP': {'n': 0, 'p': 1}, 'PA': {'n': 1, 'p': 0}, 'none': {'n': 0, 'p': 1}}, {'AP': 1.0, 'PA': 0.0, 'none': 1.0})
    """
    names = list(names)
    views = sorted({r["view"] or "none" for r in records}, key=lambda v: (v not in VIEWS, VIEWS.index(v) if v in VIEWS else 0, v))
    table = {v: {n: 0 for n in names} for v in views}
    pos = Counter()
    for r in records:
        v = r["view"] or "none"
        table[v][names[r["label"]]] += 1
        pos[v] += int(r[positive_key]) if positive_key else int(r["label"] == len(names) - 1)
    rate = {v: round(pos[v] / sum(row.values()), 4) if sum(row.values()) else None for v, row in table.items()}
    return {"label_names": names, "table": table, "positive_rate": rate}


def dicom_summary(records: list[dict]) -> dict:
    """Counts of the DICOM header facts of the records' sources."""
    src = [r["source"] for r in records]
    return {"photometric": dict(Counter(s["photometric"] for s in src)),
            "transfer_syntax": dict(Counter(s["transfer_syntax"] for s in src)),
            "bits_stored": dict(Counter(str(s["bits_stored"]) for s in src)),
            "rescaled": sum(1 for s in src if s["rescale"] and s["rescale"] != [1.0, 0.0]),
            "inverted_monochrome1": sum(1 for s in src if s["inverted"]),
            "modality": dict(Counter(str(s["modality"]) for s in src)),
            "intensity": dict(Counter(s["intensity"] for s in src)),
            "source_sizes": dict(Counter(f"{s['width']}x{s['height']}" for s in src).most_common(5))}


def stored_sizes(records: list[dict]) -> dict:
    """The five most common stored image sizes."""
    return dict(Counter(f"{r['width']}x{r['height']}" for r in records).most_common(5))


def demographics(records: list[dict]) -> dict:
    """Sex counts and the age range (years) of the records."""
    ages = sorted(r["age"] for r in records if r["age"] is not None)
    return {"sex": dict(Counter(str(r["sex"]) for r in records)),
            "age": {"min": ages[0], "median": statistics.median(ages), "max": ages[-1],
                    "missing": len(records) - len(ages)} if ages else None}


def view_table_lines(vv: dict, what: str = "positive rate") -> list[str]:
    """The view-vs-label table of :func:`view_vs_label` as Markdown rows (header included)."""
    names = vv["label_names"]
    lines = ["| view | " + " | ".join(names) + f" | images | {what} |", "|---|" + "---:|" * (len(names) + 2)]
    for v, row in vv["table"].items():
        rate = vv["positive_rate"][v]
        lines.append(f"| {v} | " + " | ".join(str(row[c]) for c in names)
                     + f" | {sum(row.values())} | {'-' if rate is None else f'{100 * rate:.1f}%'} |")
    return lines


def header_lines(rep: dict) -> list[str]:
    """``## DICOM headers`` of ``prepare_report.md`` from the report's ``dicom``, ``cache`` and ``demographics``."""
    d, demo = rep["dicom"], rep["demographics"]

    def counts(c: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in c.items())

    return ["## DICOM headers", "",
            f"- photometric: {counts(d['photometric'])} ({d['inverted_monochrome1']} MONOCHROME1 inverted so that "
            f"dense is bright)",
            f"- transfer syntax: {counts(d['transfer_syntax'])}",
            f"- bits stored: {counts(d['bits_stored'])}; with a rescale slope/intercept: {d['rescaled']}; intensity "
            f"mapping: {counts(d['intensity'])}",
            f"- modality: {counts(d['modality'])}; DICOM sizes: {counts(d['source_sizes'])}; stored sizes: "
            f"{counts(rep['cache']['stored_sizes'])}",
            f"- sex: {counts(demo['sex'])}; age: "
            + (f"{demo['age']['min']}-{demo['age']['max']} (median {demo['age']['median']:g}, "
               f"{demo['age']['missing']} missing)" if demo["age"] else "none")]


def header_anomalies(head: dict, views=VIEWS) -> list[tuple[str, str]]:
    """``(kind, action)`` for what a radiograph's DICOM header lacks or has odd (the record is kept).

    Example:
        >>> header_anomalies({"modality": "CR", "view": "LL", "age_how": "ok", "age_text": "058Y",
        ...                   "converted_from": None})
        [('unexpected_view', "ViewPosition 'LL' (expected AP or PA); kept")]
    """
    out = []
    if head["modality"] is None:
        out.append(("dicom_header_missing", "no Modality element (read as a radiograph)"))
    if head["view"] is None:
        out.append(("dicom_header_missing", "no ViewPosition element (view is null)"))
    elif head["view"] not in views:
        out.append(("unexpected_view", f"ViewPosition {head['view']!r} (expected {' or '.join(views)}); kept"))
    if head["age_how"] in ("invalid", "implausible"):
        out.append(("age_unreadable", f"PatientAge {head['age_text']!r} is {head['age_how']}; age set to null"))
    if head["converted_from"]:
        out.append(("color_dicom", f"{head['converted_from']} colour image; stored as luma"))
    return out


def example_anomalies(anomalies: list, path: str, kind: str, items: list[tuple[str, str]], what: str,
                      limit: int = 6) -> None:
    """Append one anomaly per example (at most ``limit``) to ``anomalies``, then one saying how many more."""
    for key, action in items[:limit]:
        anomalies.append({"path": path, "kind": kind, "action": f"{key}: {action}"})
    if len(items) > limit:
        anomalies.append({"path": path, "kind": kind,
                          "action": f"... and {len(items) - limit} more {what} (see the report's counts)"})


def convert_dicom(res, src: str, rel: str, out: str, dst_rel: str, modalities, intensity: str, cache_size):
    """Read ``src/rel`` (:func:`medpipe.io.dicom.read_dicom`) and store it as ``out/dst_rel`` (a gray PNG,
    resized to ``cache_size`` when set), counting it in ``res`` (a :class:`~medpipe.prepare.converter.UnitResult`).

    Returns:
        ``(image, head, stored_width, stored_height)``, or None when the file was skipped (the reason is
        in ``res.skipped``).
    """
    import os

    from medpipe.io.dicom import DicomError, read_dicom
    from medpipe.prepare.cache import store_gray_png

    try:
        img, head = read_dicom(os.path.join(src, rel), modalities=modalities, intensity=intensity)
    except DicomError as e:
        res.skipped.append({"path": rel, "kind": e.kind, "reason": str(e).split(": ", 1)[-1]})
        return None
    sw, sh, resized = store_gray_png(img, os.path.join(out, dst_rel), cache_size)
    res.links["cached" if resized else "converted"] += 1
    res.used = 1
    return img, head, sw, sh
