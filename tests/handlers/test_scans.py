"""Scan-level evaluation of a multi-label slice classifier: pooling per scan, scan truth, each reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medpipe.handlers.scans import ScanLevelReport

NAMES = ["any", "epidural"]


class _Report:
    def __init__(self, rows, thresholds):
        self.all_rows = rows
        self.metrics = {"thresholds": dict(zip(NAMES, thresholds))}


def _write(tmp_path, dl, metrics=None):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "datalist.json").write_text(json.dumps(dl))
    (tmp_path / "out" / "eval").mkdir(parents=True)
    (tmp_path / "out" / "eval" / "metrics.json").write_text(json.dumps(metrics or {"kind": "multilabel"}))


def _rows():
    # scan a: one bleeding slice among three; scan b: none; scan c: one; scan d: none
    spec = {"a": ([0.1, 0.9, 0.2], [0, 1, 0]), "b": ([0.2, 0.3, 0.1], [0, 0, 0]),
            "c": ([0.7, 0.1, 0.1], [1, 0, 0]), "d": ([0.4, 0.6, 0.3], [0, 0, 0])}
    rows, records = [], []
    for scan, (ps, ys) in spec.items():
        for i, (p, y) in enumerate(zip(ps, ys)):
            img = f"/d/images/{scan}_{i}.png"
            rows.append({"image": img, "patient": scan.upper(), "scores": [p, p / 2], "label": [y, 0]})
            records.append({"image": img, "scan": scan})
    return rows, records


def test_slice_or_truth_max_and_top2_pooling(tmp_path):
    rows, records = _rows()
    _write(tmp_path, {"training": []})
    h = ScanLevelReport(_Report(rows, [0.5, 0.5]), records, str(tmp_path / "out"), NAMES, str(tmp_path / "data"),
                        aggregations=("max", "top2"), loss_weights={"any": 2}, n_boot=0)
    h()
    m = json.loads((tmp_path / "out" / "eval" / "metrics.json").read_text())
    sl = m["scan_level"]
    assert sl["n_scans"] == 4 and sl["primary"] == "max"
    mx = sl["aggregations"]["max"]
    assert mx["truth"].startswith("any slice positive")
    # max per scan: a 0.9, b 0.3, c 0.7, d 0.6; positives a, c -> perfect ranking
    assert mx["auroc_per_class"]["any"] == 1.0 and mx["auroc_per_class"]["epidural"] is None
    top2 = sl["aggregations"]["top2"]  # a (0.9+0.2)/2 = 0.55, b 0.25, c 0.4, d 0.5 -> c below d
    assert top2["auroc_per_class"]["any"] == pytest.approx(0.75)
    assert "weighted_log_loss" in m and m["weighted_log_loss_weights"] == {"any": 2.0, "epidural": 1.0}
    lines = (tmp_path / "out" / "eval" / "scan_predictions.csv").read_text().splitlines()
    assert lines[0].startswith("scan,patient,n_slices,p_any") and len(lines) == 5


def test_scan_table_readers_and_agreement(tmp_path):
    rows, records = _rows()
    scans = [{"scan": "a", "labels": [1, 0], "readers": {"R1": [1, 0], "R2": [1, 0], "R3": [0, 0]}},
             {"scan": "b", "labels": [0, 0], "readers": {"R1": [0, 0], "R2": [0, 0], "R3": [0, 0]}},
             {"scan": "c", "labels": [0, 0], "readers": {"R1": [1, 0], "R2": [0, 0], "R3": [0, 0]}},
             {"scan": "d", "labels": [1, 0], "readers": {"R1": [1, 0], "R2": [1, 0], "R3": [1, 0]}}]
    _write(tmp_path, {"training": [], "test": [], "scans": scans, "label_level": "scan"})
    h = ScanLevelReport(_Report(rows, [0.5, 0.5]), records, str(tmp_path / "out"), NAMES, str(tmp_path / "data"),
                        aggregations=("max",), n_boot=0)
    h()
    sl = json.loads((tmp_path / "out" / "eval" / "metrics.json").read_text())["scan_level"]
    mx = sl["aggregations"]["max"]
    assert mx["truth"].startswith("scan table") and "note" in sl
    # the table's labels, not the slices': positives a (0.9) and d (0.6) vs b (0.3), c (0.7)
    assert mx["auroc_per_class"]["any"] == pytest.approx(0.75)
    rd = mx["readers"]
    assert rd["readers"] == ["R1", "R2", "R3"]
    # R1 positives a, c, d: scores 0.9, 0.7, 0.6 vs b 0.3 -> 1.0
    assert rd["model_vs_reader"]["R1"]["auroc_per_class"]["any"] == 1.0
    from sklearn.metrics import cohen_kappa_score

    pred = np.array([1, 0, 1, 1])  # max >= 0.5
    assert rd["model_vs_reader"]["R1"]["kappa_model_vs_reader"]["any"] == pytest.approx(
        cohen_kappa_score([1, 0, 1, 1], pred))
    assert rd["reader_agreement"]["any"]["positive"] == {"R1": 3, "R2": 2, "R3": 1}


def test_inference_pools_each_label_per_series_and_decides_at_its_threshold(tmp_path):
    from medpipe.handlers.volumes import VolumePredictions

    class _Writer:
        rows = [{"volume": "s1", "patient": "P", "scores": [0.2, 0.9]}, {"volume": "s1", "patient": "P", "scores": [0.7, 0.1]},
                {"volume": "s2", "patient": "Q", "scores": [0.1, 0.2]}, {"volume": "s2", "patient": "Q", "scores": [0.3, 0.4]}]

    VolumePredictions(_Writer(), str(tmp_path), NAMES, kind="multilabel", threshold=[0.5, 0.8], method="max")()
    lines = (tmp_path / "volume_predictions.csv").read_text().splitlines()
    assert lines[0] == "volume,patient,n_slices,p_any,p_epidural,pred_any,pred_epidural"
    assert lines[1] == "s1,P,2,0.700000,0.900000,1,1" and lines[2] == "s2,Q,2,0.300000,0.400000,0,0"
