"""Class activation maps scored against reference boxes (Wang et al. 2017), with a control map.

For every evaluated image whose record carries reference boxes (ChestX-ray14: ``nih_boxes``, a list
of ``{"finding": NAME, "box": [xmin, ymin, xmax, ymax]}`` in pixels of the stored image), and for
each finding boxed on it that is one of the model's classes (a *case*):

1. the Grad-CAM map of that finding's logit (MONAI's :class:`monai.visualize.GradCAM` on the chosen
   layer, ReLU'd, not normalised) over the image resized to the network's input size;
2. for each fraction (0.5 and 0.8, the seed projects' settings), the box around the largest
   connected region at or above that fraction of the map's maximum
   (:func:`medpipe.metrics.localization.box_from_map`), scaled to the stored image;
3. its IoU and IoBB (intersection over the predicted box's area) against the case's reference
   boxes (the best of them when a finding has several);
4. the same for a control map, a centred Gaussian, so a score can be told from "a box in the middle".

:func:`localization_tables` then gives Wang et al.'s accuracy at T(IoBB) and T(IoU), T = 0.1 ... 0.7,
per class and over all cases, for the CAM and the control at each fraction. The map is explained for
the *true* finding, whatever the model predicted (Wang et al.'s protocol: localisation given the
label); each case records the probability and whether the finding was predicted.

Everything here is plain code over a network and records; the ignite handler that calls it at the
end of an evaluation is :class:`medpipe.handlers.localization.CamLocalization`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from medpipe.metrics.localization import (LOCALIZATION_THRESHOLDS, MAP_FRACTIONS, accuracy_at, box_from_map, box_iobb,
                                          box_iou, gaussian_map, scale_box)

log = logging.getLogger("medpipe")

__all__ = ["raw_grad_cam", "cam_maps", "finding_classes", "localization_cases", "score_case", "localize", "localization_tables",
           "CSV_COLUMNS", "method_keys"]

#: the control map's standard deviation, as a fraction of the image side
CONTROL_SIGMA = 0.25


def raw_grad_cam(network, layer: str):
    """MONAI's Grad-CAM on ``layer`` that returns the raw (ReLU'd) maps at the input's size.

    MONAI's default normaliser maps (min, max) to (1, 0), i.e. flips the map; the raw maps are kept
    so that callers threshold at a fraction of the maximum or draw several maps on one scale. Build
    it once per evaluation: it adds hooks to ``layer`` that stay on the network.
    """
    from monai.visualize import GradCAM

    return GradCAM(nn_module=network, target_layers=layer, postprocessing=lambda m: m)


def cam_maps(cam, x, class_idx: int, batch_size: int = 8) -> np.ndarray:
    """Grad-CAM maps ``(B, H, W)`` of class ``class_idx`` for a batch ``x`` ``(B, C, H, W)``, in chunks."""
    import warnings

    out = []
    for i in range(0, len(x), max(1, int(batch_size))):
        chunk = x[i:i + batch_size]
        with warnings.catch_warnings():  # the input needs no gradient: torch says so on every call
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            m = cam(chunk, class_idx=int(class_idx)).detach().float().cpu().numpy()
        out.append(m.reshape(len(chunk), *m.shape[-2:]))
    return np.concatenate(out) if out else np.zeros((0, 1, 1))


def _boxes_of(record: Mapping, box_key: str, box_finding: str | None = None) -> list[tuple[str, list[float]]]:
    """``[(finding, box)]`` of a record: ``{"finding", "box"}`` items, or plain ``[xmin, ymin, xmax, ymax]``
    boxes (CONTRACT's ``boxes``) that all show ``box_finding`` (e.g. RSNA's lung opacities)."""
    out = []
    for b in record.get(box_key) or []:
        if isinstance(b, Mapping) and "finding" in b and "box" in b:
            out.append((str(b["finding"]), [float(v) for v in b["box"]]))
        elif box_finding is not None and isinstance(b, (list, tuple)) and len(b) == 4:
            out.append((str(box_finding), [float(v) for v in b]))
    return out


def finding_classes(groups: Mapping[str, Sequence[str]] | None) -> dict[str, str]:
    """``{finding: class}`` from a datalist's grouping of findings into classes (``{class: [findings]}``,
    e.g. ChestX-ray14's categories), so boxes drawn for a finding count for its class.

    Example:
        >>> finding_classes({"Lung": ["Atelectasis", "Mass"], "Cardiomegaly": ["Cardiomegaly"]})["Mass"]
        'Lung'
    """
    return {str(f): str(c) for c, members in (groups or {}).items() for f in members}


def localization_cases(rows: Sequence[dict], records: Sequence[dict], class_names: Sequence[str],
                       thresholds: Sequence[float], box_key: str = "nih_boxes",
                       box_classes: Mapping[str, str] | None = None,
                       box_finding: str | None = None) -> tuple[list[dict], dict]:
    """The cases to score: one per (evaluated image, boxed finding that is a class of the model).

    Args:
        rows: the evaluated rows (``image`` path, ``patient``, ``scores`` = per-class probabilities).
        records: the evaluated dataset records with their reference boxes (``image`` paths as in ``rows``).
        class_names: the model's classes; a box's ``finding`` must be one of them (or map to one).
        thresholds: per-class decision thresholds (``predicted`` = probability >= threshold).
        box_key: the record key of the reference boxes.
        box_classes: ``{finding: class}`` for models whose classes group findings
            (:func:`finding_classes`); a case is then one per (image, class), with the boxes of all
            its findings.
        box_finding: the finding of plain ``[xmin, ymin, xmax, ymax]`` boxes (one class's boxes, e.g.
            ``lung_opacity`` of a binary pneumonia model).

    Returns:
        ``(cases, counts)``: cases as dicts (``image``, ``patient``, ``finding``, ``class_index``,
        ``probability``, ``predicted``, ``true_boxes``); counts of ``images_with_boxes``,
        ``boxes`` and ``boxes_not_a_class`` (findings the model has no class for).
    """
    by_image = {str(r.get("image")): r for r in records}
    index = {c: i for i, c in enumerate(class_names)}
    cases, n_img, n_box, other = [], 0, 0, 0
    for row in rows:
        rec = by_image.get(str(row.get("image")))
        boxes = _boxes_of(rec, box_key, box_finding) if rec is not None else []
        if not boxes:
            continue
        n_img += 1
        n_box += len(boxes)
        grouped: dict[str, list] = {}
        for finding, box in boxes:
            cls = (box_classes or {}).get(finding, finding)
            if cls in index:
                grouped.setdefault(cls, []).append(box)
            else:
                other += 1
        for finding, bs in grouped.items():
            k = index[finding]
            p = float(np.asarray(row["scores"])[k])
            cases.append({"image": str(row["image"]), "patient": str(row.get("patient", "")), "finding": finding,
                          "class_index": k, "probability": p, "predicted": bool(p >= float(thresholds[k])),
                          "true_boxes": bs})
    return cases, {"images_with_boxes": n_img, "boxes": n_box, "boxes_not_a_class": other}


def score_case(heat: np.ndarray, true_boxes: Sequence, scale: tuple[float, float],
               fractions: Sequence[float] = MAP_FRACTIONS) -> dict:
    """Boxes from one map and their best IoU/IoBB against the true boxes: ``{"@0.5": {box, iou, iobb}, ...}``.

    A map without a positive value gives no box, which scores 0; without true boxes IoU and IoBB are None.

    Args:
        heat: the map ``(h, w)`` over the network input.
        true_boxes: reference boxes in pixels of the stored image (may be empty).
        scale: ``(sx, sy)`` from map pixels to stored-image pixels.
        fractions: the fractions of the maximum to threshold at.
    """
    out = {}
    for f in fractions:
        b = box_from_map(heat, f)
        if b is None:
            out[f"@{f:g}"] = {"box": None, "iou": 0.0 if len(true_boxes) else None,
                              "iobb": 0.0 if len(true_boxes) else None}
            continue
        b = scale_box(b, *scale)
        out[f"@{f:g}"] = {"box": [round(v, 2) for v in b],
                          "iou": max(box_iou(b, t) for t in true_boxes) if len(true_boxes) else None,
                          "iobb": max(box_iobb(b, t) for t in true_boxes) if len(true_boxes) else None}
    return out


def localize(cases: list[dict], network, layer: str, load: Callable[[str], dict], device="cpu",
             fractions: Sequence[float] = MAP_FRACTIONS, control_sigma: float = CONTROL_SIGMA,
             batch_size: int = 8, keep_maps: set | None = None) -> dict:
    """Score every case's CAM and the control map (adds ``cam@F`` / ``control@F`` entries to each case).

    Args:
        cases: from :func:`localization_cases` (modified in place).
        network: the evaluated network (eval mode is set by MONAI's Grad-CAM for the call).
        layer: the layer Grad-CAM reads.
        load: image path -> ``{"image": (C, h, w) network input, "image_size": [H, W] stored size}``
            (the evaluation's pre-processing without crop).
        device: where the network is.
        fractions: fractions of the maximum.
        control_sigma: the control Gaussian's sigma (fraction of the side).
        batch_size: images per Grad-CAM pass.
        keep_maps: indices of cases whose maps to return (for overlays).

    Returns:
        ``{case index: map}`` for the indices in ``keep_maps``.
    """
    import torch

    keep_maps = keep_maps or set()
    kept: dict[int, tuple] = {}
    if not cases:
        return kept
    cam = raw_grad_cam(network, layer)
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(cases):
        by_class.setdefault(c["class_index"], []).append(i)
    for k, idx in sorted(by_class.items()):
        for start in range(0, len(idx), max(1, batch_size)):
            part = idx[start:start + batch_size]
            items = [load(cases[i]["image"]) for i in part]
            x = torch.stack([torch.as_tensor(np.asarray(it["image"]), dtype=torch.float32) for it in items]).to(device)
            maps = cam_maps(cam, x, k, batch_size)
            for i, it, m in zip(part, items, maps):
                h0, w0 = (int(v) for v in it["image_size"])
                scale = (w0 / m.shape[1], h0 / m.shape[0])
                c = cases[i]
                c["cam_max"] = float(m.max())
                for key, v in score_case(m, c["true_boxes"], scale, fractions).items():
                    c[f"cam{key}"] = v
                ctrl = gaussian_map(m.shape, control_sigma)
                for key, v in score_case(ctrl, c["true_boxes"], scale, fractions).items():
                    c[f"control{key}"] = v
                if i in keep_maps:
                    kept[i] = m
    return kept


def method_keys(fractions: Sequence[float] = MAP_FRACTIONS) -> list[str]:
    """``["cam@0.5", "cam@0.8", "control@0.5", "control@0.8"]`` for the given fractions."""
    return [f"{m}@{f:g}" for m in ("cam", "control") for f in fractions]


def localization_tables(cases: Sequence[dict], class_names: Sequence[str],
                        fractions: Sequence[float] = MAP_FRACTIONS,
                        thresholds: Sequence[float] = LOCALIZATION_THRESHOLDS) -> dict:
    """Accuracy at T(IoBB) and T(IoU), mean IoBB and IoU, per class (with cases) and over all cases.

    Returns:
        ``{"cases_per_class": {name: n}, "accuracy_iobb": {method: {name | "all": {T: acc}}},
        "accuracy_iou": {...}, "mean_iobb": {method: {name | "all": v}}, "mean_iou": {...}}`` with
        methods from :func:`method_keys`; classes without a case are left out.

    Example:
        >>> case = {"finding": "a", "cam@0.5": {"iou": 0.3, "iobb": 0.6}, "control@0.5": {"iou": 0.1, "iobb": 0.2}}
        >>> t = localization_tables([case], ["a", "b"], fractions=(0.5,), thresholds=(0.5,))
        >>> t["accuracy_iobb"]["cam@0.5"], t["cases_per_class"]
        ({'a': {'0.5': 1.0}, 'all': {'0.5': 1.0}}, {'a': 1})
    """
    groups = {c: [x for x in cases if x["finding"] == c] for c in class_names}
    groups = {c: g for c, g in groups.items() if g}
    groups["all"] = list(cases)
    out = {"cases_per_class": {c: len(g) for c, g in groups.items() if c != "all"},
           "accuracy_iobb": {}, "accuracy_iou": {}, "mean_iobb": {}, "mean_iou": {}}
    for m in method_keys(fractions):
        for score in ("iobb", "iou"):
            out[f"accuracy_{score}"][m] = {c: accuracy_at([x[m][score] for x in g], thresholds)
                                           for c, g in groups.items()}
            out[f"mean_{score}"][m] = {c: (float(np.mean([x[m][score] for x in g])) if g else None)
                                       for c, g in groups.items()}
    return out


#: columns of ``eval/localization.csv`` (one row per case); ``<m>`` runs over :func:`method_keys`
CSV_COLUMNS = ["image", "patient", "finding", "probability", "predicted", "true_boxes", "cam_max"]


def csv_rows(cases: Sequence[dict], fractions: Sequence[float] = MAP_FRACTIONS) -> tuple[list[dict], list[str]]:
    """Flat rows and columns for ``eval/localization.csv``: the case, then ``<method>_box``, ``_iou``, ``_iobb``."""
    import json

    methods = method_keys(fractions)
    cols = CSV_COLUMNS + [f"{m}_{k}" for m in methods for k in ("box", "iou", "iobb")]
    rows = []
    for c in cases:
        r = {k: c.get(k) for k in CSV_COLUMNS}
        r["predicted"] = int(bool(c["predicted"]))
        r["true_boxes"] = json.dumps([[round(v, 2) for v in b] for b in c["true_boxes"]])
        for m in methods:
            v = c.get(m) or {}
            r[f"{m}_box"] = json.dumps(v.get("box"))
            r[f"{m}_iou"] = v.get("iou")
            r[f"{m}_iobb"] = v.get("iobb")
        rows.append(r)
    return rows, cols


def pick_overlays(cases: Sequence[dict], n: int) -> list[int]:
    """Up to ``n`` case indices to draw: findings in turn (round robin), each case from a patient not
    drawn yet while there are such; within a finding the most probable first."""
    order: dict[str, list[int]] = {}
    for i in sorted(range(len(cases)), key=lambda i: -cases[i]["probability"]):
        order.setdefault(cases[i]["finding"], []).append(i)
    picked: list[int] = []
    seen: set = set()
    for allow_seen in (False, True):
        queues = {f: list(v) for f, v in order.items()}
        while len(picked) < n and any(queues.values()):
            for f in sorted(queues):
                q = queues[f]
                while q and (q[0] in picked or (not allow_seen and cases[q[0]]["patient"] in seen)):
                    q.pop(0)
                if q and len(picked) < n:
                    i = q.pop(0)
                    picked.append(i)
                    seen.add(cases[i]["patient"])
        if len(picked) >= n:
            break
    return picked


def write_overlay(path: Path, image: np.ndarray, heat: np.ndarray, case: dict, layer: str,
                  fraction: float = MAP_FRACTIONS[0], box_name: str = "reference box") -> Path:
    """One ``eval/cam`` PNG: the stored image, the CAM over it, the CAM box (red) and the reference boxes (green)."""
    from medpipe.visualization.plots import overlay_heatmap

    key = f"cam@{fraction:g}"
    res = case.get(key) or {}
    pred = [res["box"]] if res.get("box") else []
    scores = f", IoU {res['iou']:.2f}, IoBB {res['iobb']:.2f}" if case.get("true_boxes") else ""
    title = (f"{case['finding']}: p = {case['probability']:.2f}{' (predicted)' if case['predicted'] else ''}"
             f"{scores}\nGrad-CAM on {layer}; red: CAM box at {fraction:g} x max"
             + (f"; green: {box_name}" if case.get("true_boxes") else ""))
    top = float(np.max(heat)) if np.size(heat) else 0.0
    return overlay_heatmap(image, heat, path, title=title, value_range=(0.0, top if top > 0 else 1.0),
                           label="Grad-CAM (1 = this map's maximum)", boxes_true=case.get("true_boxes") or [],
                           boxes_pred=pred)
