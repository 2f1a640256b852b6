import pytest
import torch

from ocdsl.ops import get
from ocdsl.ops.slot_attention import SlotAttention
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym

PARAMS = {"num_slots": 3, "slot_size": 8, "mlp_hidden": 16, "iterations": 3}


def make(**kw) -> SlotAttention:
    op = get("slot_attention")
    return op.module(**op.init_args({"inputs": sym("B", 10, 6)}, {**PARAMS, **kw}))


def test_shape_rule_matches_module_random_init():
    inferred, out, _ = run_op("slot_attention", {"inputs": sym("B", 10, 6)}, PARAMS)
    assert inferred == {"slots": sym("B", 3, 8), "attention": sym("B", 3, 10)}


def test_shape_rule_matches_module_explicit_slots():
    inferred, _, _ = run_op("slot_attention",
                            {"inputs": sym("B", 10, 6), "slots": sym("B", 3, 8)}, PARAMS)
    assert inferred["attention"] == sym("B", 3, 10)


def test_attention_is_a_softmax_over_slots():
    _, attn = make()(torch.randn(2, 10, 6))
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(2, 10))   # sums to 1 over K
    assert not torch.allclose(attn.sum(dim=2), torch.ones(2, 3))     # not over N


def test_permutation_equivariance_in_initial_slots():
    m = make()
    x, s = torch.randn(2, 10, 6), torch.randn(2, 3, 8)
    perm = torch.tensor([2, 0, 1])
    slots, attn = m(x, slots=s)
    slots_p, attn_p = m(x, slots=s[:, perm])
    torch.testing.assert_close(slots_p, slots[:, perm], atol=1e-5, rtol=0)
    torch.testing.assert_close(attn_p, attn[:, perm], atol=1e-5, rtol=0)


def test_permutation_invariance_in_input_order():
    m = make()
    x, s = torch.randn(2, 10, 6), torch.randn(2, 3, 8)
    perm = torch.randperm(10)
    slots, attn = m(x, slots=s)
    slots_p, attn_p = m(x[:, perm], slots=s)
    torch.testing.assert_close(slots_p, slots, atol=1e-5, rtol=0)
    torch.testing.assert_close(attn_p, attn[:, :, perm], atol=1e-5, rtol=0)


def test_explicit_initial_slots_are_used():
    m = make()
    x, s = torch.randn(2, 10, 6), torch.randn(2, 3, 8)
    torch.manual_seed(1)
    a, _ = m(x, slots=s)
    torch.manual_seed(2)
    b, _ = m(x, slots=s)
    torch.testing.assert_close(a, b)                    # no sampling when slots are given
    c, _ = m(x, slots=s + 1.0)
    assert not torch.allclose(a, c)
    r1, _ = m(x)
    r2, _ = m(x)
    assert not torch.allclose(r1, r2)                   # sampled when they are not


def test_num_slots_override_at_run_time():
    slots, attn = make()(torch.randn(2, 10, 6), num_slots=5)
    assert slots.shape == (2, 5, 8) and attn.shape == (2, 5, 10)


def _losing_slot_case(epsilon):
    """Slot 1 gets exactly zero attention at every input (float32 underflow)."""
    m = SlotAttention(in_features=2, num_slots=2, slot_size=2, iterations=1, epsilon=epsilon)
    with torch.no_grad():
        m.to_k.weight.copy_(1000 * torch.eye(2))
        m.to_q.weight.copy_(1000 * torch.eye(2))
    x = torch.tensor([[[1.0, -1.0]] * 3])
    s = torch.tensor([[[1.0, -1.0], [-1.0, 1.0]]])
    return m(x, slots=s)


def test_epsilon_keeps_a_losing_slot_finite():
    slots, attn = _losing_slot_case(1e-8)
    assert (attn[0, 1] == 0).all()
    assert torch.isfinite(slots).all()
    slots0, _ = _losing_slot_case(0.0)
    assert torch.isnan(slots0).any()                    # 0 / 0 without the epsilon
    assert make().epsilon == 1e-8


def test_implicit_grad_detaches_before_last_iteration():
    x = torch.randn(2, 10, 6)
    plain, implicit = make(), make(implicit_grad=True)
    implicit.load_state_dict(plain.state_dict())
    torch.manual_seed(3)
    a, _ = plain(x)
    torch.manual_seed(3)
    b, _ = implicit(x)
    torch.testing.assert_close(a, b)                    # same values
    a.sum().backward()
    b.sum().backward()
    assert plain.slots_mu.grad is not None and plain.slots_mu.grad.abs().sum() > 0
    assert implicit.slots_mu.grad is None               # no gradient through the detach
    assert implicit.to_q.weight.grad.abs().sum() > 0


def test_keras_init_and_ln_eps():
    m = make(init="keras", ln_eps=1e-3)
    assert m.norm_inputs.eps == 1e-3 and m.norm_slots.eps == 1e-3 and m.norm_mlp.eps == 1e-3
    assert (m.gru.bias_ih == 0).all()
    bound = (6 / 9) ** 0.5
    assert m.slots_mu.abs().max() <= bound
    assert m.to_k.bias is None and m.to_q.bias is None and m.to_v.bias is None


def test_bad_initial_slots_say_expected_and_got():
    with pytest.raises(ShapeError, match=r"expected \(b, k, d\) = \(B, 3, 8\), got \(B, 3, 6\)"):
        get("slot_attention").infer({"inputs": sym("B", 10, 6), "slots": sym("B", 3, 6)}, PARAMS)


def test_inputs_rank_error():
    with pytest.raises(ShapeError, match=r"expected 3 axes .*got 4 axes"):
        get("slot_attention").infer({"inputs": sym("B", 6, 4, 4)}, PARAMS)


