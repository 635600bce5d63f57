"""Ten-crop TTA: torchvision's crops, probabilities averaged, the bundle's post-processing unchanged."""

import pytest
import torch

from medpipe.errors import UserError
from medpipe.inferers.crops import TenCropInferer, evaluation_inferer, ten_crops


def test_ten_crops_are_torchvisions():
    from torchvision.transforms import TenCrop

    x = torch.rand(2, 1, 37, 41)
    ours = ten_crops(x, 32)
    for b in range(2):
        theirs = torch.stack(TenCrop(32)(x[b]))
        assert torch.equal(ours[:, b], theirs)


def test_inferer_averages_probabilities_and_returns_their_logit():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten())
    x = torch.rand(3, 1, 36, 36)
    with torch.no_grad():
        out = TenCropInferer(32)(x, net)
        expect = torch.stack([torch.sigmoid(net(c)) for c in ten_crops(x, 32)]).mean(0)
        soft = TenCropInferer(32, multilabel=False)(x, net)
        expect_soft = torch.stack([torch.softmax(net(c), 1) for c in ten_crops(x, 32)]).mean(0)
    torch.testing.assert_close(torch.sigmoid(out), expect)
    torch.testing.assert_close(torch.softmax(soft, 1), expect_soft)


def test_evaluation_inferer_choice():
    from monai.inferers import SimpleInferer

    assert isinstance(evaluation_inferer("none", 32), SimpleInferer)
    assert isinstance(evaluation_inferer("ten_crop", 32), TenCropInferer)
    with pytest.raises(UserError, match="--tta five_crop"):
        evaluation_inferer("five_crop", 32)
    with pytest.raises(ValueError, match="larger than the image"):
        ten_crops(torch.zeros(1, 1, 20, 20), 32)
