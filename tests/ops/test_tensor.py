import einops
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ocdsl.ops import get
from ocdsl.ops.tensor import rearrange_shape
from ocdsl.shapes import Dim, ShapeError

from ._helpers import run_op, sym


def test_flatten_hw():
    inferred, _, _ = run_op("rearrange", {"x": sym("B", 4, 5, 7)},
                            {"pattern": "b c h w -> b (h w) c"})
    assert inferred["out"] == sym("B", 35, 4)


def test_batch_groups_stay_symbolic():
    out = rearrange_shape("b k d -> (b k) d", sym("B", 4, 8))
    assert out == (Dim(4, ("B",)), Dim.of(8))


def test_split_group_with_axes():
    inferred, _, _ = run_op("rearrange", {"x": sym("B", 12, 3)},
                            {"pattern": "b (h w) c -> b c h w", "axes": {"h": 4}})
    assert inferred["out"] == sym("B", 3, 4, 3)


def test_ellipsis_and_unit_axes():
    assert rearrange_shape("b ... c -> b c ...", sym("B", 2, 3, 4)) == sym("B", 4, 2, 3)
    assert rearrange_shape("b c -> b 1 c ()", sym("B", 5)) == sym("B", 1, 5, 1)
    run_op("rearrange", {"x": sym("B", 2, 3, 4)}, {"pattern": "b ... c -> b (...) c"})


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 5), w=st.integers(1, 5), c=st.integers(1, 4))
def test_hw_patterns_match_einops(h, w, c):
    x = torch.zeros(2, c, h, w)
    for pattern in ("b c h w -> b (h w) c", "b c h w -> (b h) w c", "b c h w -> b (c h w)"):
        got = rearrange_shape(pattern, sym("B", c, h, w))
        assert tuple(d.coeff * (2 if d.symbols else 1) for d in got) == \
            einops.rearrange(x, pattern).shape


def test_rank_mismatch_says_expected_and_got():
    with pytest.raises(ShapeError, match=r"expected an input with 4 axes .*got 3 axes \(B, 4, 5\)"):
        get("rearrange").infer({"x": sym("B", 4, 5)}, {"pattern": "b c h w -> b (h w) c"})


@pytest.mark.parametrize("pattern,msg", [
    ("b c h w", "exactly one '->'"),
    ("b c h w -> b (h w)", "same axis names"),
    ("b c (h w -> b c h w", "expected '\\)'"),
    ("b h h -> b h", "once"),
])
def test_bad_patterns(pattern, msg):
    with pytest.raises(ShapeError, match=msg):
        rearrange_shape(pattern, sym("B", 2, 3, 4))


def test_indivisible_group():
    with pytest.raises(ShapeError, match="divisible"):
        rearrange_shape("b (h w) -> b h w", sym("B", 10), {"h": 3})
