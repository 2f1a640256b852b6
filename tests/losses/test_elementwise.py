"""The element-wise losses (mse, l1, l1_squared): one input check, one message, never a
broadcast."""

from __future__ import annotations

import pytest
import torch

from ocdsl.losses import functions as fn


@pytest.mark.parametrize("name", ["mse", "l1", "l1_squared"])
@pytest.mark.parametrize("pred, target", [((2, 3, 4, 5), (2, 3, 4, 4)), ((2, 1, 4, 4), (2, 3, 4, 4))])
def test_shapes_that_differ_are_named_with_their_roles(name, pred, target):
    """(2, 1, ...) against (2, 3, ...) would broadcast in torch: refused, not averaged."""
    with pytest.raises(ValueError) as ei:
        fn.get(name).impl(torch.zeros(pred), torch.zeros(target))
    assert str(ei.value) == f"{name}: shapes differ, expected {target} (target), got {pred} (pred)"


@pytest.mark.parametrize("name, want", [("mse", (1 + 4) / 8), ("l1", (1 + 2) / 8), ("l1_squared", (1 + 4) / 4)])
def test_same_shapes_give_the_loss(name, want):
    target = torch.zeros(1, 2, 2, 2)
    pred = target.clone()
    pred[0, 0, 0, 0], pred[0, 1, 1, 1] = 1.0, -2.0   # two wrong elements, in different pixels
    assert fn.get(name).impl(pred, target).item() == pytest.approx(want)
