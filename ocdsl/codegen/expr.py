"""Spec expression AST -> Python source for the generated module.

Only the AST's own node types are translated: numbers, references (resolved by the
caller to ``outputs["composite.image"]``, ``sched["lr"]``, a literal dim, ...), arithmetic,
comparisons, ``a if c else b`` and calls of registered functions, written as
``fn.<name>(...)``. Parentheses are added only where Python's precedence needs them, so
the generated line reads like the spec line.
"""

from __future__ import annotations

from typing import Callable

from ocdsl.losses.functions import FUNCTIONS
from ocdsl.spec import expr as E

__all__ = ["to_python"]

_PREC = {"if": 0, "cmp": 3, "+": 4, "-": 4, "*": 5, "/": 5, "//": 5, "%": 5, "unary": 6, "**": 7, "atom": 8}


def _prec(e) -> int:
    if isinstance(e, E.IfElse):
        return _PREC["if"]
    if isinstance(e, E.Compare):
        return _PREC["cmp"]
    if isinstance(e, E.BinOp):
        return _PREC[e.op]
    if isinstance(e, E.Unary):
        return _PREC["unary"]
    if isinstance(e, E.Num) and (e.value < 0):
        return _PREC["unary"]
    return _PREC["atom"]


def to_python(e, resolve: Callable[[str], str]) -> str:
    """Python source of expression ``e``; ``resolve(name)`` gives the source of a reference
    (``"step"``, ``"lr"``, ``"composite.image"``). Raises ValueError on an unknown node."""

    def wrap(child, need: int, strict: bool) -> str:
        s = go(child)
        p = _prec(child)
        return f"({s})" if (p < need or (strict and p == need)) else s

    def go(x) -> str:
        if isinstance(x, E.Num):
            return repr(x.value)
        if isinstance(x, E.Name):
            return resolve(x.id)
        if isinstance(x, E.Attr):
            return resolve(f"{x.node}.{x.port}")
        if isinstance(x, E.Unary):
            op = "not " if x.op == "not" else x.op
            return op + wrap(x.operand, _PREC["unary"], False)
        if isinstance(x, E.BinOp):
            p = _PREC[x.op]
            if x.op == "**":  # right-associative
                return f"{wrap(x.left, p, True)} ** {wrap(x.right, _PREC['unary'], False)}"
            return f"{wrap(x.left, p, False)} {x.op} {wrap(x.right, p, True)}"
        if isinstance(x, E.Compare):
            p = _PREC["cmp"]
            return f"{wrap(x.left, p, True)} {x.op} {wrap(x.right, p, True)}"
        if isinstance(x, E.IfElse):
            p = _PREC["if"]
            return f"{wrap(x.body, p, True)} if {wrap(x.test, p, True)} else {wrap(x.orelse, p, False)}"
        if isinstance(x, E.Call):
            if x.func not in FUNCTIONS:
                raise ValueError(f"unknown function {x.func!r}")
            return f"fn.{x.func}(" + ", ".join(go(a) for a in x.args) + ")"
        raise ValueError(f"cannot translate expression node {type(x).__name__}")

    return go(e)
