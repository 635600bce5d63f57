"""cq500 converter: the CQ500 download -> an external test set of windowed head-CT slices with scan labels.

:class:`Cq500Converter` plugs into :func:`medpipe.prepare.engine.prepare` as a
:attr:`~medpipe.prepare.converter.Converter.test_only` converter (every record in the datalist's
``test``, ``training`` empty, ``num_folds`` 0). It

1. reads ``reads.csv`` (``--reads``, inside ``--src`` or not; default: the one file named
   ``reads.csv`` under ``--src``) with :func:`~data_prep.cq500.tables.read_reads`; a scan's labels
   are the majority of the three readers per finding, mapped to the six hemorrhage labels in
   :data:`~data_prep.cq500.layout.SUBTYPES` order; each reader's six labels and the majority of the
   other findings (fracture, mass effect, midline shift, ...) are kept per scan;
2. finds the image folders by name (``CQ500CTN CQ500CTN``, the scan number ``N`` of ``CQ500-CT-N``);
   a folder without a usable reads row is skipped whole (``no_reads_row``), a reads row without a
   folder is reported (``scan_without_images``), files outside any scan folder are skipped;
3. reads every slice header (no pixels) in worker processes
   (:func:`medpipe.io.ct_dicom.read_ct_header`), groups each scan's slices into series by
   ``SeriesInstanceUID`` and chooses one series per scan with
   :func:`~data_prep.cq500.layout.choose_series` (``--slice-thickness``); the other series are
   skipped (``series_excluded`` / ``series_not_chosen``, one entry per series folder) and listed per
   scan in the report; an unreadable file is skipped with the reader's kind;
4. per scan, in a worker: reads each slice of the chosen series in HU
   (:func:`~medpipe.io.ct_dicom.read_ct_hu`), stores it as a 3-channel PNG in the brain, subdural
   and soft-tissue windows (:func:`~medpipe.io.ct_dicom.window_channels`; resized with
   ``--cache-size``), ordered along ``z`` with the neighbours of each slice;
5. reports the reads (labels per finding), the readers' agreement (Fleiss' kappa over the three,
   Cohen's kappa per pair: :func:`medpipe.metrics.agreement.reader_agreement`), the series chosen
   and not chosen per scan, and the scans' accounting.

The labels are per scan: the slices of a scan all carry the scan's labels (``label_level`` is
``scan`` in the datalist), since CQ500 does not say on which slices a finding is.

With the reads file and no image folders (the reads alone), the datalist holds the ``scans`` table
(labels, readers, findings) and no image record, and the report says so; the agreement is computed
all the same.

Record keys: ``image`` (``images/<scan>/<i>.png``, RGB = brain/subdural/soft-tissue windows),
``patient`` and ``scan`` (``CQ500-CT-N``), ``labels`` (the scan's majority, six 0/1 in SUBTYPES
order), ``reader_labels`` (``{"R1": [6], "R2": [6], "R3": [6]}``), ``slice_index`` (position in the
series ordered by ``z``), ``z`` (mm), ``neighbors`` (``[previous image, next image]``; the slice itself
at the ends), ``series_description``, ``series_uid``, ``slice_thickness``, ``width``/``height``
(stored), ``source`` (``path`` under ``--src``, ``sop_uid``, ``instance``).

Datalist extras: ``label_level`` (``scan``), ``scans`` (one entry per usable reads row: ``scan``,
``patient``, ``category``, ``labels``, ``readers``, ``findings`` (majority of the other findings),
``series``, ``series_uid``, ``slice_thickness``, ``slices`` (image records), ``other_series``), and
the ``input`` header's ``window_channels`` and ``windows``.
"""

from __future__ import annotations

import functools
import os
from collections import Counter, defaultdict
from pathlib import Path

from data_prep.cq500 import layout as L
from data_prep.cq500 import tables as T
from medpipe.errors import DataError
from medpipe.prepare.cache import store_rgb_png
from medpipe.prepare.converter import Converter, Finish, Plan, UnitResult

