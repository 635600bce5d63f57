"""Internal vs external: the run's validation metrics beside another set's, the overlap warning, the held-out case."""

from __future__ import annotations

import json

from medpipe.evaluation.external import compare_with_internal


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _run(tmp_path, train_name="rsna-pneumonia", overlaps=None):
    from medpipe.bundle.checkpoint import FORMAT

    run, train = tmp_path / "run", tmp_path / "train_data"
    _write(train / "datalist.json", {"dataset": train_name, "overlaps_with": overlaps or {}})
    (run / "models").mkdir(parents=True)
    (run / "models/model.pt").write_bytes(b"PK\x03\x04")  # any file: only its settings are read here
    _write(run / "models/model.json", {"format": FORMAT, "bundle": "cxr_pneumonia", "settings": {},
                                       "dataset": {"dir": str(train)}})
    _write(run / "eval/metrics.json", {"kind": "binary", "auroc": 0.9, "accuracy": 0.85, "recall": 0.8,
                                       "specificity": 0.9, "threshold": 0.4, "fold": 0, "n": 100})
    return run, train


def test_external_drop_and_overlap_warning(tmp_path):
    run, _ = _run(tmp_path, overlaps={"cxr14": "subset of ChestX-ray14"})
    ext = tmp_path / "nih"
    _write(ext / "datalist.json", {"dataset": "cxr14"})
    out = run / "eval-nih-test"
    _write(out / "eval/metrics.json", {"kind": "binary", "auroc": 0.7, "accuracy": 0.72, "recall": 0.5,
                                       "specificity": 0.92, "threshold": 0.4, "n": 40,
                                       "threshold_source": "stored"})
    try:
        c = compare_with_internal(out, run, run / "models/model.pt", ext, "test")
    except Exception as e:  # the sidecar format check: report what the fixture lacks
        raise AssertionError(f"fixture rejected: {e}") from e
    rows = {r["metric"]: r for r in c["rows"]}
    assert abs(rows["auroc"]["difference"] + 0.2) < 1e-12
    assert c["same_dataset"] is False and any("subset of ChestX-ray14" in n for n in c["notes"])
    md = (out / "eval/internal_vs_external.md").read_text()
    assert "| AUROC | 0.900 | 0.700 | -0.200 |" in md and "external: cxr14, test (n=40)" in md


def test_validation_run_itself_is_not_compared(tmp_path):
    run, train = _run(tmp_path)
    assert compare_with_internal(run, run, run / "models/model.pt", train, "val") is None
    assert not (run / "eval/internal_vs_external.json").exists()
