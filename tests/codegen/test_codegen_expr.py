"""Codegen prints expressions with the spec's one printer: the Python it writes computes
what the spec's interpreter computes, parenthesised by the same table."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from ocdsl.codegen.expr import to_python
from ocdsl.errors import SpecError
from ocdsl.losses import functions as fn
from ocdsl.spec import expr as E

from tests.spec.test_spec_expr import exprs


def _python(e: E.Expr) -> str:
    return to_python(e, lambda ref: f"env[{ref!r}]")


@settings(max_examples=120, deadline=None)
@given(exprs, st.integers(1, 9), st.integers(-3, 3))
def test_generated_python_computes_what_the_interpreter_computes(e, a, b):
    env = {"a": a, "b": b, "step": 7, "K": 4, "node.out": 2.5, "node.masks": 0.5}
    try:
        want = E.evaluate(e, env)
    except SpecError:
        return
    if isinstance(want, complex) or (isinstance(want, int) and abs(want) > 10 ** 300):
        return
    got = eval(_python(e), {"fn": fn, "env": env})  # noqa: S307 - our own generated text
    if isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(want)


@settings(max_examples=80, deadline=None)
@given(exprs)
def test_codegen_and_messages_print_the_same_text(e):
    """Same parentheses in both: only references and function names are spelled differently."""
    assert _python(e) == E.unparse(e, ref=lambda r: f"env[{r!r}]", func=lambda f: f"fn.{f}")
    assert to_python(e, lambda ref: ref) == E.unparse(e, func=lambda f: f"fn.{f}")


@pytest.mark.parametrize("e, text, value", [
    (E.BinOp("**", E.Num(-2), E.Name("x")), "(-2) ** x", 4),        # not -(2 ** 2)
    (E.BinOp("-", E.Name("x"), E.Num(-1)), "x - -1", 3),
    (E.BinOp("**", E.Name("x"), E.BinOp("**", E.Num(3), E.Num(2))), "x ** 3 ** 2", 512),
    (E.BinOp("**", E.BinOp("**", E.Name("x"), E.Num(3)), E.Num(2)), "(x ** 3) ** 2", 64),
    (E.Unary("-", E.BinOp("**", E.Name("x"), E.Num(2))), "-x ** 2", -4),
    (E.BinOp("-", E.Name("x"), E.BinOp("-", E.Num(1), E.Num(1))), "x - (1 - 1)", 2),
    (E.Compare("<", E.Compare("<", E.Num(1), E.Name("x")), E.Num(2)), "(1 < x) < 2", True),
    (E.IfElse(E.Name("x"), E.IfElse(E.Num(0), E.Num(1), E.Num(2)), E.Num(3)), "(1 if 0 else 2) if x else 3", 2),
])
def test_parentheses_follow_python(e, text, value):
    assert E.unparse(e) == text
    assert _python(e) == text.replace("x", "env['x']")
    assert eval(text, {"x": 2}) == value  # noqa: S307 - a literal above


def test_unknown_function_or_node_is_a_value_error():
    with pytest.raises(ValueError, match="unknown function 'nope'"):
        to_python(E.Call("nope", (E.Num(1),)), str)
    with pytest.raises(ValueError, match="cannot translate"):
        to_python(E.BinOp("+", E.Num(1), "not a node"), str)
