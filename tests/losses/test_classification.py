import pytest
import torch

from medpipe.errors import UserError
from medpipe.losses.classification import build_loss


def test_loss_follows_the_label_kind():
    data = [{"label": 0}, {"label": 0}, {"label": 0}, {"label": 1}]
    ce = build_loss("binary", data, "weighted_loss", 2)
    assert isinstance(ce, torch.nn.CrossEntropyLoss) and ce.weight[1] > ce.weight[0]
    assert build_loss("multiclass", data, "none", 3).weight is None
    ml = build_loss("multilabel", [{"label": [1, 0]}, {"label": [0, 0]}], "weighted_loss", 2)
    assert isinstance(ml, torch.nn.BCEWithLogitsLoss) and ml.pos_weight.tolist() == [1.0, 2.0]
    with pytest.raises(UserError, match="--imbalance"):
        build_loss("binary", data, "oversample")
    with pytest.raises(UserError, match="segmentation"):
        build_loss("segmentation", data)


def test_multilabel_pos_weight_setting():
    data = [{"label": [1, 0]}, {"label": [0, 0]}, {"label": [1, 1]}]
    auto = build_loss("multilabel", data, "auto", 2, setting="pos_weight")
    assert auto.pos_weight.tolist() == [0.5, 2.0]  # negatives / positives of each class
    assert build_loss("multilabel", data, "none", 2, setting="pos_weight").pos_weight is None
    with pytest.raises(UserError, match="--pos_weight balanced: choose auto"):
        build_loss("multilabel", data, "balanced", 2, setting="pos_weight")


def test_class_loss_weights_give_the_challenge_weighted_log_loss():
    import numpy as np
    import pytest
    import torch

    from medpipe.errors import UserError
    from medpipe.losses.classification import build_loss
    from medpipe.metrics.multilabel import weighted_log_loss

    names = ["any", "epidural", "subdural"]
    logits = torch.tensor([[1.5, -2.0, 0.3], [-0.7, -1.0, -2.5]])
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    loss = build_loss("multilabel", None, "none", 3, setting="pos_weight", class_names=names,
                      class_loss_weights={"any": 2})
    expect = weighted_log_loss(y.numpy(), torch.sigmoid(logits).numpy(), names, {"any": 2})
    assert float(loss(logits, y)) == pytest.approx(expect, rel=1e-5)
    with pytest.raises(UserError, match="ANY not among"):
        build_loss("multilabel", None, "none", 3, setting="pos_weight", class_names=names, class_loss_weights={"ANY": 2})
    assert np.isfinite(float(build_loss("multilabel", None, "none", 3, setting="pos_weight")(logits, y)))
