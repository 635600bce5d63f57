"""dicom-folder converter: an external site's export -> a test-only prepared dataset like rsna-pneumonia's.

:class:`DicomFolderConverter` plugs into :func:`medpipe.prepare.engine.prepare` as a
:attr:`~medpipe.prepare.converter.Converter.test_only` converter (every record in the datalist's
``test``, ``training`` empty, ``num_folds`` 0). It

1. takes the label table from ``--labels`` (inside ``--src`` or not) or the single ``*.csv``
   under ``--src`` (none or several: an error naming them), and reads it with
   :func:`~data_prep.dicom_folder.tables.read_label_table` (key and label columns by name);
2. decides which files are DICOMs by content, not by name: the ``DICM`` marker at byte 128, or
   DICOM elements that pydicom parses from a file without the preamble (:func:`probe_dicom`);
   everything else is skipped as ``not_dicom`` (a file *named* ``.dcm`` that is not one as
   ``unreadable_dicom``, as :func:`medpipe.io.dicom.read_dicom` would say), a ``DICOMDIR`` as the
   export's index;
3. takes each DICOM's key (``--key``: a header element or the file name/path) and joins it to the
   label rows: DICOMs without a row (or without the key element) are skipped; several DICOMs of
   one PatientID/StudyInstanceUID are all kept (reported), a second file with one SOPInstanceUID
   is a duplicate, a file name that matches DICOMs in several folders is ambiguous (skipped);
   label rows without any DICOM are reported; rows of one key that disagree skip its DICOMs (an
   anomaly naming the lines; ``--strict`` makes it an error), repeated rows that agree count once;
4. reads each DICOM in a worker with :func:`~medpipe.io.dicom.read_dicom` (MONOCHROME1 inverted,
   rescale, BitsStored, ``--intensity``, ``--modalities``) and stores an 8-bit gray PNG, resized
   with ``--cache-size``; a bad DICOM is skipped with the reader's reason kind;
5. writes ``labels.csv`` and reports the label table's accounting, the keys, the DICOM headers
   met and the view-vs-label table (AP vs PA is a known shortcut; an external site's view mix is
   one reason a model's performance drops there).

Record keys: ``image`` (PNG, relative to the output), ``patient`` (PatientID, else the key value),
``label`` (0/1), ``key`` (the key value), ``label_value`` (as the table wrote it), ``view``,
``age``, ``sex``, ``pixel_spacing`` (the DICOM's, mm ``[row, column]``), ``stored_pixel_spacing``,
``width``/``height`` (stored), ``source`` (the DICOM's path under ``--src``, its size, header facts
and the identifiers ``patient_id``, ``study_uid``, ``series_uid``, ``sop_uid``, ``accession``,
``study_date``).
"""

from __future__ import annotations

import functools
import os
from collections import Counter, defaultdict
from pathlib import Path

from data_prep.dicom_folder import layout as L
from data_prep.dicom_folder import tables as T
from medpipe.errors import DataError
from medpipe.prepare import radiographs as R
from medpipe.prepare.converter import Converter, Finish, Plan, UnitResult
from medpipe.prepare.exports import write_labels_csv
from medpipe.prepare.spec import Task

LABELS_CSV = "labels.csv"
#: probe the files in worker processes from this many on (a pool costs more than it saves below)
POOL_FROM = 200
#: the elements one of which a file without the DICM marker must hold to count as a DICOM
_DICOM_ELEMENTS = ("SOPClassUID", "SOPInstanceUID", "Rows", "StudyInstanceUID", "PatientID", "Modality")


