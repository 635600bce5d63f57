"""A synthetic CQ500 download in the real layout: three readers' reads and 2-4 DICOM series per scan.

What is written (see :mod:`data_prep.cq500.layout` for the real download)::

    reads.csv                                                  the real header, CRLF lines, rows shuffled
    CQ500CT17 CQ500CT17/Unknown Study/CT Plain/CT000000.dcm    the plain 5 mm series (the rule must choose it)
    CQ500CT17 CQ500CT17/Unknown Study/CT PLAIN THIN/...        a thin plain series (0.625 mm, few slices)
    CQ500CT17 CQ500CT17/Unknown Study/CT BONE/...              a bone-kernel series (5 mm, same slices)
    CQ500CT40 CQ500CT40/Unknown Study/CT POST CONTRAST/...     every 4th scan: a post-contrast series (5 mm)

* A scan has a "truth" (category ``B1``/``B2``, hemorrhage and its subtypes, bleed side, chronic
  bleed, fractures, mass effect, midline shift; B2 richer in hemorrhage, as in the real batches);
  each of the three readers reads it with a reader-specific miss and false-positive rate (a reader
  who marks a subtype marks ICH; a fracture is calvarial or other), so the readers mostly agree
  and the kappas are realistic (about 0.6-0.95 where a finding is common enough).
* The slices are head phantoms (:func:`data_prep.rsna_ich.phantom.head_volume`) whose hemorrhages are
  the truth's subtypes (:data:`~data_prep.cq500.layout.TO_SUBTYPE`), written with
  :func:`medpipe.io.ct_dicom.write_ct_series` (``PatientID`` = ``CQ500-CT-N``; ``SeriesDescription``
  and ``ConvolutionKernel`` as the folder says; the bone series of every other scan is described as
  ``CT 5mm SHARP``: only its kernel says bone).
* Quirks: scan numbers are scattered over 0-490 and the rows are in no order; file names number
  the slices from the vertex down in every other scan (so names are not in ``z`` order); one reads
  row has no image folder, one image folder has no reads row, and one slice of a chosen series is
  cut short (:data:`TRUNCATED_SCAN`).

Output is byte-identical for identical arguments.

Example:
    >>> from data_prep.cq500.synth import synthesize
    >>> s = synthesize("/tmp/cq500-raw", patients=12, size=64)  # doctest: +SKIP
    >>> s["scans"][:2], s["chosen_slices"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_prep.cq500 import layout as L
from medpipe.prepare.synthetic import check_synth_args, existing, write_marker
from medpipe.utils.fs import atomic_output_dir

#: bump when the output for the same arguments changes
GENERATOR_VERSION = 1
MIN_SIZE, MAX_SIZE, MIN_PATIENTS = 32, 512, 4
STUDY_DIR = "Unknown Study"
#: the real scan numbers run 0..490
REAL_SCANS = 491
FOV_MM = 230.0
#: slices of the plain 5 mm series (and the bone one), and of the thin series
PLAIN_SLICES, THIN_SLICES, THIN_MM = (8, 12), 6, 0.625
#: series descriptions seen in the real download, per kind (cycled over the scans)
PLAIN_DESCRIPTIONS = ("CT Plain", "CT 5mm", "CT PRE CONTRAST 5MM STD", "CT 55mm PLAIN")
THIN_DESCRIPTIONS = ("CT PLAIN THIN", "CT 0.625mm", "CT Thin Plain")
BONE_DESCRIPTIONS = ("CT BONE", "CT 5mm SHARP")
POST_CONTRAST = "CT POST CONTRAST"
#: every POST_EVERY-th scan also has a post-contrast series
POST_EVERY = 4
#: P(hemorrhage) per batch, and P(subtype | hemorrhage)
P_ICH = {"B1": 0.25, "B2": 0.65}
P_SUBTYPE = {"IPH": 0.55, "SDH": 0.35, "SAH": 0.35, "IVH": 0.2, "EDH": 0.12}
#: per reader: P(miss a present finding), P(mark an absent one)
READER_ERRORS = {"R1": (0.06, 0.03), "R2": (0.08, 0.02), "R3": (0.1, 0.015)}
#: the scan (index among the scans with images and a row) one of whose chosen slices is cut short
TRUNCATED_SCAN = 1



def _check_args(patients, size, seed) -> dict:
    return check_synth_args(patients, size, seed, min_patients=MIN_PATIENTS, min_size=MIN_SIZE, max_size=MAX_SIZE,
                            patients_why="the set needs scans with and without a hemorrhage",
                            size_why="smaller slices cannot show a hemorrhage", version=GENERATOR_VERSION)


def _uid(seed: int, *parts) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["medpipe-cq500-synth", str(seed), *map(str, parts)])


def draw_truth(rng: np.random.Generator, category: str) -> dict[str, int]:
    """One scan's true findings (:data:`~data_prep.cq500.layout.FINDINGS` -> 0/1), consistent with each other.

    Example:
        >>> t = draw_truth(np.random.default_rng(0), "B2")
        >>> sorted(t) == sorted(L.FINDINGS), t["ICH"] == max(t[f] for f in ("IPH", "IVH", "SDH", "EDH", "SAH"))
        (True, True)
    """
    t = dict.fromkeys(L.FINDINGS, 0)
    if rng.random() < P_ICH[category]:
        for f, p in P_SUBTYPE.items():
            t[f] = int(rng.random() < p)
        if not any(t[f] for f in P_SUBTYPE):
            t[list(P_SUBTYPE)[int(rng.integers(len(P_SUBTYPE)))]] = 1
        t["ICH"] = 1
        side = rng.random()
        t["BleedLocation-Left"], t["BleedLocation-Right"] = int(side < 0.65), int(side > 0.35)
        t["ChronicBleed"] = int(rng.random() < 0.12)
        t["MassEffect"] = int(rng.random() < 0.55)
        t["MidlineShift"] = int(t["MassEffect"] and rng.random() < 0.5)
    elif rng.random() < 0.05:
        t["MassEffect"] = 1
    if rng.random() < (0.5 if t["EDH"] else 0.1):
        t["Fracture"] = 1
        kind = rng.random()
        t["CalvarialFracture"], t["OtherFracture"] = int(kind < 0.75), int(kind > 0.55)
    return t


def read_scan(rng: np.random.Generator, truth: dict[str, int], reader: str) -> dict[str, int]:
    """A reader's read of a scan: each finding missed or over-called at the reader's rates, kept consistent
    (subtypes, bleed side and chronic bleed only with ICH; a fracture is calvarial or other).

    Example:
        >>> t = draw_truth(np.random.default_rng(3), "B2")
        >>> r = read_scan(np.random.default_rng(4), t, "R1")
        >>> r["ICH"] == int(any(r[f] for f in ("IPH", "IVH", "SDH", "EDH", "SAH")))
        True
    """
    miss, over = READER_ERRORS[reader]

    def see(v: int) -> int:
        return int(rng.random() >= miss) if v else int(rng.random() < over)

    r = dict.fromkeys(L.FINDINGS, 0)
    if see(truth["ICH"]):
        for f in (*P_SUBTYPE, "BleedLocation-Left", "BleedLocation-Right", "ChronicBleed"):
            r[f] = see(truth[f])
        if not any(r[f] for f in P_SUBTYPE):  # a reader who calls a bleed names its kind
            true = [f for f in P_SUBTYPE if truth[f]]
            r[true[0] if true else list(P_SUBTYPE)[int(rng.integers(len(P_SUBTYPE)))]] = 1
        r["ICH"] = 1
    for f in ("CalvarialFracture", "OtherFracture", "MassEffect", "MidlineShift"):
        r[f] = see(truth[f])
    r["Fracture"] = int(r["CalvarialFracture"] or r["OtherFracture"])
    return r


def synthesize(out: str | Path, patients: int = 20, size: int = 64, seed: int = 0,
               progress: Callable[[str], None] | None = None) -> dict:
    """Write a deterministic synthetic CQ500 download (see the module docstring).

    Args:
        out: folder to create (absent, empty, or a set made with the same arguments).
        patients: scans with both a reads row and an image folder (what ``prepare`` turns into
            records); one more reads row without images and one more image folder without a reads
            row are added.
        size: slice width and height in pixels.
        seed: random seed; identical arguments give byte-identical files.
        progress: called with a line of text every few scans, if given.

    Returns:
        Summary dict: ``out``, ``patients`` and ``scans`` (the ``CQ500-CT-N`` with images and a row),
        ``images`` (DICOM files), ``files`` (marker excluded), ``chosen_series`` (scan -> the plain
        5 mm series' description), ``chosen_slices`` (their slices, the truncated one included),
        ``scan_series`` (scan -> its series' descriptions), ``series`` (descriptions written, counted,
        the folder without a reads row included), ``truth`` (scan -> findings), ``positives``
        (scans with a true hemorrhage), ``reads_row_without_images``, ``folder_without_reads_row``,
        ``truncated`` (the file cut short), ``quirks``.

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
    numbers = np.random.default_rng([seed, 41]).choice(max(REAL_SCANS, n + 2), size=n + 2, replace=False).tolist()
    names = [L.scan_name(k) for k in numbers]
    orphan_row, orphan_folder = names[n], names[n + 1]  # a row without images, a folder without a row
    px = FOV_MM / size
    rows, truths, chosen, scan_series, series_count = [], {}, {}, {}, Counter()
    files = images = chosen_slices = 0
    truncated = None
    with atomic_output_dir(out) as tmp:
        for i, (k, name) in enumerate(zip(numbers, names)):
            rng = np.random.default_rng([seed, k, 42])
            category = "B1" if rng.random() < 0.45 else "B2"
            truth = draw_truth(rng, category)
            if i != n + 1:
                reads = [read_scan(rng, truth, r) for r in L.READERS]
                rows.append([name, category] + [str(rd[f]) for rd in reads for f in L.FINDINGS])
            if i == n:
                continue  # the reads row without images
            if i < n:
                truths[name] = truth
            lesions = tuple(L.TO_SUBTYPE[f] for f in ("EDH", "IPH", "IVH", "SAH", "SDH") if truth[f])
            study = _uid(seed, k, "study")
            folder = tmp / f"CQ500CT{k} CQ500CT{k}" / STUDY_DIR
            z0 = float(np.round(rng.uniform(-40, 10), 1))
            n5 = int(rng.integers(PLAIN_SLICES[0], PLAIN_SLICES[1] + 1))
            hu5, _ = head_volume(rng, (n5, size, size), lesions)
            hu_thin, _ = head_volume(rng, (THIN_SLICES, size, size), lesions)
            top_down = i % 2 == 1  # file names from the vertex down: not in z order

            def names_for(m):
                return [f"CT{(m - 1 - j if top_down else j):06d}.dcm" for j in range(m)]

            plain = PLAIN_DESCRIPTIONS[i % len(PLAIN_DESCRIPTIONS)]
            series = [(plain, hu5, 5.0, "STANDARD"),
                      (THIN_DESCRIPTIONS[i % len(THIN_DESCRIPTIONS)], hu_thin, THIN_MM, "STANDARD"),
                      (BONE_DESCRIPTIONS[i % len(BONE_DESCRIPTIONS)], hu5, 5.0, "BONE")]
            if i % POST_EVERY == POST_EVERY - 1:
                series.append((POST_CONTRAST, hu5 + np.float32(25.0) * (hu5 > 20) * (hu5 < 90), 5.0, "STANDARD"))
            for s, (desc, hu, mm, kernel) in enumerate(series):
                written = write_ct_series(folder / desc, hu, patient_id=name, study_uid=study,
                                          series_uid=_uid(seed, k, "series", s), spacing=(mm, px, px),
                                          series_description=desc, windows=((40, 80), (80, 200)), kernel=kernel,
                                          file_names=names_for(hu.shape[0]), z_offset=z0)
                files += len(written)
                images += len(written)
                series_count[desc] += 1
                if i < n:
                    scan_series.setdefault(name, []).append(desc)
                if s == 0 and i < n:
                    chosen[name] = desc
                    chosen_slices += len(written)
                    if i == TRUNCATED_SCAN and truncated is None:
                        path = Path(written[len(written) // 2]["path"])
                        path.write_bytes(path.read_bytes()[:-(size * size)])  # cut inside the pixel data
                        truncated = path.relative_to(tmp).as_posix()
            if progress is not None and ((i + 1) % 10 == 0 or i + 1 == n + 2):
                progress(f"cq500 synth: {i + 1}/{n + 2} scans")
        order = np.random.default_rng([seed, 43]).permutation(len(rows))
        text = "\r\n".join([",".join(L.COLUMNS)] + [",".join(rows[j]) for j in order])  # CRLF, no final newline
        (tmp / L.READS_FILE).write_bytes(text.encode())
        files += 1
        positives = sorted(s for s, t in truths.items() if t["ICH"])
        summary = {
            "out": str(out), "patients": names[:n], "scans": names[:n], "images": images, "files": files,
            "chosen_series": chosen, "chosen_slices": chosen_slices, "scan_series": scan_series,
            "series": dict(sorted(series_count.items())),
            "truth": truths, "positives": positives,
            "reads_row_without_images": orphan_row, "folder_without_reads_row": orphan_folder,
            "truncated": truncated,
            "quirks": [
                {"kind": "crlf_reads", "note": "reads.csv has CRLF line ends and rows in no order"},
                {"kind": "several_series", "note": "plain 5 mm, thin plain, bone kernel; every 4th scan post contrast"},
                {"kind": "bone_by_kernel_only", "note": f"{BONE_DESCRIPTIONS[1]!r}: only ConvolutionKernel says BONE"},
                {"kind": "names_not_in_z_order", "note": "every other scan's files are numbered from the vertex down"},
                {"kind": "reads_row_without_images", "scan": orphan_row},
                {"kind": "folder_without_reads_row", "scan": orphan_folder},
                {"kind": "truncated_slice", "file": truncated},
            ],
        }
        write_marker(tmp, args, summary)
    return summary
