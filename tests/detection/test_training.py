"""medpipe.detection.training without training: ultralytics' results.csv as a history."""

from __future__ import annotations

import pytest

from medpipe.detection.training import RESULTS_COLUMNS, YoloTrainer, read_results_csv
from medpipe.errors import UserError


def test_read_results_csv(tmp_path):
    p = tmp_path / "results.csv"
    p.write_text("                  epoch,  train/box_loss,metrics/mAP50(B),metrics/mAP50-95(B),lr/pg0\n"
                 "1,1.5,0.1,0.05,0.001\n2,1.2,nan,0.07,0.002\n")
    h = read_results_csv(p)
    assert h["epoch"] == [1, 2] and h["box_loss"] == [1.5, 1.2] and h["map50"] == [0.1, None]
    assert h["map50_95"] == [0.05, 0.07] and h["recall"] == [None, None]
    assert set(h) == {"epoch", *RESULTS_COLUMNS.values()}
    assert read_results_csv(tmp_path / "missing.csv") == {"epoch": []}


def test_trainer_refuses_hub_weights(tmp_path):
    with pytest.raises(UserError, match="not downloaded"):
        YoloTrainer(str(tmp_path / "data.yaml"), str(tmp_path), model="yolov8n.pt")
