"""The spec expression language: parse (lark, ``grammar/expr.lark``), inspect, evaluate.

Expressions appear in ``[losses]``, ``[schedules]``, ``[dims]``, size parameters and the
optimizer's ``lr``::

    reconstruction = "mse(composite.image, image)"
    lr = "4e-4 * min(1, step / warmup) * 0.5 ** (step / decay)"

They are parsed into frozen dataclass nodes (:class:`Num`, :class:`Name`, :class:`Attr`,
:class:`Unary`, :class:`BinOp`, :class:`Compare`, :class:`IfElse`, :class:`Call`) that keep
the line and column they came from, and are evaluated by a small interpreter over that tree
(:func:`evaluate`); spec text never reaches Python's ``eval``. The only callables are those
registered in :data:`ocdsl.losses.functions.FUNCTIONS`; :func:`parse` rejects any other
call and a wrong number of arguments. The tree, its inspection and the printer are in
ocdsl/spec/expr_ast.py (re-exported here).
"""

from __future__ import annotations

import keyword
import math
import operator
from typing import Any, Callable, Mapping

from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ocdsl.errors import Diagnostic, SpecError, did_you_mean
from ocdsl.losses.functions import FUNCTIONS
from ocdsl.spec.bounds import MAX_INT
from ocdsl.spec.expr_ast import (BINARY_OPS, COMPARE_OPS, PRECEDENCE, UNARY_OPS, Attr, BinOp, Call,  # noqa: F401
                                 Compare, Expr, IfElse, Name, Num, Unary, calls, names, precedence,
                                 unparse, walk)
from ocdsl.spec.grammars import parser

__all__ = [
    "Expr", "Num", "Name", "Attr", "Unary", "BinOp", "Compare", "IfElse", "Call",
    "ExprError", "parse", "names", "calls", "walk", "evaluate", "unparse", "precedence",
    "BINARY_OPS", "COMPARE_OPS", "UNARY_OPS", "PRECEDENCE",
]

_RESERVED = frozenset(keyword.kwlist) | {"True", "False", "None"}
_MAX_LITERAL_DIGITS = 40  # longer integer literals are refused unread (2**53 has 16 digits)


class ExprError(SpecError):
    """A problem in one expression (syntax, unknown function, arity, evaluation)."""

    def __init__(self, message: str, *, file: str = "<expression>", line: int = 0, col: int = 0,
                 keypath: tuple = (), hint: str | None = None,
                 diagnostics: list[Diagnostic] | None = None):
        if diagnostics is None:
            diagnostics = [Diagnostic(message, file=file, line=line, col=col,
                                      keypath=tuple(keypath), hint=hint)]
        self.message = message or diagnostics[0].message
        super().__init__(diagnostics)


# ---- parsing --------------------------------------------------------------------------------

class _Where:
    """Maps a (line, column) inside the expression text to the spec file. With ``exact``
    false, (line, col) is only the key's position: everything maps there."""

    def __init__(self, text: str, file: str, line: int, col: int, keypath: tuple, exact: bool = True):
        self.text, self.file, self.line, self.col, self.keypath = text, file, line, col, tuple(keypath)
        self.exact = exact

    def at(self, tline: int, tcol: int) -> tuple[int, int]:
        if not self.line:
            return tline, tcol
        if not self.exact:
            return self.line, self.col
        if tline <= 1:
            return self.line, (self.col or 1) + tcol - 1
        return self.line + tline - 1, tcol

    def diag(self, message: str, tline: int, tcol: int, hint: str | None = None) -> Diagnostic:
        line, col = self.at(tline, tcol)
        if self.line and "\n" not in self.text:
            message = f"{message} (column {tcol} of {self.text!r})"
        elif not self.line:
            message = f"{message} in {self.text!r}"
        return Diagnostic(message, file=self.file, line=line, col=col, keypath=self.keypath, hint=hint)


def _accepts(e: UnexpectedInput) -> set:
    return set(getattr(e, "accepts", None) or getattr(e, "expected", None) or ())


