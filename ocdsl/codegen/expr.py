"""Spec expression AST -> Python source for the generated module.

The printing is :func:`ocdsl.spec.expr.unparse`, the printer error messages use too (one
precedence table, Python's): this module only says how references and calls read in the
generated module. References are resolved by the caller (``outputs['composite.image']``,
``sched['lr']``, a literal dim, ...) and calls of registered functions are written
``fn.<name>(...)``. Parentheses are added only where precedence needs them, so the
generated line reads like the spec line.
"""

from __future__ import annotations

from typing import Callable

from ocdsl.losses.functions import FUNCTIONS
from ocdsl.spec import expr as E

__all__ = ["to_python"]


def _function(name: str) -> str:
    if name not in FUNCTIONS:
        raise ValueError(f"unknown function {name!r}")
    return f"fn.{name}"


def to_python(e: E.Expr, resolve: Callable[[str], str]) -> str:
    """Python source of expression ``e``; ``resolve(name)`` gives the source of a reference
    (``"step"``, ``"lr"``, ``"composite.image"``). Raises ValueError on an unknown function
    or a node that is not an expression."""
    try:
        return E.unparse(e, ref=resolve, func=_function)
    except TypeError as err:
        raise ValueError(f"cannot translate expression: {err}") from None
