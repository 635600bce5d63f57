"""Strict weight loading with training-only parts left out; the best checkpoint holds the inference network."""

import pytest
import torch

from medpipe.errors import UserError
from medpipe.networks.segmentation import build_segmenter
from medpipe.networks.weights import InferenceView, load_weights

DROP = ["deep_supervision_heads.", "super_head."]


def test_deep_supervision_heads_are_training_only():
    train = build_segmenter("dynunet", 1, 2, [32, 32], deep_supervision=True)
    infer = build_segmenter("dynunet", 1, 2, [32, 32], deep_supervision=False)
    saved = InferenceView(train, DROP).state_dict()
    assert not any(any(p in k for p in DROP) for k in saved)
    infer.load_state_dict(saved, strict=True)  # what monai.bundle ckpt_export does
    load_weights(infer, train.state_dict(), DROP)  # the full state loads too, heads dropped
    train.eval(), infer.eval()
    x = torch.randn(1, 1, 32, 32)
    assert torch.equal(train(x), infer(x))


def test_mismatches_are_one_paragraph():
    a = build_segmenter("dynunet", 1, 2, [32, 32], deep_supervision=False)
    b = build_segmenter("dynunet", 1, 3, [32, 32], deep_supervision=False)
    with pytest.raises(UserError, match="of another shape"):
        load_weights(b, a.state_dict(), source="m.pt")
    with pytest.raises(UserError, match="unexpected"):
        load_weights(a, build_segmenter("dynunet", 1, 2, [32, 32], deep_supervision=True).state_dict())
