"""Shape signatures ("B K (H W) D")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ocdsl.errors import SpecError
from ocdsl.shapes import shape
from ocdsl.spec.shape import parse_signature


@pytest.mark.parametrize("text, groups", [
    ("B K (H W) D", (("B",), ("K",), ("H", "W"), ("D",))),
    ("B 3 H W", (("B",), (3,), ("H",), ("W",))),
    ("B (H W) F", (("B",), ("H", "W"), ("F",))),
    ("  B   K  ", (("B",), ("K",))),
    ("B (K 2) ()", (("B",), ("K", 2), ())),
    ("B H3 x_y", (("B",), ("H3",), ("x_y",))),
])
def test_parse(text, groups):
    sig = parse_signature(text)
    assert sig.groups == groups and sig.text == text


def test_resolve():
    sig = parse_signature("B K (H W) 2")
    assert sig.resolve({"K": 4, "H": 3, "W": 5}) == shape("B", 4, 15, 2)
    assert sig.axis_names() == ["B", "K", "(H W)", "2"]


@pytest.mark.parametrize("text, col, words", [
    ("B (H W", 7, ["missing ')'"]),
    ("B H W)", 6, ["unmatched ')'"]),
    ("B ((H W) C)", 4, ["nested"]),
    ("B, H", 2, ["unexpected character ','", "spaces"]),
    ("B K*D", 4, ["'*'"]),
    ("B 0 H", 3, ["must be positive"]),
    ("B 3H", 3, ["cannot start with a digit"]),
    ("B ... D", 3, ["ellipsis"]),
    ("", 0, ["no axes"]),
])
def test_bad_signatures(text, col, words):
    with pytest.raises(SpecError) as ei:
        parse_signature(text, file="s.toml", line=4, col=10, keypath=("model", "inputs", "x"))
    d = ei.value.diagnostics[0]
    assert d.line == 4 and d.col == (10 + col - 1 if col else 10)
    for w in words:
        assert w in d.format()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["B", "K", "H", "W", "D"]), st.integers(1, 64).map(str),
                          st.lists(st.sampled_from(["H", "W", "C", "2"]), max_size=3).map(
                              lambda xs: "(" + " ".join(xs) + ")")), min_size=1, max_size=6))
def test_roundtrip(axes):
    sig = parse_signature(" ".join(axes))
    assert len(sig.groups) == len(axes)
    again = parse_signature(" ".join(sig.axis_names()))
    assert again.groups == sig.groups
