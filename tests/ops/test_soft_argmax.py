"""soft_argmax (AST-Seg Eq. 10-16): shapes, the coordinate grid, and Proposition 2.1
(translation equivariance) -- exact while the attention mass stays inside the frame, and
biased by a known amount when it leaves."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ocdsl.invariance import strategies as S
from ocdsl.invariance.transforms import fill_border, shift
from ocdsl.ops import get
from ocdsl.ops.soft_argmax import SoftArgmax, normalized_grid
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym

CI_EXAMPLES = 15
NO_MASS = -1e4          # exp underflows to exactly 0 in float32 and float64


def test_shape_rule_matches_module():
    inferred, out, _ = run_op("soft_argmax", {"logits": sym("B", 3, 5, 4),
                                              "features": sym("B", 6, 5, 4)}, {})
    assert inferred == {"coords": sym("B", 3, 2), "features": sym("B", 3, 6),
                        "attention": sym("B", 3, 5, 4)}


def test_features_are_optional():
    inferred, out, _ = run_op("soft_argmax", {"logits": sym("B", 3, 5, 4)}, {"temperature": 0.5})
    assert inferred["features"] == sym("B", 3, 0) and out["features"].shape == (2, 3, 0)


@pytest.mark.parametrize("shapes, match", [
    ({"logits": sym("B", 3, 5)}, "expected 4 axes"),
    ({"logits": sym("B", 3, 1, 4)}, "expected h >= 2"),
    ({"logits": sym("B", 3, 5, 1)}, "expected w >= 2"),
    ({"logits": sym("B", 3, 5, 4), "features": sym("B", 6, 5, 3)},
     r"expected \(b, c, h, w\) = \(B, 6, 5, 4\).*got \(B, 6, 5, 3\)"),
])
def test_shape_errors_say_expected_and_got(shapes, match):
    with pytest.raises(ShapeError, match=match):
        get("soft_argmax").infer(shapes, {})


def test_grid_is_eq_12_13():
    torch.testing.assert_close(normalized_grid(5, dtype=torch.float64),
                               torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64))
    assert normalized_grid(2).tolist() == [-1.0, 1.0]


def test_peaked_maps_give_pixel_centres_and_uniform_maps_the_centre():
    h, w = 5, 3
    logits = torch.full((1, 3, h, w), NO_MASS)
    logits[0, 0, 0, 0] = 0          # top-left pixel centre -> (-1, -1)
    logits[0, 1, 4, 2] = 0          # bottom-right -> (1, 1)
    logits[0, 2] = 0                # uniform -> (0, 0)
    feats = torch.arange(2 * h * w, dtype=torch.float32).view(1, 2, h, w)
    coords, pooled, attn = SoftArgmax()(logits, feats)
    torch.testing.assert_close(coords[0], torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))
    torch.testing.assert_close(pooled[0, 0], feats[0, :, 0, 0])            # Eq. 16
    torch.testing.assert_close(pooled[0, 2], feats[0].mean(dim=(1, 2)))
    torch.testing.assert_close(attn.sum(dim=(2, 3)), torch.ones(1, 3))     # softmax over h*w


def test_temperature_sharpens():
    logits = torch.tensor([[[[0.0, 1.0, 0.0]] * 2]])
    hot = SoftArgmax(temperature=0.01)(logits)[0]
    assert hot[0, 0, 0].abs() < 1e-6 and SoftArgmax()(logits)[2].max() < 0.5
    with pytest.raises(ValueError, match="temperature"):
        SoftArgmax(temperature=0.0)


def test_registry_declares_proposition_2_1():
    syms = get("soft_argmax").symmetries
    kinds = [(s.kind, dict(s.transform), s.output.get("coords")) for s in syms]
    assert ("translation_equivariance", {"logits": "W", "features": "W"}, "x normalized") in kinds
    assert ("translation_equivariance", {"logits": "H", "features": "H"}, "y normalized") in kinds
    doc = get("soft_argmax").doc
    for section in ("Args:", "Shapes:", "Raises:", "Source:", "Eq. 12", "Proposition 2.1"):
        assert section in doc


# ---- Proposition 2.1 -----------------------------------------------------------------------

@st.composite
def heatmaps_inside_the_frame(draw):
    """(logits, features, (u, v)): maps with no mass within |u| / |v| pixels of the border,
    and the shift (u along w, v along h) that keeps the mass inside."""
    b, k, c = draw(S.batch_sizes(2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(2, 10)), draw(st.integers(2, 10))
    t = draw(S.shifts((h, w), ("H", "W")))
    logits = draw(S.heatmaps_bkhw(b, k, h, w, torch.float64))
    feats = draw(S.features_bchw(b, c, h, w, torch.float64))
    logits = fill_border(logits, (2, 3), t.margins, NO_MASS)
    return logits, feats, t.offsets[1], t.offsets[0]


@settings(max_examples=CI_EXAMPLES, deadline=None)
@given(heatmaps_inside_the_frame())
def test_proposition_2_1_shift_moves_coordinates_exactly(case):
    logits, feats, u, v = case
    h, w = logits.shape[-2:]
    m = SoftArgmax()
    coords, pooled, attn = m(logits, feats)
    moved = shift(logits, (2, 3), (v, u), NO_MASS)
    coords2, pooled2, attn2 = m(moved, shift(feats, (2, 3), (v, u), 0.0))
    delta = torch.tensor([2 * u / (w - 1), 2 * v / (h - 1)], dtype=torch.float64)
    torch.testing.assert_close(coords2, coords + delta, atol=1e-12, rtol=0)     # exact
    torch.testing.assert_close(pooled2, pooled, atol=1e-12, rtol=0)             # invariant
    torch.testing.assert_close(attn2, shift(attn, (2, 3), (v, u), 0.0), atol=1e-12, rtol=0)


def test_mass_leaving_the_frame_biases_toward_the_interior():
    """With mass m leaving (none entering), x is off by m / (1 - m) * (x_mean - x_out)."""
    torch.manual_seed(0)
    w, u = 7, 2
    logits = torch.randn(1, 1, 1, w, dtype=torch.float64)
    m = SoftArgmax()
    (x0, _), (x1, _) = m(logits)[0][0, 0], m(shift(logits, (3,), (u,), float("-inf")))[0][0, 0]
    p = logits.flatten().softmax(0)
    grid = normalized_grid(w, dtype=torch.float64)
    leaving = p[w - u:].sum()                       # the last u columns leave on the right
    x_out = (p[w - u:] * grid[w - u:]).sum() / leaving
    bias = leaving / (1 - leaving) * (x0 - x_out)
    exact = x0 + 2 * u / (w - 1)
    torch.testing.assert_close(x1 - exact, bias, atol=1e-12, rtol=0)
    assert bias < 0                                 # pulled back toward the interior


def test_the_checker_flags_mass_leaving_the_frame():
    """Without the blanked border, the translation check fails: the property is conditional."""
    from ocdsl.invariance.op_checks import EXAMPLES, OpExample, check_op
    ex = EXAMPLES["soft_argmax"]
    loose = OpExample(ex.instances, ex.outputs, fills={"logits": 0.0, "features": 0.0})
    from ocdsl.invariance.op_checks import op_properties
    from ocdsl.invariance.search import search
    props = op_properties(get("soft_argmax"), example=loose)
    r = search(props[0], CI_EXAMPLES)
    assert not r.passed and "coords[" in r.counterexample
    assert all(x.passed for x in check_op("soft_argmax", examples=3))
