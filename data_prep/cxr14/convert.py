"""NIH ChestX-ray14 converter: what is specific to this dataset (the engine does the rest).

:class:`Cxr14Converter` plugs into :func:`medpipe.prepare.engine.prepare`. It

1. finds the label file (``Data_Entry_2017_v2020.csv``, else ``Data_Entry_2017.csv``, anywhere
   under ``--src``, or ``--label-file``) and parses it with its quirks (bracketed two-value column
   names, the trailing comma, ``058Y`` ages), the box list and, for ``--split official|chexnet``,
   the split lists (told apart by content, since both splits ship a ``test_list.txt``);
2. finds every image by its ``Image Index`` file name anywhere under ``--src`` (NIH's
   ``images_0NN/images/``, a flat ``images/``, mirror trees). Folder names are never labels: a
   ``0_normal``/``1_abnormal`` folder that disagrees with the label file is an anomaly and the label
   file wins. Two files with one name: the one with more pixels is kept (then the first path);
3. checks each image in a worker: by default its PNG header and end (size, mode, truncation;
   ``--verify decode`` decodes every pixel). An 8-bit gray PNG is copied or linked as is; RGB,
   RGBA, palette or 16-bit files are converted to 8-bit gray (and counted); ``--cache-size PX``
   stores every image resized to at most PX instead. NIH boxes (1024-px space) are scaled per axis
   to the stored image and kept under ``nih_boxes`` (not ``boxes``: there is no detection task);
4. splits: ``patient`` (the engine's multi-label iterative stratification over the 14 findings,
   the same split for both label sets), ``official`` (test list -> test, K stratified patient folds
   over train_val), ``chexnet`` (val list = fold 0, the train list in K-1 stratified patient folds,
   test list -> test); a patient in two lists fails the run, naming it;
5. reports the label file's quirks, row and box accounting (every label row and every box either
   used or counted with its reason), gray conversions, folder disagreements, the lists' label
   agreement, and the per-class prevalence of every part with the train:test bias table.
"""

from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from pathlib import Path

from data_prep.cxr14 import layout as L
from data_prep.cxr14 import tables as T
from medpipe.errors import DataError, UserError
from medpipe.io.images import ImageHeaderError, decode_image, read_image_info
from medpipe.prepare.cache import resized_size
from medpipe.prepare.converter import Converter, Finish, Plan, UnitResult
from medpipe.prepare.spec import OptionError, Task
from medpipe.utils.fs import link_or_copy

TEST = "test"
#: names that the split lists may have
LIST_NAMES = {*L.OFFICIAL_LISTS.values(), *L.CHEXNET_LISTS.values()}
#: output CSV of one row per record
LABELS_CSV = "labels.csv"


# --------------------------------------------------------------------------------------------
# images (worker processes)


