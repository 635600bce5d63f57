"""A synthetic hospital export: what an external site sends for an independent test of a pneumonia model.

The radiographs are rsna-pneumonia's synthetic ones (:func:`data_prep.rsna_pneumonia.synth.draw_patient`:
the ChestX-ray14 chest renderer, patchy airspace opacities for positives) written with its DICOM
writer (:func:`~data_prep.rsna_pneumonia.synth.dicom_bytes`, its encodings by
:func:`~data_prep.rsna_pneumonia.synth.variant_of`: 8-bit JPEG, 12-bit MONOCHROME1, 12-bit with a
rescale and window, 10-bit), so a model trained on ``medpipe synth rsna-pneumonia`` can find the
opacity here. The site differs the way another hospital does:

* its look: another detector and processing -- a gamma of :data:`GAMMA` and a narrower gray range
  (:func:`site_look`), the opacity still brighter than the lung around it;
* more portable films: AP for :data:`P_AP` of positives and negatives (rsna-pneumonia's synthetic set:
  65 % / 30-45 %), so the view shortcut a model may have learned points elsewhere;
* its own identifiers: PatientIDs like ``HX0012345``, accession numbers, study dates, ages as
  ``067Y``, Modality CR or DX.

The export's layout and quirks (what ``medpipe prepare dicom-folder`` must handle)::

    README.txt                                  not an image (skipped, counted)
    labels.csv                                  PatientID,pneumonia,exam_date,comment  (yes/no, a few Yes/NO)
    DICOM/P0001/ST01/SE01/IM0001                files without an extension ...
    DICOM/P0003/ST01/SE01/IM0001.dcm            ... and some with one
    DICOM/P0004/ST01/SE02/IM0001                a second series: patients with two images
    DICOM/P0009/ST02/SE01/IM0001                a follow-up study: another StudyInstanceUID

plus one label row whose patient has no DICOM, one DICOM whose patient has no label row, a file
without the 128-byte preamble, and MONOCHROME1 files. Output is byte-identical for identical arguments.

Example:
    >>> from data_prep.dicom_folder.synth import synthesize
    >>> s = synthesize("/tmp/hospital-raw", patients=30, size=256)  # doctest: +SKIP
    >>> s["images"], s["label_row_without_dicom"]  # doctest: +SKIP
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_prep.dicom_folder import layout as L
from data_prep.rsna_pneumonia import layout as RSNA
from data_prep.rsna_pneumonia.synth import dicom_bytes, draw_patient, variant_of
from medpipe.prepare.synthetic import check_synth_args, existing, write_marker
from medpipe.utils.fs import atomic_output_dir

#: bump when the output for the same arguments changes
GENERATOR_VERSION = 1
MIN_SIZE, MAX_SIZE, MIN_PATIENTS = 64, 1024, 4
LABELS_FILE, README_FILE, DICOM_DIR = "labels.csv", "README.txt", "DICOM"
#: the label table's columns (keyed by PatientID; the label column is ``pneumonia``)
COLUMNS = ("PatientID", "pneumonia", "exam_date", "comment")
#: share of positive patients
POSITIVE_SHARE = 0.35
#: P(view = AP) for positive and negative patients: more portable films than the training site
P_AP = {1: 0.8, 0: 0.55}
#: the site's gray-level response: ``lo + (hi - lo) * x ** GAMMA`` for x in 0..1 (:func:`site_look`)
GAMMA, GRAY_RANGE = 1.3, (14, 236)
#: every TWO_IMAGES-th patient has a second radiograph (a second series, or a follow-up study)
TWO_IMAGES = 6
#: every EXT_EVERY-th patient's files carry a ``.dcm`` extension (the others have none)
EXT_EVERY = 3
#: every DX_EVERY-th image has Modality DX (the others CR)
DX_EVERY = 4
#: the image (by number) written without the 128-byte preamble and ``DICM`` marker
NO_PREAMBLE_IMAGE = 1
SPACING_MM = 0.139
README = """\
Export of chest radiographs for the external validation study (synthetic, made by `medpipe synth dicom-folder`).

DICOM/   one folder per patient, then study (STnn) and series (SEnn) folders; image files IMnnnn,
         some with a .dcm extension, some without.
