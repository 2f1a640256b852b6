"""Contrastive losses (contrastive slot attention, Baldassarre & Azizpour 2022, Eq. 1-3):
NT-Xent against a loop over the items, Hungarian matching of the views' tokens, and the
symmetry the matching gives (permuting one view's slots changes nothing)."""

import math

import pytest
import torch
import torch.nn.functional as F

from ocdsl.losses.functions import FUNCTIONS, cossim_matched, ctr_all, ctr_img, match_views, nt_xent
from ocdsl.spec import expr as E

F64 = torch.float64


def _nt_xent_by_hand(z1, z2, t):
    """SimCLR Eq. 1 one item at a time."""
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        pos = i + n if i < n else i - n
        num = math.exp(float(z[i] @ z[pos]) / t)
        den = sum(math.exp(float(z[i] @ z[j]) / t) for j in range(2 * n) if j != i)
        total += -math.log(num / den)
    return total / (2 * n)


def test_nt_xent_equals_the_per_item_formula():
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 7, dtype=F64), torch.randn(5, 7, dtype=F64)
    assert nt_xent(z1, z2, 0.3).item() == pytest.approx(_nt_xent_by_hand(z1, z2, 0.3), rel=1e-10)


def test_nt_xent_limits():
    torch.manual_seed(1)
    z = torch.randn(8, 16, dtype=F64)
    assert nt_xent(z, z * 3.0, 0.01).item() < 1e-6            # identical directions: no loss
    same = torch.ones(8, 16, dtype=F64)                         # all items alike: chance level
    assert nt_xent(same, same, 0.1).item() == pytest.approx(math.log(15), rel=1e-10)


def test_match_views_recovers_a_permutation_of_noisy_tokens():
    torch.manual_seed(2)
    a = torch.randn(3, 6, 32)
    perms = torch.stack([torch.randperm(6) for _ in range(3)])          # b[i, j] = a[i, perms[i, j]]
    b = torch.stack([a[i, perms[i]] for i in range(3)]) + 0.01 * torch.randn(3, 6, 32)
    got = match_views(a, b)                                             # b[i, got[i, j]] <-> a[i, j]
    for i in range(3):
        assert torch.equal(perms[i][got[i]], torch.arange(6))


@pytest.mark.parametrize("loss", [ctr_all, ctr_img])
def test_object_losses_do_not_depend_on_the_order_of_one_views_slots(loss):
    torch.manual_seed(3)
    a, b = torch.randn(4, 5, 8, dtype=F64), torch.randn(4, 5, 8, dtype=F64)
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert loss(a, b[:, perm], 0.1).item() == pytest.approx(loss(a, b, 0.1).item(), rel=1e-12)


def test_ctr_img_is_nt_xent_per_image_and_ctr_all_over_the_batch():
    torch.manual_seed(4)
    a = torch.randn(3, 4, 8, dtype=F64)
    b = a + 0.1 * torch.randn(3, 4, 8, dtype=F64)                      # already matched (identity)
    per_image = sum(nt_xent(a[i], b[i], 0.2) for i in range(3)) / 3
    assert ctr_img(a, b, 0.2).item() == pytest.approx(per_image.item(), rel=1e-10)
    assert ctr_all(a, b, 0.2).item() == pytest.approx(nt_xent(a.flatten(0, 1), b.flatten(0, 1), 0.2).item(),
                                                      rel=1e-10)
    # more negatives, harder: the batch-wide loss is the larger one here
    assert ctr_all(a, b, 0.2) > ctr_img(a, b, 0.2)


def test_cossim_is_zero_for_perfect_predictions_and_stops_the_targets_gradient():
    torch.manual_seed(5)
    f1 = torch.randn(2, 4, 8, dtype=F64, requires_grad=True)
    perm = torch.tensor([2, 0, 3, 1])
    f2 = (f1.detach()[:, perm] * 2.0).requires_grad_(True)              # view 2 = view 1 permuted
    p1 = f1.detach()[:, :] * 5.0                                        # predicts its match exactly
    p2 = f2.detach() * 0.5
    assert cossim_matched(p1, p2, f1, f2).item() == pytest.approx(0.0, abs=1e-12)
    q1, q2 = torch.randn(2, 4, 8, dtype=F64, requires_grad=True), torch.randn(2, 4, 8, dtype=F64)
    loss = cossim_matched(q1, q2, f1, f2)
    assert 0 < loss.item() < 1
    loss.backward()
    assert f1.grad is None and f2.grad is None and q1.grad.abs().sum() > 0


def test_the_losses_are_callable_from_spec_expressions():
    for name, arity in (("nt_xent", 3), ("ctr_all", 3), ("ctr_img", 3), ("cossim_matched", 4)):
        assert FUNCTIONS[name].min_args == arity
    tree = E.parse("nt_xent(g1, g2, 0.1) + ctr_all(o1, o2, 0.1)")
    assert E.calls(tree) == {"nt_xent", "ctr_all"} and {"g1", "g2", "o1", "o2"} <= E.names(tree)


@pytest.mark.parametrize("call, match", [
    (lambda: nt_xent(torch.zeros(2, 3), torch.zeros(3, 3), 0.1), "same shape"),
    (lambda: nt_xent(torch.zeros(2, 3), torch.zeros(2, 3), 0.0), "positive temperature"),
    (lambda: ctr_all(torch.zeros(2, 3), torch.zeros(2, 3), 0.1), r"\(b k d\)"),
])
def test_bad_inputs_say_what_was_expected(call, match):
    with pytest.raises(ValueError, match=match):
        call()
