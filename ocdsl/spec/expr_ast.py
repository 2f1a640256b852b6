"""The tree of a spec expression: frozen dataclass nodes (:class:`Num`, :class:`Name`,
:class:`Attr`, :class:`Unary`, :class:`BinOp`, :class:`Compare`, :class:`IfElse`,
:class:`Call`) that keep the line and column they came from, their inspection (:func:`walk`,
:func:`names`, :func:`calls`) and the one printer (:func:`unparse`). Parsing and evaluation
are in ocdsl/spec/expr.py, which re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Union

__all__ = [
    "Expr", "Num", "Name", "Attr", "Unary", "BinOp", "Compare", "IfElse", "Call",
    "names", "calls", "walk", "unparse", "precedence", "BINARY_OPS", "COMPARE_OPS", "UNARY_OPS",
    "PRECEDENCE",
]


# ---- AST ------------------------------------------------------------------------------------
# ``line``/``col`` are 1-based positions in the spec file when the parser was told where the
# expression starts, else positions within the expression text. They are not part of
# equality: ``parse("a+1") == parse("a + 1")``.

def _pos() -> Any:
    return field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Num:
    """A number literal: ``3``, ``0.5``, ``1e-4`` (int when written without ``.``/``e``)."""

    value: int | float
    line: int = _pos()
    col: int = _pos()


@dataclass(frozen=True)
class Name:
    """A name: a dim, schedule, loss, model input, node (its default output) or ``step``."""

    id: str
    line: int = _pos()
    col: int = _pos()


@dataclass(frozen=True)
class Attr:
    """A named output port of a node: ``composite.image``."""

    node: str
    port: str
    line: int = _pos()
    col: int = _pos()

    @property
    def text(self) -> str:
        return f"{self.node}.{self.port}"


@dataclass(frozen=True)
class Unary:
    """``-x`` or ``+x``."""

    op: str
    operand: "Expr"
    line: int = _pos()
    col: int = _pos()


@dataclass(frozen=True)
class BinOp:
    """``left op right`` with op one of ``+ - * / // % **``; position is the operator's."""

    op: str
    left: "Expr"
    right: "Expr"
    line: int = _pos()
    col: int = _pos()


@dataclass(frozen=True)
class Compare:
    """``left op right`` with op one of ``< <= > >= == !=`` (comparisons do not chain)."""

    op: str
    left: "Expr"
    right: "Expr"
    line: int = _pos()
    col: int = _pos()


@dataclass(frozen=True)
class IfElse:
    """``body if test else orelse`` (only the chosen branch is evaluated)."""

    test: "Expr"
    body: "Expr"
    orelse: "Expr"
    line: int = _pos()
    col: int = _pos()


@dataclass(frozen=True)
class Call:
    """``func(args...)``; ``func`` is a name in :data:`FUNCTIONS`."""

    func: str
    args: tuple["Expr", ...]
    line: int = _pos()
    col: int = _pos()


Expr = Union[Num, Name, Attr, Unary, BinOp, Compare, IfElse, Call]

BINARY_OPS = ("+", "-", "*", "/", "//", "%", "**")
COMPARE_OPS = ("<", "<=", ">", ">=", "==", "!=")
UNARY_OPS = ("-", "+")


# ---- inspection -----------------------------------------------------------------------------

def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of ``expr``, parents before children, left to right."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        if isinstance(e, Unary):
            stack.append(e.operand)
        elif isinstance(e, (BinOp, Compare)):
            stack += [e.right, e.left]
        elif isinstance(e, IfElse):
            stack += [e.orelse, e.test, e.body]
        elif isinstance(e, Call):
            stack += reversed(e.args)


def names(expr: Expr) -> set[str]:
    """Free references of ``expr``: each Name's id and each Attr as ``"node.port"``
    (function names are not included)."""
    out: set[str] = set()
    for e in walk(expr):
        if isinstance(e, Name):
            out.add(e.id)
        elif isinstance(e, Attr):
            out.add(e.text)
    return out


def calls(expr: Expr) -> set[str]:
    """Names of the functions ``expr`` calls."""
    return {e.func for e in walk(expr) if isinstance(e, Call)}


# ---- printing -------------------------------------------------------------------------------
# The one printer of expressions: error messages print spec text with it, codegen prints
# Python with it (ocdsl.codegen.expr). One precedence table, Python's own order, so the
# printed text means the same in both languages.

#: Binding strength of each form, loosest first.
PRECEDENCE = {"if": 0, "cmp": 1, "+": 2, "-": 2, "*": 3, "/": 3, "//": 3, "%": 3, "unary": 4, "**": 5, "atom": 6}


def precedence(e: Expr) -> int:
    """How tightly ``e`` binds (:data:`PRECEDENCE`); a negative number literal binds like
    a unary minus."""
    if isinstance(e, IfElse):
        return PRECEDENCE["if"]
    if isinstance(e, Compare):
        return PRECEDENCE["cmp"]
    if isinstance(e, BinOp):
        return PRECEDENCE[e.op]
    if isinstance(e, Unary) or (isinstance(e, Num) and repr(e.value).startswith("-")):
        return PRECEDENCE["unary"]
    return PRECEDENCE["atom"]


def _same(text: str) -> str:
    return text


def unparse(expr: Expr, *, ref: Callable[[str], str] = _same, func: Callable[[str], str] = _same) -> str:
    """Text of ``expr`` with only the parentheses precedence needs.

    By default the canonical spec text: ``parse(unparse(e)) == e``, and the text is valid
    Python with the same meaning. ``ref`` maps each reference (a name, or ``"node.port"``)
    to its text and ``func`` each called function's name: codegen passes
    ``outputs['composite.image']`` and ``fn.mse``. Raises TypeError on a non-expression node.
    """

    def sub(e: Expr, need: int, strict: bool = False) -> str:
        s = go(e)
        p = precedence(e)
        return f"({s})" if p < need or (strict and p == need) else s

    def go(e: Expr) -> str:
        if isinstance(e, Num):
            return repr(e.value)
        if isinstance(e, Name):
            return ref(e.id)
        if isinstance(e, Attr):
            return ref(e.text)
        if isinstance(e, Unary):
            return e.op + sub(e.operand, PRECEDENCE["unary"])
        if isinstance(e, BinOp):
            p = PRECEDENCE[e.op]
            if e.op == "**":  # right-associative: a ** b ** c is a ** (b ** c)
                return f"{sub(e.left, p, strict=True)} ** {sub(e.right, PRECEDENCE['unary'])}"
            return f"{sub(e.left, p)} {e.op} {sub(e.right, p, strict=True)}"
        if isinstance(e, Compare):  # comparisons do not chain
            p = PRECEDENCE["cmp"]
            return f"{sub(e.left, p, strict=True)} {e.op} {sub(e.right, p, strict=True)}"
        if isinstance(e, IfElse):
            p = PRECEDENCE["if"]
            return f"{sub(e.body, p, strict=True)} if {sub(e.test, p, strict=True)} else {sub(e.orelse, p)}"
        if isinstance(e, Call):
            return f"{func(e.func)}({', '.join(go(a) for a in e.args)})"
        raise TypeError(f"not an expression node: {e!r}")

    return go(expr)
