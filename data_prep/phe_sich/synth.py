"""Synthetic PHE-SICH-CT-IDS, written in the real download layout (quirks included).

The real dataset (see :mod:`data_prep.phe_sich.layout`) is 120 non-contrast head CTs with a mask and
a Pascal VOC box of the perihaematomal oedema (PHE) on every slice, shipped three times: as NIfTI
volumes in HU, as 8-bit PNG slices and as 8-bit "JPG" slices that are really PNG-encoded. This
module fakes it closely enough for the converter and the training pipelines to run end to end:

* each patient is a stack of axial slices in HU (air, scalp, skull, brain with low-frequency
  variation and noise, two lateral ventricles) and three patients in every four get a 3D
  haematoma: a hyperdense core wrapped in a thin hypodense oedema rim; the rim is the PHE label;
* the 2D subsets hold the brain-windowed slices, 0/255 masks and VOC XMLs byte-formatted like the
  real ones (CRLF, us-ascii, no ``<size>`` when there is no object);
* ``MedInfo.xlsx`` holds one clinical row per patient, volumes derived from the synthetic lesion;
* two real quirks are reproduced: one patient's XMLs use a 3-digit id (``013_SS.xml``) and one
  XML is an orphan whose image and mask are missing (like the real ``annotation71/0071_05.xml``).

Output is byte-identical for identical arguments. Each patient's anatomy depends only on
``(seed, patient number)``, not on ``size`` or on how many patients are generated, so a small and a
full-resolution synthetic set show the same patients.

Example:
    >>> from data_prep.phe_sich.synth import synthesize
    >>> summary = synthesize("/tmp/phe-sich-synth", patients=4, size=64)  # doctest: +SKIP
    >>> summary["quirks"][0]["kind"]  # doctest: +SKIP
    'three_digit_xml_names'
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import math
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep.phe_sich.layout import (
    BRAIN_WINDOW,
    CLINICAL_FILE,
    NATIVE_PIXEL_SPACING_MM,
    NATIVE_SIZE,
    NATIVE_SLICE_THICKNESS_MM,
    SUBSET_DIRS,
    SUBSET_EXT,
    VOC_CLASS_NAME,
    display_to_volume_slice,
    patient_id,
    slice_dir,
    slice_stem,
    volume_path,
    volume_slice_to_display,
)
from medpipe.io.ct import window_to_uint8 as _window
from medpipe.prepare.spec import OptionError
from medpipe.prepare.synthetic import MARKER, existing, write_marker
from medpipe.utils.fs import atomic_output_dir

#: the smallest slice the anatomy can be drawn at (skull, ventricles and a lesion rim of >= 2 px)
MIN_SIZE, MAX_SIZE = 64, 2048
#: patients the quirks need (the 3-digit XML names on one, the orphan XML on another)
MIN_PATIENTS = 2
#: bump when the output for the same arguments changes, so stale synthetic folders are not reused
GENERATOR_VERSION = 1

#: fraction of patients that get a haematoma (the rest have PHE-free slices only)
LESION_FRACTION = 0.75
NOISE_SIGMA_HU = 4.0
AIR_HU, CSF_HU = -1000.0, 5.0

# Fixed stamps so the xlsx (a zip with document properties) is byte-identical between runs.
_XLSX_TIME = _dt.datetime(2024, 1, 1, 0, 0, 0)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

_VOC_PATH = "C:\\Users\\MiaMia\\Desktop\\png\\set\\image{patient}\\{slice}.png"


@dataclass
class _Patient:
    """One synthetic patient: display slices in HU, PHE mask, and what the clinical table needs."""

    number: int
    hu: np.ndarray  # (slices, size, size) int16, display orientation
    phe: np.ndarray  # (slices, size, size) bool
    core_voxels: int
    lesion_slices: tuple[int, int] | None  # first, last (inclusive)


# ----------------------------------------------------------------------------------------------
# argument handling


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _normalize_args(patients, size, seed, slices, subsets, clinical) -> dict:
    # OptionError is a ValueError for Python callers and a one-paragraph message on the command line
    if not _is_int(patients) or patients < MIN_PATIENTS:
        raise OptionError(f"--patients {patients!r}: must be an integer >= {MIN_PATIENTS} (the quirks need two "
                          f"patients; `medpipe prepare` needs at least as many patients as --folds, 5 by default).")
    if patients > 9999:
        raise OptionError(f"--patients {patients}: must be <= 9999 (ids are 4 digits).")
    if not _is_int(size) or not MIN_SIZE <= size <= MAX_SIZE:
        raise OptionError(f"--size {size!r}: must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels; smaller slices "
                          f"cannot hold the skull, the ventricles and a lesion rim (the real slices are {NATIVE_SIZE}).")
    if not _is_int(seed) or seed < 0:
        raise OptionError(f"--seed {seed!r}: must be a non-negative integer.")
    try:
        lo, hi = slices
    except (TypeError, ValueError):
        raise OptionError(f"--slices {slices!r}: must be a (min, max) pair of integers, e.g. 12,16.") from None
    if not (_is_int(lo) and _is_int(hi)) or not 6 <= lo <= hi <= 100:
        raise OptionError(
            f"--slices {slices!r}: must be (min, max) with 6 <= min <= max <= 100 (slice indices have 2 digits "
            f"and the haematoma needs room), e.g. 12,16.")
    if isinstance(subsets, str):
        subsets = (subsets,)
    try:
        subsets = list(subsets)
    except TypeError:
        raise OptionError(f"--subsets {subsets!r}: must be a selection of {sorted(SUBSET_DIRS)}.") from None
    unknown = [s for s in subsets if s not in SUBSET_DIRS]
    if unknown or not subsets:
        raise OptionError(f"--subsets {subsets!r}: must be a non-empty selection of {sorted(SUBSET_DIRS)}, "
                          f"e.g. png,nifti.")
    if not isinstance(clinical, bool):
        raise OptionError(f"clinical must be True or False, got {clinical!r}")
    return {
        "generator": __name__,
        "version": GENERATOR_VERSION,
        "patients": int(patients),
        "size": int(size),
        "seed": int(seed),
        "slices": [int(lo), int(hi)],
        "subsets": [s for s in SUBSET_DIRS if s in subsets],  # canonical order: order is not meaningful
        "clinical": clinical,
    }


# ----------------------------------------------------------------------------------------------
# anatomy model


def _rotate(dy, dx, angle: float):
    c, s = math.cos(angle), math.sin(angle)
    return dy * c - dx * s, dy * s + dx * c


def _head_scale(t: float) -> float:
    """Head cross-section scale at normalized height ``t`` in [-1, 1]; the vertex narrows faster than the base."""
    k = 0.85 if t > 0 else 0.7
    return math.sqrt(max(0.0, 1.0 - (k * t) ** 2))


def _place_lesion(rng: np.random.Generator, n: int, size: int, brain_axes: Callable[[int], tuple[float, float]]):
    """Draw a haematoma that fits inside the brain on every slice it spans.

    Returns a dict of lesion parameters (head-frame pixels), or None if nothing fits (never seen in
    practice, but a generator must not loop forever).
    """
    # Keep the lesion away from the skull base and vertex, where the brain section is small.
    k_lo, k_hi = math.ceil(0.15 * (n - 1)), math.floor(0.85 * (n - 1))
    span = int(min(rng.integers(3, 8), k_hi - k_lo + 1))
    k0 = int(rng.integers(k_lo, k_hi - span + 2))
    kc, hz = k0 + (span - 1) / 2, span / 2 + 0.5
    radius = size * rng.uniform(0.06, 0.14)
    aspect = (rng.uniform(0.85, 1.2), rng.uniform(0.7, 1.0))
    angle = rng.uniform(0, math.pi)
    rim = max(2.0, rng.uniform(2.0, 4.0) * size / 128)
    harmonics = (rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi))
    core_hu, edema_hu = rng.uniform(60, 80), rng.uniform(15, 22)
    side = rng.choice((-1.0, 1.0))
    phi = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    for _attempt in range(200):
        if _attempt and _attempt % 40 == 0:
            radius *= 0.85
        a, b = radius * aspect[0], radius * aspect[1]
        uc = size * rng.uniform(-0.22, 0.22)
        vc = side * size * rng.uniform(0.04, 0.2)
        ok = True
        for k in range(k0, k0 + span):
            f = math.sqrt(1 - ((k - kc) / hz) ** 2)
            # 1.14 covers the boundary harmonics (0.08 + 0.05) plus a pixel of margin.
            pu, pv = (a * f + rim) * 1.14 * np.cos(phi), (b * f + rim) * 1.14 * np.sin(phi)
            du, dv = _rotate(pu, pv, angle)
            ay, ax = brain_axes(k)
            if np.any(((uc + du) / (ay - 2)) ** 2 + ((vc + dv) / (ax - 2)) ** 2 > 1):
                ok = False
                break
        if ok:
            return {"k0": k0, "span": span, "kc": kc, "hz": hz, "a": a, "b": b, "angle": angle, "rim": rim,
                    "harmonics": harmonics, "core_hu": core_hu, "edema_hu": edema_hu, "uc": uc, "vc": vc}
    return None


def _lesion_flags(seed: int, n_patients: int) -> list[bool]:
    """Which patients get a haematoma: exactly one in each consecutive block of four does not.

    Stratifying (rather than a coin flip per patient) keeps the share of positive slices near its
    target for any seed, keeps the flags of the first patients unchanged when more are generated,
    and guarantees a lesion whenever there are two patients or more.
    """
    block = round(1 / (1 - LESION_FRACTION))
    flags = []
    for start in range(0, n_patients, block):
        spared = int(np.random.default_rng([seed, 0, start]).integers(block))
        flags += [j != spared for j in range(block)]
    return flags[:n_patients]


def _make_patient(number: int, seed: int, size: int, slices: tuple[int, int], has_lesion: bool) -> _Patient:
    """Build one patient's HU slices and PHE mask (display orientation: rows anterior->posterior)."""
    geo = np.random.default_rng([seed, number, 0])  # anatomy: independent of size
    noise_rng = np.random.default_rng([seed, number, 1])
    n = int(geo.integers(slices[0], slices[1] + 1))
    S = size
    # head frame: u along rows (AP), v along columns (LR), both in pixels from the head centre
    cy = (S - 1) / 2 + S * geo.uniform(-0.02, 0.02)
    cx = (S - 1) / 2 + S * geo.uniform(-0.015, 0.015)
    head_angle = math.radians(geo.uniform(-6, 6))
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    U, V = _rotate(yy - np.float32(cy), xx - np.float32(cx), head_angle)
    ay0, ax0 = S * geo.uniform(0.40, 0.44), S * geo.uniform(0.33, 0.37)
    scalp = max(1.0, 0.012 * S)
    skull = max(2.0, 0.03 * S * geo.uniform(0.9, 1.1))
    skull_hu, scalp_hu, brain_hu = geo.uniform(900, 1100), geo.uniform(35, 55), geo.uniform(32, 38)
    # smooth, low-frequency parenchymal variation (grey/white matter, beam hardening) of a few HU
    waves = [(geo.uniform(0.5, 2.0), geo.uniform(0.5, 2.0), geo.uniform(0.3, 1.0), geo.uniform(0, 2 * math.pi),
              geo.uniform(1.0, 2.0)) for _ in range(3)]
    vent_scale, vent_angle = geo.uniform(0.8, 1.2), math.radians(geo.uniform(8, 16))

    def scale(k: int) -> float:
        return _head_scale(2 * k / (n - 1) - 1)

    def brain_axes(k: int) -> tuple[float, float]:
        s = scale(k)
        return ay0 * s - scalp - skull, ax0 * s - scalp - skull

    lesion = _place_lesion(geo, n, S, brain_axes) if has_lesion else None

    hu = np.empty((n, S, S), np.int16)
    phe = np.zeros((n, S, S), bool)
    core_voxels = 0
    yn, xn = yy / S, xx / S
    for k in range(n):
        t = 2 * k / (n - 1) - 1
        s = scale(k)
        r_head = (U / (ay0 * s)) ** 2 + (V / (ax0 * s)) ** 2
        r_skull = (U / (ay0 * s - scalp)) ** 2 + (V / (ax0 * s - scalp)) ** 2
        by, bx = brain_axes(k)
        brain = (U / by) ** 2 + (V / bx) ** 2 <= 1
        noise = noise_rng.standard_normal((S, S), dtype=np.float32) * np.float32(NOISE_SIGMA_HU)

        img = np.full((S, S), brain_hu, np.float32)
        for fy, fx, fz, ph, amp in waves:
            img += np.float32(amp) * np.cos(np.float32(2 * math.pi) * (np.float32(fy) * yn + np.float32(fx) * xn)
                                            + np.float32(2 * math.pi * fz * t + ph))
        if abs(t) < 0.45:  # lateral ventricles only on the mid slices
            taper = math.sqrt(1 - (t / 0.45) ** 2) * vent_scale
            for side in (-1.0, 1.0):
                du, dv = _rotate(U + 0.03 * S, V - side * 0.055 * S * s, side * vent_angle)
                vent = (du / (0.12 * S * taper + 1)) ** 2 + (dv / (0.03 * S * taper + 1)) ** 2 <= 1
                img[vent & brain] = CSF_HU
        if lesion is not None and lesion["k0"] <= k < lesion["k0"] + lesion["span"]:
            f = math.sqrt(1 - ((k - lesion["kc"]) / lesion["hz"]) ** 2)
            p, q = _rotate(U - np.float32(lesion["uc"]), V - np.float32(lesion["vc"]), -lesion["angle"])
            a, b, w = lesion["a"] * f, lesion["b"] * f, lesion["rim"]
            theta = np.arctan2(q / b, p / a)
            h1, h2 = lesion["harmonics"]
            # angular harmonics make the clot irregular rather than a perfect ellipse
            g = (1 + 0.08 * np.cos(2 * theta + h1) + 0.05 * np.cos(3 * theta + h2)) ** 2
            core = ((p / a) ** 2 + (q / b) ** 2 <= g) & brain
            rim = ((p / (a + w)) ** 2 + (q / (b + w)) ** 2 <= g) & brain & ~core
            img[core] = lesion["core_hu"]
            img[rim] = lesion["edema_hu"]
            phe[k] = rim
            core_voxels += int(core.sum())
        img += noise
        bone = (r_skull <= 1) & ~brain
        img[bone] = skull_hu + 10 * noise[bone]  # bone is far noisier than soft tissue
        soft = (r_head <= 1) & (r_skull > 1)
        img[soft] = scalp_hu + noise[soft]
        outside = r_head > 1
        img[outside] = AIR_HU + noise[outside]
        hu[k] = np.clip(np.rint(img), -1024, 3071).astype(np.int16)

    span = (lesion["k0"], lesion["k0"] + lesion["span"] - 1) if lesion is not None else None
    return _Patient(number=number, hu=hu, phe=phe, core_voxels=core_voxels, lesion_slices=span)