def _expected(terminals) -> str | None:
    """A short 'expected ...' hint from the parser's set of acceptable terminals."""
    t = set(terminals)
    if t & {"NUMBER", "NAME"}:
        return "expected a number, a name or '('"
    if "ELSE" in t and "$END" not in t:
        return "expected an operator or 'else'"
    if "RPAR" in t and "$END" not in t:
        return "expected an operator, ',' or ')'" if "COMMA" in t else "expected an operator or ')'"
    if "$END" in t:
        return "expected an operator or the end of the expression"
    return None


@v_args(inline=True)
class _Build(Transformer):
    def __init__(self, where: _Where, functions: Mapping[str, Any]):
        super().__init__()
        self.where = where
        self.functions = functions
        self.problems: list[Diagnostic] = []

    def _at(self, tok: Token) -> dict:
        line, col = self.where.at(tok.line, tok.column)
        return {"line": line, "col": col}

    def _name(self, tok: Token) -> str:
        s = str(tok)
        if s in _RESERVED:
            self.problems.append(self.where.diag(f"'{s}' is a reserved word and cannot be used as a name",
                                                 tok.line, tok.column))
        return s

    def num(self, tok: Token) -> Num:
        s = str(tok)
        digits = s.replace("_", "")
        if digits.isdigit() and len(digits.lstrip("0")) > _MAX_LITERAL_DIGITS:
            # refused before int() converts it: Python's conversion is quadratic in the length
            self.problems.append(self.where.diag(f"integer literal of {len(digits)} digits is too large",
                                                 tok.line, tok.column, "write a float (1e20) if you mean a "
                                                 "large number; integers are at most 2**53"))
            return Num(0, **self._at(tok))
        try:
            value: int | float = int(digits) if digits.isdigit() else float(s)
        except ValueError:  # pragma: no cover - the lexer only lets numbers through
            value = 0
        if isinstance(value, int) and value > MAX_INT:
            self.problems.append(self.where.diag(f"integer {s} is too large (the limit is 2**53)", tok.line,
                                                 tok.column, "write a float (1e20) if you mean a large number"))
        if isinstance(value, float) and not math.isfinite(value):
            self.problems.append(self.where.diag(f"number {s} is too large", tok.line, tok.column))
        return Num(value, **self._at(tok))

    def name(self, tok: Token) -> Name:
        return Name(self._name(tok), **self._at(tok))

    def attr(self, node: Token, port: Token) -> Attr:
        return Attr(self._name(node), self._name(port), **self._at(node))

    def args(self, *items) -> list:
        return [i for i in items if i is not None]

    def call(self, func: Token, args=None) -> Call:
        fname = self._name(func)
        args = tuple(args or ())
        fn = self.functions.get(fname)
        if fn is None:
            self.problems.append(self.where.diag(
                f"unknown function '{fname}'", func.line, func.column,
                hint=did_you_mean(fname, self.functions) or
                "functions: " + ", ".join(sorted(self.functions))))
        elif not fn.min_args <= len(args) <= fn.max_args:
            if fn.min_args == fn.max_args:
                want = f"{fn.min_args} argument{'s' if fn.min_args != 1 else ''}"
            else:
                want = f"{fn.min_args} to {fn.max_args} arguments"
            self.problems.append(self.where.diag(
                f"{fname}() takes {want}, got {len(args)}", func.line, func.column,
                hint=fn.doc.splitlines()[0] if fn.doc else None))
        return Call(fname, args, **self._at(func))

    def unary(self, op: Token, operand) -> Unary:
        return Unary(str(op), operand, **self._at(op))

    def binop(self, left, op: Token, right) -> BinOp:
        return BinOp(str(op), left, right, **self._at(op))

    def compare(self, left, op: Token, right) -> Compare:
        return Compare(str(op), left, right, **self._at(op))

    def ifelse(self, body, test, orelse) -> IfElse:
        return IfElse(test, body, orelse, line=body.line, col=body.col)