labels.csv   PatientID, pneumonia (yes/no: the reference read), exam date, free-text comment.

This file is not an image.
"""



def _check_args(patients, size, seed) -> dict:
    return check_synth_args(patients, size, seed, min_patients=MIN_PATIENTS, min_size=MIN_SIZE, max_size=MAX_SIZE,
                            patients_why="the export needs a positive and a negative patient and one with two images",
                            size_why="smaller images cannot show an opacity", version=GENERATOR_VERSION)


def site_look(img: np.ndarray) -> np.ndarray:
    """The external site's gray-level response applied to an 8-bit radiograph (monotonic: bright stays bright).

    Example:
        >>> site_look(np.array([[0, 128, 255]], np.uint8)).tolist()
        [[14, 105, 236]]
    """
    x = img.astype(np.float64) / 255.0
    lo, hi = GRAY_RANGE
    return np.rint(lo + (hi - lo) * x ** GAMMA).astype(np.uint8)


def _uid(seed: int, *parts) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["medpipe-dicom-folder-synth", str(seed), *map(str, parts)])


def _retag(data: bytes, preamble: bool = True, **elements) -> bytes:
    """The DICOM ``data`` with header elements set (pixel data untouched); without the preamble when asked."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, v in elements.items():
            setattr(ds, k, v)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    out = buf.getvalue()
    return out if preamble else out[132:]


def _labels(seed: int, n: int) -> list[int]:
    """One label per patient: :data:`POSITIVE_SHARE` positive, at least one of each, shuffled."""
    pos = min(n - 1, max(1, round(POSITIVE_SHARE * n)))
    out = [1] * pos + [0] * (n - pos)
    return [out[i] for i in np.random.default_rng([seed, 21]).permutation(n)]


