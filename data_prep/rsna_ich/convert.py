"""RSNA ICH converter: what is specific to this dataset (the engine does the rest).

:class:`RsnaIchConverter` plugs into :func:`medpipe.prepare.engine.prepare`. It

1. finds ``stage_2_train.csv`` (required) and ``stage_2_sample_submission.csv`` anywhere under
   ``--src``, and the DICOMs: ``stage_2_test/`` (any ``stage_N_test`` folder) holds the unlabelled
   test set, every other ``.dcm`` is a training slice named by its image id;
2. pivots the label file to six labels per image (repeated rows kept once, a conflicting pair
   resolved to the positive, ``any`` disagreeing with the subtypes reported and kept); label rows
   without a DICOM and DICOMs without a label row are reported; ``ID_6431af929`` (the real set's
   corrupt image) is skipped by name, unread;
3. reads every header once, in worker processes (:func:`medpipe.io.ct_dicom.read_ct_header`,
   without the pixel data), groups the slices into series by ``SeriesInstanceUID`` and orders each
   along the slice normal (``ImagePositionPatient``; ``InstanceNumber`` when a slice has none); a
   file that is not a readable CT header is skipped with its reason;
4. per series, in workers: each slice read in HU (:func:`medpipe.io.ct_dicom.read_ct_hu`: slope and
   intercept applied, the bad 12-bit encoding fixed and reported as an anomaly with action
   ``fixed``), stored once as an RGB PNG of the brain, subdural and soft-tissue windows
   (``--cache-size`` resizes), and linked to the slices before and after it among the slices kept;
   a slice that does not decode (truncated, no pixel data, codec, multi-frame, not CT) is skipped
   with its reason; the test slices become the datalist's ``inference`` list, linked the same way;
5. splits patients into K folds (and ``--test-size`` / ``--test-fraction`` test patients) with the
   engine's multi-label iterative stratification over the six labels;
6. reports the label file's accounting, the DICOM quirks met (multi-valued window elements, 12-bit
   files, kernels, sizes), the series, and the throughput of the header pass and of the caching.

Record keys: ``image`` (PNG, relative to the output), ``id`` (the image id), ``patient``
(PatientID), ``labels`` (six 0/1 in :data:`~data_prep.rsna_ich.layout.SUBTYPES` order), ``study``,
``series`` and ``scan`` (the SeriesInstanceUID: slices are pooled per scan), ``slice_index``
(position in the ordered series, 0-based, among the slices kept), ``z`` (mm along the slice
normal), ``neighbors`` (the PNGs of the previous and next slice; the slice itself at a series'
ends), ``width``/``height`` (stored), ``source`` (the DICOM's path), ``fold``.
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

from data_prep.rsna_ich import layout as L
from data_prep.rsna_ich import tables as T
from medpipe.errors import DataError, UserError
from medpipe.prepare.cache import store_rgb_png
from medpipe.prepare.converter import Converter, Finish, Plan, UnitResult
from medpipe.prepare.spec import OptionError

TRAIN, INFER, TEST = "train", "inference", "test"
IMAGES = "images"
#: read headers in a worker pool from this many files on (a pool costs more than it saves below)
POOL_FROM = 64
#: anomaly examples kept per kind (then one line saying how many more)
EXAMPLES = 6


#: the header facts :func:`_header_of` returns, in this order (a tuple: 750,000 of them stay small)
HEADER_FIELDS = ("patient", "study", "series", "z", "instance", "modality", "rows", "columns", "multi_window",
                 "bits12", "bits_stored", "kernel", "thickness", "slope")


def _header_of(src: str, rel: str):
    """``("ok", facts)`` (:data:`HEADER_FIELDS`) or ``("error", kind, reason)`` for one DICOM (runs in a worker)."""
    from medpipe.io.ct_dicom import needs_bits12_fix, read_ct_header
    from medpipe.io.dicom import DicomError

    try:
        h = read_ct_header(os.path.join(src, rel))
    except DicomError as e:
        return ("error", e.kind, str(e).split(": ", 1)[-1])
    h["multi_window"], h["bits12"], h["thickness"], h["slope"] = (
        h["windows_in_header"] > 1, needs_bits12_fix(h), h["slice_thickness"], h["rescale_slope"])
    return ("ok", tuple(h[k] for k in HEADER_FIELDS))


def _examples(plan: Plan, path: str, kind: str, items: list[tuple[str, str]], what: str) -> None:
    """One anomaly per example (at most :data:`EXAMPLES`), then one saying how many more."""
    for key, action in items[:EXAMPLES]:
        plan.anomalies.append({"path": path, "kind": kind, "action": f"{key}: {action}"})
    if len(items) > EXAMPLES:
        plan.anomalies.append({"path": path, "kind": kind,
                               "action": f"... and {len(items) - EXAMPLES} more {what} (see the report's counts)"})


def _rate(n: int, seconds: float) -> float | None:
    return round(n / seconds, 1) if seconds > 0 and n else None


class RsnaIchConverter(Converter):
    """RSNA ICH: labels pivoted per image, headers read in workers, series ordered, slices cached as RGB PNGs."""

    folders = (IMAGES, INFER)
    skip_words = {
        "known_corrupt": "known corrupt image of the RSNA set (skipped by name)",
        "no_label_row": "DICOM without rows in the label file",
        "duplicate": "second copy of a DICOM (another file has the same image id)",
        "unreadable_dicom": "not a DICOM, or a damaged header",
        "truncated_dicom": "DICOM cut short",
        "no_pixel_data": "DICOM without pixel data",
        "codec_missing": "DICOM compressed with a codec that is not installed",
        "undecodable_pixels": "DICOM whose compressed pixels do not decode",
        "wrong_modality": "DICOM of another modality than CT",
        "multi_frame": "multi-frame DICOM",
        "unsupported_dicom": "DICOM with an unsupported pixel layout",
        "unused_table": "second copy of a label table (not used)",
        "not_in_layout": "file that is not part of the download",
    }

    # ------------------------------------------------------------------ options and discovery

    def check_options(self) -> None:
        o = self.options
        if o["test_size"] and o["test_fraction"]:
            raise OptionError(f"--test-size {o['test_size']} and --test-fraction {o['test_fraction']:g}: give one "
                              f"of them (--test-size N holds out exactly N patients).")

    def plan(self, src: Path, files, located: dict) -> Plan:
        plan = Plan()
        tables: dict[str, list[str]] = defaultdict(list)
        train: dict[str, list[str]] = defaultdict(list)
        test: dict[str, list[str]] = defaultdict(list)
        other: list[str] = []
        for rel, _size, _mtime in files:
            parts = rel.split("/")
            name = parts[-1]
            if name in (L.LABELS_FILE, L.SUBMISSION_FILE):
                tables[name].append(rel)
            elif name.lower().endswith(L.DICOM_EXT):
                stem = name[: -len(L.DICOM_EXT)]
                (test if any(L.TEST_FOLDER_RE.match(p) for p in parts[:-1]) else train)[stem].append(rel)
            else:
                other.append(rel)
        chosen: dict[str, str] = {}
        for name, kind in ((L.LABELS_FILE, "label_file"), (L.SUBMISSION_FILE, "submission")):
            rels = sorted(tables.get(name, []), key=lambda r: (r.count("/"), r))
            plan.inputs[kind] += len(rels)
            if rels:
                chosen[name] = rels[0]
            for extra in rels[1:]:
                plan.skipped.append({"path": extra, "kind": "unused_table",
                                     "reason": f"another {name}; used {rels[0]}"})
        self.table_files = len(chosen)
        n_dcm = sum(map(len, train.values())) + sum(map(len, test.values()))
        if L.LABELS_FILE not in chosen:
            raise DataError(
                f"--src {src}: no {L.LABELS_FILE} found under it ({len(files)} files, {n_dcm} DICOMs). The Kaggle "
                f"download has it at its top, next to {L.TRAIN_DIR}/. Unpack the whole download there, or make a "
                f"synthetic set with `medpipe synth {L.DATASET_NAME} --out DIR`.")
        if not train:
            raise DataError(
                f"--src {src}: no training DICOMs found: expected {L.TRAIN_DIR}/ID_<image>{L.DICOM_EXT} under it "
                f"(found {n_dcm} DICOMs{', all in a test folder' if test else ''}). Unpack {L.TRAIN_DIR} into --src.")
        label_rel = chosen[L.LABELS_FILE]
        labels, linfo = T.read_labels(src / label_rel, name=label_rel)
        if not labels:
            bad = linfo.get("malformed_rows")
            raise DataError(f"{label_rel}: no usable rows ({linfo['rows']} read"
                            + (f"; e.g. line {bad['examples'][0]['line']}: {bad['examples'][0]['why']}" if bad else "")
                            + f"). Expected ID_<image>_<subtype>,<0|1> rows; re-download {L.LABELS_FILE}.")

        # ---- which DICOMs are read: duplicates, the known corrupt image and unlabelled ones are not
        to_read: list[tuple[str, str, str]] = []
        for part, group, kind in ((TRAIN, train, "dicom"), (INFER, test, "test_dicom")):
            for stem in sorted(group):
                rels = sorted(group[stem], key=lambda r: (r.count("/"), r))
                plan.inputs[kind] += len(rels)
                for extra in rels[1:]:
                    plan.skipped.append({"path": extra, "kind": "duplicate",
                                         "reason": f"another DICOM of image {stem}; kept {rels[0]}"})
                rel = rels[0]
                if stem in L.KNOWN_CORRUPT:
                    plan.skipped.append({"path": rel, "kind": "known_corrupt", "reason": L.KNOWN_CORRUPT_REASON})
                    continue
                if part == TRAIN and stem not in labels:
                    plan.skipped.append({"path": rel, "kind": "no_label_row",
                                         "reason": f"no rows for image {stem} in {label_rel}"})
                    continue
                to_read.append((part, stem, rel))

        # ---- every header once, in workers
        t0 = time.perf_counter()
        probe = functools.partial(_header_of, str(src))
        rels = [r for _, _, r in to_read]
        if len(rels) >= POOL_FROM:
            from medpipe.prepare.pool import default_workers, map_units

            workers = default_workers()
            heads = map_units(probe, rels, workers, unit_name="headers", label="headers read")
        else:
            workers = 1
            heads = [probe(r) for r in rels]
        header_s = time.perf_counter() - t0

        groups: dict[tuple[str, str], list[tuple]] = defaultdict(list)
        facts = Counter()
        kernels, sizes, thickness = Counter(), Counter(), Counter()
        no_series, no_patient = [], []
        for (part, stem, rel), res in zip(to_read, heads):
            if res[0] == "error":
                plan.skipped.append({"path": rel, "kind": res[1], "reason": res[2]})
                continue
            h = dict(zip(HEADER_FIELDS, res[1]))
            if h["modality"] not in (None, "CT"):
                plan.skipped.append({"path": rel, "kind": "wrong_modality",
                                     "reason": f"modality {h['modality']} (expected CT). It is not a CT slice; "
                                               f"remove it from the folder"})
                continue
            if not h["rows"] or not h["columns"]:
                plan.skipped.append({"path": rel, "kind": "no_pixel_data",
                                     "reason": "no Rows/Columns in the header (not an image)"})
                continue
            series = h["series"]
            if not series:
                series = f"{h['study'] or h['patient'] or stem}/no-series"
                no_series.append((rel, f"no SeriesInstanceUID; grouped as {series}"))
            patient = h["patient"]
            if not patient:
                patient = series
                no_patient.append((rel, f"no PatientID; the series {series} stands for the patient"))
            facts["headers"] += 1
            facts["multi_valued_window"] += h["multi_window"]
            facts["bits12_encoding"] += h["bits12"]
            facts["unsigned12"] += h["bits_stored"] == 12 and not h["bits12"]
            facts["rescale_slope_not_1"] += h["slope"] != 1.0
            facts["no_position"] += h["z"] is None
            kernels[str(h["kernel"])] += 1
            sizes[f"{h['columns']}x{h['rows']}"] += 1
            thickness[str(h["thickness"])] += 1
            labs = tuple(labels[stem]) if part == TRAIN else None
            groups[(part, series)].append({"rel": rel, "id": stem, "patient": patient, "study": h["study"],
                                           "z": h["z"], "instance": h["instance"], "labels": labs})

        # ---- series: ordered along z, one work unit each
        from medpipe.io.ct_dicom import order_series

        several, dup_z, by_instance = [], [], []
        per_series = {TRAIN: [], INFER: []}
        patients = {TRAIN: set(), INFER: set()}
        for (part, series), slices in sorted(groups.items()):
            ordered = order_series(slices)
            pats = Counter(s["patient"] for s in ordered)
            patient = pats.most_common(1)[0][0]
            if len(pats) > 1:
                several.append((series, f"slices of {len(pats)} PatientIDs ({', '.join(sorted(pats))}); "
                                        f"all recorded as {patient}"))
            zs = [s["z"] for s in ordered]
            if any(z is None for z in zs):
                by_instance.append((series, "a slice without ImagePositionPatient: ordered by InstanceNumber"))
            elif len(set(zs)) < len(zs):
                dup_z.append((series, f"{len(zs) - len(set(zs))} slice(s) at a position already taken; kept, "
                                      f"ordered by InstanceNumber among equals"))
            per_series[part].append(len(ordered))
            patients[part].add(patient)
            plan.units.append((part, series, patient,
                               tuple((s["rel"], s["id"], s["study"], s["z"], s["labels"]) for s in ordered)))
        if not per_series[TRAIN]:
            first = next((s for s in plan.skipped if s["path"].count("/") and s["kind"] not in ("no_label_row",)), None)
            raise DataError(f"--src {src}: none of the training DICOMs could be used ({len(plan.skipped)} skipped"
                            + (f"; e.g. {first['path']}: {first['reason']}" if first else "")
                            + f"). Check that {L.TRAIN_DIR}/ holds the CT slices named in {label_rel}.")
        _examples(plan, label_rel, "series_with_several_patients", several, "series")
        _examples(plan, label_rel, "duplicate_slice_position", dup_z, "series")
        _examples(plan, label_rel, "slice_without_position", by_instance, "series")
        _examples(plan, label_rel, "no_series_uid", no_series, "files")
        _examples(plan, label_rel, "no_patient_id", no_patient, "files")

        # ---- the label file's accounting: rows without a DICOM, odd rows
        without = sorted(set(labels) - set(train))
        _examples(plan, label_rel, "label_row_without_dicom",
                  [(m, f"6 rows, no {L.TRAIN_DIR}/{m}{L.DICOM_EXT}; not used") for m in without], "images")
        for key, what in (("duplicate_rows", "identical repeated row (kept once)"),
                          ("conflicting_rows", "row contradicting an earlier row of the same image and subtype "
                                               "(the positive wins)"),
                          ("malformed_rows", "unusable row (ignored)"),
                          ("incomplete_images", "image with fewer than six subtype rows (missing subtypes 0, a "
                                                "missing any = OR of the subtypes)"),
                          ("any_disagrees", "image whose any differs from the OR of its subtypes (the file's "
                                            "values kept)")):
            c = linfo.get(key)
            if c:
                ex = c["examples"][0]
                where = f"line {ex['line']}" if "line" in ex else ex.get("image")
                plan.anomalies.append({"path": label_rel, "kind": f"labels_{key}",
                                       "action": f"{c['count']} x {what}; e.g. {where}"
                                                 + (f" ({ex['image']} {ex['subtype']})" if "subtype" in ex else "")})

        # ---- the sample submission: the test set's ids
        submission = None
        sub_rel = chosen.get(L.SUBMISSION_FILE)
        if sub_rel:
            ids = T.read_submission_ids(src / sub_rel, name=sub_rel)
            missing, extra = sorted(ids - set(test)), sorted(set(test) - ids)
            submission = {"file": sub_rel, "ids": len(ids), "without_image": len(missing),
                          "images_not_listed": len(extra)}
            _examples(plan, sub_rel, "submission_id_without_image",
                      [(m, f"no {L.TEST_DIR}/{m}{L.DICOM_EXT}") for m in missing], "ids")
            _examples(plan, sub_rel, "test_image_not_in_submission",
                      [(m, "test DICOM not listed in the sample submission; listed for inference anyway")
                       for m in extra], "images")

        for rel in other:
            plan.inputs["other"] += 1
            plan.skipped.append({"path": rel, "kind": "not_in_layout",
                                 "reason": "not part of the RSNA ICH layout (not a .dcm or a known CSV)"})

        def spread(ns):
            return {"min": min(ns), "median": statistics.median(ns), "max": max(ns)} if ns else None

        in_dicom = sum(1 for m in labels if m in train)
        # small (workers receive self): counts and a few examples only
        self.stats = {
            "label_file": {**linfo, "images_with_dicom": in_dicom, "images_without_dicom": len(without),
                           "adds_up_images": linfo["images"] == in_dicom + len(without)},
            "submission": submission,
            "header_read": {"files": len(rels), "seconds": round(header_s, 3),
                            "slices_per_s": _rate(len(rels), header_s), "workers": workers},
            "dicom": {**{k: facts[k] for k in ("headers", "multi_valued_window", "bits12_encoding", "unsigned12",
                                               "rescale_slope_not_1", "no_position")},
                      "kernels": dict(kernels.most_common(6)), "sizes": dict(sizes.most_common(5)),
                      "slice_thickness": dict(thickness.most_common(5))},
            "series": {"training": len(per_series[TRAIN]), "inference": len(per_series[INFER]),
                       "slices_per_series": spread(per_series[TRAIN]),
                       "training_patients": len(patients[TRAIN]), "inference_patients": len(patients[INFER]),
                       "series_per_patient": dict(sorted(Counter(Counter(
                           u[2] for u in plan.units if u[0] == TRAIN).values()).items()))},
        }
        plan.description = (f"{label_rel} ({linfo['rows']} rows, {linfo['images']} images, {linfo['positive_images']} "
                            f"with hemorrhage); {sum(map(len, train.values()))} training DICOMs, "
                            f"{sum(map(len, test.values()))} test DICOMs; {len(rels)} headers read in "
                            f"{header_s:.1f} s ({_rate(len(rels), header_s) or 0:g} slices/s); "
                            f"{len(per_series[TRAIN])} training series")
        plan.source = {"label_file": label_rel, "submission": sub_rel}
        return plan

    # ------------------------------------------------------------------ work (worker processes)

    def setup(self, out: Path) -> None:
        super().setup(out)
        # imported once here, before the workers fork, rather than once in every worker
        import pydicom.pixels  # noqa: F401
        from PIL import Image, PngImagePlugin  # noqa: F401

        import medpipe.io.ct_dicom  # noqa: F401

        self._out = str(out)
        self._t_cache = time.perf_counter()

    def convert(self, unit, src: str, out: str) -> UnitResult:
        from medpipe.io.ct_dicom import neighbours, read_ct_hu, window_channels
        from medpipe.io.dicom import DicomError

        part, series, patient, slices = unit
        res = UnitResult()
        folder = IMAGES if part == TRAIN else INFER
        kept, fixed = [], []
        for rel, sid, study, z, labels in slices:
            try:
                hu, head = read_ct_hu(os.path.join(src, rel))
            except DicomError as e:
                res.skipped.append({"path": rel, "kind": e.kind, "reason": str(e).split(": ", 1)[-1]})
                continue
            dst = f"{folder}/{sid}.png"
            w, h, resized = store_rgb_png(window_channels(hu, L.CHANNELS), os.path.join(out, dst),
                                          self.options["cache_size"])
            res.links["cached" if resized else "converted"] += 1
            if head["fixed_bits12"]:
                fixed.append((rel, head.get("rescale_intercept_written")))
            kept.append((dst, rel, sid, study, z, labels, w, h))
        res.used = len(kept)
        if fixed:
            res.anomalies.append({
                "path": fixed[0][0], "kind": "bits12_fixed",
                "action": f"fixed: {len(fixed)} slice(s) of series {series} store HU as 12-bit two's complement "
                          f"declared unsigned (BitsStored 12, PixelRepresentation 0, intercept {fixed[0][1]:g}); "
                          f"read as (stored + 1000) mod 4096 - 1000"})
        for k, (dst, rel, sid, study, z, labels, w, h) in enumerate(kept):
            prev, nxt = neighbours(kept, k)
            rec = {"image": dst, "id": sid, "patient": patient}
            if part == TRAIN:
                rec["labels"] = list(labels)
            rec.update({"study": study, "series": series, "scan": series, "slice_index": k, "z": z,
                        "neighbors": [kept[prev][0], kept[nxt][0]], "width": w, "height": h, "source": rel})
            (res.records if part == TRAIN else res.inference).append(rec)
        return res

    def finish(self, records, src: Path, located: dict) -> Finish:
        seconds = time.perf_counter() - getattr(self, "_t_cache", time.perf_counter())
        out = getattr(self, "_out", None)
        n_inf = len(os.listdir(os.path.join(out, INFER))) if out and os.path.isdir(os.path.join(out, INFER)) else 0
        cached = len(records) + n_inf
        return Finish(used=self.table_files,
                      report={"cache_throughput": {"slices": cached, "seconds": round(seconds, 3),
                                                   "slices_per_s": _rate(cached, seconds)}})

    # ------------------------------------------------------------------ split

    def assign_parts(self, records, folds: int, seed: int, test_fraction: float):
        """The engine's split, unless ``--test-size N`` asks for exactly N test patients."""
        size = self.options["test_size"]
        if not size:
            return None
        from medpipe.prepare.engine import split_patients

        per_patient = defaultdict(list)
        for r in records:
            per_patient[r["patient"]].append(r)
        n = len(per_patient)
        if size > n - folds:
            raise UserError(f"--test-size {size}: {n} patients have a record, so at most {max(0, n - folds)} can be "
                            f"held out with --folds {folds} (every fold needs a patient). Use a smaller --test-size "
                            f"or fewer --folds.")
        try:  # multilabel_patient_kfold holds out ceil(fraction * n) patients = size
            fold_of, _ = split_patients(self, per_patient, folds, seed, (size - 0.5) / n)
        except ValueError as e:
            raise UserError(f"--folds {folds}: {n} patients have a record ({e}). Use fewer --folds or a smaller "
                            f"--test-size.") from e
        return [fold_of.get(r["patient"], TEST) for r in records]

    # ------------------------------------------------------------------ outputs

    def input_extra(self) -> dict:
        from medpipe.io.ct_dicom import CT_WINDOWS

        return {"channels": len(L.CHANNELS), "window_channels": list(L.CHANNELS),
                "windows": {c: [float(v) for v in CT_WINDOWS[c]] for c in L.CHANNELS}}

    def datalist_extra(self) -> dict:
        o = self.options
        return {"subtypes": list(L.SUBTYPES), "cache_size": o["cache_size"] or None,
                "test_size": o["test_size"] or None,
                "labels_note": "labels: per slice, [any, epidural, intraparenchymal, intraventricular, subarachnoid, "
                               "subdural]; any = the label file's (normally the OR of the subtypes)",
                "neighbors_note": "neighbors: the stored slices before and after along z in the same series (the "
                                  "slice itself at a series' ends); scan: the SeriesInstanceUID",
                "inference_note": f"inference: the unlabelled {L.TEST_DIR} slices (challenge test set), never in "
                                  f"training or test"}

    def patient_meta(self, records) -> dict:
        return {"slices": len(records), "series": len({r["series"] for r in records}),
                "positive_slices": sum(r["labels"][0] for r in records)}

    def fold_stats(self, records) -> dict:
        return {"series": len({r["series"] for r in records}),
                **{s: sum(r["labels"][i] for r in records) for i, s in enumerate(L.SUBTYPES)}}

    def outputs(self) -> list[str]:
        return ["datalist.json", "prepare_report.md", f"{IMAGES}/", f"{INFER}/"]

    def report(self, records) -> dict:
        stats = dict(getattr(self, "stats", {}) or {})
        lf = dict(stats.get("label_file") or {})
        if lf:
            used = {r["id"] for r in records}
            lf["images_in_records"] = len(used)
            lf["images_whose_dicom_was_skipped"] = lf["images_with_dicom"] - len(used)
        stored = Counter(f"{r['width']}x{r['height']}" for r in records)
        return {"class_names": list(L.SUBTYPES), "label_file": lf, "submission": stats.get("submission"),
                "positive_slices": {s: sum(r["labels"][i] for r in records) for i, s in enumerate(L.SUBTYPES)},
                "dicom": stats.get("dicom"), "series": stats.get("series"),
                "header_throughput": stats.get("header_read"),
                "cache": {"size": self.options["cache_size"] or None, "stored_sizes": dict(stored.most_common(5)),
                          "channels": list(L.CHANNELS)}}

    def report_facts(self, rep: dict) -> list[str]:
        lf, o, s = rep.get("label_file") or {}, rep["options"], rep.get("series") or {}
        h, c = rep.get("header_throughput") or {}, rep.get("cache_throughput") or {}
        sps = s.get("slices_per_series") or {}
        spread = f"{sps.get('min')}-{sps.get('max')} slices, median {sps.get('median')}" if sps else "no slices"
        return [f"label file `{lf.get('file')}`: {lf.get('rows')} rows for {lf.get('images')} images "
                f"({lf.get('positive_images')} with hemorrhage); {lf.get('images_with_dicom')} images with a DICOM, "
                f"{lf.get('images_without_dicom')} without",
                f"labels: {', '.join(rep['class_names'])} (per slice); `positives` = any hemorrhage",
                f"series: {s.get('training')} training series of {s.get('training_patients')} patients "
                f"({spread}); {s.get('inference')} test series",
                f"stored: RGB PNG of the {', '.join(rep['cache']['channels'])} windows"
                + (f", cached at <= {o['cache_size']} px" if o["cache_size"] else ", at the DICOM's size"),
                f"throughput: headers {h.get('slices_per_s')} slices/s ({h.get('files')} in {h.get('seconds')} s, "
                f"{h.get('workers')} workers); caching {c.get('slices_per_s')} slices/s ({c.get('slices')} in "
                f"{c.get('seconds')} s)",
                f"unlabelled test slices listed for inference (datalist `inference`): "
                f"{rep.get('inference_records', 0)}"]

    def report_md(self, rep: dict) -> list[str]:
        lf, d = rep.get("label_file") or {}, rep.get("dicom") or {}
        lines = ["## Label file", ""]
        if lf:
            odd = {k: lf[k]["count"] for k in ("duplicate_rows", "conflicting_rows", "malformed_rows",
                                               "incomplete_images", "any_disagrees") if lf.get(k)}
            parts = [f"{lf['rows_used']} image/subtype rows used"]
            parts += [f"{v} {k.replace('_', ' ')}" for k, v in odd.items() if k.endswith("rows")]
            lines += [f"`{lf['file']}`: {lf['rows']} rows = {' + '.join(parts)} (adds up: {lf['adds_up']}). "
                      f"Images: {lf['images']} = {lf['images_in_records']} in records "
                      f"+ {lf['images_whose_dicom_was_skipped']} whose DICOM was skipped + "
                      f"{lf['images_without_dicom']} without a DICOM."
                      + (f" Incomplete images: {odd['incomplete_images']}." if "incomplete_images" in odd else "")
                      + (f" `any` disagreeing with the subtypes: {odd['any_disagrees']} (kept)."
                         if "any_disagrees" in odd else ""), "",
                      "| label | images in the file | slices in records |", "|---|---:|---:|"]
            lines += [f"| {s} | {lf['positives'][s]} | {rep['positive_slices'][s]} |" for s in rep["class_names"]]
        sub = rep.get("submission")
        if sub:
            lines += ["", f"`{sub['file']}`: {sub['ids']} test images; {sub['without_image']} without a DICOM, "
                          f"{sub['images_not_listed']} test DICOMs not listed."]
        if d:
            lines += ["", "## DICOM headers", "",
                      f"- headers read: {d['headers']}; multi-valued WindowCenter/WindowWidth: "
                      f"{d['multi_valued_window']} (the first value is read; the stored windows are fixed)",
                      f"- 12-bit two's complement declared unsigned (fixed): {d['bits12_encoding']}; plain unsigned "
                      f"12 bit: {d['unsigned12']}; rescale slope other than 1: {d['rescale_slope_not_1']}; without "
                      f"ImagePositionPatient: {d['no_position']}",
                      f"- kernels: {', '.join(f'{k} {v}' for k, v in d['kernels'].items())}; sizes: "
                      f"{', '.join(f'{k} {v}' for k, v in d['sizes'].items())}; slice thickness (mm): "
                      f"{', '.join(f'{k} {v}' for k, v in d['slice_thickness'].items())}",
                      f"- stored sizes: {', '.join(f'{k} {v}' for k, v in rep['cache']['stored_sizes'].items())}"]
        return lines

    def summary_lines(self, rep: dict) -> list[str]:
        lf, s = rep.get("label_file") or {}, rep.get("series") or {}
        h, c = rep.get("header_throughput") or {}, rep.get("cache_throughput") or {}
        pos = rep.get("positive_slices") or {}
        return [f"label file: {lf.get('rows')} rows, {lf.get('images')} images; {lf.get('images_in_records')} in "
                f"records, {lf.get('images_without_dicom')} without a DICOM",
                f"series: {s.get('training')} training ({s.get('training_patients')} patients), {s.get('inference')} "
                f"test; positive slices: " + ", ".join(f"{k} {v}" for k, v in pos.items()),
                f"throughput: headers {h.get('slices_per_s')} slices/s, caching {c.get('slices_per_s')} slices/s",
                f"inference (unlabelled test slices): {rep.get('inference_records', 0)}"]
