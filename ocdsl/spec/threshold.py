"""``[eval] success``: a threshold ``<metric> <op> <number>`` parsed with the expression
grammar. Moved out of validate.py unchanged; validate.py re-exports it."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Iterable

from ocdsl.errors import Diagnostic, SpecError, did_you_mean
from ocdsl.spec import expr as E

__all__ = ["Threshold", "parse_threshold"]


_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True)
class Threshold:
    """``[eval] success = "<metric> <op> <number>"``, e.g. ``ari_fg >= 0.9``: what a run must
    reach (on every evaluated dataset) to count as a success."""

    metric: str
    op: str
    value: float

    def passes(self, v: Any) -> bool:
        """True when ``v`` is a finite number meeting the threshold (None / NaN never pass)."""
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return bool(_COMPARE[self.op](float(v), self.value))

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse_threshold(text: str, *, metrics: Iterable[str] | None = None, file: str = "<spec>", line: int = 0,
                    col: int = 0, keypath: tuple = ("eval", "success"), exact: bool = True) -> Threshold:
    """Parse ``eval.success`` with the expression grammar (never Python's ``eval``) and accept
    only ``<metric> <op> <number>`` (op one of ``< <= > >= == !=``; the number may be
    negative). With ``metrics`` (the spec's ``[eval] metrics``) the metric must be one of
    them. Raises SpecError located at the offending part of the text."""
    try:
        expr = E.parse(text, file=file, line=line, col=col, keypath=keypath, exact=exact)
    except SpecError as e:
        raise SpecError(e.diagnostics) from None
    where = (line, col)

    def err(node: Any, message: str, hint: str | None = None) -> SpecError:
        ln = (getattr(node, "line", 0) or where[0]) if exact else where[0]
        cl = (getattr(node, "col", 0) or where[1]) if exact else where[1]
        return SpecError(Diagnostic(message, file=file, line=ln, col=cl, keypath=tuple(keypath), hint=hint))

    shape_hint = "write '<metric> <op> <number>', e.g. 'ari_fg >= 0.9' (op: < <= > >= == !=)"
    if not isinstance(expr, E.Compare):
        raise err(expr, f"success must compare one metric with a number, got {text!r}", shape_hint)
    left, right = expr.left, expr.right
    if not isinstance(left, E.Name):
        raise err(left, f"success: the left side must be a metric name, got {E.unparse(left)!r}", shape_hint)
    number = right
    sign = 1.0
    if isinstance(number, E.Unary) and isinstance(number.operand, E.Num):
        sign = -1.0 if number.op == "-" else 1.0
        number = number.operand
    if not isinstance(number, E.Num):
        raise err(right, f"success: the right side must be a number, got {E.unparse(right)!r}", shape_hint)
    if metrics is not None:
        metrics = list(metrics)
        if left.id not in metrics:
            hint = did_you_mean(left.id, metrics) or (
                f"[eval] metrics computes: {', '.join(metrics)}" if metrics else "list it in [eval] metrics")
            what = "is not among [eval] metrics" if metrics else "needs [eval] metrics to list it"
            raise err(left, f"success: unknown metric '{left.id}' (it {what})", hint)
    return Threshold(left.id, expr.op, sign * float(number.value))
