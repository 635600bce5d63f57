"""PHE-SICH-CT-IDS converter: the dataset as downloaded -> a prepared, patient-split dataset.

``medpipe prepare phe-sich --src DIR --out DIR`` calls :func:`prepare`. It

1. finds the subsets under ``--src`` (the dataset root or one subset folder) and picks one
   (``--subset auto`` prefers PNG, then JPG, then NIfTI);
2. pairs image, mask and VOC XML per slice by the (patient, slice) parsed from folder and file
   names -- never by exact file-name strings -- and reports every quirk it meets;
3. checks every file (image headers and completeness without decoding the image, masks decoded
   because their content is a label, XML parsed) in parallel over patients;
4. splits patients into stratified K folds (plus an optional test set);
5. writes ``datalist.json``, ``labels.csv``, ``prepare_report.{json,md}`` and a YOLO dataset,
   linking images instead of copying them, into a temp folder that replaces ``--out`` atomically.

Labels (the seed projects' definition): ``label`` = 1 when the slice's XML has a box; ``mask_label``
= 1 when the PHE mask is non-empty; ``boxes`` are ``[xmin, ymin, xmax, ymax]`` pixels. For the NIfTI
subset, which has no XML, boxes are the bounding box of the mask on each slice and ``label`` =
``mask_label``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from data_prep import phe_sich_layout as L
from medpipe.errors import DataError, UserError
from medpipe.io.images import ImageHeaderError, extension_format, read_image_info
from medpipe.io.voc import VOCError, parse_voc
from medpipe.utils.fs import (
    atomic_output_dir,
    clean_stale_temps,
    fingerprint,
    is_within,
    link_or_copy,
    scan_files,
    write_json,
)

#: bump when the output format or the checks change, so that old outputs are rebuilt
CONVERTER_VERSION = "1.0"
KINDS = ("image", "mask", "annotation")


@dataclass
class PrepareOptions:
    """Options of :func:`prepare` (all recorded in the report and part of the up-to-date check)."""

    folds: int = 5
    seed: int = 12345
    test_fraction: float = 0.0
    val_fold: int = 0
    subset: str = "auto"
    class_name: str = L.DEFAULT_CLASS_NAME
    strict: bool = False
    link: str = "auto"
    window: tuple[float, float] = L.BRAIN_WINDOW


# --------------------------------------------------------------------------------------------
# discovery


@dataclass
class Layout:
    """Where the subsets are: ``root`` is the dataset root; ``subsets`` maps key -> folder."""

    root: Path
    subsets: dict[str, Path]
    single_subset: bool = False


def find_layout(src: Path) -> Layout:
    """Locate the PHE-SICH-CT-IDS subsets under ``src`` (the dataset root or one subset folder)."""
    by_name = {v: k for k, v in L.SUBSET_DIRS.items()}
    if src.name in by_name:
        return Layout(root=src, subsets={by_name[src.name]: src}, single_subset=True)
    found = {k: src / d for k, d in L.SUBSET_DIRS.items() if (src / d).is_dir()}
    if found:
        return Layout(root=src, subsets=found)
    # a renamed subset folder: set/ + label/ (2D) or NIFIT/ (volumes)
    if (src / L.IMAGE_DIR).is_dir() and (src / L.MASK_DIR).is_dir():
        exts = Counter(p.suffix.lower() for p in (src / L.IMAGE_DIR).glob("*/*"))
        key = "jpg" if exts.get(".jpg", 0) > exts.get(".png", 0) else "png"
        return Layout(root=src, subsets={key: src}, single_subset=True)
    if (src / L.NIFTI_ROOT).is_dir():
        return Layout(root=src, subsets={"nifti": src}, single_subset=True)
    raise DataError(
        f"{src}: no PHE-SICH-CT-IDS data found. Expected the dataset root (holding "
        f"{', '.join(L.SUBSET_DIRS.values())}) or one subset folder, e.g. "
        f"SubdatasetC_PNG/set/image4/0004_15.png with label/ and annotation/ beside set/. "
        f"Point --src at the folder you unpacked from Kaggle/Figshare, or make one with "
        f"`medpipe synth phe-sich --out DIR`."
    )


def choose_subset(layout: Layout, subset: str) -> str:
    """The subset the records come from."""
    if subset == "auto":
        for key in L.SUBSET_PREFERENCE:
            if key in layout.subsets:
                return key
    if subset not in layout.subsets:
        raise UserError(
            f"--subset {subset}: not found under {layout.root} (found: "
            f"{', '.join(L.SUBSET_DIRS[k] for k in layout.subsets) or 'none'}). "
            f"Use --subset auto or one of: {', '.join(layout.subsets)}."
        )
    return subset


def _subset_rel(layout: Layout, key: str) -> str:
    rel = os.path.relpath(layout.subsets[key], layout.root).replace(os.sep, "/")
    return "" if rel == "." else rel + "/"


def classify_2d(files, layout: Layout, key: str):
    """Sort the chosen 2D subset's files into ``slices[(patient, slice)][kind] -> [relpath]``.

    Returns ``(slices, unrecognized, anomalies)``; file names and folder numbers are parsed, so the
    3-digit XML names of patient 13 pair like any other.
    """
    prefix = _subset_rel(layout, key)
    tops = {L.IMAGE_DIR: ("image", L.IMAGE_PREFIX), L.MASK_DIR: ("mask", L.MASK_PREFIX),
            L.ANNOTATION_DIR: ("annotation", L.ANNOTATION_PREFIX)}
    slices: dict[tuple[int, int], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    unrecognized, anomalies = [], []
    for rel, _size, _mtime in files:
        if not rel.startswith(prefix):
            continue
        parts = rel[len(prefix):].split("/")
        if len(parts) != 3 or parts[0] not in tops:
            unrecognized.append(rel)
            continue
        kind, folder_prefix = tops[parts[0]]
        m = L.FOLDER_RE.match(parts[1])
        stem, ext = os.path.splitext(parts[2])
        parsed = L.parse_slice_stem(stem)
        want_ext = ".xml" if kind == "annotation" else None
        if (not m or m.group("prefix") != folder_prefix or parsed is None
                or (want_ext and ext.lower() != want_ext)
                or (not want_ext and ext.lower() not in (".png", ".jpg", ".jpeg"))):
            unrecognized.append(rel)
            continue
        patient, sl = parsed
        if int(m.group("patient")) != patient:
            anomalies.append({"path": rel, "kind": "folder_patient_mismatch",
                              "action": f"file name says patient {patient}, folder says "
                                        f"{int(m.group('patient'))}; paired by file name"})
        if kind == "annotation" and len(stem.split("_")[0]) != 4:
            anomalies.append({"path": rel, "kind": "xml_name_not_4digit",
                              "action": f"paired with {L.slice_stem(patient, sl)} by parsed patient/slice"})
        slices[(patient, sl)][kind].append(rel)
    return slices, unrecognized, anomalies


def classify_nifti(files, layout: Layout):
    """``volumes[patient][kind] -> [relpath]`` for the NIfTI subset, plus unrecognized files."""
    prefix = _subset_rel(layout, "nifti") + L.NIFTI_ROOT + "/"
    tops = {L.IMAGE_DIR: "image", L.MASK_DIR: "mask"}
    volumes: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    unrecognized = []
    for rel, _s, _m in files:
        if not rel.startswith(_subset_rel(layout, "nifti")):
            continue
        parts = rel[len(prefix):].split("/") if rel.startswith(prefix) else []
        m = L.VOLUME_RE.match(parts[1]) if len(parts) == 2 and parts[0] in tops else None
        if not m:
            unrecognized.append(rel)
            continue
        volumes[int(m.group("patient"))][tops[parts[0]]].append(rel)
    return volumes, unrecognized


# --------------------------------------------------------------------------------------------
# per-patient checking (runs in worker processes)


def _mask_info(path: str):
    """Decode a mask: (width, height, nonempty, binary, bbox or None, format by content).

    Uses Pillow's C histogram and bounding box, which is several times faster than numpy here.
    """
    from PIL import Image

    with Image.open(path) as im:
        fmt = (im.format or "").lower()
        g = im if im.mode == "L" else im.convert("L")
        hist = g.histogram()
        nonempty = sum(hist[128:]) > 0
        binary = sum(hist[1:255]) == 0
        bbox = None
        if nonempty:
            b = g.point(lambda v: 255 if v > 127 else 0).getbbox()  # (left, upper, right+1, lower+1)
            bbox = [b[0], b[1], b[2] - 1, b[3] - 1]
        return g.size[0], g.size[1], nonempty, binary, bbox, fmt


def _clip_boxes(boxes, w, h, path, anomalies):
    out = []
    for b in boxes:
        c = [min(max(b[0], 0.0), w), min(max(b[1], 0.0), h), min(max(b[2], 0.0), w), min(max(b[3], 0.0), h)]
        if c != list(b):
            if c[2] <= c[0] or c[3] <= c[1]:
                anomalies.append({"path": path, "kind": "box_outside_image",
                                  "action": f"box {b} lies outside the {w}x{h} image; dropped"})
                continue
            anomalies.append({"path": path, "kind": "box_outside_image",
                              "action": f"box {b} clipped to {c} ({w}x{h} image)"})
        out.append(c)
    return out


def _write_mask_png(arr, path):
    from PIL import Image

    Image.fromarray(arr).save(path, optimize=False, compress_level=1)


def check_patient_2d(task):
    """Check and link all slices of one patient of a 2D subset.

    ``task`` = (src_root, tmp_out, subset_key, patient, {slice: {kind: [relpaths]}}, opts dict).
    Returns ``(records, skipped, anomalies, files_in_records)``.
    """
    src_root, tmp, key, patient, slices, opts = task
    records, skipped, anomalies = [], [], []
    used, links = 0, Counter()
    pid = L.patient_id(patient)
    for sl in sorted(slices):
        files = slices[sl]
        stem = L.slice_stem(patient, sl)
        for kind in KINDS:  # duplicates: keep the canonically named file, skip the others
            if len(files.get(kind, [])) > 1:
                ranked = sorted(files[kind], key=lambda r: (os.path.splitext(r.rsplit("/", 1)[-1])[0] != stem, r))
                for extra in ranked[1:]:
                    skipped.append({"path": extra, "reason": f"second {kind} file for slice {stem} "
                                                             f"(kept {ranked[0]})"})
                files[kind] = ranked[:1]
        img_rel = files.get("image", [None])[0]
        mask_rel = files.get("mask", [None])[0]
        xml_rel = files.get("annotation", [None])[0]
        present = [r for r in (img_rel, mask_rel, xml_rel) if r]

        def skip_all(reason, _present=present):
            for r in _present:
                skipped.append({"path": r, "reason": reason})

        if img_rel is None:
            skip_all(f"no image for slice {stem} (expected {L.slice_dir(key, 'image', patient)}/{stem}{L.SUBSET_EXT[key]})")
            continue
        if mask_rel is None:
            skip_all(f"no mask for slice {stem} (expected {L.slice_dir(key, 'mask', patient)}/{stem}{L.SUBSET_EXT[key]})")
            continue
        try:
            info = read_image_info(os.path.join(src_root, img_rel))
        except ImageHeaderError as e:
            skip_all(f"image unreadable: {str(e).split(': ', 1)[-1]}")
            continue
        if extension_format(img_rel) != info.format:
            anomalies.append({"path": img_rel, "kind": "extension_mismatch",
                              "action": f"named {os.path.splitext(img_rel)[1]} but {info.format.upper()}-encoded; "
                                        f"read by content"})
        if info.mode not in ("L", "P") or info.bit_depth != 8:
            anomalies.append({"path": img_rel, "kind": "image_not_8bit_gray",
                              "action": f"{info.mode} {info.bit_depth}-bit; kept, loaders convert to 1 channel"})
        try:
            mw, mh, nonempty, binary, mbox, mfmt = _mask_info(os.path.join(src_root, mask_rel))
        except Exception as e:  # noqa: BLE001 - any decoder failure means an unusable mask
            skip_all(f"mask unreadable ({type(e).__name__}: {e})")
            continue
        if (mw, mh) != (info.width, info.height):
            skip_all(f"mask is {mw}x{mh} but image is {info.width}x{info.height}")
            continue
        if not binary:
            anomalies.append({"path": mask_rel, "kind": "mask_not_binary",
                              "action": "values other than 0/255; foreground = value > 127"})
        boxes, label_source, xml_malformed = [], "xml", False
        if xml_rel is not None:
            try:
                ann = parse_voc(os.path.join(src_root, xml_rel))
            except VOCError as e:
                skipped.append({"path": xml_rel, "reason": f"malformed XML: {str(e).split(': ', 1)[-1]}"})
                anomalies.append({"path": xml_rel, "kind": "malformed_xml",
                                  "action": "XML skipped; label and box derived from the mask"})
                present = [img_rel, mask_rel]
                xml_rel, ann, xml_malformed = None, None, True
            if ann is not None:
                fparsed = L.parse_slice_stem(os.path.splitext(ann.filename or "")[0])
                if fparsed != (patient, sl):
                    anomalies.append({"path": xml_rel, "kind": "xml_filename_mismatch",
                                      "action": f"<filename> is {ann.filename!r}; ignored, paired by path"})
                if ann.width and ann.height and (ann.width, ann.height) != (info.width, info.height):
                    anomalies.append({"path": xml_rel, "kind": "xml_size_mismatch",
                                      "action": f"<size> {ann.width}x{ann.height} vs image "
                                                f"{info.width}x{info.height}; boxes kept in image pixels"})
                for o in ann.objects:
                    if o.name != L.VOC_CLASS_NAME:
                        anomalies.append({"path": xml_rel, "kind": "unexpected_class_name",
                                          "action": f"object class {o.name!r} (expected {L.VOC_CLASS_NAME!r}); "
                                                    f"treated as {opts['class_name']}"})
                boxes = _clip_boxes([o.box for o in ann.objects], info.width, info.height, xml_rel, anomalies)
        if xml_rel is None:
            label_source = "mask"
            if not xml_malformed:
                anomalies.append({"path": img_rel, "kind": "missing_annotation",
                                  "action": "no XML for this slice; label and box derived from the mask"})
            boxes = [list(map(float, mbox))] if mbox else []
        ext = ".png" if info.format == "png" else ".jpg"
        image_out, mask_out = f"images/{stem}{ext}", f"masks/{stem}.png"
        links[link_or_copy(os.path.join(src_root, img_rel), os.path.join(tmp, image_out), opts["link"])] += 1
        mask_src = os.path.join(src_root, mask_rel)
        if binary and mfmt == "png":
            links[link_or_copy(mask_src, os.path.join(tmp, mask_out), opts["link"])] += 1
        else:  # JPEG (lossy) or non-binary mask: store the thresholded 0/255 PNG
            import numpy as np
            from PIL import Image

            with Image.open(mask_src) as im:
                _write_mask_png(((np.asarray(im.convert("L")) > 127) * 255).astype("uint8"), os.path.join(tmp, mask_out))
            links["written"] += 1
        used += len(present)
        records.append({
            "image": image_out, "mask": mask_out, "patient": pid, "slice": sl,
            "label": int(bool(boxes)), "boxes": boxes, "mask_label": int(nonempty),
            "label_source": label_source, "width": info.width, "height": info.height,
            "source": {"image": img_rel, "mask": mask_rel, "annotation": xml_rel},
        })
    return records, skipped, anomalies, used, links


def check_patient_nifti(task):
    """Slice one patient's NIfTI volume pair into windowed 8-bit PNG slices and masks."""
    import nibabel as nib
    import numpy as np
    from PIL import Image

    src_root, tmp, _key, patient, files, opts = task
    records, skipped, anomalies = [], [], []
    pid = L.patient_id(patient)
    img_rel, mask_rel = files.get("image", [None])[0], files.get("mask", [None])[0]
    present = [r for r in (img_rel, mask_rel) if r]
    if img_rel is None or mask_rel is None:
        for r in present:
            skipped.append({"path": r, "reason": f"no {'mask' if mask_rel is None else 'image'} volume for patient {pid}"})
        return records, skipped, anomalies, 0, Counter()
    try:
        img = nib.as_closest_canonical(nib.load(os.path.join(src_root, img_rel)))
        msk = nib.as_closest_canonical(nib.load(os.path.join(src_root, mask_rel)))
        vol, mvol = np.asarray(img.dataobj, dtype=np.float32), np.asarray(msk.dataobj)
    except Exception as e:  # noqa: BLE001
        for r in present:
            skipped.append({"path": r, "reason": f"volume unreadable ({type(e).__name__}: {e})"})
        return records, skipped, anomalies, 0, Counter()
    if vol.ndim != 3 or vol.shape != mvol.shape:
        for r in present:
            skipped.append({"path": r, "reason": f"image volume {vol.shape} and mask volume {mvol.shape} differ"})
        return records, skipped, anomalies, 0, Counter()
    if not np.allclose(img.affine, msk.affine, atol=1e-3):
        anomalies.append({"path": mask_rel, "kind": "affine_mismatch",
                          "action": "mask affine differs from the image's; voxel grid assumed identical"})
    from medpipe.io.ct import window_to_uint8

    spacing = [float(s) for s in img.header.get_zooms()[:3]]
    for k in range(vol.shape[2]):
        stem = L.slice_stem(patient, k)
        hu = L.volume_slice_to_display(vol, k)
        m = L.volume_slice_to_display(mvol, k) > 0
        gray = window_to_uint8(hu, tuple(opts["window"]))
        Image.fromarray(gray).save(os.path.join(tmp, f"images/{stem}.png"), compress_level=1)
        _write_mask_png((m * 255).astype(np.uint8), os.path.join(tmp, f"masks/{stem}.png"))
        boxes = []
        if m.any():
            rows, cols = np.where(m.any(axis=1))[0], np.where(m.any(axis=0))[0]
            boxes = [[float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])]]
        records.append({
            "image": f"images/{stem}.png", "mask": f"masks/{stem}.png", "patient": pid, "slice": k,
            "label": int(bool(boxes)), "boxes": boxes, "mask_label": int(m.any()), "label_source": "mask",
            "width": int(gray.shape[1]), "height": int(gray.shape[0]), "spacing": spacing,
            "source": {"image": img_rel, "mask": mask_rel, "annotation": None, "slice_axis": 2},
        })
    return records, skipped, anomalies, len(present), Counter(written=2 * len(records))


