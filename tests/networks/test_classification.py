"""Classifiers by name: 1-channel input, one logit per class, the Grad-CAM layers exist, local weights load."""

import pytest
import torch

from medpipe.errors import UserError
from medpipe.networks.classification import (
    CAM_LAYERS, CLASSIFIERS, MIN_INPUT, build_classifier, cam_layer, load_pretrained)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_classifier_builds_and_names_its_cam_layers(name):
    net = build_classifier(name, in_channels=1, num_classes=5).eval()
    side = max(64, MIN_INPUT.get(name, 0))
    with torch.no_grad():
        assert net(torch.zeros(2, 1, side, side)).shape == (2, 5)
    modules = dict(net.named_modules())
    for which in ("last", "stride16"):
        assert CAM_LAYERS[name][which] in modules, (name, which)


def test_too_small_input_is_refused_by_name():
    with pytest.raises(UserError, match="--image_size 64: inception_v3 needs images of at least 75 px"):
        build_classifier("inception_v3", input_size=64)
    assert build_classifier("inception_v3", input_size=75) is not None


def test_cam_layer_choice():
    assert cam_layer("densenet121") == "features.denseblock4"
    assert cam_layer("xception", "stride16") == "block11"
    assert cam_layer("resnet50", "none") is None
    with pytest.raises(UserError, match="--network_name vgg16"):
        cam_layer("vgg16")
    with pytest.raises(UserError, match="choose one of"):
        build_classifier("densenet")


def test_chexnet_style_checkpoint_loads(tmp_path):
    """A CheXNet reproduction's checkpoint: {'state_dict': ...} with 'module.densenet121.' prefixes, the
    pre-0.4 DenseNet names ('norm.1'), an RGB first convolution and a Sequential(Linear, Sigmoid) head."""
    ref = build_classifier("densenet121", in_channels=1, num_classes=14)
    state = {}
    for k, v in ref.state_dict().items():
        k2 = k.replace("norm1", "norm.1").replace("conv2", "conv.2").replace("classifier.1.", "classifier.0.")
        if k == "features.conv0.weight":
            v = v.repeat(1, 3, 1, 1) / 3.0
        state["module.densenet121." + k2] = v
    path = tmp_path / "model.pth.tar"
    torch.save({"state_dict": state, "epoch": 3}, path)
    net = build_classifier("densenet121", in_channels=1, num_classes=14)
    info = load_pretrained(net, str(path))
    assert info["skipped"] == [] and info["adapted"] == ["features.conv0.weight"]
    for k, v in ref.state_dict().items():
        assert torch.allclose(net.state_dict()[k], v, atol=1e-6), k


def test_imagenet_head_of_another_size_is_skipped(tmp_path):
    src = build_classifier("resnet50", in_channels=1, num_classes=1000)
    state = {k.replace("fc.1.", "fc."): v for k, v in src.state_dict().items()}  # torchvision naming
    torch.save(state, tmp_path / "r50.pt")
    net = build_classifier("resnet50", in_channels=1, num_classes=14, pretrained_path=str(tmp_path / "r50.pt"))
    assert torch.equal(net.state_dict()["layer4.2.conv3.weight"], src.state_dict()["layer4.2.conv3.weight"])
    assert net.fc[1].weight.shape == (14, 2048)
