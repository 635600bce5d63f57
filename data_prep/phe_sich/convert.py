"""PHE-SICH-CT-IDS converter: what is specific to this dataset (the engine does the rest).

:class:`PheSichConverter` plugs into :func:`medpipe.prepare.engine.prepare`. It

1. finds the subsets under ``--src`` (the dataset root or one subset folder) and picks one
   (``--subset auto`` prefers PNG, then JPG, then NIfTI);
2. pairs image, mask and VOC XML per slice by the (patient, slice) parsed from folder and file
   names -- never by exact file-name strings -- and reports every quirk it meets;
3. checks every file of a patient in a worker: images decoded completely, masks decoded and their
   value set read (0/255, or 0/v normalized to 0/255), XML parsed (swapped corners reordered,
   boxes clipped to the image); NIfTI volumes are cut into brain-windowed 8-bit slices;
4. reads the clinical table (``MedInfo.xlsx``) when present;
5. exports ``labels.csv`` and a YOLO dataset (``yolo/data.yaml``) and adds its report sections
   (subsets, box/mask agreement, clinical table).

Labels (the seed projects' definition): ``label`` = 1 when the slice's XML has a box; ``mask_label``
= 1 when the PHE mask is non-empty; ``boxes`` are ``[xmin, ymin, xmax, ymax]`` pixels. For the NIfTI
subset, which has no XML, boxes are the bounding box of the mask on each slice and ``label`` =
``mask_label``.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from data_prep.phe_sich import layout as L
from medpipe.errors import DataError, UserError
from medpipe.io.images import ImageHeaderError, decode_image, extension_format
from medpipe.io.voc import VOCError, parse_voc
from medpipe.prepare.converter import Converter, Finish, Plan, UnitResult
from medpipe.prepare.exports import STAGED_LABELS, stage_yolo_label, write_labels_csv, write_yolo
from medpipe.prepare.spec import OptionError, Task
from medpipe.utils.fs import link_or_copy

KINDS = ("image", "mask", "annotation")


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
# file checks (worker processes)


@dataclass
class MaskInfo:
    """A decoded mask: size, the value set's reading, and the foreground's bounding box."""

    width: int
    height: int
    format: str
    values: list[int]
    foreground: int | None  # the one foreground value of a two-valued {0, v} mask; None otherwise
    canonical: bool  # values within {0, 255}: can be used as is
    nonempty: bool
    bbox: list[int] | None  # [xmin, ymin, xmax, ymax], max inclusive


def read_mask(path: str, data: bytes | None = None):
    """Decode a mask and read its value set. Returns ``(MaskInfo, gray image)``.

    A mask whose values are ``{0, v}`` is binary with foreground ``v`` (``{0, 1}`` masks are common);
    any other value set is thresholded at 127. Pillow's C histogram and bounding box are several
    times faster than numpy here.
    """
    im, info = decode_image(path, data)
    g = im if im.mode == "L" else im.convert("L")
    hist = g.histogram()
    values = [v for v in range(256) if hist[v]]
    nonzero = [v for v in values if v]
    canonical = set(values) <= {0, 255}
    fg = nonzero[0] if len(nonzero) == 1 else None
    if canonical:
        binary_img = g
    else:  # {0, v}: foreground v; anything else: threshold at 127
        binary_img = g.point([255 if (v == fg if fg is not None else v > 127) else 0 for v in range(256)])
    b = binary_img.getbbox()  # (left, upper, right+1, lower+1) of the non-zero pixels
    bbox = [b[0], b[1], b[2] - 1, b[3] - 1] if b else None
    m = MaskInfo(width=g.size[0], height=g.size[1], format=info.format, values=values, foreground=fg,
                 canonical=canonical, nonempty=bbox is not None, bbox=bbox)
    return m, binary_img


def _read(path: str) -> bytes:
    """A source file's bytes (read once: checked, decoded and copied from memory)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ImageHeaderError(f"{path}: cannot be read ({e.strerror or e})") from e


