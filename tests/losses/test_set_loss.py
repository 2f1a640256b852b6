"""Slot Attention's set-prediction loss (hungarian_huber) and the Hungarian matching it
shares with the contrastive object losses (ocdsl/losses/matching.py)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from ocdsl.losses import functions as fn
from ocdsl.losses.matching import hungarian


def brute_force(pred, target):
    """min over every assignment of the slots to the (zero-padded) objects, per image, of the
    summed mean-Huber costs, averaged over images."""
    b, k, _ = pred.shape
    target = F.pad(target, (0, 0, 0, k - target.shape[1]))
    total = 0.0
    for i in range(b):
        cost = F.huber_loss(pred[i][:, None].expand(-1, k, -1), target[i][None].expand(k, -1, -1),
                            reduction="none").mean(-1)
        total += min(sum(cost[s, p[s]] for s in range(k)) for p in itertools.permutations(range(k)))
    return total / b


def test_equals_the_best_assignment_and_ignores_the_slot_order():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 4, 6, generator=g, dtype=torch.float64)
    target = torch.rand(3, 3, 6, generator=g, dtype=torch.float64)        # 3 objects, 4 slots: padded
    loss = fn.hungarian_huber(pred, target)
    assert loss.item() == pytest.approx(float(brute_force(pred, target)), rel=1e-12)
    for _ in range(3):
        perm = torch.randperm(4, generator=g)
        assert fn.hungarian_huber(pred[:, perm], target).item() == pytest.approx(loss.item(), rel=1e-12)


def test_zero_for_a_perfect_prediction_in_any_order_and_huber_beyond_one():
    target = torch.tensor([[[0.2, 0.9, 1.0], [0.7, 0.1, 1.0]]])
    assert fn.hungarian_huber(target.flip(1), target).item() == 0.0
    far = torch.tensor([[[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    near = torch.zeros(1, 2, 3)
    # one slot 3 away on one entry: Huber (delta 1) = 3 - 0.5 = 2.5, averaged over 3 entries
    assert fn.hungarian_huber(far, near).item() == pytest.approx(2.5 / 3)


def test_the_gradient_reaches_every_slot_through_its_matched_cost():
    pred = torch.rand(2, 3, 5, requires_grad=True)
    fn.hungarian_huber(pred, torch.rand(2, 3, 5)).backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad.abs().sum(-1) > 0).all()


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="o <= k"):
        fn.hungarian_huber(torch.zeros(2, 3, 5), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match="expected pred"):
        fn.hungarian_huber(torch.zeros(2, 3, 5), torch.zeros(2, 3, 4))


def test_hungarian_rectangular_maximize_and_errors():
    cost = torch.tensor([[[5.0, 1.0, 9.0], [1.0, 2.0, 0.5]]])                # 2 rows, 3 columns
    assert hungarian(cost).tolist() == [[1, 2]]                              # 1 + 0.5, the least
    assert hungarian(cost, maximize=True).tolist() == [[2, 1]]               # 9 + 2, the most
    with pytest.raises(ValueError, match="n <= m"):
        hungarian(cost.transpose(1, 2))
    with pytest.raises(ValueError, match="not finite"):
        hungarian(torch.tensor([[[float("nan")]]]))
    a = torch.randn(2, 4, 8)
    perm = torch.stack([torch.randperm(4) for _ in range(2)])
    b = torch.gather(a, 1, perm[..., None].expand(-1, -1, 8))             # b[i, j] = a[i, perm[i, j]]
    assert torch.equal(torch.gather(b, 1, fn.match_views(a, b)[..., None].expand(-1, -1, 8)), a)
