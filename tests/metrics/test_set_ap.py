"""Set prediction's average precision (ocdsl/metrics/set_ap.py) on hand-computed cases.

Layout of every case: 2 coordinates, a 2-class attribute and a 3-class attribute, the
confidence / real-object flag last (P = 8), distances in coordinate units (scale 1) unless
stated. Each expected value is worked out in the test's comment with PASCAL VOC's rule:
precision made monotone from the right, summed over the recall steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ocdsl.metrics import DATASET_METRICS
from ocdsl.metrics.set_ap import THRESHOLDS, average_precision, voc_average_precision

LAYOUT = {"coords": 2, "classes": (2, 3), "coord_scale": 1.0}


def obj(x, y, a, b, flag=1.0):
    """One vector: coordinates, one-hot a (of 2), one-hot b (of 3), flag / confidence."""
    v = np.zeros(8)
    v[:2] = (x, y)
    v[2 + a] = 1.0
    v[4 + b] = 1.0
    v[7] = flag
    return v


PAD = np.zeros(8)


def ap(pred, true, threshold=None, **layout):
    return average_precision(np.asarray(pred, float), np.asarray(true, float), threshold=threshold,
                             **{**LAYOUT, **layout})


def test_perfect_predictions_score_one_at_every_threshold():
    # image 0: two objects, image 1: one (and padding); the slots of the padding predict
    # confidence 0, so they rank last, after every object is found: precision 1 up to recall 1
    true = [[obj(0.1, 0.2, 0, 1), obj(0.7, 0.4, 1, 2), PAD], [obj(0.5, 0.5, 1, 0), PAD, PAD]]
    pred = [[obj(0.1, 0.2, 0, 1), obj(0.7, 0.4, 1, 2), obj(0.3, 0.3, 0, 0, 0.0)],
            [obj(0.3, 0.3, 1, 1, 0.0), obj(0.5, 0.5, 1, 0), obj(0.3, 0.3, 0, 0, 0.0)]]
    for t in THRESHOLDS.values():
        assert ap(pred, true, t) == pytest.approx(1.0)


def test_one_wrong_attribute_and_the_confidence_order():
    true = [[obj(0.1, 0.1, 0, 0), obj(0.9, 0.9, 1, 2)]]
    # the object at 0.9 predicted with the wrong 3-class attribute (1, not 2): a false positive.
    # Ranked TP then FP: recall 0.5, 0.5; precision 1, 0.5 -> AP = 0.5 * 1 + 0.5 * 0 = 0.5
    good_first = [[obj(0.1, 0.1, 0, 0, 0.9), obj(0.9, 0.9, 1, 1, 0.8)]]
    assert ap(good_first, true) == pytest.approx(0.5)
    # ranked FP then TP: recall 0, 0.5; precision 0, 0.5 -> AP = 0.5 * 0.5 = 0.25
    bad_first = [[obj(0.1, 0.1, 0, 0, 0.7), obj(0.9, 0.9, 1, 1, 0.8)]]
    assert ap(bad_first, true) == pytest.approx(0.25)


def test_distance_thresholds_in_scaled_units():
    true = [[obj(0.5, 0.5, 0, 0)]]
    pred = [[obj(0.6, 0.5, 0, 0)]]                           # 0.1 away
    assert ap(pred, true) == pytest.approx(1.0)
    assert ap(pred, true, 0.125) == pytest.approx(1.0)       # 0.1 < 0.125
    assert ap(pred, true, 0.09) == 0.0                       # farther than the threshold
    # CLEVR's scale: 6 units per coordinate unit, 0.1 -> 0.6 units
    assert ap(pred, true, 1.0, coord_scale=6.0) == pytest.approx(1.0)
    assert ap(pred, true, 0.5, coord_scale=6.0) == 0.0


def test_a_taken_nearest_object_makes_a_false_positive_as_the_official_rule():
    # two objects of one kind; the second detection is nearest to the first object, already
    # found, so it is a false positive even though the other object is free (official rule).
    true = [[obj(0.1, 0.1, 0, 0), obj(0.9, 0.9, 0, 0), PAD]]
    pred = [[obj(0.1, 0.1, 0, 0, 0.9), obj(0.12, 0.12, 0, 0, 0.8), obj(0.9, 0.9, 0, 0, 0.7)]]
    # TP, FP, TP: recall 0.5, 0.5, 1; precision 1, 0.5, 2/3 -> 0.5 * 1 + 0.5 * 2/3 = 5/6
    assert ap(pred, true) == pytest.approx(5 / 6)


def test_padding_is_never_a_target_and_no_object_gives_nan():
    true = [[obj(0.5, 0.5, 0, 0), obj(0.5, 0.5, 0, 0, 0.0)]]      # the second is padding
    pred = [[obj(0.5, 0.5, 0, 0, 0.9), obj(0.5, 0.5, 0, 0, 0.8)]]
    assert ap(pred, true) == pytest.approx(1.0)                    # TP, then FP: recall was already 1
    assert math.isnan(ap(pred, [[PAD, PAD]]))


def test_voc_average_precision_by_hand():
    assert voc_average_precision(np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(5 / 6)
    assert voc_average_precision(np.array([0.0, 0.5]), np.array([0.0, 0.5])) == pytest.approx(0.25)


def test_errors_and_the_registry():
    true = np.zeros((1, 2, 8))
    with pytest.raises(ValueError, match="layout"):
        average_precision(np.zeros((1, 2, 9)), np.zeros((1, 2, 9)), **LAYOUT)
    with pytest.raises(ValueError, match="expected predictions"):
        average_precision(np.zeros((2, 2, 8)), true, **LAYOUT)
    assert list(DATASET_METRICS)[1:] == ["ap_inf", "ap_1", "ap_0_5", "ap_0_25", "ap_0_125"]
    pred = np.array([[obj(0.6, 0.5, 0, 0)]])
    inputs = {"predictions": pred, "factors": {"properties": np.array([[obj(0.5, 0.5, 0, 0)]])},
              "layout": dict(LAYOUT, coord_scale=6.0), "features": None}
    assert DATASET_METRICS["ap_1"](inputs) == {"ap_1": pytest.approx(1.0)}
    assert DATASET_METRICS["ap_0_5"](inputs) == {"ap_0_5": 0.0}
    with pytest.raises(ValueError, match="property vectors"):
        DATASET_METRICS["ap_1"](dict(inputs, layout=None))
    with pytest.raises(ValueError, match="needs predictions"):
        DATASET_METRICS["ap_inf"](dict(inputs, predictions=None))