def _skip_reason(e: Exception) -> str:
    return str(e).split(": ", 1)[-1]


def _boxes_from_xml(ann, xml_rel, w, h, class_name, anomalies):
    out = []
    for o in ann.objects:
        if o.name != L.VOC_CLASS_NAME:
            anomalies.append({"path": xml_rel, "kind": "unexpected_class_name",
                              "action": f"object class {o.name!r} (expected {L.VOC_CLASS_NAME!r}); "
                                        f"treated as {class_name}"})
        b = list(o.box)
        if b[0] > b[2] or b[1] > b[3]:
            fixed = [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])]
            anomalies.append({"path": xml_rel, "kind": "box_corners_swapped",
                              "action": f"box {b} has xmin > xmax or ymin > ymax; corners reordered to {fixed}"})
            b = fixed
        c = [min(max(b[0], 0.0), w), min(max(b[1], 0.0), h), min(max(b[2], 0.0), w), min(max(b[3], 0.0), h)]
        if c != b:
            if c[2] <= c[0] or c[3] <= c[1]:
                anomalies.append({"path": xml_rel, "kind": "box_outside_image",
                                  "action": f"box {b} lies outside the {w}x{h} image; dropped"})
                continue
            anomalies.append({"path": xml_rel, "kind": "box_outside_image",
                              "action": f"box {b} clipped to {c} ({w}x{h} image)"})
        out.append(c)
    return out


# --------------------------------------------------------------------------------------------
# the converter


