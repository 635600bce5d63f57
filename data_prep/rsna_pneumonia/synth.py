"""Synthetic RSNA Pneumonia Detection Challenge (stage 2), written in the real download layout.

The real download (see :mod:`data_prep.rsna_pneumonia.layout`) is two label CSVs, 26,684 training
DICOMs and 3,000 test DICOMs. This module fakes it closely enough for the converter and the
training pipelines to run end to end, and so that a classifier can learn the opacity:

* each radiograph is drawn with the ChestX-ray14 synthesizer's chest renderer (body, lungs, ribs,
  mediastinum, heart, diaphragm; :func:`data_prep.cxr14.synth._draw`); ``No Lung Opacity / Not
  Normal`` patients get one of its non-opacity findings (cardiomegaly, effusion, nodule, ...);
* ``Lung Opacity`` patients get one or two patchy airspace opacities in the lungs (about a fifth of
  the image wide, a third high, like the real boxes), and one label row per box enclosing each;
* the view follows the class (AP for 65 % of opacity patients, 30 % of normal ones): a shortcut
  like the real one (78 % vs 18 %), milder, so that the opacity stays the main signal;
* the files: ``stage_2_train_labels.csv`` (one row per box; blank box fields for negatives;
  coordinates written like ``264.0``), ``stage_2_detailed_class_info.csv`` (one row per box; by
  default one positive patient is missing, as in the copy in ``../shared/data``),
  ``stage_2_train_images/<patientId>.dcm``, a few ``stage_2_test_images/*.dcm`` and
  ``stage_2_sample_submission.csv``;
* the DICOMs are what pydicom and SimpleITK read: Secondary Capture, Modality CR, ConversionType
  WSD, ViewPosition, PatientAge (plain years, one implausible ``148`` as in the real headers),
  PatientSex, PixelSpacing (the real spacings, scaled to ``size``). Most are 8-bit MONOCHROME2 JPEG
  Baseline like the real files; every 5th is 12-bit MONOCHROME1, every 7th 12-bit with a rescale
  slope/intercept and a VOI window, every 11th 10-bit (uncompressed, 16-bit words).

Output is byte-identical for identical arguments; a patient depends only on ``(seed, patient index)``.

Example:
    >>> from data_prep.rsna_pneumonia.synth import synthesize
    >>> s = synthesize("/tmp/rsna-synth", patients=60, size=256)  # doctest: +SKIP
    >>> s["classes"]  # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_prep.cxr14.synth import _draw, _ellipse, _lung_point, _make_patient, _smooth_noise
from data_prep.rsna_pneumonia import layout as L
from medpipe.prepare.spec import OptionError
from medpipe.prepare.synthetic import check_synth_args, existing, write_marker
from medpipe.utils.fs import atomic_output_dir

#: bump when the output for the same arguments changes
GENERATOR_VERSION = 1
MIN_SIZE, MAX_SIZE, MIN_PATIENTS = 64, 1024, 5
#: share of patients per detailed class (the real: 22 % / 44 % / 33 %; more opacity here to learn from)
CLASS_SHARE = {L.LUNG_OPACITY: 0.35, L.NOT_NORMAL: 0.35, L.NORMAL: 0.30}
#: P(view = AP | class): a milder version of the real shortcut
P_AP = {L.LUNG_OPACITY: 0.65, L.NOT_NORMAL: 0.45, L.NORMAL: 0.30}
#: share of opacity patients with two boxes (the real: 54 %; 2 % have 3-4)
TWO_BOXES = 0.5
#: the cxr14 findings a Not Normal patient may show (no airspace opacity among them)
NOT_NORMAL_FINDINGS = ("Cardiomegaly", "Effusion", "Nodule", "Pleural_Thickening", "Emphysema", "Fibrosis",
                       "Pneumothorax")
#: the real PixelSpacing values (mm, at 1024 px)
SPACINGS = (0.143, 0.168, 0.139, 0.171, 0.194311)
#: the real test set is 3,000 of 29,684 patients; here about a tenth
TEST_SHARE = 0.1
IMPLAUSIBLE_AGE = "148"
SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"



def _check_args(patients, size, seed, complete_class_info) -> dict:
    args = check_synth_args(patients, size, seed, min_patients=MIN_PATIENTS, min_size=MIN_SIZE, max_size=MAX_SIZE,
                            patients_why="every class needs a patient; `medpipe prepare` needs at least as many as "
                                         "--folds, 5 by default",
                            size_why="smaller images cannot show an opacity (the real DICOMs are 1024)",
                            version=GENERATOR_VERSION)
    return {**args, "complete_class_info": bool(complete_class_info)}


def variant_of(k: int) -> str:
    """How image ``k`` is encoded: ``jpeg`` (8-bit, like the real files), ``mono1`` (12-bit MONOCHROME1),
    ``rescale`` (12-bit, rescale slope/intercept and a VOI window) or ``bits10`` (10-bit)."""
    if k % 5 == 2:
        return "mono1"
    if k % 7 == 3:
        return "rescale"
    if k % 11 == 5:
        return "bits10"
    return "jpeg"


def _uid(seed: int, *parts) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["medpipe-rsna-synth", str(seed), *map(str, parts)])


def dicom_bytes(img: np.ndarray, head: dict, variant: str = "jpeg") -> bytes:
    """A DICOM file (bytes) holding the 8-bit radiograph ``img`` encoded as ``variant`` (see :func:`variant_of`).

    ``head`` gives ``patient_id``, ``view``, ``age`` (text), ``sex``, ``spacing`` (mm) and the
    ``study``/``series``/``instance`` UIDs. Every variant decodes back to ``img`` (``jpeg`` up to
    its loss) with MONOCHROME1 inverted and the rescale applied over the BitsStored range.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SC_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = head["instance"]
    meta.TransferSyntaxUID = JPEGBaseline8Bit if variant == "jpeg" else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = SC_IMAGE_STORAGE, head["instance"]
    ds.StudyDate, ds.StudyTime = "19010101", "000000.00"
    ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
    ds.Modality, ds.ConversionType = "CR", "WSD"
    ds.SeriesDescription = f"view: {head['view']}"
    ds.PatientName, ds.PatientID = head["patient_id"], head["patient_id"]
    ds.PatientBirthDate, ds.PatientSex = "", head["sex"]
    with warnings.catch_warnings():  # the real headers write PatientAge as "51", not the AS form "051Y"
        warnings.filterwarnings("ignore", message="Invalid value for VR AS")
        ds.PatientAge = head["age"]
    ds.BodyPartExamined, ds.ViewPosition = "CHEST", head["view"]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = head["study"], head["series"]
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber, ds.PatientOrientation = "", "1", "1", ""
    ds.SamplesPerPixel = 1
    ds.Rows, ds.Columns = img.shape
    ds.PixelSpacing = [f"{head['spacing']:.6g}", f"{head['spacing']:.6g}"]
    ds.PixelRepresentation = 0
    if variant == "jpeg":
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=92)
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_10918_1"
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
    else:
        bits = 10 if variant == "bits10" else 12
        top = 2 ** bits - 1
        stored = np.rint(img.astype(np.float64) * top / 255).astype(np.uint16)
        ds.PhotometricInterpretation = "MONOCHROME2"
        if variant == "mono1":
            ds.PhotometricInterpretation = "MONOCHROME1"
            stored = (top - stored).astype(np.uint16)
        if variant == "rescale":
            slope, intercept = 2.0, -1024.0
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "2", "-1024", "US"
            lo, hi = intercept, top * slope + intercept
            ds.WindowCenter, ds.WindowWidth = f"{(lo + hi) / 2 + 0.5:g}", f"{hi - lo + 1:g}"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
        ds.PixelData = stored.astype("<u2").tobytes()
        ds["PixelData"].VR = "OW"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _patient_id(seed: int, i: int) -> str:
    rng = np.random.default_rng([seed, i, 5])
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _classes(seed: int, n: int) -> list[str]:
    """One detailed class per patient: the shares of :data:`CLASS_SHARE`, every class at least once, shuffled."""
    counts = {c: max(1, round(share * n)) for c, share in CLASS_SHARE.items()}
    while sum(counts.values()) > n:
        counts[max(counts, key=lambda c: counts[c])] -= 1
    while sum(counts.values()) < n:
        counts[L.NOT_NORMAL] += 1
    out = [c for c in L.CLASSES for _ in range(counts[c])]
    return [out[i] for i in np.random.default_rng([seed, 3]).permutation(n)]