# ----------------------------------------------------------------------------------------------
# encoders


def window_to_uint8(hu: np.ndarray, window: tuple[float, float] = BRAIN_WINDOW) -> np.ndarray:
    """The brain-windowed 8-bit slice, as the 2D subsets store it (see :func:`medpipe.io.ct.window_to_uint8`)."""
    return _window(hu, window)


def _png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr, np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _voc_xml(xml_stem: str, patient: int, slice_index: int, size: int, box: tuple[int, int, int, int] | None) -> bytes:
    """A VOC file formatted byte for byte like the dataset's (CRLF, us-ascii, no ``<size>`` when empty)."""
    lines = [
        "<?xml version='1.0' encoding='us-ascii'?>",
        "<annotation>",
        "<folder>VOC2007</folder>",
        f"<filename>{xml_stem}.jpg</filename>",
        f"<path>{_VOC_PATH.format(patient=int(patient), slice=int(slice_index))}</path>",
        "<source>",
        "    <database>Unknown</database>",
        "</source>",
    ]
    if box is not None:
        lines += ["<size>", f"    <width>{size}</width>", f"    <height>{size}</height>", "    <depth>3</depth>",
                  "</size>"]
    lines += ["", "<segmented>0</segmented>"]
    if box is not None:
        xmin, ymin, xmax, ymax = box
        lines += [
            "    <object>",
            f"    <name>{VOC_CLASS_NAME}</name>",
            "    <pose>Unspecified</pose>",
            "    <truncated>0</truncated>",
            "    <difficult>0</difficult>",
            "    <bndbox>",
            f"        <xmin>{xmin}</xmin>",
            f"        <ymin>{ymin}</ymin>",
            f"        <xmax>{xmax}</xmax>",
            f"        <ymax>{ymax}</ymax>",
            "    </bndbox>",
            "</object>",
        ]
    lines.append("</annotation>")
    return "\r\n".join(lines).encode("ascii")


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box ``(xmin, ymin, xmax, ymax)`` of a mask, max inclusive like the dataset; None when empty."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return None
    r, c = np.flatnonzero(rows), np.flatnonzero(cols)
    return int(c[0]), int(r[0]), int(c[-1]), int(r[-1])


