"""The building blocks: transforms, expectations, the comparison and its tolerance."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ocdsl.invariance import strategies as S
from ocdsl.invariance.declarations import axis_tokens
from ocdsl.invariance.transforms import (Expect, Permutation, Shift, Tolerance, apply_to_site,
                                         default_tolerance, deviation, expected_output,
                                         fill_border, parse_coords, permute, shift,
                                         shifted_valid, unit_per_pixel)

from .conftest import CI_EXAMPLES


def test_axis_tokens():
    assert axis_tokens("K") == ["K"]
    assert axis_tokens("H W") == ["H", "W"]
    assert axis_tokens("(H  W)") == ["(H W)"]
    assert axis_tokens("(H W) D") == ["(H W)", "D"]


def test_shift_moves_content_and_fills():
    x = torch.arange(5.0)
    assert shift(x, [0], [2], fill=-1).tolist() == [-1, -1, 0, 1, 2]
    assert shift(x, [0], [-1], fill=9).tolist() == [1, 2, 3, 4, 9]
    assert shifted_valid(x, [0], [2]).tolist() == [False, False, True, True, True]
    assert fill_border(x, [0], [1], fill=0).tolist() == [0, 1, 2, 3, 0]


@settings(max_examples=CI_EXAMPLES, deadline=None)
@given(h=st.integers(1, 7), w=st.integers(1, 7), data=st.data())
def test_shift_inside_the_frame_is_undone_by_the_opposite_shift(h, w, data):
    x = S.tensor_from_seed((2, h, w), data.draw(S.seeds()))
    t = data.draw(S.shifts((h, w), ("H", "W")))
    base = apply_to_site(x, (1, 2), t, moved=False)
    moved = apply_to_site(x, (1, 2), t, moved=True)
    back = shift(moved, (1, 2), tuple(-o for o in t.offsets))
    assert torch.equal(back, base)                         # nothing left the frame


def test_permute_and_expected_output():
    x = torch.arange(6.0).view(2, 3)
    p = Permutation((2, 0, 1), "K")
    assert permute(x, 1, p.perm).tolist() == [[2, 0, 1], [5, 3, 4]]
    both = expected_output(torch.arange(9.0).view(3, 3), Expect("m", "permute", (0, 1)), p)[0]
    assert both.tolist() == [[8, 6, 7], [2, 0, 1], [5, 3, 4]]   # a K x K matrix: both axes


def test_expected_coordinates_move_in_their_units():
    base = torch.zeros(1, 2, 2)
    e = Expect("c", "coords", components=(1, 0), scales=(unit_per_pixel("normalized", 5),
                                                          unit_per_pixel("pixels", 8)))
    t = Shift((1, -3), (1, 3), ("H", "W"), (5, 8))
    got, mask = expected_output(base, e, t)
    assert mask is None
    assert got[0, 0].tolist() == [-3.0, 0.5]                   # x += -3 px, y += 1 * 2/4


def test_units_and_coordinate_specs():
    assert unit_per_pixel("normalized", 3) == 1.0
    assert unit_per_pixel("normalized_edges", 4) == 0.5
    assert parse_coords("x normalized") == (0, "normalized")
    assert parse_coords("y pixels") == (1, "pixels")
    assert parse_coords("W") is None
    with pytest.raises(ValueError, match="unknown units"):
        unit_per_pixel("inches", 3)


def test_tolerance_defaults_per_dtype():
    assert default_tolerance(torch.float32) == Tolerance(1e-5, 1e-5)
    assert default_tolerance(torch.float64) == Tolerance(1e-10, 1e-8)
    assert default_tolerance(torch.float32, 1e-3) == Tolerance(1e-3, 1e-5)
    assert str(Tolerance(1e-5, 1e-5)) == "1e-05 + 1e-05*|expected|"


def test_deviation_reports_the_worst_violation():
    exp = torch.tensor([[1.0, 100.0], [0.0, 2.0]])
    got = exp + torch.tensor([[0.0, 5e-4], [3e-5, 0.0]])
    d = deviation("out", got, exp, Tolerance(1e-5, 1e-5))
    # 5e-4 is within 1e-5 + 1e-5 * 100 = 1.01e-3; 3e-5 at expected 0 is not
    assert not d.passed and d.index == (1, 0)
    assert d.max_abs == pytest.approx(5e-4, rel=1e-2)          # float32 rounding of 100 + 5e-4
    assert "out[1, 0]" in d.describe(Tolerance(1e-5, 1e-5))
    ok = deviation("out", exp, exp.clone(), Tolerance(1e-5, 1e-5))
    assert ok.passed and ok.max_abs == 0


def test_deviation_masks_and_nans():
    exp = torch.tensor([1.0, float("nan"), 3.0])
    got = torch.tensor([1.0, float("nan"), 7.0])
    assert deviation("x", got, exp, Tolerance(1e-5, 0), torch.tensor([True, True, False])).passed
    assert not deviation("x", torch.tensor([1.0, 0.0, 3.0]), exp, Tolerance(1e-5, 0)).passed
    bad = deviation("x", torch.zeros(2), torch.zeros(3), Tolerance(1e-5, 0))
    assert not bad.passed and math.isinf(bad.max_abs)


def test_long_permutations_print_as_cycles():
    p = Permutation(tuple([1, 0] + list(range(2, 20))), "N")
    assert p.describe() == "permutation of N (size 20), as cycles: (0 1)"
    assert Permutation((0, 1, 2), "K").describe() == "permutation of K (size 3): [0, 1, 2]"
    assert Permutation(tuple(range(30)), "N").cycles() == "identity"