def probe_dicom(path: str) -> dict:
    """Whether a file is a DICOM by its content, and its header facts (pixel data is not read).

    Returns:
        ``{"dicom": False}`` for another file; else ``{"dicom": True, "facts": header_facts,
        "media_class": the file meta's SOP class}``, or ``{"dicom": True, "error": why}`` when it has
        the ``DICM`` marker but its header does not parse.

    Example:
        >>> probe_dicom(__file__)
        {'dicom': False}
    """
    import pydicom

    from medpipe.io.dicom import _quiet_pydicom, header_facts

    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as e:
        return {"dicom": False, "error": f"cannot be read ({e.strerror or e})"}
    marked = len(head) == 132 and head[128:] == b"DICM"
    if not head:
        return {"dicom": False}
    with _quiet_pydicom():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=not marked)
            if not marked and not any(k in ds for k in _DICOM_ELEMENTS):
                return {"dicom": False}
            meta = getattr(ds, "file_meta", None)
            media = getattr(meta, "MediaStorageSOPClassUID", None) if meta is not None else None
            return {"dicom": True, "facts": header_facts(ds), "media_class": str(media) if media else None}
        except Exception as e:  # noqa: BLE001 - pydicom raises many types for a damaged header
            if not marked:
                return {"dicom": False}
            return {"dicom": True, "error": f"the DICOM header cannot be parsed ({type(e).__name__}: {e})"}


def _probe_rel(src: str, rel: str) -> dict:
    return probe_dicom(os.path.join(src, rel))


def _examples_anomalies(plan: Plan, path: str, kind: str, items: list[tuple[str, str]], what: str) -> None:
    R.example_anomalies(plan.anomalies, path, kind, items, what, T.EXAMPLES)



