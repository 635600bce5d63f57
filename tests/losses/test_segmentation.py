"""DeepSupervisionDiceCELoss: plain 4D equals MONAI DiceCE, head weighting, target resizing."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss

from medpipe.losses.segmentation import DeepSupervisionDiceCELoss, deep_supervision_weights


def _target(b=2, size=16):
    t = torch.zeros(b, 1, size, size)
    t[:, :, 4:10, 5:12] = 1
    return t


def _logits_towards(target, strength):
    """Logits whose softmax approaches the one-hot target as ``strength`` grows."""
    onehot = torch.cat([1 - target, target], dim=1)
    return strength * (2 * onehot - 1)


@pytest.mark.parametrize("kw", [{}, {"lambda_dice": 0.3, "lambda_ce": 2.0, "batch": False},
                                {"include_background": True, "smooth_nr": 0.0, "smooth_dr": 1e-3}])
def test_4d_equals_monai_dicece(kw):
    torch.manual_seed(0)
    pred, target = torch.randn(2, 2, 16, 16), _target()
    ref = DiceCELoss(to_onehot_y=True, softmax=True, include_background=kw.get("include_background", False),
                     lambda_dice=kw.get("lambda_dice", 1.0), lambda_ce=kw.get("lambda_ce", 1.0),
                     batch=kw.get("batch", True), smooth_nr=kw.get("smooth_nr", 1e-5),
                     smooth_dr=kw.get("smooth_dr", 1e-5))
    torch.testing.assert_close(DeepSupervisionDiceCELoss(**kw)(pred, target), ref(pred, target))
    # a (B, H, W) target is accepted too
    torch.testing.assert_close(DeepSupervisionDiceCELoss(**kw)(pred, target[:, 0]), ref(pred, target))


@pytest.mark.parametrize("form", ["4d", "stack", "list"])
def test_decreases_as_prediction_approaches_target(form):
    target = _target()
    loss_fn = DeepSupervisionDiceCELoss()
    values = []
    for s in (0.0, 0.5, 2.0, 8.0):
        logits = _logits_towards(target, s)
        if form == "stack":
            pred = torch.stack([logits, logits, logits], dim=1)
        elif form == "list":
            pred = [logits, logits[..., ::2, ::2], logits[..., ::4, ::4]]
        else:
            pred = logits
        values.append(float(loss_fn(pred, target)))
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[-1] < 0.01


def test_default_weights():
    assert deep_supervision_weights(1) == [1.0]
    w = deep_supervision_weights(3)
    assert sum(w) == pytest.approx(1.0)
    assert w[0] == pytest.approx(2 * w[1]) and w[1] == pytest.approx(2 * w[2])


def test_stack_is_weighted_sum_of_heads():
    torch.manual_seed(0)
    target = _target()
    heads = [torch.randn(2, 2, 16, 16) for _ in range(3)]
    plain = DeepSupervisionDiceCELoss()
    expected = sum(w * plain(h, target) for w, h in zip(deep_supervision_weights(3), heads))
    torch.testing.assert_close(plain(torch.stack(heads, dim=1), target), expected)
    custom = DeepSupervisionDiceCELoss(weights=[1.0, 0.0, 0.0])
    torch.testing.assert_close(custom(torch.stack(heads, dim=1), target), plain(heads[0], target))
    with pytest.raises(ValueError, match="weights"):
        DeepSupervisionDiceCELoss(weights=[1.0, 0.5])(torch.stack(heads, dim=1), target)


def test_list_heads_use_nearest_resized_target():
    torch.manual_seed(0)
    target = _target()
    low = torch.randn(2, 2, 8, 8)
    loss = DeepSupervisionDiceCELoss(weights=[0.0, 1.0])([torch.randn(2, 2, 16, 16), low], target)
    small_target = target[..., ::2, ::2]  # nearest neighbour downsampling by 2
    torch.testing.assert_close(loss, DeepSupervisionDiceCELoss()(low, small_target))


def test_gradients_flow_and_bad_shapes():
    pred = torch.randn(2, 3, 2, 16, 16, requires_grad=True)
    DeepSupervisionDiceCELoss()(pred, _target()).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="pred must be"):
        DeepSupervisionDiceCELoss()(torch.randn(2, 16, 16), _target())