def draw_patient(seed: int, i: int, class_name: str | None, size: int):
    """One radiograph: ``(uint8 image, boxes [(x, y, w, h)] in pixels, view, sex, age)``.

    ``class_name`` None draws a test patient (any class, no label written).
    """
    rng = np.random.default_rng([seed, i, 1])
    if class_name is None:
        class_name = L.CLASSES[int(rng.integers(3))]
    findings = []
    if class_name == L.NOT_NORMAL or (class_name == L.LUNG_OPACITY and rng.random() < 0.3):
        findings = [NOT_NORMAL_FINDINGS[(i + seed) % len(NOT_NORMAL_FINDINGS)]]
    p = _make_patient(i + 1, seed + 7_000_003, findings)
    base, _ = _draw(p, set(findings), size, np.random.default_rng([seed, i, 2]))
    img = base.astype(np.float32) / 255.0
    boxes = []
    if class_name == L.LUNG_OPACITY:
        n_boxes = 2 if rng.random() < TWO_BOXES else 1
        sides = [int(rng.integers(2))] if n_boxes == 1 else [0, 1]
        v, u = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
        edge = 1.5 / size + 0.004
        for side in sides:
            # the heart lies to the image's right (side 1): keep that lung's opacities lateral and higher
            cx, cy = _lung_point(rng, p.anatomy, side, (0.3, 0.7) if side == 0 else (0.25, 0.55),
                                 (0.1, 0.45) if side == 0 else (0.3, 0.5))
            rx, ry = rng.uniform(0.07, 0.1), rng.uniform(0.1, 0.15)
            patchy = 0.45 + 0.75 * _smooth_noise(np.random.default_rng([seed, i, 10 + side]), size, 12)
            region = _ellipse(u, v, cx, cy, rx, ry, edge * 4) * patchy
            img = img + rng.uniform(0.24, 0.32) * region
            # annotators box the opacity with a margin, on whole pixels
            m = rng.uniform(0.005, 0.02, 4)
            x0, y0 = max(0, math.floor((cx - rx - m[0]) * size)), max(0, math.floor((cy - ry - m[1]) * size))
            x1, y1 = min(size, math.ceil((cx + rx + m[2]) * size)), min(size, math.ceil((cy + ry + m[3]) * size))
            boxes.append((float(x0), float(y0), float(x1 - x0), float(y1 - y0)))
    img = np.clip(img, 0, 1)
    out = (img * 255 + 0.5).astype(np.uint8)
    view = "AP" if rng.random() < P_AP[class_name] else "PA"
    sex = "M" if rng.random() < 0.57 else "F"
    age = int(np.clip(round(rng.normal(47, 17)), 1, 92))
    return out, boxes, view, sex, age