#: read the headers in worker processes from this many files on (a pool costs more than it saves below)
POOL_FROM = 200
#: at most this many examples of one scan problem are listed as anomalies
EXAMPLES = 6
#: the header facts kept per slice while planning
_HEADER_KEYS = ("series", "sop", "z", "instance", "slice_thickness", "series_description", "kernel", "modality",
                "rows", "columns")
#: converter attributes that stay in the main process (workers need none of them; see __getstate__)
_MAIN_ONLY = ("scans", "series_report", "table")
_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


def read_slice_header(src: str, rel: str) -> dict:
    """The header facts of ``src/rel`` that choose and order a series, or ``{"error": kind, "reason": why}``.

    Example:
        >>> read_slice_header("/tmp", "no-such-file.dcm")["error"]
        'unreadable_dicom'
    """
    from medpipe.io.ct_dicom import read_ct_header
    from medpipe.io.dicom import DicomError

    try:
        h = read_ct_header(os.path.join(src, rel))
    except DicomError as e:
        kind = e.kind
        if kind == "unreadable_dicom" and "not a DICOM" in e.why and not rel.lower().endswith(_DICOM_SUFFIXES):
            kind = "not_dicom"
        return {"error": kind, "reason": str(e).split(": ", 1)[-1]}
    return {k: h.get(k) for k in _HEADER_KEYS}


def _most_common(values):
    c = Counter(v for v in values if v is not None)
    return c.most_common(1)[0][0] if c else None


