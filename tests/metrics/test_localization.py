"""Box-from-map, IoU, IoBB and the accuracy-at-T table against boxes computed by hand."""

import numpy as np
import pytest

from medpipe.metrics.localization import (accuracy_at, box_area, box_from_map, box_intersection, box_iobb, box_iou,
                                          gaussian_map, scale_box, xywh_to_xyxy)


@pytest.mark.parametrize("pred, true, iou, iobb", [
    ([0, 0, 4, 4], [0, 0, 4, 4], 1.0, 1.0),                  # identical
    ([0, 0, 4, 4], [2, 2, 6, 6], 4 / 28, 4 / 16),            # 2x2 overlap of two 4x4 boxes
    ([1, 1, 3, 3], [0, 0, 10, 10], 4 / 100, 1.0),            # small predicted box inside the true one
    ([0, 0, 10, 10], [1, 1, 3, 3], 4 / 100, 4 / 100),        # large predicted box around the true one
    ([0, 0, 2, 2], [2, 0, 4, 2], 0.0, 0.0),                  # touching edges: no area in common
    ([0, 0, 0, 5], [0, 0, 4, 4], 0.0, 0.0),                  # empty predicted box
    ([10, 20, 40, 60], [25, 30, 55, 50], 300 / 1500, 300 / 1200),  # 15x20 overlap; areas 1200 and 600
])
def test_iou_and_iobb_by_hand(pred, true, iou, iobb):
    assert box_iou(pred, true) == pytest.approx(iou)
    assert box_iobb(pred, true) == pytest.approx(iobb)
    assert box_iou(pred, true) == pytest.approx(box_iou(true, pred))  # IoU is symmetric, IoBB is not


def test_areas_and_nih_boxes():
    assert box_area([2, 3, 7, 11]) == 40.0 and box_area([5, 5, 1, 9]) == 0.0
    assert box_intersection([0, 0, 4, 4], [1, -1, 3, 9]) == 8.0
    assert xywh_to_xyxy([225.5, 547.0, 86.5, 79.0]) == [225.5, 547.0, 312.0, 626.0]
    assert scale_box([10, 20, 30, 40], 0.25, 0.5) == [2.5, 10.0, 7.5, 20.0]
    with pytest.raises(ValueError, match="4 finite numbers"):
        box_iou([0, 0, 1], [0, 0, 1, 1])


def test_box_from_map_largest_region_pixel_edges():
    m = np.zeros((10, 12))
    m[2:5, 3:9] = 0.6      # rows 2..4, columns 3..8: 18 px
    m[7, 1] = 1.0          # the maximum, 1 px
    # at 0.5 of the max both regions count; the larger one wins; its box ends one past the last pixel
    assert box_from_map(m, 0.5) == [3.0, 2.0, 9.0, 5.0]
    assert box_from_map(m, 0.8) == [1.0, 7.0, 2.0, 8.0]   # only the single maximum pixel is left


def test_box_from_map_connectivity_and_no_evidence():
    m = np.zeros((6, 6))
    m[1, 1] = m[2, 2] = m[3, 3] = 1.0                     # a diagonal line
    assert box_from_map(m, 0.5, connectivity=8) == [1.0, 1.0, 4.0, 4.0]
    assert box_from_map(m, 0.5, connectivity=4) == [1.0, 1.0, 2.0, 2.0]  # three 1-px regions: the maximum's
    assert box_from_map(np.zeros((4, 4)), 0.5) is None     # a ReLU'd map with no evidence anywhere
    assert box_from_map(np.full((4, 4), np.nan), 0.5) is None
    with pytest.raises(ValueError, match="fraction"):
        box_from_map(m, 0.0)


def test_box_from_map_keeps_orientation():
    """Rows are y, columns are x: a blob at the top right gives a box at the top right."""
    m = np.zeros((20, 30))
    m[1:4, 25:29] = 1.0
    x0, y0, x1, y1 = box_from_map(m)
    assert (x0, y0, x1, y1) == (25.0, 1.0, 29.0, 4.0)


def test_gaussian_control_is_centred():
    g = gaussian_map((100, 80), sigma=0.25)
    assert np.unravel_index(np.argmax(g), g.shape) in {(49, 39), (49, 40), (50, 39), (50, 40)}
    x0, y0, x1, y1 = box_from_map(g, 0.5)
    assert x0 + x1 == pytest.approx(80, abs=1) and y0 + y1 == pytest.approx(100, abs=1)
    # half-maximum radius of a Gaussian: sigma * sqrt(2 ln 2) = 1.177 sigma -> width about 0.59 x the side
    assert (x1 - x0) / 80 == pytest.approx(2 * 1.1774 * 0.25, abs=0.03)
    w8 = box_from_map(g, 0.8)
    assert w8[2] - w8[0] < x1 - x0


def test_accuracy_at_is_strictly_above():
    acc = accuracy_at([0.1, 0.5, 0.75, None], (0.1, 0.5, 0.7))
    assert acc == {"0.1": 0.5, "0.5": 0.25, "0.7": 0.25}
    assert accuracy_at([], (0.5,)) == {"0.5": None}
