"""K-fold summary: mean and sample sd over folds, undefined values left out (never averaged as 0)."""

from __future__ import annotations

import json
import math

import pytest

from medpipe.errors import UserError
from medpipe.evaluation.kfold import fold_dir, summarize_folds


def _metrics(out, k, m):
    d = fold_dir(out, k) / "eval"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(m))


def test_mean_sd_per_class_and_undefined_left_out(tmp_path):
    _metrics(tmp_path, 0, {"kind": "multilabel", "auroc_mean": 0.8, "n": 10, "fold": 0,
                           "auroc_per_class": {"A": 0.9, "B": None}})
    _metrics(tmp_path, 1, {"kind": "multilabel", "auroc_mean": 0.6, "n": 12, "fold": 1,
                           "auroc_per_class": {"A": 0.7, "B": 0.5}})
    _metrics(tmp_path, 2, {"kind": "multilabel", "auroc_mean": 0.7, "n": 11, "fold": 2,
                           "auroc_per_class": {"A": 0.8, "B": 0.7}})
    s = summarize_folds(tmp_path, [0, 1, 2])
    assert json.loads((tmp_path / "kfold.json").read_text()) == s
    m = s["metrics"]["auroc_mean"]
    assert m["mean"] == pytest.approx(0.7) and m["sd"] == pytest.approx(0.1)  # sample sd of 0.8, 0.6, 0.7
    assert "fold" not in s["metrics"] and "n" not in s["metrics"]
    a, b = s["auroc_per_class"]["A"], s["auroc_per_class"]["B"]
    assert a["mean"] == pytest.approx(0.8) and a["sd"] == pytest.approx(0.1) and a["undefined_on"] == []
    # B is undefined on fold 0: the mean is over folds 1 and 2 only, not (0 + 0.5 + 0.7) / 3
    assert b["mean"] == pytest.approx(0.6) and b["sd"] == pytest.approx(math.sqrt(0.02)) and b["undefined_on"] == [0]
    assert b["n_folds"] == 2 and s["runs"] == {"0": "fold_0", "1": "fold_1", "2": "fold_2"}


def test_one_fold_has_no_sd_and_a_missing_fold_is_named(tmp_path):
    _metrics(tmp_path, 3, {"auroc": 0.75})
    assert summarize_folds(tmp_path, [3])["metrics"]["auroc"] == {
        "mean": 0.75, "sd": None, "n_folds": 1, "values": {"3": 0.75}, "undefined_on": []}
    with pytest.raises(UserError, match="fold_4.*fold 4"):
        summarize_folds(tmp_path, [3, 4])
