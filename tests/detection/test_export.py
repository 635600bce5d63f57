"""medpipe.detection.export: argument errors (the exports themselves run in tests/bundles/test_sich_det.py)."""

from __future__ import annotations

import pytest

from medpipe.detection.export import EXPORT_TOLERANCE, export_yolo, export_yolo_cli
from medpipe.errors import UserError


@pytest.mark.parametrize("call", [export_yolo, export_yolo_cli])
def test_unknown_format(call, tmp_path):
    with pytest.raises(UserError, match="choose torchscript or onnx"):
        call(str(tmp_path / "model.pt"), "tflite")


@pytest.mark.parametrize("call", [export_yolo, export_yolo_cli])
def test_missing_checkpoint(call, tmp_path):
    with pytest.raises(UserError, match="train first"):
        call(str(tmp_path / "model.pt"), "onnx")


def test_tolerance():
    assert EXPORT_TOLERANCE == 1e-4