def synthesize(out: str | Path, patients: int = 60, size: int = 256, seed: int = 0, complete_class_info: bool = False,
               progress: Callable[[str], None] | None = None) -> dict:
    """Write a deterministic synthetic RSNA Pneumonia download (stage 2 layout).

    Args:
        out: dataset root to create (absent, empty, or a set made with the same arguments).
        patients: labelled patients (one training DICOM each); about a tenth more are test images.
        size: DICOM width and height in pixels (the real: 1024); boxes are in this pixel space.
        seed: random seed; identical arguments give byte-identical files.
        complete_class_info: write every class row (default: one opacity patient is missing from
            ``stage_2_detailed_class_info.csv``, as in the shared copy of the real file).
        progress: called with a line of text every few patients, if given.

    Returns:
        Summary dict: ``out``, ``patients`` (patientIds), ``images`` (training DICOMs),
        ``test_images``, ``files`` (marker excluded), ``classes`` (patients per class), ``boxes``,
        ``views`` (per class), ``variants`` (DICOM encodings), ``missing_class_row`` (the patient
        left out of the class file, or None), ``implausible_age`` (its patient, or None), ``quirks``.

    Raises:
        OptionError (a ValueError): invalid arguments, named as on the command line.
        FileExistsError: ``out`` is a file, or a non-empty folder not made with these arguments.
    """
    args = _check_args(patients, size, seed, complete_class_info)
    out = Path(out)
    done = existing(out, args)
    if done is not None:
        return done
    n = args["patients"]
    classes = _classes(seed, n)
    n_test = max(2, round(TEST_SHARE * n))
    ids = [_patient_id(seed, i) for i in range(n + n_test)]
    odd_age = (n // 3) if n >= 20 else None
    spacing_rng = np.random.default_rng([seed, 9])
    label_rows, class_rows = {}, {}
    views, variants, files = Counter(), Counter(), 0
    with atomic_output_dir(out) as tmp:
        for d in (L.TRAIN_DIR, L.TEST_DIR):
            (tmp / d).mkdir(parents=True)

        def write(rel: str, data: bytes) -> None:
            nonlocal files
            (tmp / rel).write_bytes(data)
            files += 1

        for i, pid in enumerate(ids):
            cls = classes[i] if i < n else None
            img, boxes, view, sex, age = draw_patient(seed, i, cls, size)
            variant = variant_of(i)
            variants[variant] += 1
            head = {"patient_id": pid, "view": view, "sex": sex, "age": IMPLAUSIBLE_AGE if i == odd_age else str(age),
                    "spacing": round(float(spacing_rng.choice(SPACINGS)) * 1024 / size, 6),
                    "study": _uid(seed, i, "study"), "series": _uid(seed, i, "series"),
                    "instance": _uid(seed, i, "instance")}
            folder = L.TRAIN_DIR if cls is not None else L.TEST_DIR
            write(f"{folder}/{pid}{L.DICOM_EXT}", dicom_bytes(img, head, variant))
            if cls is not None:
                views[(cls, view)] += 1
                label_rows[pid] = ([f"{pid},{x:.1f},{y:.1f},{w:.1f},{h:.1f},1" for x, y, w, h in boxes]
                                   or [f"{pid},,,,,0"])
                class_rows[pid] = [f"{pid},{cls}"] * len(label_rows[pid])
            if progress is not None and ((i + 1) % 20 == 0 or i + 1 == len(ids)):
                progress(f"rsna-pneumonia synth: {i + 1}/{len(ids)} DICOMs")

        missing = None
        if not complete_class_info:  # the shared copy lacks one opacity patient (one box) entirely
            one_box = sorted(p for p in label_rows if len(label_rows[p]) == 1 and label_rows[p][0].endswith(",1"))
            many = sorted(p for p in label_rows if label_rows[p][0].endswith(",1"))
            pick = one_box or many
            missing = pick[len(pick) // 2] if pick else None
        order = sorted(label_rows)  # the real files are sorted by patientId
        write(L.LABELS_FILE, ("\n".join([",".join(L.LABEL_COLUMNS)] + [r for p in order for r in label_rows[p]])
                              + "\n").encode())
        write(L.CLASS_FILE, ("\n".join([",".join(L.CLASS_COLUMNS)]
                                       + [r for p in order if p != missing for r in class_rows[p]]) + "\n").encode())
        write(L.SUBMISSION_FILE, ("\n".join([",".join(L.SUBMISSION_COLUMNS)]
                                            + [f"{p},0.5 0 0 100 100" for p in sorted(ids[n:])]) + "\n").encode())
        n_boxes = sum(len(r) for r in label_rows.values() if r[0].endswith(",1"))
        summary = {
            "out": str(out), "patients": ids[:n], "images": n, "test_images": n_test, "files": files,
            "classes": {c: classes.count(c) for c in L.CLASSES}, "boxes": n_boxes,
            "views": {c: {v: views[(c, v)] for v in L.VIEWS} for c in L.CLASSES},
            "variants": dict(sorted(variants.items())), "missing_class_row": missing,
            "implausible_age": ids[odd_age] if odd_age is not None else None,
            "quirks": [
                {"kind": "one_row_per_box", "file": L.LABELS_FILE, "note": "blank box fields for negatives"},
                {"kind": "class_rows_per_box", "file": L.CLASS_FILE},
                *([{"kind": "class_row_missing", "file": L.CLASS_FILE, "patient": missing}] if missing else []),
                {"kind": "dicom_variants", "note": "8-bit JPEG Baseline (as the real files), 12-bit MONOCHROME1, "
                                                   "12-bit with rescale and window, 10-bit"},
                *([{"kind": "implausible_age", "patient": ids[odd_age], "age": IMPLAUSIBLE_AGE}]
                  if odd_age is not None else []),
                {"kind": "test_images", "folder": L.TEST_DIR, "images": n_test},
            ],
        }
        write_marker(tmp, args, summary)
    return summary