class PheSichConverter(Converter):
    """PHE-SICH-CT-IDS: PNG/JPG slices with masks and VOC boxes, or NIfTI volumes; optional clinical table."""

    folders = ("images", "masks", STAGED_LABELS)
    skip_words = {
        "unused_subset": "files of a subset not used",
        "no_image": "annotation or mask without an image",
        "no_mask": "image without a mask",
        "duplicate": "second file for the same slice",
        "unrecognized": "file not in the subset's layout",
        "not_in_layout": "file outside the dataset layout",
        "unreadable_image": "damaged image",
        "unreadable_mask": "damaged mask",
        "size_mismatch": "mask of another size than its image",
        "malformed_xml": "malformed annotation XML",
        "unreadable_volume": "unreadable NIfTI volume",
        "volume_mismatch": "volume pair of different shapes",
        "no_pair": "volume without its pair",
        "unreadable_clinical": "unreadable clinical table",
    }

    # ------------------------------------------------------------------ options and discovery

    def check_options(self) -> None:
        folds, vf = self.options["folds"], self.options["val_fold"]
        if not 0 <= vf < folds:
            raise OptionError(f"--val-fold {vf}: must be in 0..{folds - 1} (--folds {folds}); it names the fold "
                              f"whose patients form the YOLO val split.")

    def tasks(self) -> dict:
        cn = self.options["class_name"]
        return {"label": Task("binary", L.label_names(cn)), "mask": Task("segmentation", ("background", cn)),
                "boxes": Task("detection", (cn,))}

    def locate(self, src: Path) -> dict:
        layout = find_layout(src)
        key = choose_subset(layout, self.options["subset"])
        return {"root": str(layout.root), "subsets": {k: str(v) for k, v in layout.subsets.items()},
                "single_subset": layout.single_subset, "key": key}

    def plan(self, src: Path, files, located: dict) -> Plan:
        layout = Layout(Path(located["root"]), {k: Path(v) for k, v in located["subsets"].items()},
                        located["single_subset"])
        key = self.key = located["key"]
        plan = Plan(source={"root": str(layout.root),
                            "subsets_found": [L.SUBSET_DIRS[k] for k in layout.subsets],
                            "subset_used": L.SUBSET_DIRS[key]},
                    description=f"subsets found: {', '.join(L.SUBSET_DIRS[k] for k in layout.subsets)}; "
                                f"records from {L.SUBSET_DIRS[key]}")
        chosen = _subset_rel(layout, key)
        self.clinical_rel = L.CLINICAL_FILE if any(f[0] == L.CLINICAL_FILE for f in files) else None
        if key == "nifti":
            groups, unrecognized = classify_nifti(files, layout)
            for p, d in sorted(groups.items()):
                plan.units.append(("nifti", p, {k: list(v) for k, v in d.items()}))
                for k, v in d.items():
                    plan.inputs["volume" if k == "image" else "mask_volume"] += len(v)
        else:
            slices, unrecognized, plan.anomalies = classify_2d(files, layout, key)
            per_patient = defaultdict(dict)
            for (p, s), d in slices.items():
                per_patient[p][s] = {k: list(v) for k, v in d.items()}
                for k, v in d.items():
                    plan.inputs[k] += len(v)
            plan.units = [("2d", key, p, per_patient[p]) for p in sorted(per_patient)]
        for rel in unrecognized:
            plan.inputs["other"] += 1
            plan.skipped.append({"path": rel, "kind": "unrecognized",
                                 "reason": f"not part of the {L.SUBSET_DIRS[key]} layout (unexpected name or folder)"})
        other_subsets = Counter()
        for rel, _s, _m in files:
            if rel.startswith(chosen) or rel == self.clinical_rel:
                continue
            top = rel.split("/", 1)[0]
            if "/" in rel and top in L.SUBSET_DIRS.values():
                other_subsets[top] += 1
            else:
                plan.inputs["other"] += 1
                plan.skipped.append({"path": rel, "kind": "not_in_layout", "reason": "not part of the dataset layout"})
        for top, n in sorted(other_subsets.items()):
            plan.inputs["other_subset"] += n
            plan.skipped.append({"path": top, "files": n, "kind": "unused_subset",
                                 "reason": f"subset not used: records come from {L.SUBSET_DIRS[key]}; "
                                           f"choose with --subset"})
        if self.clinical_rel:
            plan.inputs["clinical"] += 1
        return plan

    # ------------------------------------------------------------------ work

    def convert(self, unit, src: str, out: str) -> UnitResult:
        if unit[0] == "nifti":
            return self._convert_nifti(unit[1], unit[2], src, out)
        return self._convert_2d(unit[1], unit[2], unit[3], src, out)

    def _convert_2d(self, key, patient, slices, src_root, tmp) -> UnitResult:
        res = UnitResult()
        skipped, anomalies = res.skipped, res.anomalies
        link, class_name = self.options["link"], self.options["class_name"]
        pid = L.patient_id(patient)
        for sl in sorted(slices):
            files = slices[sl]
            stem = L.slice_stem(patient, sl)
            for kind in KINDS:  # duplicates: keep the canonically named file, skip the others
                if len(files.get(kind, [])) > 1:
                    ranked = sorted(files[kind], key=lambda r: (os.path.splitext(r.rsplit("/", 1)[-1])[0] != stem, r))
                    for extra in ranked[1:]:
                        skipped.append({"path": extra, "kind": "duplicate",
                                        "reason": f"second {kind} file for slice {stem} (kept {ranked[0]})"})
                    files[kind] = ranked[:1]
            img_rel = files.get("image", [None])[0]
            mask_rel = files.get("mask", [None])[0]
            xml_rel = files.get("annotation", [None])[0]
            present = [r for r in (img_rel, mask_rel, xml_rel) if r]

            def skip_all(kind, reason, _present=present):
                for r in _present:
                    skipped.append({"path": r, "kind": kind, "reason": reason})

            if img_rel is None:
                skip_all("no_image", f"no image for slice {stem} (expected "
                                     f"{L.slice_dir(key, 'image', patient)}/{stem}{L.SUBSET_EXT[key]})")
                continue
            if mask_rel is None:
                skip_all("no_mask", f"no mask for slice {stem} (expected "
                                    f"{L.slice_dir(key, 'mask', patient)}/{stem}{L.SUBSET_EXT[key]})")
                continue
            try:
                img_bytes = _read(os.path.join(src_root, img_rel))
                im, info = decode_image(os.path.join(src_root, img_rel), img_bytes)
                im.close()
            except ImageHeaderError as e:
                skip_all("unreadable_image", f"image {img_rel} unreadable: {_skip_reason(e)}")
                continue
            if extension_format(img_rel) != info.format:
                anomalies.append({"path": img_rel, "kind": "extension_mismatch",
                                  "action": f"named {os.path.splitext(img_rel)[1]} but {info.format.upper()}-encoded; "
                                            f"read by content"})
            if info.mode not in ("L", "P") or info.bit_depth != 8:
                anomalies.append({"path": img_rel, "kind": "image_not_8bit_gray",
                                  "action": f"{info.mode} {info.bit_depth}-bit; kept, loaders convert to 1 channel"})
            try:
                mask_bytes = _read(os.path.join(src_root, mask_rel))
                mask, mask_img = read_mask(os.path.join(src_root, mask_rel), mask_bytes)
            except Exception as e:  # noqa: BLE001 - any decoder failure means an unusable mask
                skip_all("unreadable_mask", f"mask {mask_rel} unreadable: {_skip_reason(e)}")
                continue
            if (mask.width, mask.height) != (info.width, info.height):
                skip_all("size_mismatch", f"mask is {mask.width}x{mask.height} but image is {info.width}x{info.height}")
                continue
            if not mask.canonical:
                if mask.foreground is not None:
                    anomalies.append({"path": mask_rel, "kind": "mask_values_not_0_255",
                                      "action": f"values {{0, {mask.foreground}}}: foreground = {mask.foreground}; "
                                                f"stored as a 0/255 PNG"})
                else:
                    shown = ", ".join(map(str, mask.values[:6])) + (", ..." if len(mask.values) > 6 else "")
                    anomalies.append({"path": mask_rel, "kind": "mask_not_binary",
                                      "action": f"{len(mask.values)} values ({shown}); foreground = value > 127; "
                                                f"stored as a 0/255 PNG"})
            boxes, label_source, xml_malformed = [], "xml", False
            if xml_rel is not None:
                try:
                    ann = parse_voc(os.path.join(src_root, xml_rel))
                except VOCError as e:
                    skipped.append({"path": xml_rel, "kind": "malformed_xml", "reason": f"malformed XML: {_skip_reason(e)}"})
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
                    boxes = _boxes_from_xml(ann, xml_rel, info.width, info.height, class_name, anomalies)
            if xml_rel is None:
                label_source = "mask"
                if not xml_malformed:
                    anomalies.append({"path": img_rel, "kind": "missing_annotation",
                                      "action": "no XML for this slice; label and box derived from the mask"})
                boxes = [list(map(float, mask.bbox))] if mask.bbox else []
            ext = ".png" if info.format == "png" else ".jpg"
            image_out, mask_out = f"images/{stem}{ext}", f"masks/{stem}.png"
            res.links[link_or_copy(os.path.join(src_root, img_rel), os.path.join(tmp, image_out), link,
                                   img_bytes)] += 1
            if mask.canonical and mask.format == "png":
                res.links[link_or_copy(os.path.join(src_root, mask_rel), os.path.join(tmp, mask_out), link,
                                       mask_bytes)] += 1
            else:  # JPEG (lossy) or not 0/255: store the normalized 0/255 PNG
                mask_img.save(os.path.join(tmp, mask_out), format="PNG", compress_level=1)
                res.links["written"] += 1
            res.used += len(present)
            res.records.append({
                "image": image_out, "mask": mask_out, "patient": pid, "slice": sl,
                "label": int(bool(boxes)), "boxes": boxes, "mask_label": int(mask.nonempty),
                "label_source": label_source, "width": info.width, "height": info.height,
                "source": {"image": img_rel, "mask": mask_rel, "annotation": xml_rel},
            })
            stage_yolo_label(tmp, res.records[-1])
        return res

    def _convert_nifti(self, patient, files, src_root, tmp) -> UnitResult:
        """Slice one patient's NIfTI volume pair into windowed 8-bit PNG slices and masks."""
        import nibabel as nib
        import numpy as np
        from PIL import Image

        from medpipe.io.ct import window_to_uint8

        res = UnitResult()
        pid = L.patient_id(patient)
        img_rel, mask_rel = files.get("image", [None])[0], files.get("mask", [None])[0]
        present = [r for r in (img_rel, mask_rel) if r]
        for kind in ("image", "mask"):
            for extra in files.get(kind, [])[1:]:
                res.skipped.append({"path": extra, "kind": "duplicate", "reason": f"second {kind} volume for patient {pid}"})

        def skip_all(kind, reason):
            for r in present:
                res.skipped.append({"path": r, "kind": kind, "reason": reason})
            return res

        if img_rel is None or mask_rel is None:
            return skip_all("no_pair", f"no {'mask' if mask_rel is None else 'image'} volume for patient {pid}")
        try:
            img = nib.as_closest_canonical(nib.load(os.path.join(src_root, img_rel)))
            msk = nib.as_closest_canonical(nib.load(os.path.join(src_root, mask_rel)))
            vol, mvol = np.asarray(img.dataobj, dtype=np.float32), np.asarray(msk.dataobj)
        except Exception as e:  # noqa: BLE001
            return skip_all("unreadable_volume", f"volume unreadable ({type(e).__name__}: {e})")
        if vol.ndim != 3 or vol.shape != mvol.shape:
            return skip_all("volume_mismatch", f"image volume {vol.shape} and mask volume {mvol.shape} differ")
        if not np.allclose(img.affine, msk.affine, atol=1e-3):
            res.anomalies.append({"path": mask_rel, "kind": "affine_mismatch",
                                  "action": "mask affine differs from the image's; voxel grid assumed identical"})
        window = tuple(self.spec.input.window)
        spacing = [float(s) for s in img.header.get_zooms()[:3]]
        for k in range(vol.shape[2]):
            stem = L.slice_stem(patient, k)
            hu = L.volume_slice_to_display(vol, k)
            m = L.volume_slice_to_display(mvol, k) > 0
            gray = window_to_uint8(hu, window)
            Image.fromarray(gray).save(os.path.join(tmp, f"images/{stem}.png"), compress_level=1)
            Image.fromarray((m * 255).astype(np.uint8)).save(os.path.join(tmp, f"masks/{stem}.png"), compress_level=1)
            boxes = []
            if m.any():
                rows, cols = np.where(m.any(axis=1))[0], np.where(m.any(axis=0))[0]
                boxes = [[float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])]]
            res.records.append({
                "image": f"images/{stem}.png", "mask": f"masks/{stem}.png", "patient": pid, "slice": k,
                "label": int(bool(boxes)), "boxes": boxes, "mask_label": int(m.any()), "label_source": "mask",
                "width": int(gray.shape[1]), "height": int(gray.shape[0]), "spacing": spacing,
                "source": {"image": img_rel, "mask": mask_rel, "annotation": None, "slice_axis": 2},
            })
            stage_yolo_label(tmp, res.records[-1])
        res.used = len(present)
        res.links["written"] = 2 * len(res.records)
        return res

    def finish(self, records, src: Path, located: dict) -> Finish:
        from medpipe.prepare.records import link_slice_neighbors

        # 2.5D input: each slice's neighbours in its patient's stack (the slice numbers are the stack order)
        link_slice_neighbors(records, group="patient", order="slice")
        fin = Finish()
        if not self.clinical_rel:
            return fin
        try:
            table, info = read_clinical(Path(located["root"]) / self.clinical_rel)
        except Exception as e:  # noqa: BLE001 - a bad clinical table must not stop the imaging data
            fin.skipped.append({"path": self.clinical_rel, "kind": "unreadable_clinical",
                                "reason": f"clinical table unreadable ({type(e).__name__}: {e})"})
            fin.anomalies.append({"path": self.clinical_rel, "kind": "clinical_unreadable",
                                  "action": "clinical columns omitted"})
            return fin
        fin.used = 1
        patients = {r["patient"] for r in records}
        fin.patients = {p: {"clinical": row} for p, row in table.items() if p in patients}
        info["matched"] = len(fin.patients)
        info["unmatched_rows"] = sorted(set(table) - patients)
        fin.report = {"clinical": info}
        return fin

    # ------------------------------------------------------------------ outputs

    def export(self, out: Path, final_out: Path, train, test) -> dict:
        write_labels_csv(out / "labels.csv", train, test, columns=("image", "label", "patient", "slice", "fold"))
        names = self.tasks()["boxes"].class_names
        counts = write_yolo(out, final_out, train, test, self.options["val_fold"], names,
                            title=f"medpipe prepare {self.spec.name}")
        return {"yolo": {"data_yaml": "yolo/data.yaml", "val_fold": self.options["val_fold"], "images": counts}}

    def outputs(self) -> list[str]:
        return ["datalist.json", "labels.csv", "prepare_report.md", "yolo/data.yaml"]

    def datalist_extra(self) -> dict:
        return {"subset": L.SUBSET_DIRS[self.key]}

    def patient_meta(self, records) -> dict:
        return {"slices": len(records), "positive_slices": sum(r["label"] for r in records)}

    def fold_stats(self, records) -> dict:
        return {"mask_nonempty": sum(r["mask_label"] for r in records)}

    def report(self, records) -> dict:
        ag = Counter((bool(r["label"]), bool(r["mask_label"])) for r in records)
        return {"mask_nonempty": sum(r["mask_label"] for r in records),
                "agreement": {"box_and_mask": ag[(True, True)], "box_no_mask": ag[(True, False)],
                              "mask_no_box": ag[(False, True)], "neither": ag[(False, False)],
                              "agreement": (ag[(True, True)] + ag[(False, False)]) / max(1, len(records))}}

    def report_facts(self, rep: dict) -> list[str]:
        o = rep["options"]
        facts = [f"subsets found: {', '.join(rep['source']['subsets_found'])}; records from "
                 f"**{rep['source']['subset_used']}**",
                 f"positive slices (XML box): {rep['positives']}; non-empty masks: {rep['mask_nonempty']}",
                 f"class name: `{o['class_name']}` (VOC class `{L.VOC_CLASS_NAME}`: perihaematomal oedema); "
                 f"YOLO val fold {o['val_fold']}"]
        if rep["source"]["subset_used"] == L.SUBSET_DIRS["nifti"]:
            w = rep["input"]["window"]
            facts.append(f"slices from volumes: axis 2 of the RAS-canonical volume (axial, inferior->superior), "
                         f"window level/width {w[0]:g}/{w[1]:g} HU -> 8-bit; rows anterior->posterior, "
                         f"columns patient right->left")
        return facts

    def report_md(self, rep: dict) -> list[str]:
        ag = rep["agreement"]
        lines = ["## Box presence vs mask non-emptiness (per slice)", "",
                 "| | mask non-empty | mask empty |", "|---|---:|---:|",
                 f"| XML box | {ag['box_and_mask']} | {ag['box_no_mask']} |",
                 f"| no box | {ag['mask_no_box']} | {ag['neither']} |", "",
                 f"Agreement: {ag['agreement']:.4f}"]
        c = rep.get("clinical")
        if c:
            lines += ["## Clinical table", "",
                      f"`{c['file']}`: patient column `{c['patient_column']}`, columns {', '.join(c['columns'])}; "
                      f"matched {c['matched']} of {rep['patients']} patients (unmatched rows: {c['unmatched_rows']})."]
        return lines

    def summary_lines(self, rep: dict) -> list[str]:
        ag = rep["agreement"]
        return [f"subset: {rep['source']['subset_used']}; positive slices (box) {rep['positives']}, "
                f"non-empty masks {rep['mask_nonempty']}; box/mask agreement {ag['agreement']:.4f} "
                f"(box only {ag['box_no_mask']}, mask only {ag['mask_no_box']})"]


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
