"""Running a spec's declared symmetries and printing what they found: :func:`check`
(``ocdsl.check``), :class:`Report`, the table, the counterexamples and ``ocdsl check``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ocdsl.errors import Diagnostic, UserError
from ocdsl.invariance.properties import run_checks
from ocdsl.invariance.search import Result
from ocdsl.tables import text_table

__all__ = ["Report", "check", "format_table", "format_failures", "format_report", "main_check"]


@dataclass
class Report:
    """What ``ocdsl.check`` returns: the results, whether all passed, and the printout."""

    spec: str
    results: list[Result]
    examples: int

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.passed]

    def __str__(self) -> str:
        return format_report(self)


def check(spec_or_path: Any, *, examples: int = 20, overrides: list[str] | None = None,
          model=None, seed: int = 0) -> Report:
    """``ocdsl.check(spec_or_path) -> Report``: run the spec's declared invariances.
    ``bool(report.passed)``; ``print(report)`` gives the table and any counterexamples."""
    from ocdsl.pipeline import Compiled
    if isinstance(spec_or_path, Compiled):
        name = str(spec_or_path.spec.path)
    elif hasattr(spec_or_path, "path"):
        name = str(spec_or_path.path)
    else:
        name = str(spec_or_path)
    results = run_checks(spec_or_path, examples, overrides=overrides, model=model, seed=seed)
    return Report(name, results, examples)


# ---- printing ------------------------------------------------------------------------------

_HEADER = ("property", "node", "examples", "largest deviation", "tolerance", "result")


def _fmt_dev(x: float) -> str:
    if x != x:
        return "nan"
    if x == float("inf"):
        return "inf (error)"
    return "0" if x == 0 else f"{x:.3g}"


def format_table(results: list[Result]) -> str:
    """One row per property: property, node, examples tried, largest deviation, tolerance,
    pass/FAIL."""
    rows = [(r.property, r.node, str(r.examples), _fmt_dev(r.max_deviation),
             r.tolerance, "pass" if r.passed else "FAIL") for r in results]
    return text_table(_HEADER, rows, "llrrl")


def format_failures(results: list[Result]) -> str:
    """For each failure: where it was declared, what was compared, and the smallest
    counterexample hypothesis found."""
    out = []
    for r in results:
        if r.passed:
            continue
        where = f" ({r.where})" if r.where else ""
        out.append(f"FAIL {r.property} at node '{r.node}'{where}")
        if r.compared:
            out.append("  compared: " + ", ".join(r.compared))
        steps = f", after {r.shrink_steps} shrinking steps" if r.shrink_steps else ""
        out.append(f"  smallest counterexample (found at example {r.examples}{steps}):")
        out.extend("    " + line for line in (r.counterexample or "").splitlines())
    return "\n".join(out)


def format_report(report: Report) -> str:
    n = len(report.results)
    if not n:
        return f"{report.spec}: no [[invariances]] declared; nothing to check"
    head = (f"{report.spec}: {n} declared symmetr{'y' if n == 1 else 'ies'}, "
            f"up to {report.examples} examples each")
    parts = [head, format_table(report.results)]
    compared = [f"{r.property} at '{r.node}': " + ", ".join(r.compared)
                for r in report.results if r.compared]
    if compared:
        parts.append("compared (per property: what each output must do)\n"
                     + "\n".join("  " + c for c in compared))
    notes = [f"note ({r.property}, {r.node}): {t}" for r in report.results for t in r.notes]
    if notes:
        parts.append("\n".join(notes))
    if report.failures:
        parts.append(format_failures(report.results))
    nfail = len(report.failures)
    parts.append(f"{n - nfail} passed, {nfail} failed" if nfail else f"all {n} passed")
    return "\n\n".join(parts)


def main_check(spec_path: str | Path, examples: int = 20, overrides: list[str] | None = None,
               *, out: TextIO | None = None, seed: int = 0) -> int:
    """``ocdsl check SPEC [--examples N] [--set k=v]``: print the table (and the smallest
    counterexample of each failure); return 0 when all pass, 1 otherwise. A bad spec or
    declaration raises UserError (the CLI prints it and exits 2)."""
    out = out or sys.stdout
    if examples < 1:
        raise UserError(Diagnostic(f"--examples: expected a positive number, got {examples}",
                                   file="ocdsl check"))
    report = check(spec_path, examples=examples, overrides=overrides, seed=seed)
    print(format_report(report), file=out)
    return 0 if report.passed else 1
