"""Volume-level aggregation: slice probabilities averaged per volume; the join on the image path; the
handler's volume_level metrics and volume_predictions.csv."""

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest

from medpipe.evaluation.aggregate import aggregate_by
from medpipe.handlers.volumes import AttentionOverlays, VolumeLevelReport, join_records


def test_mean_scores_majority_label_and_order():
    rows = [{"volume": "b", "scores": [0.2, 0.8], "label": 1, "patient": "P2"},
            {"volume": "a", "scores": [0.9, 0.1], "label": 0, "patient": "P1"},
            {"volume": "a", "scores": [0.5, 0.5], "label": 0, "patient": "P1"},
            {"volume": None, "scores": [0.5, 0.5], "label": 0}]
    out = aggregate_by(rows, "volume")
    assert [r["volume"] for r in out] == ["b", "a"] and [r["n"] for r in out] == [1, 2]
    np.testing.assert_allclose(out[1]["scores"], [0.7, 0.3])
    assert out[1]["label"] == 0 and out[1]["patient"] == "P1"
    assert "label" not in aggregate_by([{"v": 1, "scores": [1.0]}], "v")[0]


def test_join_on_path_then_on_unique_file_name():
    recs = [{"image": "/d/images/x_000.png", "volume": "scans/x.nii.gz"},
            {"image": "/d/images/y_000.png", "volume": "scans/y.nii.gz"}]
    rows = [{"image": "/d/images/x_000.png"}, {"image": "/elsewhere/y_000.png"}, {"image": "/d/z.png"}]
    out = join_records(rows, recs)
    assert [r.get("volume") for r in out] == ["scans/x.nii.gz", "scans/y.nii.gz", None]


def test_volume_level_report_writes_metrics_and_csv(tmp_path):
    names = ["normal", "fracture", "other"]
    recs, rows = [], []
    # volume A (normal): slices say normal; volume B (fracture): one wrong slice, mean still fracture
    for vol, lab, slices in (("A", 0, [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1]]),
                             ("B", 1, [[0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])):
        for i, s in enumerate(slices):
            img = str(tmp_path / f"{vol}_{i}.png")
            recs.append({"image": img, "volume": vol, "label": lab})
            rows.append({"image": img, "patient": vol, "slice": i, "scores": s, "label": lab})
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval/metrics.json").write_text(json.dumps({"accuracy": 0.8}))
    report = SimpleNamespace(all_rows=rows, threshold=0.5)
    VolumeLevelReport(report, recs, str(tmp_path), names)()
    m = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert m["accuracy"] == 0.8  # the slice-level metrics stay
    v = m["volume_level"]
    assert v["n"] == 2 and v["n_slices"] == 5 and v["accuracy"] == 1.0
    assert v["absent_classes"] == ["other"] and v["per_class"]["other"]["recall"] is None
    assert v["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    out = list(csv.DictReader(open(tmp_path / "eval/volume_predictions.csv")))
    assert [r["volume"] for r in out] == ["A", "B"] and out[1]["prediction"] == "fracture"
    assert float(out[1]["p_fracture"]) == pytest.approx((0.4 + 0.8 + 0.7) / 3, abs=1e-6)
    assert out[0]["n_slices"] == "2" and out[0]["label"] == "normal"


def test_attention_examples_one_correct_and_one_wrong_per_class():
    rows = [{"label": 0, "scores": [0.9, 0.1]}, {"label": 0, "scores": [0.6, 0.4]}, {"label": 0, "scores": [0.3, 0.7]},
            {"label": 1, "scores": [0.2, 0.8]}]
    ex = AttentionOverlays(None, None, ["a", "b"], "/tmp").examples(rows)
    assert [(o, r["scores"][0]) for o, r in ex] == [("correct", 0.9), ("wrong", 0.3), ("correct", 0.2)]


def test_scan_pooling_max_and_topk_with_multilabel_labels():
    import numpy as np
    import pytest

    from medpipe.evaluation.aggregate import aggregate_by, pool_scores

    rows = [{"scan": "s1", "scores": [0.1, 0.9], "label": [1, 1]}, {"scan": "s1", "scores": [0.7, 0.2], "label": [1, 1]},
            {"scan": "s1", "scores": [0.3, 0.4], "label": [1, 1]}, {"scan": "s2", "scores": [0.2, 0.1], "label": [0, 0]}]
    by_max = {r["scan"]: r for r in aggregate_by(rows, "scan", method="max")}
    assert by_max["s1"]["scores"] == pytest.approx([0.7, 0.9]) and by_max["s1"]["label"] == [1, 1]
    top2 = {r["scan"]: r for r in aggregate_by(rows, "scan", method="top2")}
    assert top2["s1"]["scores"] == pytest.approx([0.5, 0.65]) and top2["s2"]["scores"] == pytest.approx([0.2, 0.1])
    assert np.allclose(pool_scores([[0.1, 0.9], [0.7, 0.2]], "top1"), pool_scores([[0.1, 0.9], [0.7, 0.2]], "max"))
    with pytest.raises(ValueError, match="top<k>"):
        pool_scores([[0.1]], "median")
