"""Synthetic NIH ChestX-ray14, written in the real download layout (quirks included).

The real dataset (see :mod:`data_prep.cxr14.layout`) is 112,120 frontal chest X-rays of 30,805
patients in ``images_0NN/images/``, a label file, a box list and the official split lists. This
module fakes it closely enough for the converter and the training pipelines to run end to end,
and so that a classifier can learn something:

* each image is drawn as a frontal chest radiograph: body outline, two lung fields with vascular
  markings, ribs, clavicles, mediastinum and spine, trachea, heart shadow, domed hemidiaphragms with
  sharp costophrenic angles; brightness, position and noise vary per image;
* findings are drawn where they would be seen, and their NIH boxes enclose what was drawn:
  Cardiomegaly (cardiothoracic ratio 0.56-0.65 instead of 0.40-0.48), Effusion (fluid with a
  meniscus filling a costophrenic angle), Mass / Nodule (round opacities of two sizes), Infiltration
  (diffuse patchy haze), Consolidation (dense homogeneous opacity), Pneumonia (patchy dense opacity),
  Atelectasis (a plate-like band and a raised hemidiaphragm), Pneumothorax (a dark rim without lung
  markings behind a pleural line), Edema (bilateral perihilar haze), Emphysema (large dark lungs,
  flat diaphragms), Fibrosis (basal reticular lines), Pleural_Thickening (a bright pleural band),
  Hernia (a retrocardiac gas bubble with a fluid level);
* chronic findings persist over a patient's follow-ups, acute ones come and go; every finding is
  the primary finding of some patients (cycled), so a 60-patient set has positives of all 14;
* reproduced quirks: ``Data_Entry_2017.csv`` with the trailing comma on every line, bracketed
  two-value columns and some ``058Y`` ages (``variant="v2020"`` writes ``Data_Entry_2017_v2020.csv``
  instead); ``BBox_List_2017.csv`` with its ``Bbox [x,y,w,h],,,`` header, ``Infiltrate`` for
  Infiltration and coordinates in the 1024-px space; a few RGBA PNGs; the official
  ``train_val_list.txt`` / ``test_list.txt`` (patient-disjoint); optionally CheXNet-style lists
  (``labels/*_list.txt``, the last line without a newline).

Output is byte-identical for identical arguments; a patient depends only on ``(seed, patient)``.

Example:
    >>> from data_prep.cxr14.synth import synthesize
    >>> s = synthesize("/tmp/cxr14-synth", patients=40, size=128)  # doctest: +SKIP
    >>> s["images"], sorted(s["patients_with"])[:2]  # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.cxr14 import layout as L
from medpipe.prepare.spec import OptionError
from medpipe.prepare.synthetic import check_synth_args, existing, write_marker
from medpipe.utils.fs import atomic_output_dir

#: bump when the output for the same arguments changes
GENERATOR_VERSION = 1
MIN_SIZE, MAX_SIZE, MIN_PATIENTS = 64, 1024, 5
#: images per NIH-style folder (``images_001/images`` ...); the real folders hold 5,000-10,000
FOLDER_SIZE = 50
#: fraction of patients with at least one finding
ABNORMAL_FRACTION = 0.75
#: findings that persist over follow-ups (the others come and go)
CHRONIC = {"Cardiomegaly", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia", "Mass", "Nodule"}
#: mean number of extra findings of an abnormal patient, and their relative weights (the real order
#: of prevalence, flattened so that a small set has positives of every finding; the primary is cycled)
EXTRA_FINDINGS = 1.2
EXTRA_WEIGHTS = {"Infiltration": 2.0, "Effusion": 1.8, "Atelectasis": 1.7, "Nodule": 1.4, "Mass": 1.3,
                 "Pneumothorax": 1.2, "Consolidation": 1.1, "Pleural_Thickening": 1.0, "Cardiomegaly": 1.0,
                 "Emphysema": 1.0, "Edema": 0.9, "Fibrosis": 0.9, "Pneumonia": 0.9, "Hernia": 0.8}
#: findings that BBox_List_2017.csv has boxes for (as written there)
BOX_LABELS = {"Atelectasis": "Atelectasis", "Cardiomegaly": "Cardiomegaly", "Effusion": "Effusion",
              "Infiltration": "Infiltrate", "Mass": "Mass", "Nodule": "Nodule", "Pneumonia": "Pneumonia",
              "Pneumothorax": "Pneumothorax"}
#: every RGBA_EVERY-th image is saved as RGBA (some real NIH PNGs are)
RGBA_EVERY = 37
#: every AGE_SUFFIX_EVERY-th row of the 2017 variant writes its age as ``058Y``
AGE_SUFFIX_EVERY = 6
TEST_FRACTION = 0.25



def _check_args(patients, size, seed, variant, chexnet_lists) -> dict:
    args = check_synth_args(patients, size, seed, min_patients=MIN_PATIENTS, min_size=MIN_SIZE, max_size=MAX_SIZE,
                            patients_why="`medpipe prepare` needs at least as many patients as --folds, 5 by default",
                            size_why=f"smaller images cannot show a nodule (the real PNGs are {L.BOX_SPACE})",
                            version=GENERATOR_VERSION)
    if variant not in ("2017", "v2020"):
        raise OptionError(f"--variant {variant!r}: expected 2017 or v2020.")
    return {**args, "variant": variant, "chexnet_lists": bool(chexnet_lists)}


# ----------------------------------------------------------------------------------------------
# drawing helpers (normalized coordinates: u across, v down, both 0..1)


def _ramp(margin, edge: float):
    return np.clip(margin / edge + 0.5, 0.0, 1.0)


def _ellipse(u, v, cx, cy, rx, ry, edge):
    d = np.sqrt(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2)
    return _ramp((1.0 - d) * min(rx, ry), edge)


def _smooth_noise(rng, size: int, cells: int):
    """Low-frequency noise in 0..1 (a small random grid, bicubically enlarged)."""
    from PIL import Image

    small = (rng.random((cells, cells)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255.0


def _bbox(mask, thr: float = 0.5):
    """``(xmin, ymin, xmax, ymax)`` in pixels (max exclusive) of ``mask > thr``; None when empty."""
    ys, xs = np.nonzero(mask > thr)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@dataclass
class _Patient:
    number: int
    sex: str
    age: int
    findings: list[str]
    anatomy: dict
    params: dict = field(default_factory=dict)


def _patient_findings(seed: int, n: int) -> list[list[str]]:
    """Findings per patient: 75 % of patients abnormal, each with a primary finding cycled over a
    shuffled list and about :data:`EXTRA_FINDINGS` extras, drawn favouring findings given out least."""
    rng = np.random.default_rng([seed, 7])
    order = list(rng.permutation(len(L.FINDINGS)))
    abnormal = set(rng.permutation(n)[:round(ABNORMAL_FRACTION * n)].tolist())
    names, weights = list(EXTRA_WEIGHTS), np.array(list(EXTRA_WEIGHTS.values()))
    given = Counter()
    out, k = [], 0
    for i in range(n):
        if i not in abnormal:
            out.append([])
            continue
        have = {L.FINDINGS[order[k % len(order)]]}
        k += 1
        for _ in range(int(rng.poisson(EXTRA_FINDINGS))):
            w = weights / (1.0 + np.array([given[f] for f in names]))
            have.add(names[int(rng.choice(len(names), p=w / w.sum()))])
        given.update(have)
        out.append(sorted(have, key=L.FINDINGS.index))
    return out


def _test_patients(seed: int, findings: list[list[str]]) -> set[int]:
    """Patients (numbers) of the official test list: about :data:`TEST_FRACTION` of them, chosen so
    that every finding has test patients (rarest first), then filled up at random."""
    rng = np.random.default_rng([seed, 11])
    n = len(findings)
    n_test = max(1, round(TEST_FRACTION * n))
    with_f = {f: [i + 1 for i, fs in enumerate(findings) if f in fs] for f in L.FINDINGS}
    test: set[int] = set()
    for f in sorted(L.FINDINGS, key=lambda f: (len(with_f[f]), L.FINDINGS.index(f))):
        want = max(1, round(TEST_FRACTION * len(with_f[f]))) if len(with_f[f]) > 1 else 0
        have = [p for p in with_f[f] if p in test]
        free = [p for p in with_f[f] if p not in test]
        for p in rng.permutation(free)[:max(0, min(want - len(have), n_test - len(test)))]:
            test.add(int(p))
    rest = [p for p in rng.permutation(n) + 1 if int(p) not in test]
    test.update(int(p) for p in rest[:max(0, n_test - len(test))])
    return test


def _lung_point(rng, anat: dict, side: int, t_range=(0.25, 0.8), lateral=(-0.2, 0.6)):
    """A point inside one lung (side 0: image left = patient's right), in normalized coordinates."""
    cx = anat["cx"][side]
    t = rng.uniform(*t_range)
    w = anat["hw"] * (0.45 + 0.55 * math.sqrt(t))
    f = rng.uniform(*lateral) * (-1 if side == 0 else 1)  # + = lateral
    return cx + f * w, anat["top"] + t * (anat["bottom"] - anat["top"])


def _make_patient(number: int, seed: int, findings: list[str]) -> _Patient:
    rng = np.random.default_rng([seed, number])
    emph = "Emphysema" in findings
    anat = {
        "cx": (0.315 + rng.uniform(-0.01, 0.01), 0.685 + rng.uniform(-0.01, 0.01)),
        "hw": rng.uniform(0.125, 0.14) * (1.06 if emph else 1.0),
        "top": rng.uniform(0.1, 0.13),
        "bottom": rng.uniform(0.78, 0.82) + (0.04 if emph else 0.0),
        "dome": (0.03 if emph else rng.uniform(0.08, 0.1)),
        "ctr": rng.uniform(0.56, 0.65) if "Cardiomegaly" in findings else rng.uniform(0.40, 0.48),
        "heart_cy": rng.uniform(0.62, 0.65),
        "rib_phase": rng.uniform(0, 1),
        "lung_val": 0.2 - (0.06 if emph else 0.0),
        "texture_seed": int(rng.integers(1 << 30)),
    }
    p = _Patient(number, "M" if rng.random() < 0.56 else "F", int(rng.integers(18, 88)), findings, anat)
    side = int(rng.integers(2))
    for f in findings:  # one fixed place per patient for each finding
        if f == "Mass":
            p.params[f] = (*_lung_point(rng, anat, int(rng.integers(2)), (0.2, 0.6)), rng.uniform(0.045, 0.065))
        elif f == "Nodule":
            p.params[f] = (*_lung_point(rng, anat, int(rng.integers(2)), (0.15, 0.7)), rng.uniform(0.014, 0.022))
        elif f in ("Infiltration", "Consolidation", "Pneumonia"):
            s = int(rng.integers(2))
            p.params[f] = (*_lung_point(rng, anat, s, (0.35, 0.75), (0.0, 0.45)), s, int(rng.integers(1 << 30)))
        elif f == "Effusion":
            p.params[f] = (int(rng.integers(3)), rng.uniform(0.08, 0.14))  # 0/1 one side, 2 both
        elif f == "Atelectasis":
            s = int(rng.integers(2))
            p.params[f] = (*_lung_point(rng, anat, s, (0.6, 0.8), (0.0, 0.3)), s, rng.uniform(-0.35, 0.35))
        elif f == "Pneumothorax":
            p.params[f] = (int(rng.integers(2)), rng.uniform(0.035, 0.055))
        elif f == "Pleural_Thickening":
            p.params[f] = (int(rng.integers(2)), rng.uniform(0.012, 0.018))
        elif f == "Fibrosis":
            p.params[f] = (rng.uniform(28, 36), rng.uniform(0, 6.28), rng.uniform(0, 6.28))
        elif f in ("Edema", "Emphysema", "Cardiomegaly", "Hernia"):
            p.params[f] = (side,)
    return p


def _draw(p: _Patient, present: set[str], size: int, rng) -> tuple[np.ndarray, dict[str, tuple]]:
    """One radiograph of patient ``p`` showing ``present``; returns the 8-bit image and the finding boxes (px)."""
    a = dict(p.anatomy)
    dx, dy = rng.uniform(-0.015, 0.015, 2)
    a["cx"] = (a["cx"][0] + dx, a["cx"][1] + dx)
    a["top"] += dy
    a["bottom"] += dy
    a["heart_cy"] += dy
    if "Atelectasis" in present:
        side = p.params["Atelectasis"][2]
    v, u = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    edge = 1.5 / size + 0.004
    img = np.full((size, size), 0.05, np.float32)
    boxes: dict[str, tuple] = {}

    # body and shoulders
    shoulder = 0.07 + 0.22 * ((u - 0.5 - dx) / 0.46) ** 4 + dy
    body = _ramp(np.minimum(0.47 - np.abs(u - 0.5 - dx), v - shoulder), edge * 2)
    img = img * (1 - body) + 0.52 * body

    # lungs
    lungs, lat_margin, tfrac = [], [], []
    for s in (0, 1):
        cx, hw = a["cx"][s], a["hw"]
        t = np.clip((v - a["top"]) / (a["bottom"] - a["top"]), 0, 1)
        w = hw * (0.45 + 0.55 * np.sqrt(t))
        bottom = a["bottom"] - (0.035 if "Atelectasis" in present and s == side else 0.0)
        d = bottom - a["dome"] * np.clip(1 - ((u - cx) / (hw * 1.05)) ** 2, 0, 1)
        m = np.minimum(np.minimum(w - np.abs(u - cx), v - a["top"]), d - v)
        alpha = _ramp(m, edge)
        if "Effusion" in present and p.params["Effusion"][0] in (s, 2):
            h = p.params["Effusion"][1]
            lateral = np.clip((u - cx) / hw * (-1 if s == 0 else 1), -1, 1.2)
            level = bottom - h - 0.05 * np.clip(lateral, 0, None) ** 2
            fluid = _ramp(v - level, edge * 2) * alpha
            b = _bbox(fluid, 0.5)
            if b:
                boxes.setdefault("Effusion", []).append(b)
            alpha = alpha * (1 - 0.85 * fluid)
        lungs.append(alpha)
        lat_margin.append(w - np.abs(u - cx) + np.where((u - cx) * (-1 if s == 0 else 1) < 0, 1.0, 0.0))
        tfrac.append(t)
    lung = np.maximum(lungs[0], lungs[1])
    tex = _smooth_noise(np.random.default_rng(a["texture_seed"]), size, 24)
    hilum = sum(np.exp(-((u - a["cx"][s] - (0.07 if s == 0 else -0.07)) ** 2 + (v - 0.45 - dy) ** 2) / 0.02)
                for s in (0, 1))
    lung_img = a["lung_val"] + 0.07 * tex + 0.1 * hilum
    img = img * (1 - lung) + lung_img * lung

    # ribs (posterior arcs: high at the spine, falling laterally; over the thorax only) and clavicles
    thoracic = _ramp(a["bottom"] - 0.02 - v, edge * 3) * body
    for s in (0, 1):
        cx = a["cx"][s]
        x = np.abs(u - 0.5 - dx) / 0.25
        arc = (v - 0.09 * x - 0.05 * x ** 2 - a["top"]) / 0.07 + a["rib_phase"]
        rib = np.clip(np.cos(2 * np.pi * arc) * 3 - 2, 0, 1) * _ramp(0.22 - np.abs(u - cx), edge * 3)
        img += 0.07 * rib * (0.35 + 0.65 * lungs[s]) * thoracic
        clav = _ramp(0.012 - np.abs(v - (0.135 + dy) - 0.12 * np.abs(u - 0.5 - dx)), edge) * _ramp(
            0.2 - np.abs(u - (0.36 if s == 0 else 0.64) - dx), edge)
        img = np.maximum(img, 0.62 * clav)

    # mediastinum, spine, trachea
    med_w = 0.045 + 0.02 * np.clip((0.45 - v) / 0.35, 0, 1)  # wider superior mediastinum
    med = _ramp(np.minimum(med_w - np.abs(u - 0.5 - dx), v - 0.05), edge * 2)
    img = img * (1 - med) + 0.72 * med
    trachea = _ramp(np.minimum(0.011 - np.abs(u - 0.5 - dx), np.minimum(v - 0.05, 0.36 + dy - v)), edge)
    img = img * (1 - trachea) + 0.38 * trachea

    # heart: width = cardiothoracic ratio x thoracic width
    thorax = (a["cx"][1] + a["hw"]) - (a["cx"][0] - a["hw"])
    hw_heart = a["ctr"] * thorax / 2
    hcx, hcy, hh = 0.5 + dx + 0.22 * hw_heart, a["heart_cy"], 0.14
    floor = a["bottom"] - a["dome"] + 0.015  # the heart sits on the diaphragm
    heart = _ellipse(u, v, hcx, hcy, hw_heart, hh, edge) * _ramp(floor - v, edge)
    img = img * (1 - heart) + 0.74 * heart
    behind = 1 - 0.6 * heart  # opacities behind the heart are harder to see
    if "Cardiomegaly" in present:
        boxes["Cardiomegaly"] = [_bbox(heart)]

    # findings
    if "Mass" in present or "Nodule" in present:
        for f in ("Mass", "Nodule"):
            if f in present:
                x, y, r = p.params[f]
                blob = _ellipse(u, v, x + dx, y + dy, r, r * 0.9, edge * 1.5)
                img += (0.36 if f == "Mass" else 0.42) * blob * behind
                boxes[f] = [_bbox(blob)]
    for f, gain, cells, thr in (("Infiltration", 0.16, 10, None), ("Consolidation", 0.34, 0, None),
                                ("Pneumonia", 0.27, 14, 0.45)):
        if f not in present:
            continue
        x, y, s, nseed = p.params[f]
        rx, ry = {"Infiltration": (0.1, 0.12), "Consolidation": (0.07, 0.06), "Pneumonia": (0.085, 0.075)}[f]
        region = _ellipse(u, v, x + dx, y + dy, rx, ry, edge * 4) * lungs[s]
        if cells:
            n = _smooth_noise(np.random.default_rng(nseed), size, cells)
            region = region * (np.clip((n - thr) / 0.15, 0, 1) if thr else 0.4 + 0.9 * n)
        img += gain * region * behind
        boxes[f] = [_bbox(region, 0.3 if f != "Infiltration" else 0.25)]
    if "Atelectasis" in present:
        x, y, s, ang = p.params["Atelectasis"]
        c, sn = math.cos(ang), math.sin(ang)
        du, dv = u - x - dx, v - y - dy
        along, across = du * c + dv * sn, -du * sn + dv * c
        band = _ramp(np.minimum(0.075 - np.abs(along), 0.011 - np.abs(across)), edge) * lungs[s]
        img += 0.3 * band * behind
        boxes["Atelectasis"] = [_bbox(band, 0.4)]
    if "Pneumothorax" in present:
        s, depth = p.params["Pneumothorax"]
        rim = (lat_margin[s] < depth) & (tfrac[s] < 0.65) & (lungs[s] > 0.5)
        rimf = rim.astype(np.float32)
        img = img * (1 - rimf) + (0.07 + 0.0 * img) * rimf
        line = ((lat_margin[s] >= depth) & (lat_margin[s] < depth + 1.5 / size + 0.003)
                & (tfrac[s] < 0.65) & (lungs[s] > 0.5))
        img = np.where(line, 0.42, img)
        boxes["Pneumothorax"] = [_bbox(rimf)]
    if "Edema" in present:
        for s in (0, 1):
            haze = np.exp(-((u - a["cx"][s] - (0.05 if s == 0 else -0.05)) ** 2 + (v - 0.48 - dy) ** 2) / 0.012)
            img += 0.2 * haze * lungs[s] * behind
    if "Fibrosis" in present:
        fr, ph1, ph2 = p.params["Fibrosis"]
        warp = 0.02 * tex
        net = np.clip(np.abs(np.sin(fr * np.pi * (u + warp) + ph1)) ** 6
                      + np.abs(np.sin(fr * np.pi * (v - warp) + ph2)) ** 6, 0, 1)
        zone = lung * np.clip((tfrac[0] - 0.45) * 3, 0, 1) * (1 - heart) * np.clip(tex * 1.6 - 0.2, 0, 1)
        img += 0.2 * net * zone
    if "Pleural_Thickening" in present:
        s, thick = p.params["Pleural_Thickening"]
        band = ((lat_margin[s] < thick) & (tfrac[s] > 0.05) & (tfrac[s] < 0.75) & (lungs[s] > 0.3)).astype(np.float32)
        img = img * (1 - band) + 0.6 * band
    if "Hernia" in present:
        bx, by, r = hcx - 0.02, hcy + 0.05, 0.045
        bubble = _ellipse(u, v, bx, by, r, r * 0.85, edge)
        gas = bubble * (v < by + 0.005)
        img = img * (1 - gas) + 0.3 * gas
        img += 0.12 * (_ellipse(u, v, bx, by, r * 1.15, r, edge) - bubble).clip(0, 1)

    # exposure, noise, a little blur
    img = img * rng.uniform(0.92, 1.08) + rng.uniform(-0.03, 0.03)
    img += rng.normal(0, 0.018, img.shape).astype(np.float32)
    out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    from PIL import Image, ImageFilter

    out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(radius=max(0.5, size / 256))))
    return out, {f: [b for b in bl if b] for f, bl in boxes.items() if any(bl)}