def parse(text: str, *, file: str = "<expression>", line: int = 0, col: int = 0,
          keypath: tuple = (), functions: Mapping[str, Any] = FUNCTIONS, exact: bool = True) -> Expr:
    """Parse expression ``text`` into an AST.

    ``file``, ``line`` and ``col`` say where the first character of ``text`` is in the spec
    (1-based; 0 when unknown), ``keypath`` which key holds it; AST nodes and errors carry
    positions in the file computed from them. With ``exact=False`` (line, col) is only
    where the key is (the string's text does not map 1:1 to the file): positions are that
    key's, and messages give the column inside the expression. Calls are checked against ``functions``
    (name -> :class:`~ocdsl.losses.functions.Function`): an unknown function or a wrong
    number of arguments is an error. Raises :class:`ExprError` (a SpecError) listing every
    problem found.
    """
    where = _Where(text, file, line, col, keypath, exact)
    if not isinstance(text, str):
        raise ExprError(f"expected an expression string, got {type(text).__name__}",
                        file=file, line=line, col=col, keypath=keypath)
    if not text.strip():
        raise ExprError("empty expression", file=file, line=line, col=col, keypath=keypath,
                        hint="write a number, a name or a formula such as 'step / 1000'")
    try:
        tree = parser("expr.lark").parse(text)
    except UnexpectedCharacters as e:
        ch = text[e.pos_in_stream] if 0 <= e.pos_in_stream < len(text) else "?"
        hint = "use '==' to compare" if ch == "=" else ("write 'a if c else b' for a choice" if ch == "?" else None)
        raise ExprError("", diagnostics=[where.diag(f"unexpected character {ch!r}", e.line, e.column, hint)]) from None
    except UnexpectedToken as e:
        tok = e.token
        if tok.type == "$END":
            lines = text.split("\n")
            d = where.diag("unexpected end of expression", len(lines), len(lines[-1]) + 1, _expected(_accepts(e)))
        else:
            hint = ("comparisons do not chain" if tok.type == "COMPOP" and "COMPOP" not in _accepts(e)
                    else _expected(_accepts(e)))
            d = where.diag(f"unexpected {str(tok)!r}", tok.line, tok.column, hint)
        raise ExprError("", diagnostics=[d]) from None
    except UnexpectedEOF as e:  # pragma: no cover - LALR reports $END as UnexpectedToken
        lines = text.split("\n")
        raise ExprError("", diagnostics=[where.diag("unexpected end of expression", len(lines),
                                                    len(lines[-1]) + 1, _expected(_accepts(e)))]) from None
    except UnexpectedInput as e:  # pragma: no cover - defensive
        raise ExprError("", diagnostics=[where.diag("syntax error", e.line, e.column)]) from None
    build = _Build(where, functions)
    try:
        expr = build.transform(tree)
    except VisitError as e:  # pragma: no cover - the transformer collects, never raises
        raise e.orig_exc from None
    except RecursionError:
        raise ExprError("expression is nested too deeply", file=file, line=line, col=col,
                        keypath=keypath) from None
    if build.problems:
        raise ExprError("", diagnostics=build.problems)
    return expr


# ---- evaluation -----------------------------------------------------------------------------

_MAX_INT_BITS = 4096

_BINARY = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
}
_COMPARE = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _too_large(op: str, a: Any, b: Any) -> str | None:
    """What ``a op b`` would produce when it is an integer beyond ``_MAX_INT_BITS`` bits,
    judged before computing it (a tower of powers is refused, never computed); else None."""
    if not (_is_int(a) and _is_int(b)):
        return None
    if op == "**" and b > 0 and abs(a) > 1 and b * math.log2(abs(a)) > _MAX_INT_BITS:
        return f"the power {_digits(a)} ** {_digits(b)}"
    if op == "*" and a.bit_length() + b.bit_length() > _MAX_INT_BITS + 1:
        return "the product"
    if op in ("+", "-") and max(a.bit_length(), b.bit_length()) >= _MAX_INT_BITS:
        return "the sum"
    return None


def _digits(n: int) -> str:
    return str(n) if n.bit_length() < 64 else f"~2**{n.bit_length() - 1}"


