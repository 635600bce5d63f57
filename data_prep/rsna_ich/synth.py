"""Synthetic RSNA Intracranial Hemorrhage Detection download, written in the real layout and with its quirks.

The real download (see :mod:`data_prep.rsna_ich.layout`) is a label CSV with six rows per image,
752,803 training slices and 121,232 test slices. This module fakes it closely enough for the
converter and the training pipelines to run end to end, and so that a small CNN can learn the
subtypes:

* each series is a head-CT phantom (:func:`data_prep.rsna_ich.phantom.head_volume`) of 10-16 axial
  slices, 5 mm apart, written with :func:`medpipe.io.ct_dicom.write_ct_series` as
  ``stage_2_train/ID_<9 hex>.dcm`` with the real header layout: ``SOPInstanceUID`` = the image id,
  ``PatientID``/``StudyInstanceUID``/``SeriesInstanceUID`` written as ``ID_...`` too, slope/intercept,
  ``ImagePositionPatient`` (random table offset), ``ConvolutionKernel``;
* one series per study; about one patient in six has a second study;
* about 55 % of series show a hemorrhage: a primary subtype drawn in the proportions of the real set
  but with more epidurals (every subtype is seen), and now and then a second one; ``any`` is the OR;
* quirks of the real files: multi-valued ``WindowCenter``/``WindowWidth`` in every other series; a
  few series in the bad 12-bit encoding (:data:`medpipe.io.ct_dicom.QUIRKS` ``bits12_wrapped``) and a
  few in plain unsigned 12 bit; ``ID_6431af929.dcm``, a slice of one series, cut short (the real
  set's corrupt image); label rows repeated for two images and one conflicting pair of rows (the
  positive is the truth);
* ``stage_2_test/`` holds one short unlabelled series, listed in ``stage_2_sample_submission.csv``.

Output is byte-identical for identical arguments; a series depends only on ``(seed, patient, study)``.

Example:
    >>> from data_prep.rsna_ich.synth import synthesize
    >>> s = synthesize("/tmp/rsna-ich-synth", patients=40, size=64)  # doctest: +SKIP
    >>> s["positives"]["any"] > 0  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_prep.rsna_ich import layout as L
from medpipe.prepare.synthetic import check_synth_args, existing, write_marker
from medpipe.utils.fs import atomic_output_dir

#: bump when the output for the same arguments changes
GENERATOR_VERSION = 1
MIN_SIZE, MAX_SIZE, MIN_PATIENTS = 32, 512, 5
#: share of series with a hemorrhage (the real: ~40 % of scans)
P_LESION = 0.55
#: share of patients with a second study
P_SECOND_STUDY = 0.17
#: the primary subtype of lesion series, cycled: the real proportions with more epidurals (1 in 12)
PRIMARY_CYCLE = ("subdural", "intraparenchymal", "subarachnoid", "intraventricular", "subdural", "epidural",
                 "intraparenchymal", "subarachnoid", "subdural", "intraventricular", "intraparenchymal",
                 "subarachnoid")
#: P(a second subtype), and which goes with which (IVH with IPH, SAH with SDH, ...)
P_SECOND = 0.35
COMPANION = {"subdural": "subarachnoid", "intraparenchymal": "intraventricular", "subarachnoid": "subdural",
             "intraventricular": "intraparenchymal", "epidural": "subdural"}
#: the real files' window pairs: single (brain) or multi-valued (brain and a second, as some scanners write)
WINDOWS_SINGLE = ((40, 80),)
WINDOWS_MULTI = ((36, 80), (40, 80))
KERNELS = ("STANDARD", "SOFT", "H30s", "FC21")
#: the real set's field of view is ~230-250 mm at 512 px
FOV_MM = 240.0
SLICE_MM = 5.0
#: the real label file lists each image's six rows in this order (``any`` last)
CSV_ORDER = L.SUBTYPES[1:] + L.SUBTYPES[:1]
TEST_SLICES = 4



def _check_args(patients, size, seed) -> dict:
    return check_synth_args(patients, size, seed, min_patients=MIN_PATIENTS, min_size=MIN_SIZE, max_size=MAX_SIZE,
                            patients_why="every subtype needs a patient; `medpipe prepare` needs at least as many as --folds, 5 by default",
                            size_why="smaller slices cannot show a hemorrhage (the real DICOMs are 512)", version=GENERATOR_VERSION)


class _Ids:
    """Unique ``ID_<hex>`` identifiers from one generator, never the known corrupt image's."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng([seed, 77])
        self.used = set(L.KNOWN_CORRUPT)

    def new(self, digits: int) -> str:
        while True:
            s = "ID_" + "".join(f"{b:02x}" for b in self.rng.bytes((digits + 1) // 2))[:digits]
            if s not in self.used:
                self.used.add(s)
                return s


def lesions_of(seed: int, k: int, lesion_index: int | None) -> tuple[str, ...]:
    """The subtypes drawn in series ``k``: none, or a primary one of :data:`PRIMARY_CYCLE` and maybe a companion."""
    if lesion_index is None:
        return ()
    primary = PRIMARY_CYCLE[lesion_index % len(PRIMARY_CYCLE)]
    rng = np.random.default_rng([seed, k, 3])
    if rng.random() < P_SECOND:
        return primary, COMPANION[primary]
    return (primary,)


def synthesize(out: str | Path, patients: int = 40, size: int = 64, seed: int = 0,
               progress: Callable[[str], None] | None = None) -> dict:
    """Write a deterministic synthetic RSNA ICH download (stage 2 layout).

    Args:
        out: dataset root to create (absent, empty, or a set made with the same arguments).
        patients: labelled patients (one or two series each); one more patient's series is the test set.
        size: slice width and height in pixels (the real: 512).
        seed: random seed; identical arguments give byte-identical files.
        progress: called with a line of text every few series, if given.

    Returns:
        Summary dict: ``out``, ``patients`` (PatientIDs), ``series``, ``images`` (training DICOMs,
        the corrupt one included), ``test_images``, ``files`` (marker excluded), ``label_rows``,
        ``positives`` (slices per subtype, the corrupt slice included), ``series_with_lesion``,
        ``series_per_subtype``, ``bits12_series`` / ``bits12_images``, ``unsigned12_series``,
        ``multi_window_images``, ``corrupt`` (the truncated file), ``duplicated_images`` (images whose
        six rows are repeated), ``conflict`` (the image and subtype with two different rows), ``quirks``.

    Raises:
        OptionError (a ValueError): invalid arguments, named as on the command line.
        FileExistsError: ``out`` is a file, or a non-empty folder not made with these arguments.
    """
    from data_prep.rsna_ich.phantom import head_volume
    from medpipe.io.ct_dicom import write_ct_series

    args = _check_args(patients, size, seed)
    out = Path(out)
    done = existing(out, args)
    if done is not None:
        return done
    n = args["patients"]
    ids = _Ids(seed)
    plan_rng = np.random.default_rng([seed, 1])
    pids = [ids.new(8) for _ in range(n + 1)]
    # (patient index, study number) per series; the last patient's one series is the test set
    series_of = [(i, 0) for i in range(n)] + [(i, 1) for i in range(n) if plan_rng.random() < P_SECOND_STUDY]
    series_of.sort()
    n_series = len(series_of)
    has_lesion = plan_rng.random(n_series) < P_LESION
    if not has_lesion.any():
        has_lesion[0] = True
    lesion_index = np.cumsum(has_lesion) - 1
    bits12 = {k for k in range(n_series) if k % 9 == 4} or {0}
    unsigned12 = {k for k in range(n_series) if k % 7 == 2} - bits12
    corrupt_series = next(k for k in range(n_series) if k not in bits12)
    spacing = (SLICE_MM, round(FOV_MM / size, 4), round(FOV_MM / size, 4))
    rows: dict[str, list[int]] = {}
    order: list[str] = []
    positives, per_subtype = Counter(), Counter()
    multi_window, files, n_images, bits12_images = 0, 0, 0, 0
    with atomic_output_dir(out) as tmp:
        (tmp / L.TRAIN_DIR).mkdir(parents=True)
        (tmp / L.TEST_DIR).mkdir(parents=True)
        for k, (i, study_no) in enumerate(series_of):
            lesions = lesions_of(seed, k, int(lesion_index[k]) if has_lesion[k] else None)
            rng = np.random.default_rng([seed, i, study_no, 11])
            nz = int(rng.integers(10, 17))
            hu, labels = head_volume(rng, (nz, size, size), lesions)
            names = [ids.new(9) for _ in range(nz)]
            if k == corrupt_series:
                names[nz // 2] = L.KNOWN_CORRUPT[0]
            windows = WINDOWS_MULTI if k % 2 else WINDOWS_SINGLE
            quirk = "bits12_wrapped" if k in bits12 else "unsigned12" if k in unsigned12 else None
            written = write_ct_series(
                tmp / L.TRAIN_DIR, hu, patient_id=pids[i], study_uid=ids.new(10), series_uid=ids.new(10),
                spacing=spacing, windows=windows, kernel=KERNELS[k % len(KERNELS)], quirk=quirk,
                file_names=[f"{m}{L.DICOM_EXT}" for m in names], sop_uids=names,
                z_offset=round(float(rng.uniform(-80, 40)), 2))
            files += len(written)
            n_images += len(written)
            multi_window += len(written) if len(windows) > 1 else 0
            bits12_images += len(written) if quirk == "bits12_wrapped" else 0
            for m, lab in zip(names, labels.tolist()):
                rows[m] = lab
                order.append(m)
                for s, v in zip(L.SUBTYPES, lab):
                    positives[s] += v
            for s in lesions:
                per_subtype[s] += 1
            if progress is not None and ((k + 1) % 10 == 0 or k + 1 == n_series):
                progress(f"rsna-ich synth: {k + 1}/{n_series} series, {n_images} slices")
        # the real set's corrupt image: a slice cut short inside its pixel data
        bad = tmp / L.TRAIN_DIR / f"{L.KNOWN_CORRUPT[0]}{L.DICOM_EXT}"
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) - size * size])
        # the test set: one short unlabelled series of one more patient
        trng = np.random.default_rng([seed, n, 0, 11])
        hu, _ = head_volume(trng, (TEST_SLICES, size, size), ("intraparenchymal",))
        test_names = [ids.new(9) for _ in range(TEST_SLICES)]
        write_ct_series(tmp / L.TEST_DIR, hu, patient_id=pids[n], study_uid=ids.new(10), series_uid=ids.new(10),
                        spacing=spacing, windows=WINDOWS_MULTI, file_names=[f"{m}{L.DICOM_EXT}" for m in test_names],
                        sop_uids=test_names, z_offset=0.0)
        files += TEST_SLICES

        # the label file: six rows per image in a shuffled image order, two images repeated, one conflicting row
        shuffled = [order[j] for j in np.random.default_rng([seed, 5]).permutation(len(order))]
        lines = ["ID,Label"]
        for m in shuffled:
            lines += [f"{m}_{s},{rows[m][L.SUBTYPES.index(s)]}" for s in CSV_ORDER]
        dup_images = [m for m in shuffled if m != L.KNOWN_CORRUPT[0]][:2]
        for m in dup_images:
            lines += [f"{m}_{s},{rows[m][L.SUBTYPES.index(s)]}" for s in CSV_ORDER]
        pos = next(((m, s) for m in shuffled for s in L.LESIONS if rows[m][L.SUBTYPES.index(s)]), None)
        conflict = None
        if pos is not None:
            conflict = {"image": pos[0], "subtype": pos[1]}
            lines.append(f"{pos[0]}_{pos[1]},0")
        (tmp / L.LABELS_FILE).write_text("\n".join(lines) + "\n")
        (tmp / L.SUBMISSION_FILE).write_text("ID,Label\n" + "".join(f"{m}_{s},0.5\n" for m in test_names
                                                                    for s in CSV_ORDER))
        files += 2
        summary = {
            "out": str(out), "patients": pids[:n], "series": n_series, "images": n_images,
            "test_images": TEST_SLICES, "files": files, "label_rows": len(lines) - 1,
            "positives": {s: positives[s] for s in L.SUBTYPES},
            "series_with_lesion": int(has_lesion.sum()),
            "series_per_subtype": {s: per_subtype[s] for s in L.LESIONS},
            "bits12_series": len(bits12), "bits12_images": bits12_images, "unsigned12_series": len(unsigned12),
            "multi_window_images": multi_window,
            "corrupt": f"{L.TRAIN_DIR}/{L.KNOWN_CORRUPT[0]}{L.DICOM_EXT}",
            "duplicated_images": dup_images, "conflict": conflict,
        }
        summary["quirks"] = [
            {"kind": "duplicated_label_rows", "file": L.LABELS_FILE, "images": dup_images},
            *([{"kind": "conflicting_label_rows", "file": L.LABELS_FILE, **conflict}] if conflict else []),
            {"kind": "multi_valued_window", "images": multi_window},
            {"kind": "bits12_encoding", "series": len(bits12)},
            {"kind": "known_corrupt_image", "file": summary["corrupt"]},
            {"kind": "test_images", "folder": L.TEST_DIR, "images": TEST_SLICES},
        ]
        write_marker(tmp, args, summary)
    return summary
