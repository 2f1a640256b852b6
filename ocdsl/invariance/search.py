"""Run one property with hypothesis: try examples, keep the worst, shrink a failure.

A :class:`Property` is a strategy of cases and a function that evaluates one case into an
:class:`Outcome` (one :class:`~ocdsl.invariance.transforms.Deviation` per compared output).
:func:`search` feeds it to ``hypothesis.given`` (no example database, quiet, no deadline,
a fixed seed, so a run is reproducible), records the largest deviation seen, and on a
violation lets hypothesis shrink: the last failing case it replays is the smallest
counterexample, and it is what the :class:`Result` reports.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from ocdsl.invariance.transforms import Deviation, Tolerance

__all__ = ["Outcome", "Property", "Result", "search"]


@dataclass
class Outcome:
    deviations: list[Deviation]
    error: str | None = None            # the case raised (a crash is a failure too)

    @property
    def passed(self) -> bool:
        return self.error is None and all(d.passed for d in self.deviations)

    @property
    def max_abs(self) -> float:
        if self.error is not None:
            return math.inf
        return max((d.max_abs for d in self.deviations), default=0.0)

    def worst(self) -> Deviation | None:
        failing = [d for d in self.deviations if not d.passed]
        pool = failing or self.deviations
        return max(pool, key=lambda d: d.max_abs) if pool else None


@dataclass(frozen=True)
class Property:
    """``name``: the table's property column (``permutation_equivariance K``); ``node``: the
    node (or op) it is about; ``strategy`` draws a case; ``evaluate(case)`` -> Outcome;
    ``describe(case)`` -> lines saying what the case is (shapes, permutation or shift)."""

    name: str
    node: str
    strategy: Any
    evaluate: Callable[[Any], Outcome]
    describe: Callable[[Any], list[str]]
    tolerance: Tolerance
    where: str = ""                     # spec location of the declaration, if any
    notes: tuple[str, ...] = ()         # e.g. outputs left out of the comparison
    compared: tuple[str, ...] = ()      # what is compared, one line per output


@dataclass
class Result:
    """One row of the report."""

    property: str
    node: str
    examples: int                       # cases evaluated before the first failure (or all)
    max_deviation: float                # largest |got - expected| seen over all cases
    passed: bool
    counterexample: str | None = None   # the smallest failing case, readable
    tolerance: str = ""
    where: str = ""
    shrink_steps: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    compared: tuple[str, ...] = field(default_factory=tuple)


class _Violation(Exception):
    pass


def _run(prop: Property, case: Any) -> Outcome:
    try:
        return prop.evaluate(case)
    except Exception as e:  # a crash on some input is a failure of the property
        last = traceback.extract_tb(e.__traceback__)[-1]
        return Outcome([], error=f"{type(e).__name__}: {e} (at {last.filename}:{last.lineno})")


def search(prop: Property, examples: int = 20, *, seed: int = 0) -> Result:
    """Try up to ``examples`` cases of ``prop``; on a violation, shrink to the smallest."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed

    stats: dict[str, Any] = {"n": 0, "max": 0.0, "first_failure_at": None, "last": None}

    def body(case: Any) -> None:
        out = _run(prop, case)
        stats["n"] += 1
        if out.max_abs > stats["max"] or math.isnan(out.max_abs):
            stats["max"] = out.max_abs
        if not out.passed:
            if stats["first_failure_at"] is None:
                stats["first_failure_at"] = stats["n"]
            stats["last"] = (case, out)
            raise _Violation()

    test = settings(
        max_examples=max(1, int(examples)), deadline=None, database=None, derandomize=False,
        verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False, print_blob=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )(hseed(seed)(given(prop.strategy)(body)))
    failed = False
    note: tuple[str, ...] = ()
    try:
        test()
    except _Violation:
        failed = True
    except Exception as e:               # e.g. hypothesis' Flaky: the failure did not replay
        if stats["last"] is None:
            raise
        failed = True
        note = (f"hypothesis could not replay the failure ({type(e).__name__}): the model "
                f"is not deterministic; the case shown is the last one that failed",)
    n, first = stats["n"], stats["first_failure_at"]
    common = dict(property=prop.name, node=prop.node, tolerance=str(prop.tolerance),
                  where=prop.where, notes=prop.notes + note, compared=prop.compared)
    if not failed:
        return Result(examples=n, max_deviation=stats["max"], passed=True, **common)
    case, out = stats["last"]
    return Result(examples=first, max_deviation=stats["max"], passed=False,
                  counterexample=_counterexample(prop, case, out), shrink_steps=n - first,
                  **common)


def _counterexample(prop: Property, case: Any, out: Outcome) -> str:
    lines = list(prop.describe(case))
    if out.error is not None:
        lines.append(f"raised {out.error}")
    else:
        worst = out.worst()
        if worst is not None:
            lines.append(f"largest deviation {worst.max_abs:.3g} at {worst.describe(prop.tolerance)}")
        others = [d for d in out.deviations if not d.passed and d is not worst]
        if others:
            lines.append("also violated: " + ", ".join(f"{d.key} ({d.max_abs:.3g})" for d in others))
    return "\n".join(lines)