# --------------------------------------------------------------------------------------------
# clinical table


def read_clinical(path: Path):
    """Read MedInfo.xlsx into ``{patient_id: {column: value}}`` and a summary.

    The patient column is the first whose name mentions "id", "patient", "number" or "no" (else the
    first column); values are normalized to the 4-digit patient id.
    """
    import pandas as pd

    df = pd.read_excel(path)
    cols = [str(c) for c in df.columns]
    key = next((c for c in cols if any(t in c.lower() for t in ("id", "patient", "number", "no."))), cols[0])
    table = {}
    for row in df.to_dict(orient="records"):
        raw = row.pop(key, None) if key in row else row.pop(df.columns[cols.index(key)], None)
        try:
            pid = L.patient_id(int(float(str(raw).strip().lstrip("0") or 0)))
        except (TypeError, ValueError):
            continue
        table[pid] = {str(k): (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in row.items()}
    return table, {"file": path.name, "patient_column": key, "columns": [c for c in cols if c != key]}


# --------------------------------------------------------------------------------------------
# outputs


def yolo_line(box, w, h, cls=0) -> str:
    """A YOLO label line ``cls xc yc bw bh`` (normalized) for a pixel box ``[xmin, ymin, xmax, ymax]``."""
    x0, y0, x1, y1 = box
    return f"{cls} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"


def write_yolo(tmp: Path, final_out: Path, records, test_records, val_fold: int, class_name: str, link: str):
    """YOLO dataset: ``yolo/images/{train,val[,test]}``, ``yolo/labels/...``, ``yolo/data.yaml``."""
    splits = {"train": [r for r in records if r["fold"] != val_fold],
              "val": [r for r in records if r["fold"] == val_fold]}
    if test_records:
        splits["test"] = test_records
    for split, recs in splits.items():
        (tmp / "yolo/images" / split).mkdir(parents=True)
        (tmp / "yolo/labels" / split).mkdir(parents=True)
        for r in recs:
            name = os.path.basename(r["image"])
            link_or_copy(tmp / r["image"], tmp / "yolo/images" / split / name, link)
            lines = [yolo_line(b, r["width"], r["height"]) for b in r["boxes"]]
            (tmp / "yolo/labels" / split / (os.path.splitext(name)[0] + ".txt")).write_text(
                "".join(line + "\n" for line in lines))
    lines = [f"# YOLO dataset written by medpipe prepare phe-sich (val fold {val_fold})",
             f"path: {final_out / 'yolo'}", "train: images/train", "val: images/val"]
    if test_records:
        lines.append("test: images/test")
    lines += ["nc: 1", "names:", f"  0: {class_name}"]
    (tmp / "yolo/data.yaml").write_text("\n".join(lines) + "\n")
    return {k: len(v) for k, v in splits.items()}


def write_labels_csv(path: Path, records, test_records):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label", "patient", "slice", "fold"])
        for r in records:
            w.writerow([r["image"], r["label"], r["patient"], r["slice"], r["fold"]])
        for r in test_records:
            w.writerow([r["image"], r["label"], r["patient"], r["slice"], "test"])


def render_report_md(rep: dict) -> str:
    """The human-readable twin of ``prepare_report.json``."""
    o = io.StringIO()
    p = lambda s="": o.write(s + "\n")  # noqa: E731
    p(f"# Prepared {L.FULL_NAME}: {rep['records']} slice records")
    p()
    p(f"- source: `{rep['source']['path']}` (subsets found: {', '.join(rep['source']['subsets_found'])}; "
      f"records from **{rep['source']['subset_used']}**)")
    p(f"- patients: {rep['patients']} ({rep['positive_patients']} with positive slices); "
      f"positive slices (XML box): {rep['positives']}; non-empty masks: {rep['mask_nonempty']}")
    p(f"- split: {rep['options']['folds']} patient-level folds, seed {rep['options']['seed']}, "
      f"test patients: {len(rep['test_patients'])}; YOLO val fold {rep['options']['val_fold']}")
    p(f"- class name: `{rep['options']['class_name']}` (VOC class `{L.VOC_CLASS_NAME}`: perihaematomal oedema)")
    if rep["source"]["subset_used"] == "nifti":
        p(f"- slices from volumes: axis 2 of the RAS-canonical volume (axial, inferior->superior), window "
          f"level/width {rep['options']['window'][0]}/{rep['options']['window'][1]} HU -> 8-bit; rows "
          f"anterior->posterior, columns patient right->left")
    p(f"- took {rep['timing_s']:.2f} s with {rep['workers']} worker(s); files linked by: "
      f"{', '.join(f'{k} {v}' for k, v in rep['link_methods'].items()) or 'n/a'}")
    p()
    p("## Files")
    p()
    p("| kind | seen |")
    p("|---|---:|")
    for k, v in rep["inputs"].items():
        p(f"| {k} | {v} |")
    a = rep["accounting"]
    p()
    p(f"Accounting: {a['files_seen']} files seen = {a['files_in_records']} in records + "
      f"{a['files_skipped']} skipped.")
    p()
    p("## Folds")
    p()
    p("| fold | patients | records | positives | mask non-empty |")
    p("|---|---:|---:|---:|---:|")
    for f in rep["folds"]:
        p(f"| {f['fold']} | {f['patients']} | {f['records']} | {f['positives']} | {f['mask_nonempty']} |")
    if rep.get("test"):
        t = rep["test"]
        p(f"| test | {t['patients']} | {t['records']} | {t['positives']} | {t['mask_nonempty']} |")
    p()
    p("## Box presence vs mask non-emptiness (per slice)")
    p()
    ag = rep["agreement"]
    p("| | mask non-empty | mask empty |")
    p("|---|---:|---:|")
    p(f"| XML box | {ag['box_and_mask']} | {ag['box_no_mask']} |")
    p(f"| no box | {ag['mask_no_box']} | {ag['neither']} |")
    p()
    p(f"Agreement: {ag['agreement']:.4f}")
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
        for extra in items[1:3]:
            p(f"  - `{extra['path']}` -- {extra['action']}")
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
    if rep.get("clinical"):
        c = rep["clinical"]
        p()
        p("## Clinical table")
        p()
        p(f"`{c['file']}`: patient column `{c['patient_column']}`, columns {', '.join(c['columns'])}; "
          f"matched {c['matched']} of {rep['patients']} patients (unmatched rows: {c['unmatched_rows']}).")
    return o.getvalue()


# --------------------------------------------------------------------------------------------
# the entry point


def _pool_map(fn, tasks, workers, progress, label):
    results, t0, n = [], time.perf_counter(), len(tasks)
    step = max(1, n // 5)
    if workers <= 1 or n <= 1:
        it = map(fn, tasks)
        pool = None
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("fork") if sys.platform.startswith("linux") else None
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        it = pool.map(fn, tasks, chunksize=max(1, n // (workers * 4)))
    try:
        for i, r in enumerate(it, 1):
            results.append(r)
            if progress and (i % step == 0 or i == n):
                el = time.perf_counter() - t0
                progress(f"  {label}: {i}/{n} patients, {el:.1f} s elapsed, ~{el / i * (n - i):.1f} s left")
    finally:
        if pool is not None:
            pool.shutdown()
    return results


def prepare(src, out, options: PrepareOptions | None = None, workers: int | None = None,
            progress=print) -> dict:
    """Convert PHE-SICH-CT-IDS as downloaded into a prepared dataset under ``out``.

    Args:
        src: the dataset root (holding ``SubdatasetC_PNG`` etc.) or a single subset folder. Never written.
        out: output folder; replaced atomically (complete or untouched). Must not be inside ``src``.
        options: see :class:`PrepareOptions`.
        workers: processes for checking files (default: all cores, at most 8).
        progress: callable for progress lines (None for silence).

    Returns:
        The report (also written to ``out/prepare_report.json``), with ``"up_to_date": True`` when
        nothing changed since the last run and no work was done.

    Raises:
        DataError: ``src`` is missing/empty/not this dataset, or ``--strict`` found anomalies.
        UserError: bad options (``out`` inside ``src``, fold counts, ...).

    Example:
        >>> rep = prepare("PHE-SICH-CT-IDS", "data/phe-sich")  # doctest: +SKIP
        >>> rep["records"], rep["folds"][0]["patients"]
    """
    t0 = time.perf_counter()
    opts = options or PrepareOptions()
    say = progress or (lambda s: None)
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if not src.exists():
        raise DataError(f"--src {src}: no such folder. Point it at the unpacked PHE-SICH-CT-IDS download.")
    if not src.is_dir():
        raise DataError(f"--src {src}: is a file, expected the dataset folder.")
    if is_within(out, src):
        raise UserError(f"--out {out} is inside --src {src}; the source is never written. "
                        f"Choose an output folder outside the dataset.")
    if is_within(src, out):
        raise UserError(f"--src {src} is inside --out {out}, which would be replaced. Choose another --out.")
    if not 0 <= opts.val_fold < opts.folds:
        raise UserError(f"--val-fold {opts.val_fold} must be in 0..{opts.folds - 1} (--folds {opts.folds}).")
    workers = workers or min(os.cpu_count() or 1, 8)

    clean_stale_temps(out)
    layout = find_layout(src.resolve())
    key = choose_subset(layout, opts.subset)
    files = scan_files(layout.root, skip_hidden=False)
    if not files:
        raise DataError(f"--src {src}: the folder is empty. Unpack the dataset there first.")
    opts_dict = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()}
    fp = fingerprint(files, {"options": opts_dict, "version": CONVERTER_VERSION, "root": str(layout.root)})
    prev = out / "prepare_report.json"
    if prev.exists() and (out / "datalist.json").exists():
        try:
            old = json.loads(prev.read_text())
        except ValueError:
            old = {}
        if old.get("fingerprint") == fp and old.get("output_path") == str(out.resolve()):
            say(f"{out}: up to date (same {len(files)} source files and options); nothing to do.")
            old["up_to_date"] = True
            return old

    say(f"prepare phe-sich: {len(files)} files under {layout.root}; subsets found: "
        f"{', '.join(L.SUBSET_DIRS[k] for k in layout.subsets)}; records from {L.SUBSET_DIRS[key]}")

    inputs = Counter()
    skipped, anomalies = [], []
    chosen_prefix = _subset_rel(layout, key)
    clinical_rel = L.CLINICAL_FILE if (layout.root / L.CLINICAL_FILE).is_file() else None
    other_subset_files = Counter()
    if key == "nifti":
        groups, unrecognized = classify_nifti(files, layout)
        tasks_in = {p: {k: list(v) for k, v in d.items()} for p, d in groups.items()}
        for d in groups.values():
            for k, v in d.items():
                inputs["volume" if k == "image" else "mask_volume"] += len(v)
        worker = check_patient_nifti
    else:
        slices, unrecognized, anomalies = classify_2d(files, layout, key)
        tasks_in = defaultdict(dict)
        for (p, s), d in slices.items():
            tasks_in[p][s] = {k: list(v) for k, v in d.items()}
            for k, v in d.items():
                inputs[k] += len(v)
        worker = check_patient_2d
    for rel, _s, _m in files:
        if rel.startswith(chosen_prefix) or rel == clinical_rel:
            continue
        top = rel.split("/", 1)[0]
        other_subset_files[top if "/" in rel and top in L.SUBSET_DIRS.values() else rel] += 1
    for rel in unrecognized:
        inputs["other"] += 1
        skipped.append({"path": rel, "reason": f"not part of the {L.SUBSET_DIRS[key]} layout (unexpected name or folder)"})
    for top, n in sorted(other_subset_files.items()):
        if top in L.SUBSET_DIRS.values():
            inputs["other_subset"] += n
            skipped.append({"path": top, "files": n, "reason": f"subset not used (records come from "
                                                              f"{L.SUBSET_DIRS[key]}; choose with --subset)"})
        else:
            inputs["other"] += n
            skipped.append({"path": top, "reason": "not part of the dataset layout"})
    if clinical_rel:
        inputs["clinical"] += 1
    if not tasks_in:
        raise DataError(f"{layout.subsets[key]}: no slices found in {L.SUBSET_DIRS[key]} "
                        f"(expected e.g. {L.slice_dir('png', 'image', 4)}/0004_15.png). Check --src.")

    final_out = out.resolve() if out.exists() else (out.parent.resolve() / out.name)
    link_methods = Counter()
    with atomic_output_dir(out) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        od = {"class_name": opts.class_name, "link": opts.link, "window": list(opts.window)}
        tasks = [(str(layout.root), str(tmp), key, p, tasks_in[p], od) for p in sorted(tasks_in)]
        results = _pool_map(worker, tasks, workers, say, "checked")
        records, used = [], 0
        for recs, sk, an, u, lk in results:
            link_methods.update(lk)
            records += recs
            skipped += sk
            anomalies += an
            used += u
        if not records:
            raise DataError(f"{layout.subsets[key]}: every slice was skipped ({len(skipped)} entries); "
                            f"first: {skipped[0]['path'] if skipped else '?'}: {skipped[0]['reason'] if skipped else ''}")

        clinical_info, clinical_table = None, {}
        if clinical_rel:
            try:
                clinical_table, clinical_info = read_clinical(layout.root / clinical_rel)
                used += 1
            except Exception as e:  # noqa: BLE001 - a bad clinical table must not stop the imaging data
                skipped.append({"path": clinical_rel, "reason": f"clinical table unreadable ({type(e).__name__}: {e})"})
                anomalies.append({"path": clinical_rel, "kind": "clinical_unreadable", "action": "clinical columns omitted"})

        # split
        from medpipe.data.splits import patient_kfold

        per_patient = defaultdict(list)
        for r in records:
            per_patient[r["patient"]].append(r)
        strata = {p: int(any(r["label"] for r in rs)) for p, rs in per_patient.items()}
        try:
            fold_of, test_patients = patient_kfold(strata, {p: len(rs) for p, rs in per_patient.items()},
                                                   opts.folds, opts.seed, opts.test_fraction)
        except ValueError as e:
            raise UserError(f"split: {e} ({len(per_patient)} patients found in {src}).") from e
        records.sort(key=lambda r: (r["patient"], r["slice"]))
        train, test = [], []
        for r in records:
            if r["patient"] in fold_of:
                r["fold"] = fold_of[r["patient"]]
                train.append(r)
            else:
                test.append(r)

        if opts.strict and (anomalies or skipped):
            kinds = Counter(a["kind"] for a in anomalies)
            first = (anomalies or skipped)[0]
            raise DataError(
                f"--strict: {len(anomalies)} anomalies ({', '.join(f'{k} x{v}' for k, v in kinds.items()) or 'none'}) "
                f"and {len(skipped)} skipped entries; first: {first['path']}: "
                f"{first.get('action', first.get('reason'))}. Nothing was written to {out}. "
                f"Run without --strict to prepare anyway and read prepare_report.md."
            )

        yolo_counts = write_yolo(tmp, final_out, train, test, opts.val_fold, opts.class_name, opts.link)
        write_labels_csv(tmp / "labels.csv", train, test)

        patients_meta = {}
        for p in sorted(per_patient):
            rs = per_patient[p]
            patients_meta[p] = {"fold": fold_of.get(p, "test"), "slices": len(rs),
                                "positive_slices": sum(r["label"] for r in rs),
                                **({"clinical": clinical_table[p]} if p in clinical_table else {})}
        if clinical_info is not None:
            clinical_info["matched"] = sum(p in clinical_table for p in per_patient)
            clinical_info["unmatched_rows"] = sorted(set(clinical_table) - set(per_patient))

        datalist = {
            "name": L.FULL_NAME, "description": "PHE-SICH-CT-IDS slices prepared by medpipe "
                                                "(perihaematomal oedema masks and boxes)",
            "modality": {"0": "CT"}, "labels": {str(k): v for k, v in L.DEFAULT_LABEL_NAMES.items()},
            "class_names": [opts.class_name], "num_folds": opts.folds, "seed": opts.seed,
            "subset": L.SUBSET_DIRS[key], "numTraining": len(train), "numTest": len(test),
            "training": train,
        }
        if test:
            datalist["test"] = test
        datalist["patients"] = patients_meta
        write_json(tmp / "datalist.json", datalist)

        def fold_stats(rs):
            return {"patients": len({r["patient"] for r in rs}), "records": len(rs),
                    "positives": sum(r["label"] for r in rs), "mask_nonempty": sum(r["mask_label"] for r in rs)}

        ag = Counter((bool(r["label"]), bool(r["mask_label"])) for r in records)
        n_files_skipped = sum(s.get("files", 1) for s in skipped)
        files_seen = len(files)
        report = {
            "dataset": L.DATASET_NAME, "converter_version": CONVERTER_VERSION,
            "source": {"path": str(src.resolve()), "root": str(layout.root),
                       "subsets_found": [L.SUBSET_DIRS[k] for k in layout.subsets], "subset_used": L.SUBSET_DIRS[key]},
            "output_path": str(final_out), "options": opts_dict, "workers": workers,
            "inputs": dict(sorted(inputs.items())) | {"total": files_seen},
            "records": len(records), "training_records": len(train), "test_records": len(test),
            "patients": len(per_patient), "positive_patients": sum(strata.values()),
            "positives": sum(r["label"] for r in records), "mask_nonempty": sum(r["mask_label"] for r in records),
            "folds": [{"fold": f, **fold_stats([r for r in train if r["fold"] == f])} for f in range(opts.folds)],
            "test": fold_stats(test) if test else None, "test_patients": test_patients,
            "agreement": {"box_and_mask": ag[(True, True)], "box_no_mask": ag[(True, False)],
                          "mask_no_box": ag[(False, True)], "neither": ag[(False, False)],
                          "agreement": (ag[(True, True)] + ag[(False, False)]) / max(1, len(records))},
            "yolo": {"data_yaml": "yolo/data.yaml", "val_fold": opts.val_fold, "images": yolo_counts},
            "clinical": clinical_info,
            "skipped": skipped, "anomalies": anomalies,
            "anomaly_counts": dict(Counter(a["kind"] for a in anomalies)),
            "accounting": {"files_seen": files_seen, "files_in_records": used, "files_skipped": n_files_skipped,
                           "adds_up": used + n_files_skipped == files_seen},
            "link_methods": dict(link_methods), "fingerprint": fp,
            "timing_s": round(time.perf_counter() - t0, 3),
        }
        if not report["accounting"]["adds_up"]:
            raise RuntimeError(f"internal error: accounting does not add up: {report['accounting']}")
        write_json(tmp / "prepare_report.json", report)
        (tmp / "prepare_report.md").write_text(render_report_md(report))
    report["timing_s"] = round(time.perf_counter() - t0, 3)
    return report


def summary_lines(rep: dict) -> list[str]:
    """A few lines for the terminal after a run."""
    a = rep["accounting"]
    lines = [
        f"records: {rep['records']} slices from {rep['patients']} patients ({rep['source']['subset_used']}); "
        f"positives (box) {rep['positives']}, non-empty masks {rep['mask_nonempty']}",
        f"files: {a['files_seen']} seen = {a['files_in_records']} in records + {a['files_skipped']} skipped",
        "folds: " + ", ".join(f"{f['fold']}: {f['patients']}p/{f['records']}r/{f['positives']}+" for f in rep["folds"])
        + (f"; test: {rep['test']['patients']}p/{rep['test']['records']}r" if rep.get("test") else ""),
        f"anomalies: {len(rep['anomalies'])} "
        + (f"({', '.join(f'{k} x{v}' for k, v in rep['anomaly_counts'].items())})" if rep["anomalies"] else "")
        + f"; skipped entries: {len(rep['skipped'])}",
        f"box/mask agreement: {rep['agreement']['agreement']:.4f} "
        f"(box only {rep['agreement']['box_no_mask']}, mask only {rep['agreement']['mask_no_box']})",
        f"took {rep['timing_s']:.2f} s",
    ]
    return lines