def synthesize(out: str | Path, patients: int = 40, size: int = 256, seed: int = 0,
               progress: Callable[[str], None] | None = None) -> dict:
    """Write a deterministic synthetic hospital export (see the module docstring).

    Args:
        out: folder to create (absent, empty, or a set made with the same arguments).
        patients: patients with both DICOMs and a label row (what ``prepare`` turns into records);
            one more label row without a DICOM and one more DICOM without a label row are added.
        size: DICOM width and height in pixels.
        seed: random seed; identical arguments give byte-identical files.
        progress: called with a line of text every few patients, if given.

    Returns:
        Summary dict: ``out``, ``patients`` (PatientIDs with DICOMs and a label row), ``images``
        (their DICOMs), ``positives`` (patients), ``files`` (marker excluded), ``two_images``
        (PatientIDs), ``label_row_without_dicom``, ``dicom_without_label_row`` (a PatientID and its
        file), ``views`` (per label), ``variants``, ``no_preamble`` (the file), ``quirks``.

    Raises:
        OptionError (a ValueError): invalid arguments, named as on the command line.
        FileExistsError: ``out`` is a file, or a non-empty folder not made with these arguments.
    """
    args = _check_args(patients, size, seed)
    out = Path(out)
    done = existing(out, args)
    if done is not None:
        return done
    n = args["patients"]
    labels = _labels(seed, n)
    rng_ids = np.random.default_rng([seed, 22])
    ids = [f"HX{v:07d}" for v in rng_ids.choice(9_000_000, size=n + 2, replace=False) + 1_000_000]
    orphan_row, orphan_dicom = ids[n], ids[n + 1]  # a label row without DICOM, a DICOM without a label row
    two = [i for i in range(n) if i % TWO_IMAGES == TWO_IMAGES - 3] or [n - 1]
    views, variants, modalities = Counter(), Counter(), Counter()
    files, k_img, no_preamble = 0, 0, None
    rows = []
    with atomic_output_dir(out) as tmp:
        def write(rel: str, data: bytes) -> None:
            nonlocal files
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
            files += 1

        write(README_FILE, README.encode())
        for i in range(n + 2):
            pid = ids[i]
            label = labels[i] if i < n else int(i == n)
            rng = np.random.default_rng([seed, i, 23])
            date = f"2023{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
            if i < n + 1:
                value = ("yes" if label else "no") if i % 9 else ("Yes" if label else "NO")
                rows.append(f"{pid},{value},{date[:4]}-{date[4:6]}-{date[6:]},"
                            + ("portable" if i % 5 == 1 else ""))
            if i == n:
                continue  # the label row without a DICOM
            n_img = 2 if i in two else 1
            follow_up = n_img == 2 and (two.index(i) % 2 == 1)
            for j in range(n_img):
                cls = RSNA.LUNG_OPACITY if label else (RSNA.NORMAL if (i + j) % 2 else RSNA.NOT_NORMAL)
                img, _boxes, _view, sex, age = draw_patient(seed * 7919 + 101, i + 100_000 * j, cls, size)
                view = "AP" if rng.random() < P_AP[label] else "PA"
                study, series = (j + 1, 1) if follow_up else (1, j + 1)
                variant = variant_of(k_img)
                modality = "DX" if k_img % DX_EVERY == DX_EVERY - 1 else "CR"
                head = {"patient_id": pid, "view": view, "age": f"{age:03d}Y", "sex": sex,
                        "spacing": round(SPACING_MM * 1024 / size, 6),
                        "study": _uid(seed, i, "study", study), "series": _uid(seed, i, "series", study, series),
                        "instance": _uid(seed, i, "instance", j)}
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Invalid value for VR AS")
                    data = dicom_bytes(site_look(img), head, variant)
                data = _retag(data, preamble=k_img != NO_PREAMBLE_IMAGE, Modality=modality,
                              AccessionNumber=f"A{pid[2:]}{study:02d}", StudyDate=date if study == 1 else
                              f"2024{date[4:]}", InstitutionName="Synthetic General Hospital",
                              Manufacturer="SynthRay", StudyID=str(study), SeriesNumber=str(series),
                              InstanceNumber="1")
                ext = ".dcm" if i % EXT_EVERY == EXT_EVERY - 1 else ""
                rel = f"{DICOM_DIR}/P{i + 1:04d}/ST{study:02d}/SE{series:02d}/IM{1:04d}{ext}"
                write(rel, data)
                if k_img == NO_PREAMBLE_IMAGE:
                    no_preamble = rel
                if i == n + 1:
                    orphan_file = rel
                else:
                    views[(label, view)] += 1
                    variants[variant] += 1
                    modalities[modality] += 1
                k_img += 1
            if progress is not None and ((i + 1) % 20 == 0 or i + 1 == n + 2):
                progress(f"dicom-folder synth: {i + 1}/{n + 2} patients")
        # the site's table is sorted by PatientID, which puts the orphan row somewhere inside it
        write(LABELS_FILE, ("\n".join([",".join(COLUMNS)] + sorted(rows)) + "\n").encode())
        images = sum(2 if i in two else 1 for i in range(n))
        summary = {
            "out": str(out), "patients": ids[:n], "images": images, "positives": sum(labels), "files": files,
            "two_images": [ids[i] for i in two], "label_row_without_dicom": orphan_row,
            "dicom_without_label_row": {"patient": orphan_dicom, "file": orphan_file},
            "views": {str(lab): {v: views[(lab, v)] for v in L.VIEWS} for lab in (0, 1)},
            "variants": dict(sorted(variants.items())), "modalities": dict(sorted(modalities.items())),
            "no_preamble": no_preamble,
            "quirks": [
                {"kind": "nested_folders", "note": "DICOM/<patient>/<study>/<series>/IMnnnn"},
                {"kind": "no_extension", "note": f"files of every {EXT_EVERY}rd patient end in .dcm, the others have "
                                                 f"no extension"},
                {"kind": "readme", "file": README_FILE},
                {"kind": "two_images", "patients": [ids[i] for i in two]},
                {"kind": "label_row_without_dicom", "patient": orphan_row},
                {"kind": "dicom_without_label_row", "patient": orphan_dicom, "file": orphan_file},
                {"kind": "no_preamble", "file": no_preamble},
                {"kind": "monochrome1", "images": variants.get("mono1", 0)},
                {"kind": "site_differs", "note": f"gamma {GAMMA}, gray range {GRAY_RANGE}; AP for "
                                                 f"{P_AP[1]:.0%} of positives, {P_AP[0]:.0%} of negatives"},
            ],
        }
        write_marker(tmp, args, summary)
    return summary