def voxel_spacing(size: int) -> tuple[float, float, float]:
    """Voxel spacing (mm) of a ``size`` x ``size`` volume covering the real field of view."""
    px = NATIVE_PIXEL_SPACING_MM * NATIVE_SIZE / size
    return px, px, NATIVE_SLICE_THICKNESS_MM


def _nifti_image(vol: np.ndarray, spacing: tuple[float, float, float]):
    import nibabel as nib

    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.array(vol.shape[:3]) - 1) / 2 * np.array(spacing)  # origin at the volume centre
    img = nib.Nifti1Image(vol, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img


def _nifti_gz_bytes(vol: np.ndarray, spacing: tuple[float, float, float]) -> bytes:
    # gzip.compress with mtime=0 keeps the bytes reproducible; nibabel's own .gz writer stamps the time.
    return gzip.compress(_nifti_image(vol, spacing).to_bytes(), compresslevel=6, mtime=0)


def _check_orientation(spacing: tuple[float, float, float]) -> None:
    """Make sure our affine + the layout helpers round-trip a display slice through ``as_closest_canonical``."""
    import nibabel as nib

    probe = np.arange(12, dtype=np.int16).reshape(3, 4)  # non-square and asymmetric: flips cannot hide
    img = _nifti_image(display_to_volume_slice(probe)[..., None], spacing)
    back = volume_slice_to_display(nib.as_closest_canonical(img).get_fdata(), 0)
    if not np.array_equal(back, probe):
        raise AssertionError("synthetic NIfTI affine does not round-trip with medpipe.io.orientation's slice helpers")


def _xlsx_bytes(rows: list[dict]) -> bytes:
    import pandas as pd

    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        pd.DataFrame(rows).to_excel(writer, index=False, sheet_name="Sheet1")
        props = writer.book.properties
        props.created = _XLSX_TIME
        props.creator = props.lastModifiedBy = "medpipe synthetic"
    # openpyxl stamps "modified" with the save time and every zip entry with the write time:
    # rewrite both with fixed values
    stamp = _XLSX_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                              lambda m: m.group(1) + stamp + m.group(2), data)
            zi = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            dst.writestr(zi, data)
    return out.getvalue()