def to_gray(im):
    """An 8-bit one-channel copy of a decoded Pillow image; ``(image, note)``.

    RGB(A) and palette images become ITU-R 601 luma (exact for the gray-in-RGB files of the real
    sample; ``note`` is ``"color"`` when the channels differ); alpha is dropped; 16-bit gray is
    scaled (``>> 8``), not clipped.
    """
    import numpy as np
    from PIL import Image

    note = ""
    if im.mode == "L":
        return im, note
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.uint32)
        top = 65535 if im.mode != "I" or a.max() > 255 else 255
        return Image.fromarray((a * 255 // max(top, 1)).astype(np.uint8)), note
    if im.mode == "LA":
        return im.getchannel(0), note
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGB", "RGBA"):
        a = np.asarray(im)
        if not ((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()):
            note = "color"
        return im.convert("RGB").convert("L") if im.mode == "RGBA" else im.convert("L"), note
    return im.convert("L"), note


def scale_box(box, sw: int, sh: int) -> tuple[list[float], bool]:
    """An NIH box ``(x, y, w, h)`` in the 1024-px space -> ``[xmin, ymin, xmax, ymax]`` in a ``sw x sh``
    stored image (scaled per axis), clipped to it; and whether clipping changed it.

    Example:
        >>> scale_box((100.0, 200.0, 50.0, 100.0), 256, 256)
        ([25.0, 50.0, 37.5, 75.0], False)
    """
    x, y, w, h = box
    sx, sy = sw / L.BOX_SPACE, sh / L.BOX_SPACE
    raw = [x * sx, y * sy, (x + w) * sx, (y + h) * sy]
    clipped = [min(max(raw[0], 0.0), sw), min(max(raw[1], 0.0), sh), min(max(raw[2], 0.0), sw),
               min(max(raw[3], 0.0), sh)]
    return [round(v, 3) for v in clipped], clipped != raw


def _pixels(info) -> int:
    return info.width * info.height


# --------------------------------------------------------------------------------------------
# the converter


class Cxr14Converter(Converter):
    """NIH ChestX-ray14: images found by name anywhere, the label file with its quirks, boxes, three splits."""

    folders = ("images",)
    skip_words = {
        "no_label_row": "image without a row in the label file",
        "duplicate": "second copy of an image (another file has the same name)",
        "unreadable_image": "damaged or truncated image",
        "unknown_finding": "image whose label row names an unknown finding",
        "not_in_split_lists": "image in none of the split lists",
        "unused_label_file": "other label file (not used)",
        "unused_list": "split list not used by this --split",
        "not_in_layout": "file that is not part of ChestX-ray14",
    }

    # ------------------------------------------------------------------ options and discovery

    def check_options(self) -> None:
        o = self.options
        if o["split"] != "patient" and o["test_fraction"]:
            raise OptionError(f"--test-fraction {o['test_fraction']:g}: applies to --split patient only; with "
                              f"--split {o['split']} the test set is the one in the split lists. Drop "
                              f"--test-fraction, or use --split patient.")
        if o["split"] == "chexnet" and o["folds"] < 2:
            raise OptionError(f"--folds {o['folds']}: --split chexnet needs at least 2 (fold 0 = CheXNet's val list).")

    def tasks(self) -> dict:
        return {"labels": Task("multilabel", L.label_names(self.options["label_set"]))}

    def locate(self, src: Path) -> dict:
        lf = self.options["label_file"]
        if not lf:
            return {}
        p = Path(lf).expanduser()
        if not p.is_file():
            raise UserError(f"--label-file {lf}: no such file. Give the NIH Data_Entry_2017.csv (or "
                            f"Data_Entry_2017_v2020.csv), or leave --label-file out to find it under --src.")
        p = p.resolve()
        st = p.stat()
        # the fingerprint covers this file even when it lies outside --src
        return {"label_file": str(p), "label_file_stat": [st.st_size, st.st_mtime_ns]}

    def plan(self, src: Path, files, located: dict) -> Plan:
        o = self.options
        plan = Plan()
        by_name: dict[str, list[str]] = defaultdict(list)
        pngs: dict[str, list[str]] = defaultdict(list)
        other: list[str] = []
        explicit = located.get("label_file")
        explicit_rel = None
        if explicit and Path(explicit).is_relative_to(src):
            explicit_rel = Path(explicit).relative_to(src).as_posix()
        for rel, _size, _mtime in files:
            name = rel.rsplit("/", 1)[-1]
            if rel == explicit_rel:
                continue
            if name in L.LABEL_FILES or name == L.BBOX_FILE or name in LIST_NAMES:
                by_name[name].append(rel)
            elif name.lower().endswith(L.IMAGE_EXT):
                pngs[name].append(rel)
            else:
                other.append(rel)
        self.table_files: list[str] = []  # files under --src used outside the units (counted in finish)

        # ---- the label file
        label_rel, label_path = self._choose_label_file(src, by_name, explicit, explicit_rel, plan)
        table = T.read_label_file(label_path, name=label_rel or str(label_path))
        if not table.rows:
            raise DataError(f"{label_rel or label_path}: the label file has no usable rows "
                            f"({table.info.get('rows', 0)} read). Re-download Data_Entry_2017.csv.")
        plan.inputs["label_file"] += bool(label_rel)

        # ---- the box list
        boxes: dict[str, list] = {}
        bbox_info = None
        bbox_rels = sorted(by_name.pop(L.BBOX_FILE, []), key=lambda r: (r.count("/"), r))
        if bbox_rels:
            boxes, bbox_info = T.read_bbox_file(src / bbox_rels[0], name=bbox_rels[0])
            self.table_files.append(bbox_rels[0])
            plan.inputs["bbox_file"] += len(bbox_rels)
            for extra in bbox_rels[1:]:
                plan.skipped.append({"path": extra, "kind": "unused_label_file",
                                     "reason": f"another {L.BBOX_FILE}; used {bbox_rels[0]}"})

        # ---- the split lists
        part_of, lists_info = self._read_lists(src, by_name, table, plan)

        # ---- images
        groups: dict[str, list[tuple]] = defaultdict(list)
        rows_matched = rows_skipped = 0
        box_rows_not_found = box_rows_planned = 0
        list_disagree = lists_info.pop("_disagree", {})
        for name in sorted(pngs):
            rels = sorted(pngs[name])
            plan.inputs["image"] += len(rels)
            row = table.rows.get(name)
            reason = None
            if row is None:
                kind, reason = "no_label_row", f"no row for {name} in {table.path}"
            elif row.unknown:
                kind, reason = ("unknown_finding", f"its label row (line {row.line} of {table.path}) names "
                                                   f"unknown finding(s) {', '.join(map(repr, row.unknown))}; "
                                                   f"known: {', '.join(L.FINDINGS)}, {L.NO_FINDING!r}")
            elif part_of is not None and name not in part_of:
                kind, reason = ("not_in_split_lists", f"in none of the --split {o['split']} lists "
                                                      f"({', '.join(lists_info['files'].values())})")
            if reason:
                rows_skipped += row is not None
                for rel in rels:
                    plan.skipped.append({"path": rel, "kind": kind, "reason": reason})
                continue
            rows_matched += 1
            img_boxes = [(b.finding, b.x, b.y, b.w, b.h, b.line) for b in boxes.get(name, ())]
            box_rows_planned += len(img_boxes)
            meta = (row.finding_labels, row.findings, row.follow_up, row.age, row.sex, row.view)
            part = part_of.get(name) if part_of is not None else None
            if name in list_disagree:
                plan.anomalies.append({"path": rels[0], "kind": "list_labels_disagree",
                                       "action": f"{list_disagree[name]}; the label file's labels are used"})
            groups[row.patient].append((name, rels, meta, img_boxes, part))
        plan.units = [(p, groups[p]) for p in sorted(groups)]

        # ---- other files
        for rel in other:
            plan.inputs["other"] += 1
            plan.skipped.append({"path": rel, "kind": "not_in_layout", "reason": "not part of the ChestX-ray14 "
                                                                                  "layout (not a PNG or a known table)"})

        # ---- accounting of rows and boxes that are not files (kept small: workers receive self)
        found = set(pngs)
        planned = {it[0] for items in groups.values() for it in items}
        box_rows_skipped = 0
        for name, bl in boxes.items():
            if name not in table.rows:
                continue
            if name not in found:
                box_rows_not_found += len(bl)
            elif name not in planned:
                box_rows_skipped += len(bl)
        not_in_label = {n: len(bl) for n, bl in boxes.items() if n not in table.rows}
        self.stats = {
            "label_file": {**{k: v for k, v in table.info.items()}, "used": label_rel or str(label_path),
                           "rows_with_image_found": rows_matched, "rows_whose_image_was_skipped": rows_skipped,
                           "rows_without_image": len(table.rows) - rows_matched - rows_skipped},
            "boxes": None if bbox_info is None else {
                **bbox_info, "planned": box_rows_planned, "on_images_not_found": box_rows_not_found,
                "on_images_skipped_before_checking": box_rows_skipped,
                "on_images_not_in_label_file": sum(not_in_label.values()),
                "images_not_in_label_file": sorted(not_in_label)[:T.EXAMPLES]},
            "lists": lists_info,
        }
        for n in sorted(not_in_label)[:T.EXAMPLES]:
            plan.anomalies.append({"path": bbox_rels[0], "kind": "box_image_not_in_label_file",
                                   "action": f"{not_in_label[n]} box(es) of {n}, which has no label row; ignored"})
        if len(not_in_label) > T.EXAMPLES:
            plan.anomalies.append({"path": bbox_rels[0], "kind": "box_image_not_in_label_file",
                                   "action": f"... and {len(not_in_label) - T.EXAMPLES} more such images; ignored"})
        for key, what in (("duplicate_rows", "duplicate row (first one used)"),
                          ("unknown_findings", "unknown finding name (the image is skipped)"),
                          ("odd_finding_labels", "'No Finding' together with findings, or empty (findings used)"),
                          ("patient_mismatch", "Patient ID differs from the file name (Patient ID used)"),
                          ("malformed_rows", "row with too few fields (ignored)"),
                          ("age_problems", "age unreadable or above 120 (age set to null)")):
            c = table.info.get(key)
            if c:
                ex = c["examples"][0]
                plan.anomalies.append({"path": table.path, "kind": f"label_file_{key}",
                                       "action": f"{c['count']} x {what}; e.g. line {ex.get('line')}"})
        for key, what in (("malformed_rows", "box row that is not 'image,finding,x,y,w,h' with numbers (ignored)"),
                          ("unknown_findings", "box with an unknown finding name (ignored)")):
            c = (bbox_info or {}).get(key)
            if c:
                ex = c["examples"][0]
                plan.anomalies.append({"path": bbox_rels[0], "kind": f"bbox_{key}",
                                       "action": f"{c['count']} x {what}; e.g. line {ex.get('line')}"})
        n_imgs = sum(len(v) for v in pngs.values())
        plan.description = (f"label file {label_rel or label_path} ({table.info['rows']} rows, "
                            f"{table.info['patients']} patients); {n_imgs} PNG files, {rows_matched} of them "
                            f"labelled; split {o['split']}")
        plan.source = {"label_file": label_rel or str(label_path), "label_file_inside_src": bool(label_rel),
                       "bbox_file": bbox_rels[0] if bbox_rels else None, "split_lists": lists_info.get("files")}
        return plan

    def _choose_label_file(self, src, by_name, explicit, explicit_rel, plan):
        """``(relative path or None when outside --src, path)`` of the label file; the others are skipped."""
        cands = sorted((L.LABEL_FILES.index(n), r.count("/"), r) for n in L.LABEL_FILES for r in by_name.pop(n, []))
        if explicit:
            chosen_rel, chosen, why = explicit_rel, Path(explicit), "--label-file given"
        elif cands:
            chosen_rel = cands[0][2]
            chosen, why = src / chosen_rel, f"used {chosen_rel}"
        else:
            raise DataError(
                f"--src {src}: no label file found: expected {' or '.join(L.LABEL_FILES)} anywhere under it (the "
                f"NIH download has Data_Entry_2017.csv at its top). Put it there or give it with --label-file "
                f"PATH, or make a synthetic set with `medpipe synth cxr14 --out DIR`.")
        for _, _, rel in cands:
            if rel != chosen_rel:
                plan.inputs["label_file"] += 1
                plan.skipped.append({"path": rel, "kind": "unused_label_file",
                                     "reason": f"another label file; {why}"})
        if chosen_rel:
            self.table_files.append(chosen_rel)
        return chosen_rel, chosen

    def _read_lists(self, src, by_name, table, plan):
        """``(image -> part name, or None for --split patient; info)``; unused lists are skipped entries."""
        split = self.options["split"]
        lists = {n: sorted(by_name.pop(n, []), key=lambda r: (r.count("/"), r)) for n in LIST_NAMES}
        want = {"official": (L.OFFICIAL_LISTS, "names"), "chexnet": (L.CHEXNET_LISTS, "chexnet")}.get(split)
        chosen: dict[str, str] = {}
        if want:
            names, fmt = want
            for part, fname in names.items():
                for rel in lists.get(fname, []):
                    if T.sniff_list(src / rel) == fmt:
                        chosen[part] = rel
                        break
            missing = [f for p, f in names.items() if p not in chosen]
            if missing:
                seen = [r for v in lists.values() for r in v]
                what = ("NIH's official train_val_list.txt and test_list.txt (one image name per line; they come "
                        "with the NIH download, not with the CheXNet lists)" if split == "official" else
                        "CheXNet's train_list.txt, val_list.txt and test_list.txt (an image name and 14 labels "
                        "per line)")
                other = ("; the CheXNet lists found are a different, random split: use --split chexnet"
                         if split == "official" and any(T.sniff_list(src / r) == "chexnet" for r in seen) else "")
                raise DataError(
                    f"--split {split}: {', '.join(missing)} not found under --src {src} (looked for {what}; "
                    f"list files found: {', '.join(seen) or 'none'}){other}. Put the lists under --src, or use "
                    f"--split patient for patient-level folds made here.")
        used = set(chosen.values())
        for rels in lists.values():
            for rel in rels:
                plan.inputs["split_list"] += 1
                if rel in used:
                    self.table_files.append(rel)
                else:
                    plan.skipped.append({"path": rel, "kind": "unused_list",
                                         "reason": f"split list not used with --split {split}"
                                                   + ("; use --split official or chexnet to follow it"
                                                      if split == "patient" else "")})
        if not want:
            return None, {"split": split}
        part_of: dict[str, str] = {}
        info: dict = {"split": split, "files": dict(chosen), "entries": {}, "in_two_lists": 0}
        disagree: dict[str, str] = {}
        n_dis, n_cmp, dis_by_class = 0, 0, Counter()
        patients_by_part: dict[str, set] = defaultdict(set)
        as_text: dict[tuple, str] = {}  # findings -> labels as the lists write them
        rows = table.rows
        for part, rel in chosen.items():
            if split == "official":
                entries = dict.fromkeys(T.read_name_list(src / rel, name=rel))
            else:
                entries = T.read_chexnet_list(src / rel, name=rel)
            info["entries"][part] = len(entries)
            pats = patients_by_part[part]
            for name, labs in entries.items():
                if name in part_of and part_of[name] != part:
                    info["in_two_lists"] += 1
                    continue
                part_of[name] = part
                row = rows.get(name)
                pats.add(row.patient if row is not None else name[:8])
                if labs is not None and row is not None and not row.unknown:
                    n_cmp += 1
                    mine = as_text.get(row.findings)
                    if mine is None:
                        mine = as_text[row.findings] = T.labels_text(L.findings_vector(row.findings))
                    if labs != mine:
                        n_dis += 1
                        theirs = labs.split()
                        dis_by_class.update(f for f, a, b in zip(L.FINDINGS, theirs, mine.split()) if a != b)
                        said = ", ".join(f for f, v in zip(L.FINDINGS, theirs) if v == "1") or "none"
                        disagree[name] = f"{rel} says {said}, the label file says {row.finding_labels!r}"
        parts = list(patients_by_part)
        shared = set()
        for i, a in enumerate(parts):
            for b in parts[i + 1:]:
                shared |= patients_by_part[a] & patients_by_part[b]
        info.update({"compared_with_label_file": n_cmp, "label_disagreements": n_dis,
                     "label_disagreements_by_finding": dict(dis_by_class),
                     "list_patients": {p: len(v) for p, v in patients_by_part.items()},
                     "patients_in_two_lists": len(shared),
                     "not_in_label_file": sum(1 for n in part_of if n not in table.rows)})
        info["_disagree"] = disagree
        return part_of, info

    # ------------------------------------------------------------------ work (worker processes)

    def convert(self, unit, src: str, out: str) -> UnitResult:
        patient, items = unit
        res = UnitResult()
        o = self.options
        categories = o["label_set"] == "categories"
        for name, rels, meta, img_boxes, part in items:
            finding_labels, findings, follow_up, age, sex, view = meta
            # candidates: read headers; unreadable ones are skipped, the one with most pixels kept
            ok = []
            for rel in rels:
                try:
                    ok.append((rel, read_image_info(os.path.join(src, rel))))
                except ImageHeaderError as e:
                    res.skipped.append({"path": rel, "kind": "unreadable_image",
                                        "reason": f"unreadable: {str(e).split(': ', 1)[-1]}"})
            if not ok:
                continue
            ok.sort(key=lambda ri: (-_pixels(ri[1]), ri[0]))
            rel, info = ok[0]
            for other, oinfo in ok[1:]:
                res.skipped.append({"path": other, "kind": "duplicate",
                                    "reason": f"another copy of {name} ({oinfo.width}x{oinfo.height}); kept {rel} "
                                              f"({info.width}x{info.height})"})
            if len(ok) > 1:
                res.anomalies.append({"path": rel, "kind": "duplicate_image",
                                      "action": f"{len(ok)} files named {name}; kept this one "
                                                f"({info.width}x{info.height}, the most pixels)"})
            path = os.path.join(src, rel)
            gray_ok = info.format == "png" and info.mode == "L" and info.bit_depth == 8
            cache = o["cache_size"] and max(info.width, info.height) > o["cache_size"]
            dst_rel = f"images/{name}"
            dst = os.path.join(out, dst_rel)
            converted = ""
            try:
                if gray_ok and not cache and o["verify"] == "header":
                    res.links[link_or_copy(path, dst, o["link"])] += 1
                    sw, sh = info.width, info.height
                else:
                    im, _ = decode_image(path)
                    if gray_ok and not cache:  # --verify decode of a file kept as is
                        im.close()
                        res.links[link_or_copy(path, dst, o["link"])] += 1
                        sw, sh = info.width, info.height
                    else:
                        g, note = to_gray(im)
                        if not gray_ok:
                            converted = info.mode if info.format == "png" else info.format
                            if note:
                                res.anomalies.append({"path": rel, "kind": "color_image",
                                                      "action": f"{info.mode} with differing channels; stored as "
                                                                f"luma (8-bit gray)"})
                        if cache:
                            from PIL import Image

                            g = g.resize(resized_size(g.width, g.height, o["cache_size"]), Image.Resampling.BILINEAR)
                        g.save(dst, format="PNG", compress_level=1)
                        res.links["cached" if cache else "converted"] += 1
                        sw, sh = g.size
            except ImageHeaderError as e:
                res.skipped.append({"path": rel, "kind": "unreadable_image",
                                    "reason": f"unreadable: {str(e).split(': ', 1)[-1]}"})
                continue
            nih_boxes = []
            for finding, x, y, w, h, line in img_boxes:
                box, clipped = scale_box((x, y, w, h), sw, sh)
                if box[2] <= box[0] or box[3] <= box[1]:
                    res.anomalies.append({"path": rel, "kind": "box_outside_image",
                                          "action": f"{finding} box (line {line} of {L.BBOX_FILE}) lies outside the "
                                                    f"image; dropped"})
                    continue
                if clipped:
                    res.anomalies.append({"path": rel, "kind": "box_outside_image",
                                          "action": f"{finding} box (line {line} of {L.BBOX_FILE}) clipped to the "
                                                    f"{sw}x{sh} image"})
                if finding not in findings:
                    res.anomalies.append({"path": rel, "kind": "box_finding_not_in_labels",
                                          "action": f"{finding} box but the label file says {finding_labels!r}; "
                                                    f"box kept, labels unchanged"})
                nih_boxes.append({"finding": finding, "box": box})
            hint = L.folder_hint(rel.split("/")[:-1])
            if hint is not None and hint[1] != int(bool(findings)):
                res.anomalies.append({"path": rel, "kind": "folder_label_disagrees",
                                      "action": f"in folder {hint[0]!r} but the label file says {finding_labels!r}; "
                                                f"the label file is used"})
            fvec = L.findings_vector(findings)
            rec = {"image": dst_rel, "patient": patient,
                   "labels": L.categories_vector(fvec) if categories else fvec}
            if categories:
                rec["findings"] = fvec
            rec.update({"finding_labels": finding_labels, "view": view, "age": age, "sex": sex,
                        "follow_up": follow_up, "nih_boxes": nih_boxes, "width": sw, "height": sh,
                        "source": {"path": rel, "width": info.width, "height": info.height,
                                   "mode": (info.mode + ("" if info.bit_depth == 8 else str(info.bit_depth))
                                            if info.format == "png" else info.format),
                                   "converted": bool(converted)}})
            if part is not None:
                rec["split_list"] = part
            res.records.append(rec)
            res.used += 1
        return res

    def finish(self, records, src: Path, located: dict) -> Finish:
        return Finish(used=len(self.table_files))

    # ------------------------------------------------------------------ split

    def positive(self, record: dict, tasks: dict) -> int:
        """Any finding (``Normal`` is not a positive in the categories label set)."""
        return int(any(record.get("findings", record["labels"])))

    def assign_parts(self, records, folds: int, seed: int, test_fraction: float):
        split = self.options["split"]
        if split == "patient" and self.options["label_set"] == "findings":
            return None  # the engine's split over the 14 labels
        from medpipe.data.splits import multilabel_patient_kfold

        def kfold(recs, k, tf=0.0):
            per = defaultdict(list)
            for r in recs:
                per[r["patient"]].append(r)
            vec = {p: [int(any(r.get("findings", r["labels"])[i] for r in rs)) for i in range(len(L.FINDINGS))]
                   for p, rs in per.items()}
            return multilabel_patient_kfold(vec, {p: len(rs) for p, rs in per.items()}, folds=k, seed=seed,
                                            test_fraction=tf)

        if split == "patient":  # categories: stratify on the 14 findings, so both label sets split alike
            n = len({r["patient"] for r in records})
            try:
                fold_of, _ = kfold(records, folds, test_fraction)
            except ValueError as e:
                raise UserError(f"--folds {folds}: {n} patients found ({e}). Use fewer --folds or a smaller "
                                f"--test-fraction, or add patients.") from e
            return [fold_of.get(r["patient"], TEST) for r in records]

        self._check_lists_leak(records)
        lists = self.stats["lists"]["files"]
        if split == "official":
            trainval = [r for r in records if r["split_list"] == "train_val"]
            self._need(trainval, folds, lists["train_val"], folds)
            fold_of, _ = kfold(trainval, folds)
            return [TEST if r["split_list"] == "test" else fold_of[r["patient"]] for r in records]
        # chexnet: the val list is fold 0; the train list is split into folds 1..K-1
        train = [r for r in records if r["split_list"] == "train"]
        val = [r for r in records if r["split_list"] == "val"]
        self._need(val, 1, lists["val"], folds)
        self._need(train, folds - 1, lists["train"], folds)
        fold_of = {r["patient"]: 0 for r in val}
        if folds > 2:
            f, _ = kfold(train, folds - 1)
            fold_of.update({p: k + 1 for p, k in f.items()})
        else:
            fold_of.update({r["patient"]: 1 for r in train})
        return [TEST if r["split_list"] == "test" else fold_of[r["patient"]] for r in records]

    def _need(self, recs, k: int, list_file: str, folds: int) -> None:
        n = len({r["patient"] for r in recs})
        if n < k:
            raise UserError(
                f"--split {self.options['split']} --folds {folds}: only {n} patient(s) of the images found are in "
                f"{list_file}, too few for {k} fold(s). Use fewer --folds (chexnet: fold 0 is the val list, the "
                f"train list fills the other folds), or --split patient.")

    def _check_lists_leak(self, records) -> None:
        where: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for r in records:
            where[r["patient"]][r["split_list"]].append(r["image"].rsplit("/", 1)[-1])
        leaks = {p: d for p, d in where.items() if len(d) > 1}
        if leaks:
            files = self.stats["lists"]["files"]
            shown = "; ".join(f"patient {p}: " + ", ".join(f"{files[part]} ({', '.join(v[:2])}"
                                                           f"{', ...' if len(v) > 2 else ''})" for part, v in d.items())
                              for p, d in sorted(leaks.items())[:5])
            raise DataError(
                f"--split {self.options['split']}: {len(leaks)} patient(s) have images in two split lists, so "
                f"the split would leak patients between training and test: {shown}"
                + (f"; and {len(leaks) - 5} more" if len(leaks) > 5 else "")
                + ". Fix the lists (every patient's images in one list), or use --split patient.")

    # ------------------------------------------------------------------ outputs

    def export(self, out: Path, final_out: Path, train, test) -> dict:
        names = self.tasks()["labels"].class_names
        with open(out / LABELS_CSV, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "patient", "fold", *names, "finding_labels", "view", "age", "sex", "follow_up",
                        "nih_boxes"])
            for r in list(train) + list(test):
                w.writerow([r["image"], r["patient"], r.get("fold", TEST), *r["labels"], r["finding_labels"],
                            r["view"] or "", "" if r["age"] is None else r["age"], r["sex"] or "",
                            "" if r["follow_up"] is None else r["follow_up"], len(r["nih_boxes"])])
        return {}

    def outputs(self) -> list[str]:
        return ["datalist.json", LABELS_CSV, "prepare_report.md"]

    def datalist_extra(self) -> dict:
        o = self.options
        extra = {"label_set": o["label_set"], "split": o["split"], "findings": list(L.FINDINGS),
                 "nih_boxes": "NIH boxes per record: [{finding, box: [xmin, ymin, xmax, ymax]}] in pixels of the "
                              "stored image (scaled from the 1024-px space)",
                 "cache_size": o["cache_size"] or None}
        if o["label_set"] == "categories":
            extra["categories"] = {k: list(v) for k, v in L.CATEGORIES.items()}
        if o["split"] == "chexnet":
            extra["folds_note"] = "fold 0 = CheXNet's val_list.txt; folds 1..K-1 = its train_list.txt by patient"
        return extra

    def patient_meta(self, records) -> dict:
        sexes = {r["sex"] for r in records if r["sex"]}
        return {"images": len(records), "with_findings": sum(any(r.get("findings", r["labels"])) for r in records),
                "sex": sexes.pop() if len(sexes) == 1 else None}

    def fold_stats(self, records) -> dict:
        return {"with_nih_boxes": sum(bool(r["nih_boxes"]) for r in records)}

    def report(self, records) -> dict:
        names = list(self.tasks()["labels"].class_names)
        parts: dict[str, list[dict]] = defaultdict(list)
        for r in records:
            parts[f"fold {r['fold']}" if "fold" in r else TEST].append(r)
        order = sorted((p for p in parts if p != TEST), key=lambda p: int(p.split()[1])) + (
            [TEST] if TEST in parts else [])

        def counts(rs):
            return [sum(r["labels"][i] for r in rs) for i in range(len(names))]

        prevalence = {}
        for p in order:
            c = counts(parts[p])
            prevalence[p] = {"images": len(parts[p]), "positives": dict(zip(names, c)),
                             "prevalence": {n: round(v / max(1, len(parts[p])), 5) for n, v in zip(names, c)}}
        train = [r for r in records if "fold" in r]
        bias = None
        if TEST in parts and train:
            ct, cs = counts(train), counts(parts[TEST])
            nt, ns = len(train), len(parts[TEST])
            bias = {"images_ratio": round(nt / ns, 4), "per_class": {}}
            for n, a, b in zip(names, ct, cs):
                pa, pb = a / nt, b / ns
                bias["per_class"][n] = {"train": a, "test": b, "ratio": round(a / b, 4) if b else None,
                                        "prevalence_train": round(pa, 5), "prevalence_test": round(pb, 5),
                                        "prevalence_ratio": round(pa / pb, 4) if pb else None}
            disease = [i for i, n in enumerate(names) if n != L.NORMAL_CATEGORY]  # Normal is no disease
            tot_a, tot_b = sum(ct[i] for i in disease), sum(cs[i] for i in disease)
            bias["findings_ratio"] = round(tot_a / tot_b, 4) if tot_b else None
        conv = Counter(r["source"]["mode"] for r in records if r["source"]["converted"])
        stats = dict(getattr(self, "stats", {}) or {})
        boxes = stats.get("boxes")
        if boxes is not None:
            placed = sum(len(r["nih_boxes"]) for r in records)
            boxes = {**boxes, "placed": placed, "on_images_skipped_or_dropped": boxes["planned"] - placed
                     + boxes["on_images_skipped_before_checking"]}
            boxes["adds_up"] = (boxes["rows"] == placed + boxes["on_images_skipped_or_dropped"]
                                + boxes["on_images_not_found"] + boxes["on_images_not_in_label_file"]
                                + boxes.get("malformed_rows", {}).get("count", 0)
                                + boxes.get("unknown_findings", {}).get("count", 0))
        lf = stats.get("label_file") or {}
        if lf:
            lf = {**lf, "rows_in_records": len(records)}
            dup = lf.get("duplicate_rows", {}).get("count", 0)
            mal = lf.get("malformed_rows", {}).get("count", 0)
            lf["adds_up"] = lf["rows"] == (lf["rows_with_image_found"] + lf["rows_whose_image_was_skipped"]
                                           + lf["rows_without_image"] + dup + mal)
        views = Counter(r["view"] for r in records)
        return {"label_set": self.options["label_set"], "class_names": names,
                "label_file": lf, "nih_boxes": boxes, "split_lists": stats.get("lists"),
                "gray_conversion": {"converted": sum(conv.values()), "by_source_mode": dict(conv)},
                "cache": {"size": self.options["cache_size"] or None,
                          "stored_sizes": dict(Counter(f"{r['width']}x{r['height']}" for r in records).most_common(5))},
                "views": dict(views), "prevalence": {"parts": order, "by_part": prevalence}, "bias": bias,
                "images_with_nih_boxes": sum(bool(r["nih_boxes"]) for r in records),
                "verify": self.options["verify"]}

    def report_facts(self, rep: dict) -> list[str]:
        o, lf = rep["options"], rep.get("label_file") or {}
        facts = [f"label file `{lf.get('used')}`: {lf.get('rows')} rows ({lf.get('patients')} patients); "
                 f"{lf.get('rows_with_image_found')} with an image found, {lf.get('rows_without_image')} without"
                 + (f", {lf.get('rows_whose_image_was_skipped')} whose image was skipped"
                    if lf.get("rows_whose_image_was_skipped") else "")
                 + f"; header: {lf.get('header_fields')} fields"
                 + (", trailing comma" if lf.get("trailing_comma") else "")
                 + (f", ages {lf.get('age_formats')}" if lf.get("age_formats") else ""),
                 f"labels: `{o['label_set']}` ({', '.join(rep['class_names'])}); split: `{o['split']}`"
                 + (" (fold 0 = CheXNet's val list)" if o["split"] == "chexnet" else ""),
                 f"images converted to 8-bit gray: {rep['gray_conversion']['converted']}"
                 + (f" ({', '.join(f'{k} {v}' for k, v in rep['gray_conversion']['by_source_mode'].items())})"
                    if rep["gray_conversion"]["converted"] else "")
                 + f"; checked by {rep['verify']}"
                 + (f"; cached at <= {o['cache_size']} px" if o["cache_size"] else ""),
                 f"views: {', '.join(f'{k} {v}' for k, v in rep['views'].items())}"]
        b = rep.get("nih_boxes")
        if b:
            facts.append(f"NIH boxes (`nih_boxes`, scaled from 1024 px): {b['rows']} rows, {b['placed']} placed on "
                         f"{rep['images_with_nih_boxes']} images, {b['on_images_not_found']} on images not found, "
                         f"{b['on_images_not_in_label_file']} on images without a label row"
                         + (f"; aliases {b['aliases']}" if b.get("aliases") else ""))
        return facts

    def report_md(self, rep: dict) -> list[str]:
        names = rep["class_names"]
        pv = rep["prevalence"]
        lines = ["## Per-class prevalence per part", "",
                 "| class | " + " | ".join(pv["parts"]) + " |", "|---|" + "---:|" * len(pv["parts"])]
        lines.append("| images | " + " | ".join(str(pv["by_part"][p]["images"]) for p in pv["parts"]) + " |")
        for n in names:
            lines.append(f"| {n} | " + " | ".join(f"{pv['by_part'][p]['positives'][n]} "
                                                   f"({100 * pv['by_part'][p]['prevalence'][n]:.1f}%)"
                                                   for p in pv["parts"]) + " |")
        b = rep.get("bias")
        lines += ["", "## Train:test bias", ""]
        if not b:
            lines.append("No test set (use --test-fraction, --split official or --split chexnet for one).")
        else:
            lines += [f"Images train (all folds) : test = {b['images_ratio']:.2f} : 1; positive finding labels "
                      f"{b['findings_ratio'] if b['findings_ratio'] is not None else 'n/a'} : 1. A class whose ratio is "
                      f"far from the images' ratio is over- or under-represented in test.", "",
                      "| class | train | test | ratio | prevalence train | prevalence test | prevalence ratio |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for n, c in b["per_class"].items():
                lines.append(f"| {n} | {c['train']} | {c['test']} | {c['ratio'] if c['ratio'] is not None else '-'} | "
                             f"{100 * c['prevalence_train']:.2f}% | {100 * c['prevalence_test']:.2f}% | "
                             f"{c['prevalence_ratio'] if c['prevalence_ratio'] is not None else '-'} |")
        sl = rep.get("split_lists") or {}
        if sl.get("files"):
            lines += ["", "## Split lists", "",
                      f"Lists used: {', '.join(f'{k} = `{v}`' for k, v in sl['files'].items())}; entries "
                      f"{sl['entries']}; patients per list {sl['list_patients']}; patients in two lists (whole "
                      f"lists): {sl['patients_in_two_lists']}; entries without a label row: {sl['not_in_label_file']}."]
            if sl.get("compared_with_label_file"):
                lines.append(f"Labels in the lists vs the label file: {sl['label_disagreements']} of "
                             f"{sl['compared_with_label_file']} entries differ"
                             + (f" (by finding: {sl['label_disagreements_by_finding']})"
                                if sl["label_disagreements"] else "")
                             + "; the label file's labels are used.")
        lf = rep.get("label_file") or {}
        if lf:
            lines += ["", "## Label file", "",
                      f"`{lf['used']}`: {lf['rows']} rows = {lf['rows_with_image_found']} with an image + "
                      f"{lf['rows_whose_image_was_skipped']} whose image was skipped + {lf['rows_without_image']} "
                      f"without an image found"
                      + "".join(f" + {lf[k]['count']} {k.replace('_', ' ')}" for k in ("duplicate_rows", "malformed_rows")
                                if lf.get(k))
                      + f" (adds up: {lf['adds_up']}). Columns: {', '.join(lf['columns'])}."]
        b = rep.get("nih_boxes")
        if b:
            lines += ["", "## NIH boxes", "",
                      f"`{b['file']}`: {b['rows']} rows = {b['placed']} placed + {b['on_images_skipped_or_dropped']} on "
                      f"images skipped (or dropped outside the image) + {b['on_images_not_found']} on images not found "
                      f"+ {b['on_images_not_in_label_file']} on images without a label row"
                      + "".join(f" + {b[k]['count']} {k.replace('_', ' ')}" for k in ("malformed_rows", "unknown_findings")
                                if b.get(k))
                      + f" (adds up: {b['adds_up']}). Aliases read: {b.get('aliases') or 'none'}."]
        return lines

    def summary_lines(self, rep: dict) -> list[str]:
        lf, g = rep.get("label_file") or {}, rep["gray_conversion"]
        lines = [f"label file: {lf.get('rows')} rows, {lf.get('rows_with_image_found')} with an image, "
                 f"{lf.get('rows_without_image')} without; split {rep['options']['split']}, "
                 f"labels {rep['options']['label_set']}",
                 f"converted to 8-bit gray: {g['converted']}"
                 + (f" ({', '.join(f'{k} {v}' for k, v in g['by_source_mode'].items())})" if g["converted"] else "")]
        b = rep.get("nih_boxes")
        if b:
            lines.append(f"NIH boxes: {b['placed']} placed on {rep['images_with_nih_boxes']} images "
                         f"({b['rows']} in the list; {b['on_images_not_found']} on images not found)")
        if rep.get("bias"):
            lines.append(f"train:test = {rep['bias']['images_ratio']:.2f}:1 in images, "
                         f"{rep['bias']['findings_ratio']}:1 in positive labels (per class: prepare_report.md)")
        return lines
