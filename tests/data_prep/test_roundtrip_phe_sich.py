"""synth -> prepare round trip, for each of the three subsets of the synthetic download."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from data_prep import phe_sich
from data_prep.phe_sich.synth import synthesize


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "PHE-SICH-CT-IDS"
    summary = synthesize(root, patients=6, size=64, seed=3)
    return root, summary


@pytest.fixture(scope="module")
def prepared(synth_root, tmp_path_factory):
    root, _ = synth_root
    outs = {}
    for subset in ("png", "jpg", "nifti"):
        out = tmp_path_factory.mktemp("prep") / subset
        rep = phe_sich.prepare(root, out, {"folds": 3, "subset": subset}, workers=2, progress=None)
        outs[subset] = (out, rep, json.loads((out / "datalist.json").read_text()))
    return outs


def test_counts_and_quirks(synth_root, prepared):
    _, summary = synth_root
    out, rep, dl = prepared["png"]
    assert rep["records"] == summary["slices"] - 1  # the orphan XML's slice has no image
    # the orphan slice may or may not carry a box; the complete volumes carry every positive slice
    assert summary["positive_slices"] - 1 <= rep["positives"] <= summary["positive_slices"]
    assert prepared["nifti"][1]["positives"] == summary["positive_slices"]
    assert rep["anomaly_counts"].get("xml_name_not_4digit", 0) > 0
    assert any("no image for slice" in s["reason"] for s in rep["skipped"])
    assert rep["accounting"]["adds_up"]
    assert rep["agreement"]["agreement"] == 1.0  # synthetic boxes enclose their masks exactly
    assert rep["clinical"]["matched"] == 6 and "Age" in rep["clinical"]["columns"]
    assert dl["patients"]["0001"]["clinical"]["Age"] is not None


def test_jpg_subset_matches_png_subset(prepared):
    png, jpg = prepared["png"][2]["training"], prepared["jpg"][2]["training"]
    assert [(r["patient"], r["slice"], r["label"], r["boxes"], r["fold"]) for r in png] == \
           [(r["patient"], r["slice"], r["label"], r["boxes"], r["fold"]) for r in jpg]
    assert prepared["jpg"][1]["anomaly_counts"]["extension_mismatch"] == len(jpg)


def test_nifti_slices_line_up_with_png_slices(prepared):
    png_out, _, png_dl = prepared["png"]
    nii_out, nii_rep, nii_dl = prepared["nifti"]
    assert nii_rep["source"]["subset_used"] == "SubdatasetA_NIFIT"
    by_key = {(r["patient"], r["slice"]): r for r in nii_dl["training"]}
    assert len(by_key) == len(png_dl["training"]) + 1  # volumes are complete (no orphan)
    for r in png_dl["training"]:
        n = by_key[(r["patient"], r["slice"])]
        a = np.asarray(Image.open(png_out / r["image"]), dtype=int)
        b = np.asarray(Image.open(nii_out / n["image"]), dtype=int)
        assert np.abs(a - b).max() <= 1, (r["patient"], r["slice"])  # same orientation and window
        assert n["mask_label"] == r["mask_label"]
        assert np.array_equal(np.asarray(Image.open(png_out / r["mask"])) > 0, np.asarray(Image.open(nii_out / n["mask"])) > 0)
        assert len(n["spacing"]) == 3 and n["spacing"][2] == pytest.approx(5.0)
