"""RSNA Pneumonia converter: what is specific to this dataset (the engine does the rest).

:class:`RsnaPneumoniaConverter` plugs into :func:`medpipe.prepare.engine.prepare`. It

1. finds ``stage_2_train_labels.csv`` (required), ``stage_2_detailed_class_info.csv`` (required
   for ``--label-set three-class``) and ``stage_2_sample_submission.csv`` anywhere under
   ``--src``, and the DICOMs: ``stage_2_test_images/`` (any ``stage_N_test_images`` folder) holds
   the unlabelled test set, every other ``.dcm`` is a training image named by its patientId;
2. groups the label rows per patient (one row per box; blank box fields for a negative; every box
   kept) and joins the detailed class (``Target`` decides opacity, the class file decides Normal vs
   Not Normal; a patient missing from the class file gets its class from ``Target`` 1, or stays
   unknown); label rows without a DICOM and DICOMs without a label row are reported;
3. reads each DICOM in a worker with :func:`medpipe.io.dicom.read_dicom` (MONOCHROME1 inverted,
   rescale applied, ``BitsStored`` respected, ``--intensity``) and stores it as an 8-bit gray PNG,
   resized with ``--cache-size``; boxes are scaled to the stored image; a bad DICOM (truncated,
   no pixel data, codec not installed, undecodable, wrong modality, multi-frame) is skipped with
   its reason; ``ViewPosition``, ``PatientAge``, ``PatientSex`` and ``PixelSpacing`` go into the
   record; the test images become the datalist's ``inference`` list;
4. splits patients into K folds and ``--test-size`` test patients with the shared iterative
   stratification over the detailed class and the view, so both label sets split alike;
5. exports ``labels.csv`` and a YOLO tree of the opacity boxes, and reports the label files'
   accounting, the DICOM headers met, and the view-vs-label table (AP vs PA is a known shortcut).

Record keys: ``image`` (PNG, relative to the output), ``patient``, ``label``, ``boxes``,
``target``, ``class_name``, ``view``, ``age``, ``sex``, ``pixel_spacing`` (the DICOM's, mm
``[row, column]``), ``stored_pixel_spacing`` (of the stored PNG), ``width``/``height`` (stored),
``source`` (the DICOM's path and header facts), ``fold``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from data_prep.rsna_pneumonia import layout as L
from data_prep.rsna_pneumonia import tables as T
from medpipe.errors import DataError, UserError
from medpipe.prepare import radiographs as R
from medpipe.prepare.converter import Converter, Finish, Plan, UnitResult
from medpipe.prepare.exports import STAGED_LABELS, stage_yolo_label, write_labels_csv, write_yolo
from medpipe.prepare.spec import OptionError, Task

TEST = "test"
TRAIN, INFER = "train", "inference"
LABELS_CSV = "labels.csv"
#: per-patient problems of the class join, in plain words
CLASS_PROBLEMS = {
    "class_row_missing": "patient without a row in the detailed class file",
    "class_rows_differ": "patient with a different number of rows in the two files (class complete)",
    "class_conflict": "patient with two different classes in the class file",
    "class_target_disagree": "class file and Target disagree",
}


def scale_boxes(boxes, src_w: int, src_h: int, dst_w: int, dst_h: int):
    """Label-file boxes ``(x, y, w, h)`` in DICOM pixels -> ``[xmin, ymin, xmax, ymax]`` in the stored image.

    Returns ``(boxes, clipped, dropped)``: boxes are clipped to the image first (``clipped`` counts
    them), and a box wholly outside it is dropped (``dropped``).

    Example:
        >>> scale_boxes([(264.0, 152.0, 213.0, 379.0)], 1024, 1024, 256, 256)
        ([[66.0, 38.0, 119.25, 132.75]], 0, 0)
    """
    from medpipe.metrics.localization import scale_box, xywh_to_xyxy

    out, clipped, dropped = [], 0, 0
    for b in boxes:
        x0, y0, x1, y1 = xywh_to_xyxy(b)
        c = [min(max(x0, 0.0), src_w), min(max(y0, 0.0), src_h), min(max(x1, 0.0), src_w), min(max(y1, 0.0), src_h)]
        if c[2] <= c[0] or c[3] <= c[1]:
            dropped += 1
            continue
        clipped += c != [x0, y0, x1, y1]
        out.append([round(v, 3) for v in scale_box(c, dst_w / src_w, dst_h / src_h)])
    return out, clipped, dropped


def _examples_anomalies(plan: Plan, path: str, kind: str, items: list[tuple[str, str]], what: str) -> None:
    R.example_anomalies(plan.anomalies, path, kind, items, what, T.EXAMPLES)


class RsnaPneumoniaConverter(Converter):
    """RSNA Pneumonia: label CSVs joined per patient, DICOMs to gray PNGs in workers, test images for inference."""

    folders = ("images", INFER, STAGED_LABELS)
    skip_words = {
        "no_label_row": "DICOM without a row in the label file",
        "no_class": "DICOM whose detailed class is unknown (--label-set three-class)",
        "duplicate": "second copy of a DICOM (another file has the same patientId)",
        "unreadable_dicom": "not a DICOM, or a damaged header",
        "truncated_dicom": "DICOM cut short",
        "no_pixel_data": "DICOM without pixel data",
        "codec_missing": "DICOM compressed with a codec that is not installed",
        "undecodable_pixels": "DICOM whose compressed pixels do not decode",
        "wrong_modality": "DICOM of another modality",
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
        if o["val_fold"] >= o["folds"]:
            raise OptionError(f"--val-fold {o['val_fold']}: must be below --folds {o['folds']} (folds are "
                              f"numbered 0..{o['folds'] - 1}).")

    def tasks(self) -> dict:
        ls = self.options["label_set"]
        return {"label": Task("binary" if ls == "binary" else "multiclass", L.label_names(ls)),
                "boxes": Task("detection", (L.BOX_CLASS,))}

    def plan(self, src: Path, files, located: dict) -> Plan:
        o = self.options
        plan = Plan()
        tables: dict[str, list[str]] = defaultdict(list)
        train: dict[str, list[str]] = defaultdict(list)
        test: dict[str, list[str]] = defaultdict(list)
        other: list[str] = []
        for rel, _size, _mtime in files:
            parts = rel.split("/")
            name = parts[-1]
            if name in (L.LABELS_FILE, L.CLASS_FILE, L.SUBMISSION_FILE):
                tables[name].append(rel)
            elif name.lower().endswith(L.DICOM_EXT):
                stem = name[: -len(L.DICOM_EXT)]
                (test if any(L.TEST_FOLDER_RE.match(p) for p in parts[:-1]) else train)[stem].append(rel)
            else:
                other.append(rel)
        self.table_files: list[str] = []
        chosen = {}
        for name in (L.LABELS_FILE, L.CLASS_FILE, L.SUBMISSION_FILE):
            rels = sorted(tables.get(name, []), key=lambda r: (r.count("/"), r))
            plan.inputs[{L.LABELS_FILE: "label_file", L.CLASS_FILE: "class_file"}.get(name, "submission")] += len(rels)
            if rels:
                chosen[name] = rels[0]
                self.table_files.append(rels[0])
            for extra in rels[1:]:
                plan.skipped.append({"path": extra, "kind": "unused_table", "reason": f"another {name}; used {rels[0]}"})
        n_dcm = sum(map(len, train.values())) + sum(map(len, test.values()))
        if L.LABELS_FILE not in chosen:
            raise DataError(
                f"--src {src}: no {L.LABELS_FILE} found under it ({len(files)} files, {n_dcm} DICOMs). The Kaggle "
                f"download has it at its top, next to {L.TRAIN_DIR}/. Unpack the whole download there, or make a "
                f"synthetic set with `medpipe synth {L.DATASET_NAME} --out DIR`.")
        if not train:
            raise DataError(
                f"--src {src}: no training DICOMs found: expected {L.TRAIN_DIR}/<patientId>{L.DICOM_EXT} under it "
                f"(found {n_dcm} DICOMs{', all in a test folder' if test else ''}). Unpack {L.TRAIN_DIR}.zip "
                f"into --src.")
        if L.CLASS_FILE not in chosen and o["label_set"] == "three-class":
            raise DataError(
                f"--src {src}: --label-set three-class needs {L.CLASS_FILE} (the Normal / Not Normal / Lung Opacity "
                f"classes) and none was found under it. Put it next to {chosen[L.LABELS_FILE]}, or use "
                f"--label-set binary (Target only).")

        label_rel = chosen[L.LABELS_FILE]
        labels, linfo = T.read_labels(src / label_rel, name=label_rel)
        if not labels:
            raise DataError(f"{label_rel}: no usable rows ({linfo['rows']} read"
                            + (f"; e.g. line {linfo['malformed_rows']['examples'][0]['line']}: "
                               f"{linfo['malformed_rows']['examples'][0]['why']}" if linfo.get("malformed_rows") else "")
                            + f"). Re-download {L.LABELS_FILE}.")
        classes, cinfo = None, None
        class_rel = chosen.get(L.CLASS_FILE)
        if class_rel:
            classes, cinfo = T.read_classes(src / class_rel, name=class_rel)
        else:
            plan.anomalies.append({"path": label_rel, "kind": "class_file_missing",
                                   "action": f"no {L.CLASS_FILE} under --src; class_name is null for Target 0 "
                                             f"patients (Lung Opacity for Target 1)"})

        # ---- training DICOMs
        problems: dict[str, list[tuple[str, str]]] = defaultdict(list)
        planned: dict[str, int] = {}
        for stem in sorted(train):
            rels = sorted(train[stem], key=lambda r: (L.TRAIN_DIR not in r.split("/")[:-1], r.count("/"), r))
            plan.inputs["dicom"] += len(rels)
            for extra in rels[1:]:
                plan.skipped.append({"path": extra, "kind": "duplicate",
                                     "reason": f"another DICOM of patient {stem}; kept {rels[0]}"})
            rel = rels[0]
            lab = labels.get(stem)
            if lab is None:
                plan.skipped.append({"path": rel, "kind": "no_label_row",
                                     "reason": f"no row for patient {stem} in {label_rel}"})
                continue
            if classes is not None:
                m = T.merge_classes(lab, classes.get(stem))
            else:
                m = T.Merged(L.LUNG_OPACITY if lab.target else None)
            if m.problem:
                problems[m.problem].append((stem, m.note))
            label = L.label_of(lab.target, m.class_name, o["label_set"])
            if label is None:
                plan.skipped.append({"path": rel, "kind": "no_class",
                                     "reason": f"patient {stem}: {m.note or 'class unknown'}; --label-set three-class "
                                               f"needs the class (use --label-set binary to keep it)"})
                continue
            planned[stem] = lab.rows
            plan.units.append((TRAIN, stem, rel, lab.target, tuple(lab.boxes), m.class_name, label))

        # ---- label rows without a DICOM, class rows without a label row
        without = sorted(set(labels) - set(train))
        _examples_anomalies(plan, label_rel, "label_row_without_dicom",
                            [(p, f"{labels[p].rows} row(s), no {L.TRAIN_DIR}/{p}{L.DICOM_EXT}; not used")
                             for p in without], "patients")
        for kind, items in sorted(problems.items()):
            _examples_anomalies(plan, class_rel or label_rel, kind, items, "patients")
        class_orphans = sorted(set(classes) - set(labels)) if classes is not None else []
        _examples_anomalies(plan, class_rel or "", "class_row_without_label_row",
                            [(p, "in the class file only; ignored") for p in class_orphans], "patients")
        for key, what in (("malformed_rows", "unusable row (ignored)"),
                          ("target_conflicts", "patient with rows of Target 0 and 1 (Target 1 used)"),
                          ("positive_without_box", "Target 1 row without a box (label kept, no box)"),
                          ("negative_with_box", "Target 0 row with a box (box ignored)"),
                          ("duplicate_boxes", "box listed twice for a patient (kept once)"),
                          ("bad_patient_ids", "patientId that is not a UUID (kept)")):
            c = linfo.get(key)
            if c:
                plan.anomalies.append({"path": label_rel, "kind": f"labels_{key}",
                                       "action": f"{c['count']} x {what}; e.g. line {c['examples'][0]['line']}"})
        for key, what in (("malformed_rows", "unusable row (ignored)"),
                          ("unknown_classes", f"class not one of {', '.join(L.CLASSES)} (ignored)")):
            c = (cinfo or {}).get(key)
            if c:
                plan.anomalies.append({"path": class_rel, "kind": f"classes_{key}",
                                       "action": f"{c['count']} x {what}; e.g. line {c['examples'][0]['line']}"})

        # ---- test images (unlabelled): listed for inference
        for stem in sorted(test):
            rels = sorted(test[stem], key=lambda r: (r.count("/"), r))
            plan.inputs["test_dicom"] += len(rels)
            for extra in rels[1:]:
                plan.skipped.append({"path": extra, "kind": "duplicate",
                                     "reason": f"another test DICOM of patient {stem}; kept {rels[0]}"})
            if stem in labels:
                plan.anomalies.append({"path": rels[0], "kind": "test_image_has_label_row",
                                       "action": f"patient {stem} has a row in {label_rel} but its DICOM is in the "
                                                 f"test folder; listed for inference only"})
            plan.units.append((INFER, stem, rels[0]))
        submission = None
        sub_rel = chosen.get(L.SUBMISSION_FILE)
        if sub_rel:
            ids = T.read_submission_ids(src / sub_rel, name=sub_rel)
            missing, extra = sorted(set(ids) - set(test)), sorted(set(test) - set(ids))
            submission = {"file": sub_rel, "ids": len(ids), "without_image": len(missing), "images_not_listed": len(extra)}
            _examples_anomalies(plan, sub_rel, "submission_id_without_image",
                                [(p, f"no {L.TEST_DIR}/{p}{L.DICOM_EXT}") for p in missing], "ids")
            _examples_anomalies(plan, sub_rel, "test_image_not_in_submission",
                                [(p, "test DICOM not listed in the sample submission; listed for inference anyway")
                                 for p in extra], "images")

        for rel in other:
            plan.inputs["other"] += 1
            plan.skipped.append({"path": rel, "kind": "not_in_layout",
                                 "reason": "not part of the RSNA Pneumonia layout (not a .dcm or a known CSV)"})

        # small (workers receive self): counts and a few examples only
        in_dicom = set(planned)
        self.stats = {
            "label_file": {**{k: v for k, v in linfo.items()},
                           "patients_with_dicom": sum(1 for p in labels if p in train),
                           "patients_without_dicom": len(without),
                           "rows_with_dicom": sum(labels[p].rows for p in labels if p in train),
                           "rows_without_dicom": sum(labels[p].rows for p in without),
                           "planned_patients": len(in_dicom), "planned_boxes": sum(len(labels[p].boxes) for p in in_dicom)},
            "class_file": None if cinfo is None else {
                **cinfo, **{k: len(problems.get(k, [])) for k in CLASS_PROBLEMS},
                "without_label_row": len(class_orphans)},
            "submission": submission,
            "test_images_planned": sum(1 for u in plan.units if u[0] == INFER),
        }
        plan.description = (f"{label_rel} ({linfo['rows']} rows, {linfo['patients']} patients, "
                            f"{linfo['positive_patients']} with opacity); {sum(map(len, train.values()))} training "
                            f"DICOMs, {sum(map(len, test.values()))} test DICOMs; labels {o['label_set']}")
        plan.source = {"label_file": label_rel, "class_file": class_rel, "submission": sub_rel}
        return plan

    # ------------------------------------------------------------------ work (worker processes)

    def setup(self, out: Path) -> None:
        super().setup(out)
        # imported once here, before the workers fork, rather than once in every worker
        import pydicom.pixels  # noqa: F401
        from PIL import Image, JpegImagePlugin, PngImagePlugin  # noqa: F401

        import medpipe.io.dicom  # noqa: F401
        import medpipe.metrics.localization  # noqa: F401

    def convert(self, unit, src: str, out: str) -> UnitResult:
        o = self.options
        res = UnitResult()
        part, pid, rel = unit[:3]
        dst_rel = f"{'images' if part == TRAIN else INFER}/{pid}.png"
        done = R.convert_dicom(res, src, rel, out, dst_rel, L.MODALITIES, o["intensity"], o["cache_size"])
        if done is None:
            return res
        img, head, sw, sh = done
        h0, w0 = img.shape
        found = R.header_anomalies(head, L.VIEWS)
        if head["patient_id"] is not None and head["patient_id"] != pid:
            found.append(("patient_id_mismatch", f"PatientID {head['patient_id']!r} differs from the file name; "
                                                 f"the file name is used"))
        res.anomalies += [{"path": rel, "kind": kind, "action": why} for kind, why in found]
        spacing = head["pixel_spacing"]
        rec = {"image": dst_rel, "patient": pid}
        if part == TRAIN:
            target, boxes, class_name, label = unit[3:]
            scaled, clipped, dropped = scale_boxes(boxes, w0, h0, sw, sh)
            if clipped or dropped:
                res.anomalies.append({"path": rel, "kind": "box_outside_image",
                                      "action": f"{clipped} box(es) clipped to the {w0}x{h0} image, {dropped} outside "
                                                f"it dropped"})
            rec.update({"label": label, "boxes": scaled if target else [], "target": target, "class_name": class_name})
        rec.update({
            "view": head["view"], "age": head["age"], "sex": head["sex"], "pixel_spacing": spacing,
            "stored_pixel_spacing": None if spacing is None else [round(spacing[0] * h0 / sh, 6),
                                                                  round(spacing[1] * w0 / sw, 6)],
            "width": sw, "height": sh,
            "source": {"path": rel, "width": w0, "height": h0, "modality": head["modality"],
                       "photometric": head["photometric"], "bits_allocated": head["bits_allocated"],
                       "bits_stored": head["bits_stored"], "rescale": head["rescale"],
                       "transfer_syntax": head["transfer_syntax_name"] or head["transfer_syntax"],
                       "intensity": head["intensity"], "inverted": head["inverted"]},
        })
        if part == TRAIN:
            res.records.append(rec)
            stage_yolo_label(out, rec)
        else:
            res.inference.append(rec)
        return res

    def finish(self, records, src: Path, located: dict) -> Finish:
        return Finish(used=len(self.table_files))

    # ------------------------------------------------------------------ split

    def positive(self, record: dict, tasks: dict) -> int:
        """Lung opacity (``Target`` 1), in both label sets."""
        return int(record["target"])

    def assign_parts(self, records, folds: int, seed: int, test_fraction: float):
        """Patient-level folds (and test patients) by iterative stratification over class and view.

        Stratifying on the detailed class (not on ``label``) gives both label sets the same split;
        the view is stratified on too, so no fold leans on the AP/PA shortcut more than another.
        """
        from medpipe.data.splits import multilabel_patient_kfold

        vec = {}
        for r in records:
            cls = r["class_name"] or (L.LUNG_OPACITY if r["target"] else None)
            vec[r["patient"]] = [int(cls == c) for c in L.CLASSES] + [int(r["view"] == "AP")]
        cols = [i for i in range(len(L.CLASSES) + 1) if 0 < sum(v[i] for v in vec.values()) < len(vec)]
        vec = {p: [v[i] for i in cols] or [1] for p, v in vec.items()}
        n, size = len(vec), self.options["test_size"]
        if size:
            if size > n - folds:
                raise UserError(f"--test-size {size}: {n} patients have a record, so at most {n - folds} can be held "
                                f"out with --folds {folds} (every fold needs a patient). Use a smaller --test-size "
                                f"or fewer --folds.")
            test_fraction = (size - 0.5) / n  # multilabel_patient_kfold holds out ceil(fraction * n) = size
        try:
            fold_of, _ = multilabel_patient_kfold(vec, None, folds=folds, seed=seed, test_fraction=test_fraction)
        except ValueError as e:
            raise UserError(f"--folds {folds}: {n} patients have a record ({e}). Use fewer --folds"
                            + (", a smaller --test-fraction" if test_fraction and not size else "")
                            + f", or add patients (e.g. `medpipe synth {L.DATASET_NAME} --patients {folds * 4}`).") from e
        return [fold_of.get(r["patient"], TEST) for r in records]

    # ------------------------------------------------------------------ outputs

    def export(self, out: Path, final_out: Path, train, test) -> dict:
        write_labels_csv(out / LABELS_CSV, train, test,
                         columns=("image", "patient", "fold", "label", "target", "class_name", "view", "age", "sex"))
        counts = write_yolo(out, final_out, train, test, self.options["val_fold"], (L.BOX_CLASS,),
                            title=f"medpipe prepare {self.spec.name}")
        return {"yolo": {"data_yaml": "yolo/data.yaml", "val_fold": self.options["val_fold"], "images": counts}}

    def outputs(self) -> list[str]:
        return ["datalist.json", LABELS_CSV, "prepare_report.md", "yolo/data.yaml"]

    def datalist_extra(self) -> dict:
        o = self.options
        return {"label_set": o["label_set"], "detailed_classes": list(L.CLASSES), "cache_size": o["cache_size"] or None,
                "intensity": o["intensity"], "test_size": o["test_size"] or None,
                "boxes_note": "boxes: lung opacity, [xmin, ymin, xmax, ymax] in pixels of the stored PNG (scaled from "
                              "the DICOM); target: Target of the label file in both label sets",
                "inference_note": f"inference: the unlabelled {L.TEST_DIR} (challenge test set), never in training or test",
                "overlaps_with": dict(L.OVERLAPS_WITH)}

    def patient_meta(self, records) -> dict:
        r = records[0]
        return {"images": len(records), "target": r["target"], "class_name": r["class_name"], "view": r["view"]}

    def fold_stats(self, records) -> dict:
        views = Counter(r["view"] for r in records)
        return {"boxes": sum(len(r["boxes"]) for r in records), "AP": views.get("AP", 0), "PA": views.get("PA", 0)}

    def report(self, records) -> dict:
        names = list(self.tasks()["label"].class_names)
        stats = dict(getattr(self, "stats", {}) or {})
        view_vs_label = R.view_vs_label(records, names, positive_key="target")
        lf = dict(stats.get("label_file") or {})
        if lf:
            used = {r["patient"] for r in records}
            lf["patients_in_records"] = len(used)
            lf["patients_whose_dicom_was_skipped"] = lf["patients_with_dicom"] - len(used)
            mal = lf.get("malformed_rows", {}).get("count", 0)
            lf["adds_up"] = lf["rows"] == lf["rows_with_dicom"] + lf["rows_without_dicom"] + mal
        return {
            "label_set": self.options["label_set"], "class_names": names,
            "label_file": lf, "class_file": stats.get("class_file"), "submission": stats.get("submission"),
            "view_vs_label": view_vs_label,
            "dicom": R.dicom_summary(records),
            "boxes": {"placed": sum(len(r["boxes"]) for r in records), "in_label_rows": lf.get("planned_boxes"),
                      "max_per_image": max((len(r["boxes"]) for r in records), default=0)},
            "cache": {"size": self.options["cache_size"] or None, "stored_sizes": R.stored_sizes(records)},
            "demographics": R.demographics(records),
            "test_images_planned": stats.get("test_images_planned", 0),
        }

    def report_facts(self, rep: dict) -> list[str]:
        lf, o = rep.get("label_file") or {}, rep["options"]
        facts = [f"label file `{lf.get('file')}`: {lf.get('rows')} rows for {lf.get('patients')} patients "
                 f"({lf.get('positive_patients')} with opacity, {lf.get('boxes')} boxes; rows per patient "
                 f"{lf.get('rows_per_patient')}); {lf.get('patients_with_dicom')} patients with a DICOM, "
                 f"{lf.get('patients_without_dicom')} without",
                 f"labels: `{o['label_set']}` ({', '.join(rep['class_names'])}); `positives` = Target 1 (lung opacity)",
                 f"DICOMs: {', '.join(f'{k} {v}' for k, v in rep['dicom']['photometric'].items())}; "
                 f"{rep['dicom']['rescaled']} with a rescale; intensity `{o['intensity']}`"
                 + (f"; cached at <= {o['cache_size']} px" if o["cache_size"] else "; stored at the DICOM's size"),
                 f"unlabelled test images listed for inference (datalist `inference`): {rep.get('inference_records', 0)}"]
        cf = rep.get("class_file")
        if cf:
            facts.insert(1, f"class file `{cf['file']}`: {cf['rows']} rows for {cf['patients']} patients; "
                            f"{cf['class_row_missing']} label-file patient(s) missing from it, "
                            f"{cf['class_rows_differ']} with a different row count")
        if o["test_size"]:
            facts.append(f"test set: {o['test_size']} patients held out (--test-size)")
        return facts

    def report_md(self, rep: dict) -> list[str]:
        vv = rep["view_vs_label"]
        names = vv["label_names"]
        lines = ["## View position vs label (a known shortcut)", "",
                 "In the real data, AP films (portable, bedside) carry most of the lung opacities and PA films most "
                 "of the normal studies, so a model can score by recognising the view. Compare a model's "
                 "performance within each view before trusting it.", "",
                 *R.view_table_lines(vv, "opacity rate")]
        lf = rep.get("label_file") or {}
        if lf:
            lines += ["", "## Label files", "",
                      f"`{lf['file']}`: {lf['rows']} rows = {lf['rows_with_dicom']} of patients with a DICOM + "
                      f"{lf['rows_without_dicom']} of patients without one"
                      + (f" + {lf['malformed_rows']['count']} unusable" if lf.get("malformed_rows") else "")
                      + f" (adds up: {lf['adds_up']}); {lf['blank_box_rows']} rows with blank box fields (negatives). "
                      f"Patients: {lf['patients']} = {lf['patients_in_records']} in records + "
                      f"{lf['patients_whose_dicom_was_skipped']} whose DICOM was skipped + "
                      f"{lf['patients_without_dicom']} without a DICOM."]
            cf = rep.get("class_file")
            if cf:
                lines.append("")
                lines.append(f"`{cf['file']}`: {cf['rows']} rows, {cf['patients']} patients ("
                             + ", ".join(f"{c} {n}" for c, n in cf["by_class"].items()) + "). "
                             + "; ".join(f"{CLASS_PROBLEMS[k]}: {cf[k]}" for k in CLASS_PROBLEMS)
                             + f"; class rows without a label row: {cf['without_label_row']}.")
            sub = rep.get("submission")
            if sub:
                lines.append("")
                lines.append(f"`{sub['file']}`: {sub['ids']} test ids; {sub['without_image']} without a DICOM, "
                             f"{sub['images_not_listed']} test DICOMs not listed.")
        lines += ["", *R.header_lines(rep),
                  f"- boxes: {rep['boxes']['placed']} placed (of {rep['boxes']['in_label_rows']} in the label rows of "
                  f"the DICOMs read), at most {rep['boxes']['max_per_image']} per image"]
        return lines

    def summary_lines(self, rep: dict) -> list[str]:
        lf, vv = rep.get("label_file") or {}, rep["view_vs_label"]
        rates = ", ".join(f"{v} {100 * r:.0f}%" for v, r in vv["positive_rate"].items() if r is not None)
        return [f"label file: {lf.get('rows')} rows, {lf.get('patients')} patients; {lf.get('patients_in_records')} in "
                f"records, {lf.get('patients_without_dicom')} without a DICOM; labels {rep['options']['label_set']}",
                f"opacity rate by view: {rates} (view vs label table: prepare_report.md)",
                f"inference (unlabelled test images): {rep.get('inference_records', 0)}"]