def evaluate(expr: Expr, env: Mapping[str, Any], functions: Mapping[str, Any] = FUNCTIONS, *,
             file: str = "<expression>", keypath: tuple = ()) -> Any:
    """Value of ``expr`` with names looked up in ``env``.

    ``env`` maps names (dims, schedules, ``step``, ...) to numbers or tensors; a ``node.port``
    reference is looked up as the key ``"node.port"`` (or ``env[node][port]`` when
    ``env[node]`` is a mapping). Calls go to ``functions[name].impl``. Works on Python
    numbers and torch tensors alike. Raises :class:`ExprError` (naming ``file``/``keypath``
    and the position of the failing node) on an unknown name, a division by zero, an
    overflow or a failing function.
    """

    def fail(e: Expr, message: str, hint: str | None = None):
        raise ExprError(message, file=file, line=e.line, col=e.col, keypath=keypath, hint=hint)

    def go(e: Expr) -> Any:
        if isinstance(e, Num):
            return e.value
        if isinstance(e, (Name, Attr)):
            return _lookup(e, env, fail)
        if isinstance(e, Unary):
            return _unary(e, go(e.operand), fail)
        if isinstance(e, BinOp):
            return _binary(e, go(e.left), go(e.right), fail)
        if isinstance(e, Compare):
            return _compare(e, go(e.left), go(e.right), fail)
        if isinstance(e, IfElse):
            return go(e.body) if _truth(e.test, go(e.test), fail) else go(e.orelse)
        if isinstance(e, Call):
            fn = functions.get(e.func)
            if fn is None:
                fail(e, f"unknown function '{e.func}'", did_you_mean(e.func, functions))
            return _call(e, fn, [go(a) for a in e.args], fail)
        raise TypeError(f"not an expression node: {e!r}")

    try:
        return go(expr)
    except RecursionError:
        raise ExprError("expression is nested too deeply", file=file, keypath=keypath) from None


# Each of these computes one node of :func:`evaluate` from its operands' values; ``fail(node,
# message, hint)`` raises the located ExprError.

def _lookup(e: Name | Attr, env: Mapping[str, Any], fail: Callable) -> Any:
    if isinstance(e, Name):
        if e.id in env:
            return env[e.id]
        fail(e, f"unknown name '{e.id}'", did_you_mean(e.id, env))
    if e.text in env:
        return env[e.text]
    holder = env.get(e.node)
    if isinstance(holder, Mapping) and e.port in holder:
        return holder[e.port]
    fail(e, f"unknown reference '{e.text}'", did_you_mean(e.text, [k for k in env if "." in k]))


def _unary(e: Unary, v: Any, fail: Callable) -> Any:
    try:
        return -v if e.op == "-" else +v
    except TypeError as err:
        fail(e, f"cannot apply unary '{e.op}': {err}")


def _binary(e: BinOp, a: Any, b: Any, fail: Callable) -> Any:
    big = _too_large(e.op, a, b)
    if big:
        fail(e, f"{big} in {unparse(e)!r} is too large to compute",
             "expressions compute with integers of at most 4096 bits; write floats (2.0 ** 100)")
    try:
        return _BINARY[e.op](a, b)
    except ZeroDivisionError:
        what = "0 to a negative power" if e.op == "**" else ("modulo by zero" if e.op == "%" else "division by zero")
        fail(e, f"{what} in {unparse(e)!r}")
    except OverflowError:
        fail(e, f"result of {unparse(e)!r} is too large")
    except (TypeError, ValueError, RuntimeError) as err:
        fail(e, f"cannot compute {unparse(e)!r}: {err}")


def _compare(e: Compare, a: Any, b: Any, fail: Callable) -> Any:
    try:
        return _COMPARE[e.op](a, b)
    except (TypeError, RuntimeError) as err:
        fail(e, f"cannot compare in {unparse(e)!r}: {err}")


def _truth(test: Expr, t: Any, fail: Callable) -> bool:
    try:
        return bool(t)
    except (RuntimeError, ValueError) as err:
        fail(test, f"condition {unparse(test)!r} is not a single truth value: {err}")


def _call(e: Call, fn: Any, args: list, fail: Callable) -> Any:
    if not fn.min_args <= len(args) <= fn.max_args:
        fail(e, f"{e.func}() takes {fn.min_args}..{fn.max_args} arguments, got {len(args)}")
    try:
        return fn.impl(*args)
    except ZeroDivisionError:
        fail(e, f"{e.func}(): division by zero")
    except OverflowError:
        fail(e, f"{e.func}(): result too large")
    except (ValueError, TypeError, RuntimeError) as err:
        fail(e, f"{e.func}(): {err}")
