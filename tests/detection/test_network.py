"""medpipe.detection.network: model arguments, what checkpoints carry, building the module with its classes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from medpipe.detection import network as N
from medpipe.errors import DataError, UserError


@pytest.mark.parametrize("model,ok", [("yolov8n.yaml", True), ("yolov8m.yaml", True), ("yolov8n.pt", False),
                                      ("yolov8n", False), ("/no/such/weights.pt", False)])
def test_model_argument(model, ok):
    if ok:
        assert N.check_model_arg(model) == model
    else:
        with pytest.raises(UserError, match="yolov8n.yaml"):
            N.check_model_arg(model)


def test_local_checkpoint_argument_is_absolute(tmp_path, monkeypatch):
    (tmp_path / "w.pt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert N.check_model_arg("w.pt") == str(tmp_path / "w.pt")


@pytest.mark.parametrize("names,expected", [
    ({0: "phe"}, ["phe"]),
    ({1: "ich", 0: "phe"}, ["phe", "ich"]),
    (["a", "b:c"], ["a", "b:c"]),
])
def test_checkpoint_class_names(names, expected):
    assert N.checkpoint_class_names(SimpleNamespace(names=names)) == expected
    assert N.checkpoint_class_names(SimpleNamespace(names=None, model=SimpleNamespace(names=names))) == expected


def test_checkpoint_class_names_reject_gaps():
    with pytest.raises(DataError, match="class ids"):
        N.checkpoint_class_names(SimpleNamespace(names={0: "a", 2: "b"}))


@pytest.mark.parametrize("ckpt,model_args,expected", [
    ({"train_args": {"imgsz": 128}}, None, 128),
    ({"train_args": {"imgsz": [96, 96]}}, None, 96),
    (None, {"imgsz": 64}, 64),
    (None, SimpleNamespace(imgsz=32), 32),
    ({}, None, 640),
])
def test_checkpoint_image_size(ckpt, model_args, expected):
    yolo = SimpleNamespace(ckpt=ckpt, model=SimpleNamespace(args=model_args))
    assert N.checkpoint_image_size(yolo) == expected


def test_build_network_classes_follow_the_argument_or_the_yaml(tmp_path):
    net = N.build_network("yolov8n.yaml", num_classes=3)
    assert net.model[-1].nc == 3 and net.yaml["nc"] == 3
    # models/model.yaml as training writes it: rebuilt with its own number of classes
    plain = json.loads(json.dumps(dict(net.yaml), default=str))
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))
    again = N.build_network(str(tmp_path / "model.yaml"))
    assert again.model[-1].nc == 3
    again.load_state_dict(net.state_dict())  # strict: same architecture


def test_build_network_raw_output():
    import torch

    net = N.build_network("yolov8n.yaml", num_classes=2, raw_output=True).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape[:2] == (1, 4 + 2)
