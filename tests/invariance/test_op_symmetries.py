"""Every symmetry an op declares in its registry entry holds on tiny instances, and the
checks reject deliberately broken modules with a readable, shrunk counterexample."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ocdsl.invariance import check_op, format_failures
from ocdsl.invariance import strategies as S
from ocdsl.invariance.op_checks import EXAMPLES
from ocdsl.ops import all_ops, get

from ._broken import DecoderWithSlotIndex, SlotAttentionWithSlotOffsets, SoftArgmaxOffByOne
from .conftest import CI_EXAMPLES, SLOW_EXAMPLES

OPS_WITH_SYMMETRIES = sorted(op.name for op in all_ops() if op.symmetries)


def test_the_shipped_ops_declare_their_symmetries():
    assert {"slot_attention", "alpha_composite", "spatial_broadcast_decoder",
            "soft_argmax"} <= set(OPS_WITH_SYMMETRIES)


@pytest.mark.parametrize("name", OPS_WITH_SYMMETRIES)
def test_every_op_with_symmetries_has_an_example(name):
    assert name in EXAMPLES, (f"op {name!r} declares symmetries: add an example in "
                              f"ocdsl/invariance/op_checks.py (register_example)")
    ex = EXAMPLES[name]
    op = get(name)
    assert set(op.outputs) >= set(ex.outputs)
    for sym in op.symmetries:
        for port in sym.output:
            assert port in ex.outputs, (name, port)


@pytest.mark.parametrize("name", OPS_WITH_SYMMETRIES)
def test_declared_op_symmetries_hold(name):
    results = check_op(name, examples=CI_EXAMPLES)
    assert len(results) == len(get(name).symmetries)
    assert all(r.passed for r in results), format_failures(results)
    assert all(r.examples >= 1 for r in results)


@pytest.mark.slow
@pytest.mark.parametrize("name", OPS_WITH_SYMMETRIES)
def test_declared_op_symmetries_hold_slow(name):
    results = check_op(name, examples=SLOW_EXAMPLES, seed=1)
    assert all(r.passed for r in results), format_failures(results)


def test_soft_argmax_symmetries_hold_exactly_in_float64():
    from ocdsl.invariance.transforms import Tolerance
    results = check_op("soft_argmax", examples=CI_EXAMPLES, dtype=torch.float64,
                       tolerance=Tolerance(1e-12, 0.0))
    assert all(r.passed for r in results), format_failures(results)


# ---- the checks can fail --------------------------------------------------------------------

def _failure(results, prop):
    (r,) = [r for r in results if r.property == prop]
    assert not r.passed, f"{prop} should have failed"
    return r


def test_slot_attention_with_per_slot_offsets_is_caught():
    results = check_op("slot_attention", examples=CI_EXAMPLES, module=SlotAttentionWithSlotOffsets)
    r = _failure(results, "permutation_equivariance K")
    text = format_failures(results)
    assert "permutation of K" in text and "largest deviation" in text
    assert "op slot_attention with params" in r.counterexample
    # the offsets do not touch the input order, so those symmetries still hold
    assert all(x.passed for x in results if x.property.endswith(" N"))


def test_soft_argmax_with_an_off_by_one_grid_is_caught():
    results = check_op("soft_argmax", examples=CI_EXAMPLES, module=SoftArgmaxOffByOne)
    r = _failure(results, "translation_equivariance W")
    # the smallest counterexample: a one-pixel shift on a 3-pixel axis moves x by 2/3, not 1
    assert "shift by +1 px along W (size 3" in r.counterexample or \
           "shift by -1 px along W (size 3" in r.counterexample
    assert "coords[" in r.counterexample and r.max_deviation == pytest.approx(1 / 3, rel=1e-4)
    _failure(results, "translation_equivariance H")
    assert _passed(results, "permutation_equivariance K")


def _passed(results, prop):
    (r,) = [r for r in results if r.property == prop]
    return r.passed


def test_decoder_with_a_slot_index_embedding_is_caught():
    results = check_op("spatial_broadcast_decoder", examples=CI_EXAMPLES,
                       module=DecoderWithSlotIndex)
    r = _failure(results, "permutation_equivariance K")
    assert "permutation of K (size 2): [1, 0]" in r.counterexample   # shrunk to one swap


# ---- strategies named by shape -------------------------------------------------------------

@settings(max_examples=CI_EXAMPLES, deadline=None)
@given(b=S.batch_sizes(3), k=st.integers(1, 4), d=st.integers(1, 4), data=st.data())
def test_strategies_draw_the_shapes_they_are_named_after(b, k, d, data):
    assert data.draw(S.slots_bkd(b, k, d)).shape == (b, k, d)
    assert data.draw(S.inputs_bnd(b, k + 1, d)).shape == (b, k + 1, d)
    assert data.draw(S.heatmaps_bkhw(b, k, 2, 3)).shape == (b, k, 2, 3)
    assert data.draw(S.rgb_bkchw(b, k, 3, 2, 2)).shape == (b, k, 3, 2, 2)
    assert data.draw(S.alpha_bk1hw(b, k, 2, 2)).shape == (b, k, 1, 2, 2)
    assert data.draw(S.features_bchw(b, d, 2, 2)).shape == (b, d, 2, 2)
    perm = data.draw(S.permutations_of(k, "K"))
    assert sorted(perm.perm) == list(range(k))
