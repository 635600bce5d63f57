"""ResNet + spatial attention (AttentionClassifier): logits only from forward, the map from attention(),
exports with parity, Grad-CAM on the attention-weighted features; CrossEntropy label smoothing."""

import pytest
import torch

from medpipe.networks.classification import AttentionClassifier, CAM_LAYERS, build_classifier, cam_layer


@pytest.mark.parametrize("name", ["resnet18_attention", "resnet34_attention"])
def test_forward_gives_logits_and_attention_gives_the_map(name):
    net = build_classifier(name, in_channels=1, num_classes=7).eval()
    assert isinstance(net, AttentionClassifier)
    x = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        logits, a = net(x), net.attention(x)
    assert logits.shape == (3, 7)
    assert a.shape == (3, 1, 2, 2) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert cam_layer(name) == "attended" and cam_layer(name, "stride16") == "layer3"
    assert set(CAM_LAYERS[name].values()) <= set(dict(net.named_modules()))


def test_the_map_weights_the_pooled_features():
    net = build_classifier("resnet18_attention", num_classes=3).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        f = net.features(x)
        a = net.attention(x)
        manual = net.fc((f * a).mean(dim=(2, 3)))
        assert torch.allclose(net(x), manual, atol=1e-5)
        net.attention_conv.bias.fill_(-1e4)  # map ~ 0: the pooled features vanish, only the bias is left
        assert torch.allclose(net(x), net.fc[1].bias.expand(2, 3), atol=1e-4)


def test_resnet_checkpoints_load_into_the_attention_model(tmp_path):
    from medpipe.networks.classification import load_pretrained

    src = build_classifier("resnet18", num_classes=5)
    torch.save(src.state_dict(), tmp_path / "r18.pt")
    net = build_classifier("resnet18_attention", num_classes=5)
    info = load_pretrained(net, str(tmp_path / "r18.pt"))
    assert info["skipped"] == []
    assert torch.equal(net.state_dict()["layer4.1.conv2.weight"], src.state_dict()["layer4.1.conv2.weight"])


def test_torchscript_and_onnx_parity(tmp_path):
    net = build_classifier("resnet18_attention", num_classes=7).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        ref = net(x)
        ts = torch.jit.script(net)
        assert (ts(x) - ref).abs().max() <= 1e-4
    onnxruntime = pytest.importorskip("onnxruntime")
    path = tmp_path / "m.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=["pred"],
                      dynamic_axes={"image": {0: "batch"}, "pred": {0: "batch"}}, dynamo=False)
    out = onnxruntime.InferenceSession(str(path)).run(None, {"image": x.numpy()})[0]
    assert abs(out - ref.numpy()).max() <= 1e-4


def test_grad_cam_reads_the_attention_weighted_layer():
    from medpipe.evaluation.localization import raw_grad_cam

    net = build_classifier("resnet18_attention", num_classes=3).eval()
    cam = raw_grad_cam(net, cam_layer("resnet18_attention"))
    m = cam(torch.randn(1, 1, 64, 64), class_idx=1)
    assert m.shape[-2:] == (64, 64) and torch.isfinite(m).all()


def test_label_smoothing_is_passed_to_cross_entropy():
    from medpipe.errors import UserError
    from medpipe.losses.classification import build_loss

    data = [{"label": 0}, {"label": 1}, {"label": 2}]
    assert build_loss("multiclass", data, "sampler", 3).label_smoothing == 0.0  # default unchanged
    loss = build_loss("multiclass", data, "sampler", 3, label_smoothing=0.1)
    assert loss.label_smoothing == pytest.approx(0.1) and loss.weight is None
    assert build_loss("multiclass", data, "weighted_loss", 3, label_smoothing=0.1).weight.shape == (3,)
    with pytest.raises(UserError, match="--label_smoothing 1.5"):
        build_loss("multiclass", data, "none", 3, label_smoothing=1.5)


@pytest.mark.parametrize("name", ["resnet18", "resnet18_attention"])
def test_3d_networks_take_volumes(name):
    """--spatial_dims 3: MONAI's 3-D ResNet under the same module names (Grad-CAM layers included)."""
    from medpipe.handlers.tensorboard import grad_cam

    net = build_classifier(name, num_classes=7, spatial_dims=3).eval()
    x = torch.randn(2, 1, 8, 32, 32)
    with torch.no_grad():
        assert net(x).shape == (2, 7)
    assert set(CAM_LAYERS[name].values()) <= set(dict(net.named_modules()))
    heat = grad_cam(net, cam_layer(name), x, [1, 2])
    assert heat.shape == (2, 8, 32, 32) and float(heat.min()) >= 0 and float(heat.max()) <= 1 + 1e-6
    if name.endswith("_attention"):
        with torch.no_grad():
            f, a = net.features(x), net.attention(x)
            assert a.shape == (2, 1, *f.shape[2:]) and torch.allclose(net(x), net.fc((f * a).mean(dim=(2, 3, 4))),
                                                                       atol=1e-5)


def test_3d_refuses_2d_only_networks():
    from medpipe.errors import UserError

    with pytest.raises(UserError, match="3-D networks are"):
        build_classifier("densenet121", spatial_dims=3)
    with pytest.raises(UserError, match="--spatial_dims 4"):
        build_classifier("resnet18", spatial_dims=4)