def _png(arr: np.ndarray, rgba: bool = False) -> bytes:
    from PIL import Image

    im = Image.fromarray(arr)
    if rgba:
        im = Image.merge("RGBA", (im, im, im, Image.new("L", im.size, 255)))
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# public API


def synthesize(out: str | Path, patients: int = 40, size: int = 128, seed: int = 0, variant: str = "2017",
               chexnet_lists: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    """Write a deterministic synthetic ChestX-ray14 in the real download layout.

    Args:
        out: dataset root to create (absent, empty, or a set made with the same arguments).
        patients: number of patients (ids 1..N), each with 1-5 images (follow-ups 000, 001, ...).
        size: image width and height in pixels (the real PNGs: 1024; boxes are written in the
            1024-px space regardless, as in the real box list).
        seed: random seed; identical arguments give byte-identical files.
        variant: ``"2017"`` writes ``Data_Entry_2017.csv`` with the original's trailing commas and
            some ``058Y`` ages; ``"v2020"`` writes ``Data_Entry_2017_v2020.csv`` (no trailing comma).
        chexnet_lists: also write CheXNet-style ``labels/{train,val,test}_list.txt`` (70/10/20 by patient).
        progress: called with a line of text every few patients, if given.

    Returns:
        Summary dict: ``out``, ``patients`` (ids), ``images``, ``files`` (marker excluded),
        ``label_file``, ``findings`` (images per finding), ``patients_with`` (patients per
        finding), ``no_finding`` (images), ``boxes``, ``rgba`` (images stored as RGBA),
        ``test_patients`` (official test list), ``quirks``.

    Raises:
        OptionError (a ValueError): invalid arguments, named as on the command line.
        FileExistsError: ``out`` is a file, or a non-empty folder not made with these arguments.
    """
    args = _check_args(patients, size, seed, variant, chexnet_lists)
    out = Path(out)
    done = existing(out, args)
    if done is not None:
        return done
    n = args["patients"]
    findings = _patient_findings(seed, n)
    test_patients = _test_patients(seed, findings)
    label_name = L.LABEL_FILES[0] if variant == "v2020" else L.LABEL_FILES[1]

    rows, bbox_rows, names = [], [], []
    count, pat_with = Counter(), Counter()
    files = n_rgba = 0
    with atomic_output_dir(out) as tmp:
        made = set()

        def write(rel: str, data: bytes) -> None:
            nonlocal files
            path = tmp / rel
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            path.write_bytes(data)
            files += 1

        k = 0
        for number in range(1, n + 1):
            p = _make_patient(number, seed, findings[number - 1])
            rng = np.random.default_rng([seed, number, 1])
            n_img = int(rng.integers(1, 6))
            shown_any: set[str] = set()
            for fu in range(n_img):
                present = {f for f in p.findings if f in CHRONIC or rng.random() < 0.75 or (fu == n_img - 1 and f not in shown_any)}
                shown_any |= present
                arr, boxes = _draw(p, present, size, np.random.default_rng([seed, number, 100 + fu]))
                name = L.image_index(number, fu)
                rgba = k % RGBA_EVERY == RGBA_EVERY - 1
                n_rgba += rgba
                write(f"{L.NIH_FOLDER_FORMAT.format(k // FOLDER_SIZE + 1)}/{name}", _png(arr, rgba))
                k += 1
                labels = sorted(present, key=L.FINDINGS.index)
                count.update(labels)
                # NIH joins finding labels in alphabetical order
                fl = "|".join(sorted(labels)) or L.NO_FINDING
                age = min(p.age + fu // 2, 95)
                size_rng = np.random.default_rng([seed, number, 200 + fu])
                rows.append((name, fl, fu, number, age, p.sex, "PA" if size_rng.random() < 0.6 else "AP",
                             int(size_rng.integers(2000, 3056)), int(size_rng.integers(2000, 3056)),
                             float(size_rng.choice([0.143, 0.139, 0.168]))))
                names.append((number, name, labels))
                for f, bl in sorted(boxes.items(), key=lambda kv: L.FINDINGS.index(kv[0])):
                    if f not in BOX_LABELS:
                        continue
                    s = L.BOX_SPACE / size
                    for (x0, y0, x1, y1) in bl:
                        # annotators' boxes are not pixel-aligned: move each edge by under half a pixel
                        j = size_rng.uniform(-0.45, 0.45, 4) * s
                        bx, by = max(0.0, x0 * s + j[0]), max(0.0, y0 * s + j[1])
                        bbox_rows.append((name, BOX_LABELS[f], float(bx), float(by),
                                          float(min(L.BOX_SPACE, x1 * s + j[2]) - bx),
                                          float(min(L.BOX_SPACE, y1 * s + j[3]) - by)))
            pat_with.update(shown_any)
            if progress is not None and (number % 20 == 0 or number == n):
                progress(f"cxr14 synth: {number}/{n} patients, {k} images")

        # the label file, with the variant's quirks
        lines = [L.DATA_ENTRY_2017_HEADER if variant == "2017" else L.DATA_ENTRY_2017_HEADER.rstrip(",")]
        for i, (name, fl, fu, number, age, sex, view, w, h, sp) in enumerate(rows):
            age_s = f"{age:03d}Y" if variant == "2017" and i % AGE_SUFFIX_EVERY == AGE_SUFFIX_EVERY - 1 else str(age)
            sp_s = repr(sp) if variant == "2017" else repr(sp + 2e-17 if sp == 0.143 else sp)
            lines.append(f"{name},{fl},{fu},{number},{age_s},{sex},{view},{w},{h},{sp_s},{sp_s}"
                         + ("," if variant == "2017" else ""))
        write(label_name, ("\n".join(lines) + "\n").encode())
        # the box list: header quirk, Infiltrate, 1024-px coordinates with the real file's many decimals
        bl = [L.BBOX_HEADER] + [f"{name},{lab},{x!r},{y!r},{w!r},{h!r}" for name, lab, x, y, w, h in bbox_rows]
        write(L.BBOX_FILE, ("\n".join(bl) + "\n").encode())
        # the official lists (patient-disjoint)
        tv = [nm for num, nm, _ in names if num not in test_patients]
        te = [nm for num, nm, _ in names if num in test_patients]
        write(L.OFFICIAL_LISTS["train_val"], ("\n".join(tv) + "\n").encode())
        write(L.OFFICIAL_LISTS["test"], ("\n".join(te) + "\n").encode())
        if chexnet_lists:
            cut1, cut2 = round(0.7 * n), round(0.8 * n)
            part = {int(i) + 1: ("train" if j < cut1 else "val" if j < cut2 else "test")
                    for j, i in enumerate(np.random.default_rng([seed, 12]).permutation(n))}
            for which in ("train", "val", "test"):
                body = [f"{nm} " + " ".join(str(int(f in labs)) for f in L.FINDINGS)
                        for num, nm, labs in names if part[num] == which]
                text = "\n".join(body) + ("\n" if which == "train" else "")  # val/test: no final newline
                write(f"labels/{L.CHEXNET_LISTS[which]}", text.encode())
        summary = {
            "out": str(out), "patients": [L.patient_id(i) for i in range(1, n + 1)], "images": len(rows),
            "files": files, "label_file": label_name,
            "findings": {f: count[f] for f in L.FINDINGS}, "patients_with": {f: pat_with[f] for f in L.FINDINGS},
            "no_finding": sum(1 for r in rows if r[1] == L.NO_FINDING), "boxes": len(bbox_rows), "rgba": n_rgba,
            "test_patients": sorted(L.patient_id(i) for i in test_patients),
            "quirks": [
                {"kind": "nih_folders", "note": f"images in {L.NIH_FOLDER_FORMAT.format(1)}/ ... "
                                                f"({FOLDER_SIZE} per folder)"},
                {"kind": "label_file_header", "file": label_name,
                 "note": "trailing comma on every line; bracketed two-value columns; ages like 058Y every "
                         f"{AGE_SUFFIX_EVERY}th row" if variant == "2017" else "bracketed two-value columns"},
                {"kind": "bbox_header", "file": L.BBOX_FILE,
                 "note": "header 'Bbox [x,y,w,h],,,'; Infiltrate for Infiltration; 1024-px coordinates"},
                {"kind": "rgba_png", "images": n_rgba},
            ],
        }
        write_marker(tmp, args, summary)
    return summary