class DicomFolderConverter(Converter):
    """An export's DICOMs (found by content) joined to a label CSV by a key; everything in ``test``."""

    folders = (L.IMAGES_DIR,)
    test_only = True
    skip_words = {
        "not_dicom": "file that is not a DICOM (by content)",
        "dicomdir": "DICOMDIR (the export's index, not an image)",
        "unused_table": "CSV that is not the label table",
        "no_key": "DICOM without the --key element in its header",
        "no_label_row": "DICOM without a row in the label table",
        "empty_label": "DICOM whose label row has an empty label",
        "conflicting_labels": "DICOM whose label rows disagree",
        "duplicate": "second copy of a DICOM (same SOPInstanceUID)",
        "ambiguous_key": "DICOM whose file name is also used in another folder (--key filename)",
        "unreadable_dicom": "damaged DICOM, or a file named like one that is not",
        "truncated_dicom": "DICOM cut short",
        "no_pixel_data": "DICOM without pixel data",
        "codec_missing": "DICOM compressed with a codec that is not installed",
        "undecodable_pixels": "DICOM whose compressed pixels do not decode",
        "wrong_modality": "DICOM of another modality (--modalities)",
        "multi_frame": "multi-frame DICOM",
        "unsupported_dicom": "DICOM with an unsupported pixel layout",
    }

    # ------------------------------------------------------------------ options and discovery

    def tasks(self) -> dict:
        return {"label": Task("binary", tuple(self.options["class_names"].split(",")))}

    def positives(self) -> tuple[str, ...]:
        return tuple(self.options["positive_values"].split(","))

    def locate(self, src: Path) -> dict:
        """Resolve ``--labels`` (as given, else relative to ``--src``); its size and time join the fingerprint."""
        given = self.options["labels"]
        if not given:
            return {}
        p = Path(given).expanduser()
        tried = [p] if p.is_absolute() else [Path.cwd() / p, src / p]
        found = next((c for c in tried if c.is_file()), None)
        if found is None:
            raise DataError(f"--labels {given}: no such file (looked for {' and '.join(str(t) for t in tried)}). "
                            f"Give the path of the label CSV, or leave --labels out to use the one CSV under --src.")
        found = found.resolve()
        st = found.stat()
        rel = Path(os.path.relpath(found, src)).as_posix() if src == found or src in found.parents else None
        return {"labels": {"path": str(found), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "in_src": rel}}

    def _label_file(self, src: Path, csvs: list[str], located: dict, n_files: int) -> tuple[str | None, Path, str]:
        """``(path under --src or None, path, name shown)`` of the label table."""
        lab = located.get("labels")
        if lab:
            return lab["in_src"], Path(lab["path"]), lab["in_src"] or lab["path"]
        if not csvs:
            raise DataError(f"--src {src}: no label table found: no *.csv among its {n_files} files. Put the "
                            f"export's label CSV (a {self.options['key']} column and a {self.options['label_column']} "
                            f"column) in --src, or pass --labels PATH.")
        if len(csvs) > 1:
            shown = ", ".join(csvs[:8]) + (f" and {len(csvs) - 8} more" if len(csvs) > 8 else "")
            raise DataError(f"--src {src}: {len(csvs)} CSV files could be the label table ({shown}); say which one "
                            f"with --labels, e.g. --labels {src / csvs[0]}.")
        return csvs[0], src / csvs[0], csvs[0]

    def plan(self, src: Path, files, located: dict) -> Plan:
        o = self.options
        key = o["key"]
        plan = Plan()
        rels = [f[0] for f in files]
        csvs = sorted(r for r in rels if r.lower().endswith(".csv"))
        label_rel, label_path, shown = self._label_file(src, csvs, located, len(rels))
        table = T.read_label_table(label_path, shown, key, o["key_column"], o["label_column"], self.positives())
        if not table.rows:
            raise DataError(f"{shown}: no label rows with a {table.key_column} ({table.info['rows']} rows read). "
                            f"Fill the key column, or choose the --key / --key-column the table is keyed by.")
        self.table_used = int(label_rel is not None)
        if label_rel is not None:
            plan.inputs["label_table"] += 1
        for rel in csvs:
            if rel != label_rel:
                plan.inputs["other_table"] += 1
                plan.skipped.append({"path": rel, "kind": "unused_table",
                                     "reason": f"a CSV that is not the label table (labels read from {shown})"})
        dicoms = self._find_dicoms(src, [r for r in rels if not r.lower().endswith(".csv")], plan)
        by_key = self._keys(dicoms, table, plan)
        resolved = {k: T.resolve(rows, table.label_column) for k, rows in table.rows.items()}
        units, several = self._join(dicoms, by_key, table, resolved, shown, plan)
        self._table_anomalies(table, by_key, resolved, several, shown, plan)

        # stored names: <patient>_<k>, k numbering a patient's DICOMs by path
        per_patient = defaultdict(list)
        for u in units:
            per_patient[u["patient"]].append(u)
        for pat, us in per_patient.items():
            for i, u in enumerate(sorted(us, key=lambda u: u["rel"])):
                u["stem"] = f"{L.safe_stem(pat)}_{i:02d}"
        plan.units = sorted(units, key=lambda u: u["rel"])

        matched = [k for k in table.rows if k in by_key]
        without = [k for k in table.rows if k not in by_key]
        kinds = Counter(resolved[k].kind for k in matched if resolved[k].kind)
        # small (workers receive self): counts and a few examples only
        self.stats = {
            "labels": {**table.info, "file": shown, "key": key,
                       "keys_with_dicom": len(matched), "keys_without_dicom": len(without),
                       "rows_with_dicom": sum(len(table.rows[k]) for k in matched),
                       "rows_without_dicom": sum(len(table.rows[k]) for k in without),
                       "keys_unusable": {k: n for k, n in kinds.items() if k != "duplicate_label_rows"},
                       "keys_with_repeated_rows": kinds.get("duplicate_label_rows", 0)},
            "dicoms": {"found": len(dicoms), "with_key": sum(map(len, by_key.values())), "keys": len(by_key),
                       "dicoms_per_key": dict(sorted(Counter(map(len, by_key.values())).items())),
                       "keys_with_several": len(several),
                       "without_label_row": sum(len(g) for k, g in by_key.items() if k not in table.rows),
                       "planned": len(plan.units), "patients_planned": len(per_patient)},
        }
        plan.description = (f"label table {shown} ({table.info['rows']} rows, {len(table.rows)} keys); "
                            f"{len(dicoms)} DICOMs by content, {len(plan.units)} with a label; key {key}")
        plan.source = {"label_file": shown, "key": key}
        return plan

    def _find_dicoms(self, src: Path, rels: list[str], plan: Plan) -> dict[str, dict]:
        """The files that are DICOM images, by content (path -> header facts); every other file skipped with its reason."""
        probe = functools.partial(_probe_rel, str(src))
        if len(rels) >= POOL_FROM:
            from medpipe.prepare.pool import default_workers, map_units

            probes = map_units(probe, rels, default_workers())
        else:
            probes = [probe(r) for r in rels]
        dicoms: dict[str, dict] = {}
        for rel, pr in zip(rels, probes):
            name = rel.rsplit("/", 1)[-1]
            facts = pr.get("facts")
            kind, why = None, ""
            if not pr["dicom"] and L.is_dicom_name(name):
                kind, why = "unreadable_dicom", pr.get("error") or ("named like a DICOM, but its content is not one "
                                                                    "(no DICM marker, no DICOM elements)")
            elif not pr["dicom"]:
                kind, why = "not_dicom", pr.get("error") or "not a DICOM (by content); not used"
            elif name.upper() == "DICOMDIR" or L.DICOMDIR_SOP_CLASS in (pr.get("media_class"),
                                                                      (facts or {}).get("sop_class")):
                kind, why = "dicomdir", "DICOMDIR: the export's index of its files, not an image"
            elif facts is None:
                kind, why = "unreadable_dicom", pr["error"]
            elif not facts["rows"]:
                kind, why = "no_pixel_data", ("a DICOM object without an image"
                                              + (f" (SOP class {facts['sop_class']})" if facts["sop_class"] else ""))
            plan.inputs[{"not_dicom": "other", "dicomdir": "dicomdir"}.get(kind, "dicom")] += 1
            if kind:
                plan.skipped.append({"path": rel, "kind": kind, "reason": why})
            else:
                dicoms[rel] = facts
        return dicoms

    def _keys(self, dicoms: dict[str, dict], table: T.LabelTable, plan: Plan) -> dict[str, list[str]]:
        """Key value -> the DICOMs carrying it (by path); a DICOM without the key element is skipped.

        ``--key filename`` matches a row by the DICOM's path under ``--src``, else its file name, else
        that name without its extension (a DICOM matching no row is grouped under its file name).
        """
        key, field = self.options["key"], L.KEYS[self.options["key"]]
        by_key: dict[str, list[str]] = defaultdict(list)
        for rel, facts in sorted(dicoms.items()):
            if field is None:
                name = rel.rsplit("/", 1)[-1]
                k = next((c for c in (rel, name, name.rsplit(".", 1)[0]) if c in table.rows), name)
            else:
                k = facts[field]
            if not k:
                plan.skipped.append({"path": rel, "kind": "no_key",
                                     "reason": f"no {key} in its header, so no label row can be found for it "
                                               f"(choose another --key)"})
                continue
            by_key[k].append(rel)
        return by_key

    def _join(self, dicoms, by_key, table: T.LabelTable, resolved, shown: str, plan: Plan):
        """Work units (one per DICOM with a usable label row) and the keys with several DICOMs kept."""
        key = self.options["key"]
        several: list[tuple[str, str]] = []
        units = []
        for k in sorted(by_key):
            group, rows = by_key[k], table.rows.get(k)
            shown_group = ", ".join(group[:3]) + (", ..." if len(group) > 3 else "")
            if rows is None:
                plan.skipped += [{"path": rel, "kind": "no_label_row", "reason": f"no row for {key} {k} in {shown}"}
                                 for rel in group]
                continue
            if len(group) > 1 and key == "SOPInstanceUID":  # one image, copied
                plan.skipped += [{"path": rel, "kind": "duplicate",
                                  "reason": f"another file with SOPInstanceUID {k}; kept {group[0]}"} for rel in group[1:]]
                group = group[:1]
            elif len(group) > 1 and key == "filename":  # the row cannot say which one it means
                plan.skipped += [{"path": rel, "kind": "ambiguous_key",
                                  "reason": f"{len(group)} DICOMs are named {k} ({shown_group}); write each one's path "
                                            f"under --src in the label table"} for rel in group]
                continue
            elif len(group) > 1:
                several.append((k, f"{len(group)} DICOMs ({shown_group}); all kept as records of this "
                                   f"{'patient' if key == 'PatientID' else 'study'}"))
            res = resolved[k]
            if res.label is None:
                plan.skipped += [{"path": rel, "kind": res.kind, "reason": f"{key} {k}: {res.note} in {shown}"}
                                 for rel in group]
                continue
            value = next(r.value for r in rows if r.label is not None)
            units += [{"rel": rel, "patient": dicoms[rel]["patient_id"] or k, "key": k, "label": res.label,
                       "value": value, "line": rows[0].line} for rel in group]
        return units, several

    def _table_anomalies(self, table: T.LabelTable, by_key, resolved, several, shown: str, plan: Plan) -> None:
        """The label table's problems in words: per key (a few examples each), then per row kind."""
        o, key = self.options, self.options["key"]
        actions = {"conflicting_labels": "its DICOMs skipped (fix the table, or --strict to stop)",
                   "empty_label": "row(s) skipped", "duplicate_label_rows": "kept"}
        for kind, action in actions.items():
            items = [(k, f"{resolved[k].note}; {action}") for k in sorted(by_key)
                     if k in resolved and resolved[k].kind == kind]
            _examples_anomalies(plan, shown, kind, items, "keys")
        stripped = {str(k).lstrip("0"): k for k in by_key}
        _examples_anomalies(plan, shown, "label_row_without_dicom",
                            [(k, f"{len(table.rows[k])} row(s), no DICOM with this {key}; not used"
                              + (f" (a DICOM has {stripped[k.lstrip('0')]!r}: leading zeros lost, e.g. by a "
                                 f"spreadsheet?)" if key == "PatientID" and k.lstrip("0") in stripped else ""))
                             for k in sorted(set(table.rows) - set(by_key))], "keys")
        _examples_anomalies(plan, shown, "several_dicoms_per_key", several, "keys")
        for name, what in (("rows_without_key", f"row without a {table.key_column} (ignored)"),
                           ("short_rows", "row with fewer fields than the header")):
            c = table.info.get(name)
            if c:
                plan.anomalies.append({"path": shown, "kind": f"labels_{name}",
                                       "action": f"{c['count']} x {what}; e.g. line {c['examples'][0]['line']}"})
        if table.info["encoding"] != "utf-8":
            plan.anomalies.append({"path": shown, "kind": "labels_encoding",
                                   "action": f"not UTF-8; read as {table.info['encoding']}"})
        if not table.info["positive_rows"]:
            seen = ", ".join(repr(v) for v in list(table.info["values"])[:6])
            plan.anomalies.append({"path": shown, "kind": "no_positive_labels",
                                   "action": f"no {table.label_column} value is one of --positive-values "
                                             f"{o['positive_values']} (values: {seen}); every label is 0"})

    # ------------------------------------------------------------------ work (worker processes)

    def setup(self, out: Path) -> None:
        super().setup(out)
        # imported once here, before the workers fork, rather than once in every worker
        import pydicom.pixels  # noqa: F401
        from PIL import Image, JpegImagePlugin, PngImagePlugin  # noqa: F401

        import medpipe.io.dicom  # noqa: F401

    def convert(self, unit, src: str, out: str) -> UnitResult:
        o = self.options
        res = UnitResult()
        rel = unit["rel"]
        dst_rel = f"{L.IMAGES_DIR}/{unit['stem']}.png"
        done = R.convert_dicom(res, src, rel, out, dst_rel, L.modality_list(o["modalities"]), o["intensity"],
                               o["cache_size"])
        if done is None:
            return res
        img, head, sw, sh = done
        res.anomalies += [{"path": rel, "kind": kind, "action": why}
                          for kind, why in R.header_anomalies(head, L.VIEWS)]
        h0, w0 = img.shape
        spacing = head["pixel_spacing"]
        res.records.append({
            "image": dst_rel, "patient": unit["patient"], "label": unit["label"], "key": unit["key"],
            "label_value": unit["value"], "view": head["view"], "age": head["age"], "sex": head["sex"],
            "pixel_spacing": spacing,
            "stored_pixel_spacing": None if spacing is None else [round(spacing[0] * h0 / sh, 6),
                                                                  round(spacing[1] * w0 / sw, 6)],
            "width": sw, "height": sh,
            "source": {"path": rel, "width": w0, "height": h0, "modality": head["modality"],
                       "photometric": head["photometric"], "bits_allocated": head["bits_allocated"],
                       "bits_stored": head["bits_stored"], "rescale": head["rescale"],
                       "transfer_syntax": head["transfer_syntax_name"] or head["transfer_syntax"],
                       "intensity": head["intensity"], "inverted": head["inverted"],
                       "patient_id": head["patient_id"], "study_uid": head["study_uid"],
                       "series_uid": head["series_uid"], "sop_uid": head["sop_uid"], "accession": head["accession"],
                       "study_date": head["study_date"], "label_row": unit["line"]},
        })
        return res

    def finish(self, records, src: Path, located: dict) -> Finish:
        return Finish(used=self.table_used)

    # ------------------------------------------------------------------ outputs

    def export(self, out: Path, final_out: Path, train, test) -> dict:
        write_labels_csv(out / LABELS_CSV, train, test,
                         columns=("image", "patient", "fold", "label", "label_value", "key", "view", "age", "sex"))
        return {}

    def outputs(self) -> list[str]:
        return ["datalist.json", LABELS_CSV, "prepare_report.md"]

    def datalist_extra(self) -> dict:
        o, lab = self.options, self.stats["labels"]
        return {"key": o["key"], "key_column": lab["key_column"], "label_column": lab["label_column"],
                "positive_values": o["positive_values"].split(","), "labels_file": lab["file"],
                "cache_size": o["cache_size"] or None, "intensity": o["intensity"], "modalities": o["modalities"],
                "test_only_note": "an external test set: every record is in `test` (no training folds); evaluate a "
                                  "model trained elsewhere with `medpipe evaluate BUNDLE --ckpt_path ... "
                                  "--dataset_dir THIS --records test`"}

    def patient_meta(self, records) -> dict:
        return {"images": len(records), "label": max(r["label"] for r in records),
                "views": sorted({r["view"] or "none" for r in records})}

    def fold_stats(self, records) -> dict:
        views = Counter(r["view"] for r in records)
        return {"AP": views.get("AP", 0), "PA": views.get("PA", 0)}

    def report(self, records) -> dict:
        names = list(self.tasks()["label"].class_names)
        stats = getattr(self, "stats", {}) or {}
        lab = dict(stats.get("labels") or {})
        if lab:
            keys_in = {r["key"] for r in records}
            lab["keys_in_records"] = len(keys_in)
            lab["keys_whose_dicoms_were_skipped"] = lab["keys_with_dicom"] - len(keys_in)
            lab["adds_up"] = (lab["rows_with_dicom"] + lab["rows_without_dicom"] + lab.get("rows_without_key", {})
                              .get("count", 0)) == lab["rows"]
        per_patient = Counter(r["patient"] for r in records)
        return {
            "class_names": names, "labels": lab, "dicoms": {**(stats.get("dicoms") or {}),
                                                            "records_per_patient": dict(sorted(Counter(
                                                                per_patient.values()).items()))},
            "view_vs_label": R.view_vs_label(records, names),
            "dicom": R.dicom_summary(records),
            "cache": {"size": self.options["cache_size"] or None, "stored_sizes": R.stored_sizes(records)},
            "demographics": R.demographics(records),
        }

    def report_facts(self, rep: dict) -> list[str]:
        lab, o, d = rep.get("labels") or {}, rep["options"], rep["dicom"]
        return [
            f"label table `{lab.get('file')}`: {lab.get('rows')} rows for {lab.get('keys')} keys; key `{o['key']}` "
            f"(column `{lab.get('key_column')}`), label column `{lab.get('label_column')}`",
            f"labels: 1 = `{rep['class_names'][1]}` when the value is one of {o['positive_values']} (case-insensitive), "
            f"0 = `{rep['class_names'][0]}` for any other value; {lab.get('positive_rows')} positive, "
            f"{lab.get('negative_rows')} negative, {lab.get('empty_label_rows')} empty rows",
            f"DICOMs (found by content): {rep['dicoms'].get('found')}; "
            + ", ".join(f"{k} {v}" for k, v in d["photometric"].items())
            + f"; intensity `{o['intensity']}`"
            + (f"; cached at <= {o['cache_size']} px" if o["cache_size"] else "; stored at the DICOM's size"),
            "a test-only dataset: evaluate a model trained elsewhere on it with `--records test`",
        ]

    def report_md(self, rep: dict) -> list[str]:
        lab, dc, vv = rep.get("labels") or {}, rep.get("dicoms") or {}, rep["view_vs_label"]
        names = vv["label_names"]
        vals = list((lab.get("values") or {}).items())
        values = ", ".join(f"`{v or '(empty)'}` -> " + ("empty: row skipped" if x["label"] is None else
                                                         names[x["label"]]) + f" ({x['rows']})" for v, x in vals[:12])
        values += f", ... and {len(vals) - 12} more values" if len(vals) > 12 else ""
        unusable = lab.get("keys_unusable") or {}
        lines = ["## Label table", "",
                 f"`{lab.get('file')}` ({lab.get('encoding')}, separator {lab.get('delimiter')!r}): key column "
                 f"`{lab.get('key_column')}` (--key {lab.get('key')}), label column `{lab.get('label_column')}`.", "",
                 f"Values: {values or 'none'}.", "",
                 f"Rows: {lab.get('rows')} = {lab.get('rows_with_dicom')} of keys with a DICOM + "
                 f"{lab.get('rows_without_dicom')} of keys without one"
                 + (f" + {lab['rows_without_key']['count']} without a key" if lab.get("rows_without_key") else "")
                 + f" (adds up: {lab.get('adds_up')}). Keys: {lab.get('keys')} = {lab.get('keys_in_records')} in "
                 f"records + {lab.get('keys_whose_dicoms_were_skipped')} whose DICOMs were skipped + "
                 f"{lab.get('keys_without_dicom')} without a DICOM"
                 + (f"; {', '.join(f'{k}: {v}' for k, v in unusable.items())}" if unusable else "") + ".",
                 "## DICOMs and keys", "",
                 f"{dc.get('found')} DICOMs found by content; {dc.get('with_key')} carry the key, for {dc.get('keys')} "
                 f"keys (DICOMs per key: {', '.join(f'{n}: {c}' for n, c in (dc.get('dicoms_per_key') or {}).items())}); "
                 f"{dc.get('without_label_row')} without a label row; records per patient: "
                 f"{', '.join(f'{n}: {c}' for n, c in (dc.get('records_per_patient') or {}).items())}.",
                 "## View position vs label (a known shortcut)", "",
                 "AP films (portable, bedside) carry more opacities than PA films; a site with another view mix "
                 "shifts a model that learned the view. Compare performance within each view.", "",
                 *R.view_table_lines(vv), "", *R.header_lines(rep)]
        return lines

    def summary_lines(self, rep: dict) -> list[str]:
        lab, vv = rep.get("labels") or {}, rep["view_vs_label"]
        rates = ", ".join(f"{v} {100 * r:.0f}%" for v, r in vv["positive_rate"].items())
        return [f"label table: {lab.get('rows')} rows, {lab.get('keys')} keys ({rep['options']['key']}); "
                f"{lab.get('keys_in_records')} in records, {lab.get('keys_without_dicom')} without a DICOM, "
                f"{rep['dicoms'].get('without_label_row')} DICOM(s) without a label row",
                f"positive rate by view: {rates} (view vs label table: prepare_report.md)",
                "every record is in the datalist's `test` (evaluate with --records test)"]