def series_info(uid: str, heads: list[tuple[str, dict]]) -> dict:
    """One series' facts from its slices' ``(path, header)``: description (else its folder's name), kernel,
    modality, thickness (the most common ``SliceThickness``, else the median step of ``z``), slices, folders."""
    folders = sorted({rel.rsplit("/", 1)[0] for rel, _ in heads})
    thickness = _most_common(round(h["slice_thickness"], 4) for _, h in heads if h.get("slice_thickness"))
    if thickness is None:
        zs = sorted({h["z"] for _, h in heads if h.get("z") is not None})
        steps = sorted(b - a for a, b in zip(zs, zs[1:]))
        thickness = round(steps[len(steps) // 2], 4) if steps else None
    return {"uid": uid, "description": _most_common(h.get("series_description") for _, h in heads)
            or folders[0].rsplit("/", 1)[-1], "kernel": _most_common(h.get("kernel") for _, h in heads),
            "modality": _most_common(h.get("modality") for _, h in heads), "thickness": thickness,
            "slices": len(heads), "folders": folders}


class Cq500Converter(Converter):
    """CQ500's reads (majority of three readers -> six labels) and one chosen series per scan; all in ``test``."""

    folders = (L.IMAGES_DIR,)
    test_only = True
    #: the reads file alone (no image folders) still gives the scans table and the agreement: no image records
    allow_no_records = True
    skip_words = {
        "unused_table": "CSV that is not the reads file",
        "zip_archive": "zip archive of the download (unzip it into --src)",
        "not_scan_file": "file outside any CQ500CTN scan folder",
        "no_reads_row": "scan folder without a row in the reads file",
        "unusable_reads_row": "scan folder whose reads row is unusable",
        "series_excluded": "series the series rule excludes (bone, post contrast, localizer, reformat, few slices)",
        "series_not_chosen": "plain series farther from --slice-thickness than the chosen one",
        "duplicate": "second copy of a slice (same SOPInstanceUID)",
        "not_dicom": "file in a scan folder that is not a DICOM",
        "unreadable_dicom": "damaged DICOM, or a file named like one that is not",
        "truncated_dicom": "DICOM cut short",
        "no_pixel_data": "DICOM without pixel data",
        "codec_missing": "DICOM compressed with a codec that is not installed",
        "undecodable_pixels": "DICOM whose compressed pixels do not decode",
        "wrong_modality": "DICOM that is not CT",
        "multi_frame": "multi-frame DICOM",
        "unsupported_dicom": "DICOM with an unsupported pixel layout",
    }

    def __getstate__(self):
        # the scans table and the series report can be large (491 scans): workers are sent `self` with every
        # chunk of units and need neither, so they stay in the main process
        return {k: v for k, v in self.__dict__.items() if k not in _MAIN_ONLY}

    # ------------------------------------------------------------------ discovery

    def locate(self, src: Path) -> dict:
        """Resolve ``--reads`` (as given, else relative to ``--src``); its size and time join the fingerprint."""
        given = self.options["reads"]
        if not given:
            return {}
        p = Path(given).expanduser()
        tried = [p] if p.is_absolute() else [Path.cwd() / p, src / p]
        found = next((c for c in tried if c.is_file()), None)
        if found is None:
            raise DataError(f"--reads {given}: no such file (looked for {' and '.join(str(t) for t in tried)}). "
                            f"Give the path of CQ500's {L.READS_FILE}, or leave --reads out to use the one under "
                            f"--src.")
        found = found.resolve()
        st = found.stat()
        rel = Path(os.path.relpath(found, src)).as_posix() if src in found.parents else None
        return {"reads": {"path": str(found), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "in_src": rel}}

    def _reads_file(self, src: Path, rels: list[str], located: dict) -> tuple[str | None, Path, str]:
        """``(path under --src or None, path, name shown)`` of the reads file."""
        given = located.get("reads")
        if given:
            return given["in_src"], Path(given["path"]), given["in_src"] or given["path"]
        found = sorted(r for r in rels if r.rsplit("/", 1)[-1].lower() == L.READS_FILE)
        if not found:
            csvs = sorted(r for r in rels if r.lower().endswith(".csv"))
            raise DataError(f"--src {src}: no {L.READS_FILE} among its {len(rels)} files"
                            + (f" (CSV files: {', '.join(csvs[:4])})" if csvs else "") + ". Put CQ500's "
                            f"{L.READS_FILE} (the three readers' reads) in --src, or pass --reads FILE.")
        if len(found) > 1:
            raise DataError(f"--src {src}: {len(found)} files named {L.READS_FILE} ({', '.join(found[:4])}); say which "
                            f"one holds the reads with --reads, e.g. --reads {src / found[0]}.")
        return found[0], src / found[0], found[0]

    def plan(self, src: Path, files, located: dict) -> Plan:
        o = self.options
        plan = Plan()
        rels = [f[0] for f in files]
        reads_rel, reads_path, shown = self._reads_file(src, rels, located)
        table = T.read_reads(reads_path, shown)
        if not table.scans:
            raise DataError(f"{shown}: no usable scan row ({table.info['rows']} rows read; "
                            + "; ".join(f"{k}: {v['examples'][0]}" for k, v in table.problems.items())
                            + "). Fix the reads file, or give CQ500's with --reads.")
        self.table = table
        self.reads_used = int(reads_rel is not None)
        if reads_rel is not None:
            plan.inputs["reads_table"] += 1

        # every other file: a scan folder's file, another table, an archive, or something else
        by_scan: dict[int, list[str]] = defaultdict(list)
        scan_folders: dict[int, set[str]] = defaultdict(set)
        for rel in rels:
            if rel == reads_rel:
                continue
            where = L.scan_of_path(rel)
            if where is not None:
                by_scan[where[0]].append(rel)
                scan_folders[where[0]].add(where[1])
                plan.inputs["scan_file"] += 1
            elif rel.lower().endswith(".csv"):
                plan.inputs["other_table"] += 1
                plan.skipped.append({"path": rel, "kind": "unused_table",
                                     "reason": f"a CSV that is not the reads file (reads read from {shown})"})
            elif rel.lower().endswith(".zip"):
                plan.inputs["archive"] += 1
                plan.skipped.append({"path": rel, "kind": "zip_archive",
                                     "reason": "a zip archive of the download; unzip it into --src (its CQ500CTN "
                                               "folders are read, not the archive)"})
            else:
                plan.inputs["other"] += 1
                plan.skipped.append({"path": rel, "kind": "not_scan_file",
                                     "reason": "not inside a scan folder named like CQ500CTN (the scan number N of "
                                               "CQ500-CT-N)"})

        bad_rows = {n for p in table.problems.values() for n in p.get("scans", [])}
        wanted: dict[int, list[str]] = {}
        for n, group in sorted(by_scan.items()):
            name = L.scan_name(n)
            if name in table.scans:
                wanted[n] = sorted(group)
                continue
            kind = "unusable_reads_row" if name in bad_rows else "no_reads_row"
            why = (f"{name}: its row in {shown} is unusable (see the anomalies)" if kind == "unusable_reads_row"
                   else f"no row for {name} in {shown}")
            for folder in sorted(scan_folders[n]):
                k = sum(1 for r in group if r.startswith(folder + "/"))
                plan.skipped.append({"path": folder, "kind": kind, "reason": why, "files": k})

        heads = self._headers(src, [r for g in wanted.values() for r in g])
        folder_files = Counter(r.rsplit("/", 1)[0] for r in rels)
        units, series_report = [], {}
        for n, group in wanted.items():
            unit, rep = self._scan(n, group, heads, folder_files, plan)
            series_report[L.scan_name(n)] = rep
            if unit is not None:
                units.append(unit)
        plan.units = units
        self.series_report = series_report
        self._scan_anomalies(table, wanted, shown, plan)
        self.scans = self._scans_table(table, series_report)
        self.stats = {
            "reads": dict(table.info),
            "scans": {"in_reads": len(table.scans), "folders": len(by_scan), "with_images": len(wanted),
                      "without_images": len(table.scans) - len(wanted),
                      "folders_without_row": len(by_scan) - len(wanted), "planned": len(units),
                      "without_usable_series": sum(1 for r in series_report.values() if r["chosen"] is None)},
            "slices_planned": sum(len(u["files"]) for u in units),
        }
        plan.description = (f"{shown}: {table.info['rows']} rows, {len(table.scans)} scans; {len(by_scan)} scan folders"
                            f" ({len(wanted)} with a reads row); {len(units)} scans with a series of "
                            f"~{o['slice_thickness']:g} mm chosen"
                            + ("" if by_scan else "; no image folders: the reads alone (no image records)"))
        plan.source = {"reads_file": shown}
        return plan

    def _headers(self, src: Path, rels: list[str]) -> dict[str, dict]:
        """Every slice header (no pixels), in worker processes when there are many."""
        fn = functools.partial(read_slice_header, str(src))
        if len(rels) >= POOL_FROM:
            from medpipe.prepare.pool import default_workers, map_units

            got = map_units(fn, rels, default_workers())
        else:
            got = [fn(r) for r in rels]
        return dict(zip(rels, got))

    def _scan(self, n: int, group: list[str], heads: dict, folder_files: Counter, plan: Plan):
        """One scan's series chosen; ``(unit or None, series report)``; every file not used is skipped."""
        name = L.scan_name(n)
        good, seen = [], {}
        for rel in group:
            h = heads[rel]
            if "error" in h:
                plan.skipped.append({"path": rel, "kind": h["error"], "reason": h["reason"]})
            elif h.get("sop") and h["sop"] in seen:
                plan.skipped.append({"path": rel, "kind": "duplicate",
                                     "reason": f"another file with SOPInstanceUID {h['sop']}; kept {seen[h['sop']]}"})
            else:
                if h.get("sop"):
                    seen[h["sop"]] = rel
                good.append((rel, h))
        from medpipe.io.ct_dicom import group_series, order_series

        by_uid: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        rel_of = {id(h): rel for rel, h in good}
        for uid, hs in group_series([h for _, h in good]).items():
            by_uid[uid] = [(rel_of[id(h)], h) for h in hs]
        infos = [series_info(uid, hs) for uid, hs in sorted(by_uid.items(), key=lambda kv: kv[1][0][0])]
        chosen, others = L.choose_series(infos, self.options["slice_thickness"])
        for s, why, excluded in others:
            kind = "series_excluded" if excluded else "series_not_chosen"
            srels = [rel for rel, _ in by_uid[s["uid"]]]
            reason = f"{name}: series {s['description']!r} ({len(srels)} slices, {L.fmt_mm(s['thickness'])}) {why}"
            if len(s["folders"]) == 1 and folder_files[s["folders"][0]] == len(srels):
                plan.skipped.append({"path": s["folders"][0], "kind": kind, "reason": reason, "files": len(srels)})
            else:
                plan.skipped += [{"path": rel, "kind": kind, "reason": reason} for rel in srels]

        def brief(s):
            return {"description": s["description"], "uid": s["uid"], "kernel": s["kernel"],
                    "thickness": s["thickness"], "slices": s["slices"], "folder": s["folders"][0]}

        rep = {"chosen": brief(chosen) if chosen else None,
               "others": [{**brief(s), "reason": why} for s, why, _ in others]}
        if chosen is None:
            plan.anomalies.append({"path": L.scan_of_path(group[0])[1], "kind": "no_usable_series",
                                   "action": f"none of its {len(infos)} series qualifies ("
                                             + "; ".join(f"{s['description']}: {why}" for s, why, _ in others[:4])
                                             + "); no image records for this scan"})
            return None, rep
        ordered = order_series([h for _, h in by_uid[chosen["uid"]]])
        scan = self.table.scans[name]
        unit = {"scan": name, "labels": L.to_subtypes(T.majority_findings(scan)),
                "readers": T.reader_subtypes(scan), "series_description": chosen["description"],
                "series_uid": chosen["uid"], "slice_thickness": chosen["thickness"],
                "files": [[rel_of[id(h)], h.get("z"), h.get("instance"), h.get("sop")] for h in ordered]}
        return unit, rep

    def _scan_anomalies(self, table: T.ReadsTable, wanted: dict, shown: str, plan: Plan) -> None:
        from medpipe.prepare.radiographs import example_anomalies

        for kind, p in table.problems.items():
            plan.anomalies += [{"path": shown, "kind": f"reads_{kind}", "action": ex} for ex in p["examples"]]
            if p["count"] > len(p["examples"]):
                plan.anomalies.append({"path": shown, "kind": f"reads_{kind}",
                                       "action": f"... and {p['count'] - len(p['examples'])} more"})
        have = {L.scan_name(n) for n in wanted}
        missing = [s for s in table.scans if s not in have]
        if have:  # with no image folder at all, the reads alone were given: said once in the report
            example_anomalies(plan.anomalies, shown, "scan_without_images",
                              [(s, "in the reads file, no CQ500CTN folder under --src; in the scans table, no "
                                   "image records") for s in missing], "scans", EXAMPLES)

    def _scans_table(self, table: T.ReadsTable, series_report: dict) -> list[dict]:
        out = []
        for s in sorted(table.scans.values(), key=lambda s: s.number):
            maj = T.majority_findings(s)
            rep = series_report.get(s.name) or {}
            ch = rep.get("chosen") or {}
            out.append({"scan": s.name, "patient": s.name, "category": s.category, "labels": L.to_subtypes(maj),
                        "readers": T.reader_subtypes(s), "findings": {f: maj[f] for f in L.OTHER_FINDINGS},
                        "series": ch.get("description"), "series_uid": ch.get("uid"),
                        "slice_thickness": ch.get("thickness"), "slices": 0,
                        "other_series": [x["description"] for x in rep.get("others", [])]})
        return out

    # ------------------------------------------------------------------ work (worker processes)

    def setup(self, out: Path) -> None:
        super().setup(out)
        # imported once here, before the workers fork, rather than once in every worker
        import pydicom.pixels  # noqa: F401
        from PIL import Image, PngImagePlugin  # noqa: F401

        import medpipe.io.ct_dicom  # noqa: F401

    def convert(self, unit, src: str, out: str) -> UnitResult:
        from medpipe.io.ct_dicom import neighbours, read_ct_hu, window_channels
        from medpipe.io.dicom import DicomError

        res = UnitResult()
        scan = unit["scan"]
        os.makedirs(os.path.join(out, L.IMAGES_DIR, scan), exist_ok=True)
        width = len(str(max(len(unit["files"]) - 1, 0)))
        done = []
        for i, (rel, z, instance, sop) in enumerate(unit["files"]):
            try:
                hu, _head = read_ct_hu(os.path.join(src, rel))
            except DicomError as e:
                res.skipped.append({"path": rel, "kind": e.kind, "reason": str(e).split(": ", 1)[-1]})
                continue
            dst = f"{L.IMAGES_DIR}/{scan}/{i:0{max(3, width)}d}.png"
            w, h, resized = store_rgb_png(window_channels(hu), os.path.join(out, dst), self.options["cache_size"])
            res.links["cached" if resized else "converted"] += 1
            res.used += 1
            done.append((i, rel, z, instance, sop, dst, w, h))
        for j, (i, rel, z, instance, sop, dst, w, h) in enumerate(done):
            prev, nxt = neighbours(done, j)
            res.records.append({
                "image": dst, "patient": scan, "scan": scan, "labels": list(unit["labels"]),
                "reader_labels": {r: list(v) for r, v in unit["readers"].items()},
                "slice_index": i, "z": z, "neighbors": [done[prev][5], done[nxt][5]],
                "series_description": unit["series_description"], "series_uid": unit["series_uid"],
                "slice_thickness": unit["slice_thickness"], "width": w, "height": h,
                "source": {"path": rel, "sop_uid": sop, "instance": instance},
            })
        return res

    def finish(self, records, src: Path, located: dict) -> Finish:
        per_scan = Counter(r["scan"] for r in records)
        for s in getattr(self, "scans", []):
            s["slices"] = per_scan.get(s["scan"], 0)
        return Finish(used=self.reads_used)

    # ------------------------------------------------------------------ outputs

    def outputs(self) -> list[str]:
        return ["datalist.json", "prepare_report.md"]

    def input_extra(self) -> dict:
        from medpipe.io.ct_dicom import CT_WINDOWS, DEFAULT_CHANNELS

        return {"window_channels": list(DEFAULT_CHANNELS),
                "windows": {c: list(CT_WINDOWS[c]) for c in DEFAULT_CHANNELS}}

    def datalist_extra(self) -> dict:
        o = self.options
        return {"label_level": "scan",
                "label_note": "labels are per scan (the majority of three radiologists' reads); every slice of a "
                              "scan carries its scan's labels: CQ500 does not say on which slices a finding is",
                "readers": list(L.READERS), "other_findings": list(L.OTHER_FINDINGS),
                "subtype_of_finding": dict(L.TO_SUBTYPE),
                "reads_file": self.stats["reads"]["file"], "slice_thickness": o["slice_thickness"],
                "series_rule": L.SERIES_RULE, "cache_size": o["cache_size"] or None,
                "test_only_note": "an external test set: every record is in `test` (no training folds); evaluate a "
                                  "model trained elsewhere with `medpipe evaluate BUNDLE --ckpt_path ... "
                                  "--dataset_dir THIS --records test`",
                "scans": getattr(self, "scans", [])}

    def patient_meta(self, records) -> dict:
        r = records[0]
        return {"slices": len(records), "labels": r["labels"], "series": r["series_description"]}

    def fold_stats(self, records) -> dict:
        scans = {r["scan"]: r["labels"] for r in records}
        return {"scans": len(scans), "any_scans": sum(1 for v in scans.values() if v[0])}

    def report(self, records) -> dict:
        from medpipe.metrics.agreement import reader_agreement

        stats = getattr(self, "stats", None) or {}
        table = getattr(self, "table", None)
        if table is None:  # a converter made only to render a stored report
            return {}
        scans = sorted(table.scans.values(), key=lambda s: s.number)
        readers = {r: [[s.reads[r][f] for f in L.FINDINGS] for s in scans] for r in L.READERS}
        agreement = reader_agreement(readers, L.FINDINGS)
        with_records = {r["scan"] for r in records}
        scan_rows = {s["scan"]: s for s in getattr(self, "scans", [])}
        labels = {sub: {"finding": f, "positive_scans": sum(scan_rows[s.name]["labels"][k] for s in scans),
                        "positive_scans_with_records": sum(scan_rows[s]["labels"][k] for s in with_records)}
                  for k, (sub, f) in enumerate(zip(L.SUBTYPES, L.SUBTYPE_FINDINGS))}
        sr = getattr(self, "series_report", {}) or {}
        chosen = [r["chosen"] for r in sr.values() if r["chosen"]]
        others = [o for r in sr.values() for o in r["others"]]
        thickness = sorted(Counter(c["thickness"] for c in chosen).items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
        any_vs_or = sum(1 for s in scan_rows.values() if s["labels"][0] != int(any(s["labels"][1:])))
        sc = dict(stats.get("scans") or {})
        sc["with_records"] = len(with_records)
        sc["adds_up"] = sc.get("with_images", 0) + sc.get("without_images", 0) == sc.get("in_reads")
        return {
            "label_level": "scan",
            "image_records": len(records),
            **({"no_image_records": "no image records were written: "
                + ("no CQ500CTN image folder under --src (the reads file alone); " if not sc.get("folders") else
                   "no image folder with a reads row gave a usable slice; ")
                + "the datalist holds the scans table (labels, readers, findings) only"} if not records else {}),
            "reads": stats.get("reads") or {},
            "scans": sc,
            "labels": labels,
            "any_differs_from_subtypes": any_vs_or,
            "findings_majority": {f: sum(s["findings"][f] for s in scan_rows.values()) for f in L.OTHER_FINDINGS},
            "agreement": agreement,
            "series": {"rule": L.SERIES_RULE, "slice_thickness": self.options["slice_thickness"],
                       "chosen": dict(Counter(c["description"] for c in chosen).most_common()),
                       "chosen_thickness": {L.fmt_mm(t): n for t, n in thickness},
                       "not_chosen": dict(Counter(o["reason"].split(":")[0] + ": " + o["description"]
                                                  for o in others).most_common(20)),
                       "per_scan": dict(sr)},
        }

    def report_facts(self, rep: dict) -> list[str]:
        reads, sc, o = rep.get("reads") or {}, rep.get("scans") or {}, rep["options"]
        facts = [f"reads file `{reads.get('file')}`: {reads.get('rows')} rows, {reads.get('scans')} usable scans "
                 f"({', '.join(f'{k} {v}' for k, v in (reads.get('categories') or {}).items())}); labels = majority "
                 f"of readers {', '.join(L.READERS)} per finding, mapped to "
                 + ", ".join(f"{f} -> {s}" for f, s in L.TO_SUBTYPE.items()),
                 "labels are per scan (`label_level` scan): every slice of a scan carries its scan's labels; "
                 "CQ500 does not say on which slices a finding is",
                 f"scans: {sc.get('in_reads')} in the reads = {sc.get('with_images')} with an image folder + "
                 f"{sc.get('without_images')} without; {sc.get('with_records')} with image records; "
                 f"{sc.get('folders_without_row')} image folder(s) without a reads row",
                 f"series: one per scan, the plain axial series closest to {o['slice_thickness']:g} mm "
                 f"(--slice-thickness); stored as RGB PNGs in the brain/subdural/soft-tissue windows"
                 + (f", at most {o['cache_size']} px" if o["cache_size"] else ""),
                 "a test-only dataset: evaluate a model trained elsewhere on it with `--records test`"]
        if rep.get("no_image_records"):
            facts.insert(0, f"**{rep['no_image_records']}**")
        return facts

    def report_md(self, rep: dict) -> list[str]:
        if "agreement" not in rep:
            return []
        ag, lab = rep["agreement"], rep["labels"]
        pairs = list(next(iter(ag.values()))["cohen_kappa"])

        def k(v):
            return "n/a" if v is None else f"{v:.3f}"

        lines = ["## Labels (majority of the three readers, per scan)", "",
                 "| label | finding | positive scans | with image records |", "|---|---|---:|---:|"]
        lines += [f"| {sub} | {x['finding']} | {x['positive_scans']} | {x['positive_scans_with_records']} |"
                  for sub, x in lab.items()]
        lines += ["", "Other findings (majority, kept per scan in the datalist's `scans`): "
                  + ", ".join(f"{f} {n}" for f, n in rep["findings_majority"].items()) + ".",
                  "", f"`any` (majority of ICH) differs from the OR of the five subtype majorities on "
                      f"{rep['any_differs_from_subtypes']} scan(s); labels are kept as the majority gives them.",
                  "## Reader agreement", "",
                  f"Over the {next(iter(ag.values()))['n']} usable scans of the reads file. Fleiss' kappa over the "
                  f"three readers; Cohen's kappa per pair; counts are positive scans.", "",
                  "| finding | majority | " + " | ".join(L.READERS) + " | Fleiss κ | "
                  + " | ".join(f"κ {p}" for p in pairs) + " |",
                  "|---|---:|" + "---:|" * len(L.READERS) + "---:|" + "---:|" * len(pairs)]
        for f, a in ag.items():
            lines.append(f"| {f} | {a['majority_positive']} | " + " | ".join(str(a["positive"][r]) for r in L.READERS)
                         + f" | {k(a['fleiss_kappa'])} | " + " | ".join(k(a["cohen_kappa"][p]) for p in pairs) + " |")
        s = rep["series"]
        lines += ["## Series choice", "", f"Rule: {s['rule']}; --slice-thickness {s['slice_thickness']:g}.", ""]
        if not s["per_scan"]:
            return lines + ["No image folder with a reads row: no series chosen, no image records written."]
        lines += ["Chosen: " + (", ".join(f"`{d}` {n}" for d, n in s["chosen"].items()) or "none")
                  + "; thickness: " + (", ".join(f"{t} {n}" for t, n in s["chosen_thickness"].items()) or "n/a") + ".",
                  "", "Not chosen (most common): " + (", ".join(f"{d} ({n})" for d, n in s["not_chosen"].items())
                                                      or "none") + ".", "",
                  "| scan | chosen | slices | other series |", "|---|---|---:|---|"]
        per = list(s["per_scan"].items())
        for name, r in per[:30]:
            ch = r["chosen"]
            lines.append(f"| {name} | {ch['description'] + ' (' + L.fmt_mm(ch['thickness']) + ')' if ch else 'none'} "
                         f"| {ch['slices'] if ch else 0} | "
                         + "; ".join(f"{o['description']}: {o['reason']}" for o in r["others"]) + " |")
        if len(per) > 30:
            lines.append(f"| ... {len(per) - 30} more scans (prepare_report.json `series.per_scan`) | | | |")
        return lines

    def summary_lines(self, rep: dict) -> list[str]:
        sc = rep.get("scans") or {}
        fk = {f: a["fleiss_kappa"] for f, a in (rep.get("agreement") or {}).items()}
        out = []
        if rep.get("no_image_records"):
            out.append(rep["no_image_records"])
        out += [f"scans: {sc.get('in_reads')} in the reads, {sc.get('with_records')} with image records, "
                f"{sc.get('without_images')} without an image folder, {sc.get('folders_without_row')} folder(s) "
                f"without a reads row",
                "reader agreement (Fleiss kappa): " + ", ".join(f"{f} {'n/a' if v is None else f'{v:.2f}'}"
                                                                for f, v in fk.items() if f in L.TO_SUBTYPE)
                + " (all findings: prepare_report.md)",
                ("every record is in the datalist's `test` (evaluate with --records test); labels are per scan"
                 if rep.get("image_records") else "the scans table (labels per scan) is in the datalist's `scans`")]
        return out