def test_declared_symmetries():
    kinds = {(s.kind, tuple(s.transform.items())) for s in get("slot_attention").symmetries}
    assert ("permutation_equivariance", (("slots", "K"),)) in kinds
    assert ("permutation_invariance", (("inputs", "N"),)) in kinds


def test_learned_slot_init_is_deterministic_and_distinct_per_slot():
    m = make(slot_init="learned")
    assert not hasattr(m, "slots_mu") and m.slots_init.shape == (1, 3, 8)
    x = torch.randn(2, 10, 6)
    torch.manual_seed(0)
    a, attn_a = m(x)
    torch.manual_seed(1)
    b, _ = m(x)
    torch.testing.assert_close(a, b)                    # no sampling: the RNG plays no part
    assert not torch.allclose(attn_a[:, 0], attn_a[:, 1])  # slots differ from the first step
    a.sum().backward()
    assert m.slots_init.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="exactly 3 slots"):
        m(x, num_slots=5)


def test_learned_slot_init_equals_explicit_slots():
    m = make(slot_init="learned")
    x = torch.randn(2, 10, 6)
    a, _ = m(x)
    b, _ = m(x, slots=m.slots_init.detach().expand(2, -1, -1))
    torch.testing.assert_close(a, b)


def test_straight_through_keeps_values_and_passes_gradient_to_initial_slots():
    x = torch.randn(2, 10, 6)
    plain, st = make(slot_init="learned"), make(slot_init="learned", straight_through=True)
    st.load_state_dict(plain.state_dict())
    a, _ = plain(x)
    b, _ = st(x)
    torch.testing.assert_close(a, b)                    # same forward values
    a.sum().backward()
    b.sum().backward()
    # BO-QSA: d out / d init is the gradient of the last iteration alone (identity
    # through the detached iterate), not the gradient through all T iterations.
    one = make(slot_init="learned", iterations=1)
    one.load_state_dict(plain.state_dict())
    iterate = plain.slots_init.detach().expand(2, -1, -1)
    for _ in range(2):
        iterate, _ = one(x, slots=iterate)
    iterate = iterate.detach().requires_grad_(True)
    out, _ = one(x, slots=iterate)
    out.sum().backward()
    torch.testing.assert_close(st.slots_init.grad, iterate.grad.sum(0, keepdim=True))
    assert not torch.allclose(st.slots_init.grad, plain.slots_init.grad)


def test_straight_through_and_implicit_grad_exclude_each_other():
    with pytest.raises(ShapeError, match="exclude each other"):
        get("slot_attention").infer({"inputs": sym("B", 10, 6)},
                                    {**PARAMS, "implicit_grad": True, "straight_through": True})


def _one_head(sa, q, k, v, lo, hi):
    """Alg. 1 l.7-8 for the features lo:hi alone, written out as a single-head computation."""
    logits = torch.einsum("bnd,bkd->bkn", k[..., lo:hi], q[..., lo:hi])
    attn = logits.softmax(dim=1)
    w = attn + sa.epsilon
    w = w / w.sum(dim=-1, keepdim=True)
    return torch.einsum("bkn,bnd->bkd", w, v[..., lo:hi]), attn


def test_multi_head_is_each_head_computed_alone_then_concatenated():
    torch.manual_seed(1)
    sa = SlotAttention(in_features=6, num_slots=3, slot_size=8, heads=2).double()
    q = torch.randn(2, 3, 8, dtype=torch.float64) * sa.scale
    k, v = torch.randn(2, 10, 8, dtype=torch.float64), torch.randn(2, 10, 8, dtype=torch.float64)
    updates, attn = sa.multi_head(q, k, v)
    (u0, a0), (u1, a1) = _one_head(sa, q, k, v, 0, 4), _one_head(sa, q, k, v, 4, 8)
    assert torch.allclose(updates, torch.cat([u0, u1], dim=-1), atol=1e-12)
    assert torch.allclose(attn, (a0 + a1) / 2, atol=1e-12)
    assert sa.scale == pytest.approx(4 ** -0.5)          # sqrt of the per-head size


def test_multi_head_slots_stay_permutation_equivariant():
    torch.manual_seed(2)
    sa = SlotAttention(in_features=6, num_slots=4, slot_size=8, heads=4).double()
    x = torch.randn(2, 12, 6, dtype=torch.float64)
    s0 = torch.randn(2, 4, 8, dtype=torch.float64)
    perm = torch.tensor([2, 0, 3, 1])
    slots, attn = sa(x, s0)
    slots_p, attn_p = sa(x, s0[:, perm])
    assert torch.allclose(slots_p, slots[:, perm], atol=1e-10)
    assert torch.allclose(attn_p, attn[:, perm], atol=1e-10)
    assert torch.allclose(attn.sum(dim=1), torch.ones(2, 12, dtype=torch.float64), atol=1e-12)


def test_heads_must_divide_the_slot_size():
    with pytest.raises(ShapeError, match="divisor of slot_size 8"):
        get("slot_attention").infer({"inputs": sym("B", 5, 6)}, {"num_slots": 3, "slot_size": 8, "heads": 3})
    _, out, module = run_op("slot_attention", {"inputs": sym("B", 5, 6)},
                            {"num_slots": 3, "slot_size": 8, "heads": 2})
    assert module.heads == 2 and out["attention"].shape == (2, 3, 5)
    _, _, one = run_op("slot_attention", {"inputs": sym("B", 5, 6)}, {"num_slots": 3, "slot_size": 8})
    assert one.heads == 1
