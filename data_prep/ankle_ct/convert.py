"""ankle-ct converter: user scans + a manifest -> bone-windowed axial PNG slices, 7-class labels, patient folds.

:class:`AnkleCtConverter` plugs into :func:`medpipe.prepare.engine.prepare`. It

1. reads the manifest (``--manifest``, inside ``--src`` or not; default: ``labels.csv`` or the one
   table at the top of ``--src``) with :func:`~data_prep.ankle_ct.tables.read_manifest`: columns by
   name (``--image-column`` ...), labels as numbers or class names (``--classes``);
2. joins the rows to the files under ``--src``: a NIfTI file, a folder (one DICOM series: the files
   directly in it), a PNG or a single DICOM slice; a row whose file is missing, a row with a bad
   value and images whose rows disagree are reported by line and file; files no row names are
   skipped as ``not_in_manifest`` (so the file accounting adds up);
3. per image, in worker processes: reads the volume (nibabel; DICOM series with SimpleITK's series
   reader, a folder holding several series is skipped as ``mixed_series``; a 4-D volume as
   ``not_3d``), reorients it to RAS and cuts the axial slices in the radiological display
   convention (:func:`medpipe.io.masks.read_nifti_display_slices`), keeps the ``slices`` range,
   applies the bone window (``--window-level``/``--window-width``), resamples in-plane to
   ``--spacing`` mm (0: kept), mirrors left ankles with ``--mirror-left``, and stores 8-bit PNGs;
   a PNG slice passes through (mirrored too when asked);
4. reports class counts per fold with a warning for each class absent from a fold.

Record keys: ``image`` (PNG), ``patient``, ``label`` (0..6), ``label_value`` (as the manifest wrote
it), ``volume`` (the manifest's image path: the source id), ``slice`` (axial index in the RAS
volume, 0 for a 2D slice), ``volume_image`` (for a volume: its kept slices, windowed and resampled
like the PNGs, as one ``volumes/*.npz`` array ``(slices, rows, columns)`` uint8: what a 3-D model
reads; absent for a 2D slice), ``side`` (``L``/``R``/None), ``mirrored``, ``spacing`` (stored ``[slice,
row, column]`` mm; None for a PNG), ``width``/``height``, ``source`` (``path``, ``kind``, manifest
``lines``, ``spacing`` as read, ``shape``).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path

from data_prep.ankle_ct import layout as L
from data_prep.ankle_ct import tables as T
from medpipe.errors import DataError
from medpipe.prepare.converter import Converter, Finish, Plan, UnitResult
from medpipe.prepare.exports import write_labels_csv
from medpipe.prepare.spec import Task

LABELS_CSV = "labels.csv"
#: at most this many examples of one row problem are listed as anomalies
EXAMPLES = 20


class VolumeError(ValueError):
    """An image that cannot be used; ``kind`` is the skipped kind (``not_3d``, ``mixed_series``, ...)."""

    def __init__(self, kind: str, why: str):
        super().__init__(why)
        self.kind = kind


def _sitk_to_nifti(img):
    """A SimpleITK image (LPS world) as a nibabel image (RAS world) with the same voxels."""
    import nibabel as nib
    import numpy as np
    import SimpleITK as sitk

    if img.GetDimension() > 3:
        raise VolumeError("not_3d", f"a {img.GetDimension()}-D image (size {img.GetSize()}); expected a 3-D volume")
    arr = sitk.GetArrayFromImage(img)
    if img.GetNumberOfComponentsPerPixel() > 1:
        raise VolumeError("not_3d", f"{img.GetNumberOfComponentsPerPixel()} components per voxel; expected gray CT")
    dim = img.GetDimension()
    if dim == 2:
        arr = arr[None]
    data = np.ascontiguousarray(arr.transpose(2, 1, 0)).astype(np.float32)  # [z, y, x] -> [x, y, z]
    direction = np.eye(3)
    direction[:dim, :dim] = np.array(img.GetDirection(), dtype=float).reshape(dim, dim)
    spacing = np.ones(3)
    spacing[:dim] = img.GetSpacing()
    origin = np.zeros(3)
    origin[:dim] = img.GetOrigin()
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ direction @ np.diag(spacing)
    affine[:3, 3] = lps_to_ras @ origin
    return nib.Nifti1Image(data, affine)


def read_dicom_series(folder: str, files: list[str]):
    """The one DICOM series in ``folder`` as a nibabel image, and the files not in it.

    Raises:
        VolumeError: ``mixed_series`` when the folder holds several series (each named with its file
            count: they are never mixed), ``unreadable`` when it holds none or it does not read.
    """
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # e.g. "non uniform sampling": noted, not printed
    reader = sitk.ImageSeriesReader()
    ids = reader.GetGDCMSeriesIDs(folder)
    if not ids:
        raise VolumeError("unreadable", "no DICOM series found in the folder")
    if len(ids) > 1:
        counts = [(sid, len(reader.GetGDCMSeriesFileNames(folder, sid))) for sid in ids]
        raise VolumeError("mixed_series", f"{len(ids)} DICOM series in one folder ("
                          + ", ".join(f"{sid}: {n} files" for sid, n in counts)
                          + "); they are not mixed: give each series its own folder and manifest row")
    names = reader.GetGDCMSeriesFileNames(folder, ids[0])
    reader.SetFileNames(names)
    try:
        img = reader.Execute()
    except RuntimeError as e:
        raise VolumeError("unreadable", f"the DICOM series does not read ({str(e).strip().splitlines()[-1]})") from e
    used = {os.path.basename(n) for n in names}
    return _sitk_to_nifti(img), [f for f in files if os.path.basename(f) not in used]


def read_volume(path: str, kind: str):
    """``(slices HU (K, H, W), spacing (slice, row, column) mm, files not in the series)`` of one image."""
    import nibabel as nib
    import SimpleITK as sitk

    from medpipe.io.masks import read_nifti_display_slices

    rest: list[str] = []
    if kind == "dicom_series":
        img, rest = read_dicom_series(path, sorted(os.listdir(path)))
    elif kind == "dicom_file":
        sitk.ProcessObject.SetGlobalWarningDisplay(False)
        try:
            img = _sitk_to_nifti(sitk.ReadImage(path))
        except RuntimeError as e:
            raise VolumeError("unreadable", f"not a readable DICOM ({str(e).strip().splitlines()[-1]})") from e
    else:
        try:
            img = nib.load(path)
            shape = img.shape
        except Exception as e:  # noqa: BLE001 - nibabel raises many types for a damaged file
            raise VolumeError("unreadable", f"not a readable NIfTI volume ({type(e).__name__}: {e})") from e
        if len(shape) < 3 or (len(shape) > 3 and any(s != 1 for s in shape[3:])):
            raise VolumeError("not_3d", f"a {len(shape)}-D volume of shape {tuple(shape)}; expected a 3-D "
                                        f"volume (split a time series into one file per volume)")
    try:
        slices, spacing, _ = read_nifti_display_slices(img)
    except Exception as e:  # noqa: BLE001 - damaged data blocks surface only here
        raise VolumeError("unreadable", f"the voxels do not read ({type(e).__name__}: {e})") from e
    return slices, spacing, rest


class AnkleCtConverter(Converter):
    """Manifest rows joined to NIfTI volumes, DICOM series or 2D slices; slices stored bone-windowed."""

    folders = (L.IMAGES_DIR, L.VOLUMES_DIR)
    skip_words = {
        "not_in_manifest": "file that no manifest row names",
        "not_in_series": "file in a DICOM series folder that is not part of its series",
        "mixed_series": "file of a folder holding several DICOM series",
        "unreadable": "unreadable or damaged image",
        "not_3d": "4-D (or 2-D NIfTI) volume",
        "no_slices": "volume whose slices range lies outside it",
        "unknown_class": "image whose manifest label is not a class name",
        "label_out_of_range": "image whose manifest label is out of range",
        "empty_label": "image whose manifest label is empty",
        "missing_patient": "image whose manifest row has no patient",
        "bad_side": "image whose manifest side is not L/R",
        "bad_slices": "image whose manifest slices range does not parse",
        "conflicting_labels": "image given different labels by its manifest rows",
        "conflicting_patients": "image given different patients by its manifest rows",
        "conflicting_sides": "image given different sides by its manifest rows",
        "unused_table": "table that is not the manifest",
    }

    # ------------------------------------------------------------------ options and discovery

    def class_names(self) -> tuple[str, ...]:
        return tuple(self.options["classes"].split(","))

    def tasks(self) -> dict:
        return {"label": Task("multiclass", self.class_names())}

    def columns(self) -> dict:
        return {opt: self.options[opt] for opt in L.COLUMNS}

    def locate(self, src: Path) -> dict:
        """Find the manifest (``--manifest`` as given, else under ``--src``); its size and time join the fingerprint."""
        given = self.options["manifest"]
        if given:
            p = Path(given).expanduser()
            tried = [p] if p.is_absolute() else [Path.cwd() / p, src / p]
        else:
            tables = sorted(q for q in src.iterdir() if q.is_file() and q.name.lower().endswith(L.MANIFEST_SUFFIXES)) \
                if src.is_dir() else []
            default = [q for q in tables if q.name == L.DEFAULT_MANIFEST]
            tried = default or tables
            if len(tried) != 1:
                raise DataError(f"--src {src}: " + (f"{len(tried)} tables could be the manifest ("
                                                    + ", ".join(q.name for q in tried[:6]) + ")" if tried else
                                                    "no manifest found (no labels.csv or other table at its top)")
                                + ". Pass --manifest PATH: a CSV or Excel file with the columns image, label, patient "
                                  "(optional side, slices).")
        found = next((c for c in tried if c.is_file()), None)
        if found is None:
            raise DataError(f"--manifest {given}: no such file (looked for {' and '.join(str(t) for t in tried)}). "
                            f"Give the path of the manifest CSV/Excel file.")
        found = found.resolve()
        st = found.stat()
        rel = Path(os.path.relpath(found, src)).as_posix() if src in found.parents else None
        return {"manifest": {"path": str(found), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "in_src": rel}}

    def plan(self, src: Path, files, located: dict) -> Plan:
        plan = Plan()
        man = located["manifest"]
        shown = man["in_src"] or man["path"]
        m = T.read_manifest(man["path"], shown, self.columns(), self.class_names())
        if not m.rows:
            raise DataError(f"{shown}: the manifest has a header but no rows; add one row per image.")
        self.manifest_used = int(man["in_src"] is not None)
        rels = [f[0] for f in files]
        for rel in rels:
            plan.inputs["manifest" if rel == man["in_src"] else L.image_kind(rel)] += 1
        fileset = set(rels)
        by_dir: dict[str, list[str]] = defaultdict(list)
        for rel in rels:
            by_dir[rel.rsplit("/", 1)[0] if "/" in rel else ""].append(rel)

        rows_out: Counter = Counter()
        row_problems = [r for r in m.rows if r.problem]
        for r in row_problems:
            rows_out[r.problem] += 1
        groups = T.group_rows(m.rows)
        claimed: set[str] = set()
        units = []
        missing = []
        for image in sorted(groups):
            g = groups[image]
            n_rows = sum(1 for r in m.rows if r.image == image and r.problem is None)
            if image in fileset:
                kind, members = {"volume": "nifti", "image": "png"}.get(L.image_kind(image), "dicom_file"), [image]
            elif by_dir.get(image):
                kind, members = "dicom_series", sorted(by_dir[image])
            else:
                lines = [r.line for r in m.rows if r.image == image]
                missing.append((image, lines))
                rows_out["missing_file"] += n_rows
                continue
            members = [f for f in members if f not in claimed and f != man["in_src"]]
            claimed.update(members)
            if g.problem:
                rows_out[g.problem] += n_rows
                plan.skipped += [{"path": f, "kind": g.problem, "reason": f"{shown} {g.why}"} for f in members]
                continue
            rows_out["planned"] += n_rows
            rows = g.rows
            ranges = None if any(r.slices is None for r in rows) else sorted({r.slices for r in rows})
            if len(rows) > 1:
                plan.anomalies.append({"path": shown, "kind": "repeated_rows",
                                       "action": f"{image}: lines {', '.join(str(r.line) for r in rows)} agree; "
                                                 f"one image" + (f", slices {ranges}" if ranges else "")})
            units.append({"image": image, "kind": kind, "files": members, "patient": rows[0].patient,
                          "label": rows[0].label, "value": rows[0].raw_label,
                          "side": next((r.side for r in rows if r.side), None), "slices": ranges,
                          "lines": [r.line for r in rows]})
        for r in row_problems[:EXAMPLES]:
            plan.anomalies.append({"path": f"{shown} line {r.line}", "kind": r.problem,
                                   "action": f"{r.image or '(no image)'}: {r.why}; row not used"})
        if len(row_problems) > EXAMPLES:
            plan.anomalies.append({"path": shown, "kind": "more_row_problems",
                                   "action": f"{len(row_problems) - EXAMPLES} more rows with a problem "
                                             f"(counted in the report's manifest section)"})
        for image, lines in missing:
            plan.anomalies.append({"path": f"{shown} line{'s' if len(lines) > 1 else ''} "
                                           f"{', '.join(map(str, lines))}", "kind": "missing_file",
                                   "action": f"{image}: no such file or folder under --src; row not used"})
        for rel in rels:
            if rel in claimed or rel == man["in_src"]:
                continue
            kind = L.image_kind(rel)
            plan.skipped.append({"path": rel, "kind": "not_in_manifest",
                                 "reason": f"no row of {shown} names it" + (
                                     " (a table: not the manifest)" if kind == "table" else "")})
        plan.units = units
        self.stats = {"file": shown, **m.info, "columns": m.columns, "all_columns": m.all_columns,
                      "rows_by_outcome": dict(sorted(rows_out.items())), "images": len(groups),
                      "images_planned": len(units), "missing_files": len(missing)}
        plan.description = (f"manifest {shown} ({len(m.rows)} rows, {len(groups)} images); "
                            f"{len(units)} images planned")
        plan.source = {"manifest": shown}
        return plan

    # ------------------------------------------------------------------ work (worker processes)

    def setup(self, out: Path) -> None:
        super().setup(out)
        # imported once here, before the workers fork
        import nibabel  # noqa: F401
        import SimpleITK  # noqa: F401
        from PIL import Image, PngImagePlugin  # noqa: F401

    def convert(self, unit, src: str, out: str) -> UnitResult:
        import numpy as np
        from PIL import Image

        from medpipe.io.ct import window_to_uint8
        from medpipe.prepare.cache import store_gray_png

        o = self.options
        res = UnitResult()
        path = os.path.join(src, unit["image"])

        def skip(kind, why, files=None):
            res.skipped += [{"path": f, "kind": kind, "reason": f"{unit['image']} (manifest line "
                                                                 f"{unit['lines'][0]}): {why}"}
                            for f in (files if files is not None else unit["files"])]
            return res

        rest: list[str] = []
        if unit["kind"] == "png":
            try:
                with Image.open(path) as im:
                    im.load()
                    gray = np.asarray(im if im.mode == "L" else im.convert("L"))
            except Exception as e:  # noqa: BLE001 - Pillow raises many types for a damaged file
                return skip("unreadable", f"not a readable PNG ({type(e).__name__}: {e})")
            stack, spacing, src_spacing, windowed = [gray], None, None, True
        else:
            try:
                hu, src_spacing, rest = read_volume(path, unit["kind"])
            except VolumeError as e:
                return skip(e.kind, str(e))
            stack, spacing, windowed = hu, list(src_spacing), False
        n = len(stack)
        keep = list(range(n))
        if unit["slices"]:
            want = sorted({k for a, b in unit["slices"] for k in range(a, b + 1)})
            keep = [k for k in want if k < n]
            if not keep:
                return skip("no_slices", f"slices {unit['slices']} lie outside its {n} slices (0..{n - 1})")
            if len(keep) < len(want):
                res.anomalies.append({"path": unit["image"], "kind": "slices_clipped",
                                      "action": f"slices {unit['slices']} reach beyond its {n} slices; kept "
                                                f"{keep[0]}..{keep[-1]}"})
        mirror = bool(o["mirror_left"] and unit["side"] == "L")
        window = (o["window_level"], o["window_width"])
        target = o["spacing"]
        stored_spacing = spacing
        volume_image = f"{L.VOLUMES_DIR}/{L.volume_stem(unit['patient'], unit['image'])}.npz" \
            if unit["kind"] != "png" else None
        planes = []
        for k in keep:
            img = stack[k] if windowed else window_to_uint8(stack[k], window)
            if mirror:
                img = img[:, ::-1]
            pil = Image.fromarray(np.ascontiguousarray(img))
            if target and spacing is not None:
                h, w = img.shape
                size = (max(1, round(w * spacing[2] / target)), max(1, round(h * spacing[1] / target)))
                if size != (w, h):
                    pil = pil.resize(size, Image.Resampling.BILINEAR)
                stored_spacing = [spacing[0], spacing[1] * h / size[1], spacing[2] * w / size[0]]
            dst = f"{L.IMAGES_DIR}/{L.slice_stem(unit['patient'], unit['image'], k)}.png"
            sw, sh, _ = store_gray_png(pil, os.path.join(out, dst))
            if volume_image:
                planes.append(np.asarray(pil))
            res.records.append({
                "image": dst, "patient": unit["patient"], "label": unit["label"], "label_value": unit["value"],
                "volume": unit["image"], "slice": k, "side": unit["side"], "mirrored": mirror,
                "spacing": None if stored_spacing is None else [round(float(s), 6) for s in stored_spacing],
                "width": sw, "height": sh,
                "source": {"path": unit["image"], "kind": unit["kind"], "lines": unit["lines"],
                           "spacing": None if src_spacing is None else [round(float(s), 6) for s in src_spacing],
                           "slices": n},
                **({"volume_image": volume_image} if volume_image else {}),
            })
        if volume_image:
            # the kept slices in one array (slices, rows, columns): every slice has the same in-plane size
            np.savez_compressed(os.path.join(out, volume_image), volume=np.stack(planes))
        res.links["written"] += len(res.records)
        if rest:
            skip("not_in_series", "in the series folder but not part of its DICOM series", files=rest)
        res.used = len(unit["files"]) - len(rest)
        return res

    def finish(self, records, src: Path, located: dict) -> Finish:
        return Finish(used=self.manifest_used)

    # ------------------------------------------------------------------ split and outputs

    def patient_stratum(self, records) -> int:
        """The class a patient is stratified by: the label of most of its images (not slices: a finding on a
        few slices must not lose to a normal second ankle), ties to the later (in the default names, rarer) class."""
        per_image = {r["volume"]: r["label"] for r in records}
        c = Counter(per_image.values())
        return max(c, key=lambda lab: (c[lab], lab))

    def fold_stats(self, records) -> dict:
        c = Counter(r["label"] for r in records)
        return {n: c.get(i, 0) for i, n in enumerate(self.class_names())}

    def patient_meta(self, records) -> dict:
        c = Counter(r["label"] for r in records)
        return {"slices": len(records), "images": len({r["volume"] for r in records}),
                "labels": sorted(c), "sides": sorted({r["side"] or "none" for r in records})}

    def export(self, out: Path, final_out: Path, train, test) -> dict:
        write_labels_csv(out / LABELS_CSV, train, test,
                         columns=("image", "patient", "fold", "label", "label_value", "volume", "slice", "side"))
        return {}

    def outputs(self) -> list[str]:
        return ["datalist.json", LABELS_CSV, "prepare_report.md"]

    def input_extra(self) -> dict:
        """The window this preparation used: inference converts volumes with it, not the default."""
        return {"window": [self.options["window_level"], self.options["window_width"]]}

    def datalist_extra(self) -> dict:
        o = self.options
        return {"window": [o["window_level"], o["window_width"]], "spacing_mm": o["spacing"] or None,
                "mirror_left": o["mirror_left"], "manifest": self.stats["file"]}

    def report(self, records) -> dict:
        names = self.class_names()
        stats = dict(getattr(self, "stats", {}) or {})
        per_fold: dict = defaultdict(Counter)
        for r in records:
            per_fold[r.get("fold", "test")][r["label"]] += 1
        warnings = []
        for part in sorted(per_fold, key=str):
            absent = [n for i, n in enumerate(names) if not per_fold[part].get(i)]
            if absent:
                warnings.append({"fold": part, "absent_classes": absent})
        rows = stats.get("rows_by_outcome") or {}
        stats["rows_in_records"] = len({(r["volume"], line) for r in records for line in r["source"]["lines"]})
        stats["rows_adds_up"] = sum(rows.values()) == stats.get("rows")
        return {"class_names": list(names), "manifest": stats, "class_warnings": warnings,
                "volumes": len({r["volume"] for r in records}),
                "sides": dict(Counter(r["side"] or "none" for r in {r["volume"]: r for r in records}.values())),
                "mirrored_slices": sum(r["mirrored"] for r in records)}

    def report_facts(self, rep: dict) -> list[str]:
        o, man = rep["options"], rep.get("manifest") or {}
        return [f"manifest `{man.get('file')}`: {man.get('rows')} rows for {man.get('images')} images; columns "
                + ", ".join(f"{k.replace('_column', '')} = `{v}`" for k, v in (man.get("columns") or {}).items() if v),
                f"{rep['volumes']} images -> {rep['records']} axial slices; bone window level/width "
                f"{o['window_level']:g}/{o['window_width']:g} HU; in-plane spacing "
                + (f"{o['spacing']:g} mm" if o["spacing"] else "kept") + "; left ankles "
                + ("mirrored to the right" if o["mirror_left"] else "kept as scanned")
                + f" ({rep['mirrored_slices']} slices mirrored); sides: "
                + ", ".join(f"{k} {v}" for k, v in rep["sides"].items()),
                "slices: RAS-canonical axial (inferior -> superior), rows anterior -> posterior, columns patient "
                "right -> left"]

    def report_md(self, rep: dict) -> list[str]:
        man = rep.get("manifest") or {}
        rows = man.get("rows_by_outcome") or {}
        lines = ["## Manifest rows", "",
                 f"`{man.get('file')}` ({man.get('format')}): {man.get('rows')} rows = "
                 + " + ".join(f"{v} {k.replace('_', ' ')}" for k, v in rows.items())
                 + f" (adds up: {man.get('rows_adds_up')}); {man.get('rows_in_records')} rows are in records "
                   f"(planned rows whose image was skipped while reading count as planned).", "",
                 "## Class balance per fold", ""]
        if rep.get("class_warnings"):
            for w in rep["class_warnings"]:
                lines.append(f"- **warning**: fold {w['fold']} has no record of class "
                             f"{', '.join(w['absent_classes'])}; validating on it cannot measure "
                             f"{'that class' if len(w['absent_classes']) == 1 else 'those classes'}")
        else:
            lines.append("Every class is present in every fold.")
        return lines

    def summary_lines(self, rep: dict) -> list[str]:
        man = rep.get("manifest") or {}
        out = [f"manifest: {man.get('rows')} rows: " + ", ".join(f"{k} {v}" for k, v in
                                                                   (man.get("rows_by_outcome") or {}).items())]
        for w in rep.get("class_warnings") or []:
            out.append(f"warning: fold {w['fold']} has no record of class {', '.join(w['absent_classes'])}")
        return out
