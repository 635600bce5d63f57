"""CAM localisation end to end on a network whose Grad-CAM is known: the map is the input's bright square."""

import numpy as np
import pytest
import torch

from medpipe.evaluation.localization import (csv_rows, localization_cases, localization_tables, localize,
                                             method_keys, pick_overlays)


class Bright(torch.nn.Module):
    """Class 0 = mean brightness: its Grad-CAM on ``features`` is the (ReLU'd) image itself."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Conv2d(1, 1, 1, bias=False)
        torch.nn.init.ones_(self.features.weight)
        self.head = torch.nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def _image(square):
    img = np.zeros((1, 32, 32), np.float32)
    x0, y0, x1, y1 = square
    img[0, y0:y1, x0:x1] = 1.0
    return img


@pytest.fixture
def setup():
    squares = {"a.png": (2, 20, 10, 30), "b.png": (12, 12, 20, 20), "c.png": (24, 0, 32, 6)}
    rows = [{"image": k, "patient": k[0], "scores": [0.9, 0.2]} for k in squares]
    # stored images are 64 px: boxes are twice the map's coordinates
    records = [{"image": k, "nih_boxes": [{"finding": "bright", "box": [2 * v for v in sq]},
                                          {"finding": "Nodule", "box": [0, 0, 4, 4]}]} for k, sq in squares.items()]
    load = lambda path: {"image": _image(squares[path]), "image_size": [64, 64]}  # noqa: E731
    return rows, records, load


def test_cases_scores_tables(setup):
    rows, records, load = setup
    cases, counts = localization_cases(rows, records, ["bright", "dark"], [0.5, 0.5])
    assert counts == {"images_with_boxes": 3, "boxes": 6, "boxes_not_a_class": 3}  # Nodule is not a class here
    assert [c["finding"] for c in cases] == ["bright"] * 3 and all(c["predicted"] for c in cases)
    maps = localize(cases, Bright(), "features", load, keep_maps={0})
    assert set(maps) == {0} and maps[0].shape == (32, 32)
    for c in cases:  # the CAM box is the square, scaled to the stored image
        assert c["cam@0.5"]["box"] == c["true_boxes"][0] and c["cam@0.5"]["iou"] == pytest.approx(1.0)
        assert c["cam@0.8"]["iobb"] == pytest.approx(1.0)
    # the centred control meets only the centred square
    assert cases[1]["control@0.5"]["iobb"] > 0.1 and cases[2]["control@0.5"]["iobb"] == 0.0
    t = localization_tables(cases, ["bright", "dark"])
    assert t["cases_per_class"] == {"bright": 3}
    assert t["accuracy_iobb"]["cam@0.5"]["all"]["0.7"] == 1.0
    assert t["accuracy_iobb"]["control@0.8"]["all"]["0.7"] < 1.0
    assert set(t["accuracy_iou"]) == set(method_keys())
    rows_csv, cols = csv_rows(cases)
    assert len(rows_csv) == 3 and "cam@0.8_iobb" in cols and rows_csv[0]["predicted"] == 1


def test_overlays_from_different_patients_first():
    cases = [{"finding": f, "patient": p, "probability": pr}
             for f, p, pr in [("A", "1", .9), ("A", "1", .8), ("A", "2", .7), ("B", "1", .6)]]
    assert pick_overlays(cases, 2) == [0, 3] or pick_overlays(cases, 2) == [0, 2]
    assert sorted(pick_overlays(cases, 4)) == [0, 1, 2, 3]


def test_boxes_of_grouped_findings_count_for_their_class(setup):
    rows, records, load = setup
    groups = {"Lung": ["bright", "Nodule"]}  # a model of categories: both boxed findings are its "Lung" class
    from medpipe.evaluation.localization import finding_classes

    cases, counts = localization_cases(rows, records, ["Lung", "Normal"], [0.5, 0.5],
                                       box_classes=finding_classes(groups))
    assert counts["boxes_not_a_class"] == 0 and len(cases) == 3
    assert all(c["finding"] == "Lung" and len(c["true_boxes"]) == 2 for c in cases)