# ----------------------------------------------------------------------------------------------
# public API


def synthesize(out: str | Path, patients: int = 12, size: int = 128, seed: int = 0,
               slices: tuple[int, int] = (12, 16), subsets: Iterable[str] = ("png", "jpg", "nifti"),
               clinical: bool = True, progress: Callable[[str], None] | None = None) -> dict:
    """Write a deterministic synthetic PHE-SICH-CT-IDS in the real download layout.

    The folder is built next to ``out`` and moved into place only when complete. Running again with
    the same arguments on a finished folder does nothing and returns the stored summary.

    Args:
        out: dataset root to create (the folder that holds ``SubdatasetA_NIFIT`` etc.). Must not
            exist, be empty, or hold a synthetic set made with the same arguments.
        patients: number of patients, numbered 1..N (so patient 13, the one with the 3-digit quirk
            in the real data, is included when N >= 13). At least 2.
        size: slice width and height in pixels (real data: 512). At least 64; the pixel spacing is
            scaled so the field of view matches the real one.
        seed: random seed; identical arguments give byte-identical files.
        slices: inclusive (min, max) number of axial slices per patient, drawn per patient.
        subsets: which of ``"png"`` (Subdataset C), ``"jpg"`` (B, PNG bytes under ``.jpg`` names)
            and ``"nifti"`` (A) to write.
        clinical: also write ``MedInfo.xlsx`` with one row per patient.
        progress: called with one line of text per patient, if given.

    Returns:
        Summary dict with ``out``, ``patients`` (ids), ``slices`` (total slices, i.e. annotations
        per 2D subset), ``positive_slices`` (slices whose XML has a box), ``mask_nonempty`` (slices
        with a non-empty mask; equal to ``positive_slices`` here because boxes are derived from the
        masks), ``subsets``, ``quirks`` (list of dicts describing the reproduced quirks), ``files``
        (number of files written, the hidden marker excluded) and ``lesions`` (per patient id: the
        first and last slice of the haematoma, or None).

    Raises:
        OptionError (a ValueError): invalid arguments, named as on the command line.
        FileExistsError: ``out`` is a file, or a non-empty folder not made by this generator with
            the same arguments.
    """
    args = _normalize_args(patients, size, seed, slices, subsets, clinical)
    out = Path(out)
    done = existing(out, args)
    if done is not None:
        return done

    n_patients, size, seed = args["patients"], args["size"], args["seed"]
    subsets, slice_range = args["subsets"], tuple(args["slices"])
    spacing = voxel_spacing(size)
    _check_orientation(spacing)
    numbers = list(range(1, n_patients + 1))
    flags = _lesion_flags(seed, n_patients)
    two_d = [s for s in subsets if s in SUBSET_EXT]
    three_digit = 13 if 13 in numbers else numbers[1]
    orphan_patient = numbers[2] if n_patients >= 3 else numbers[0]
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0

    summary = {"out": str(out), "patients": [patient_id(p) for p in numbers], "slices": 0, "positive_slices": 0,
               "mask_nonempty": 0, "subsets": subsets, "quirks": [], "files": 0, "lesions": {}}
    clinical_rows = []
    made_dirs: set[Path] = set()
    files = 0

    with atomic_output_dir(out) as tmp:
        def write(rel: str, data: bytes) -> None:
            nonlocal files
            path = tmp / rel
            if path.parent not in made_dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(path.parent)
            path.write_bytes(data)
            files += 1

        orphan = None
        for i, p in enumerate(numbers):
            pat = _make_patient(p, seed, size, slice_range, bool(flags[i]))
            n = pat.hu.shape[0]
            if p == orphan_patient and two_d:
                orphan = n // 2
            for k in range(n):
                box = _mask_box(pat.phe[k])
                summary["slices"] += 1
                summary["positive_slices"] += box is not None
                summary["mask_nonempty"] += bool(pat.phe[k].any())
                if not two_d:
                    continue
                stem = slice_stem(p, k)
                xml_stem = f"{p:03d}_{k:02d}" if p == three_digit else stem
                xml = _voc_xml(xml_stem, p, k, size, box)
                image = mask = None
                if not (p == orphan_patient and k == orphan):
                    image = _png_bytes(window_to_uint8(pat.hu[k]))
                    mask = _png_bytes(pat.phe[k].astype(np.uint8) * 255)
                for sub in two_d:
                    # the real "JPG" subset stores PNG bytes under .jpg names, so the same bytes go to both
                    ext = SUBSET_EXT[sub]
                    write(f"{slice_dir(sub, 'annotation', p)}/{xml_stem}.xml", xml)
                    if image is not None:
                        write(f"{slice_dir(sub, 'image', p)}/{stem}{ext}", image)
                        write(f"{slice_dir(sub, 'mask', p)}/{stem}{ext}", mask)
            if "nifti" in subsets:
                vol = np.stack([display_to_volume_slice(pat.hu[k]) for k in range(n)], axis=-1)
                lab = np.stack([display_to_volume_slice(pat.phe[k]) for k in range(n)], axis=-1).astype(np.uint8)
                write(volume_path("image", p), _nifti_gz_bytes(vol, spacing))
                write(volume_path("mask", p), _nifti_gz_bytes(lab, spacing))

            clin = np.random.default_rng([seed, p, 2])
            hem_ml = pat.core_voxels * voxel_ml
            edema_ml = int(pat.phe.sum()) * voxel_ml
            clinical_rows.append({
                "Patient ID": p,
                "Gender": str(clin.choice(["M", "F"], p=[0.6, 0.4])),
                "Age": int(clin.integers(35, 86)),
                # bigger bleeds, lower consciousness: a loose but plausible dependence
                "GCS": int(np.clip(15 - round(hem_ml / 12) - clin.integers(0, 4), 3, 15)),
                "Hematoma volume (ml)": round(hem_ml, 2),
                "Edema volume (ml)": round(edema_ml, 2),
                "Onset to CT (h)": round(float(clin.uniform(0.5, 24.0)), 1),
            })
            summary["lesions"][patient_id(p)] = list(pat.lesion_slices) if pat.lesion_slices else None
            if progress is not None:
                where = (f"haematoma on slices {pat.lesion_slices[0]}-{pat.lesion_slices[1]}"
                         if pat.lesion_slices else "no haematoma")
                progress(f"phe-sich synth: patient {patient_id(p)} ({i + 1}/{n_patients}): {n} slices, {where}")

        if clinical:
            write(CLINICAL_FILE, _xlsx_bytes(clinical_rows))
        if two_d:
            summary["quirks"] = [
                {"kind": "three_digit_xml_names", "patient": three_digit,
                 "files": [f"{slice_dir(s, 'annotation', three_digit)}/{three_digit:03d}_SS.xml" for s in two_d]},
                {"kind": "orphan_xml", "patient": orphan_patient, "slice": orphan,
                 "files": [f"{slice_dir(s, 'annotation', orphan_patient)}/{slice_stem(orphan_patient, orphan)}.xml"
                           for s in two_d],
                 "note": "image and mask of this slice are missing in the 2D subsets; the NIfTI volume is complete"},
            ]
        summary["files"] = files
        write_marker(tmp, args, summary)
    return summary
