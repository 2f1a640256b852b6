"""Declared symmetries -> hypothesis property checks.

Two sources of symmetries, one machinery (transforms.py, search.py):

- a spec's ``[[invariances]]`` (spec_checks.py documents the keys and their meaning), run
  on the compiled model: :func:`run_checks`, :func:`check`, ``ocdsl check SPEC``;
- the symmetries each op declares in its registry entry (op_checks.py), run on tiny
  instances of the op: :func:`check_op` (the test suite runs it for every op).

Every property is driven by hypothesis: it draws shapes, seeds and the permutation or
shift, keeps the largest deviation, and on a violation shrinks to the smallest
counterexample, which the report prints (shapes, the permutation or shift, where the worst
element is, got vs expected). Runs are reproducible (fixed seed, no example database).

Tolerance: an element passes when ``|got - expected| <= atol + rtol * |expected|``;
defaults per dtype: float32 ``1e-5 + 1e-5*|expected|``, float64 ``1e-10 + 1e-8*|expected|``,
float16 ``1e-3 + 1e-3*|expected|``, bfloat16 ``1e-2 + 1.6e-2*|expected|``. A
declaration's ``tolerance`` replaces atol.

Needs ``hypothesis`` (a dev dependency): without it, checking raises a UserError saying so.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ocdsl.errors import Diagnostic, UserError
from ocdsl.invariance.search import Result
from ocdsl.invariance.transforms import Tolerance, default_tolerance

__all__ = ["Result", "Report", "Tolerance", "default_tolerance", "run_checks", "check",
           "check_op", "format_table", "format_failures", "main_check"]


def _need_hypothesis() -> None:
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        raise UserError(Diagnostic(
            "checking symmetries needs the 'hypothesis' package, which is not installed",
            file="ocdsl check", hint="pip install hypothesis  (or: pip install 'ocdsl[dev]')"
        )) from None


def run_checks(spec_or_compiled: Any, examples: int = 20, *, overrides: list[str] | None = None,
               model=None, seed: int = 0, max_batch: int = 2) -> list[Result]:
    """Run every ``[[invariances]]`` declaration of a spec on its compiled model.

    ``spec_or_compiled``: a path, a ``Spec`` or a ``pipeline.Compiled``; ``examples``: cases
    tried per declaration (hypothesis' ``max_examples``); ``model``: run on this module
    instead of a fresh instance (e.g. a trained or deliberately broken one; its weights as
    they are), otherwise weights are initialised from ``seed``. Raises UserError / SpecError
    for a bad spec or declaration (with file, line and column)."""
    _need_hypothesis()
    import torch

    from ocdsl.invariance.search import search
    from ocdsl.invariance.spec_checks import model_properties
    from ocdsl.pipeline import Compiled, build

    compiled = spec_or_compiled if isinstance(spec_or_compiled, Compiled) else build(
        spec_or_compiled, overrides=overrides)
    if not compiled.spec.invariances:
        return []
    from ocdsl.invariance.spec_checks import resolve
    resolve(compiled)                      # report declaration errors before building a model
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = compiled.instantiate(device="cpu", torch_compile=False)
    return [search(p, examples, seed=seed)
            for p in model_properties(compiled, model, max_batch=max_batch)]


def check_op(op, *, examples: int = 20, module=None, dtype=None, tolerance: Tolerance | None = None,
             seed: int = 0, max_shift: int | None = None) -> list[Result]:
    """Check the symmetries op ``op`` declares (``OpDef.symmetries``) on tiny instances;
    ``module`` replaces its module class (a factory taking the op's init_args)."""
    _need_hypothesis()
    import torch

    from ocdsl.invariance.op_checks import check_op as _check_op
    return _check_op(op, examples=examples, module=module, dtype=dtype or torch.float32,
                     tolerance=tolerance, seed=seed, max_shift=max_shift)


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
    rows = [_HEADER] + [(r.property, r.node, str(r.examples), _fmt_dev(r.max_deviation),
                         r.tolerance, "pass" if r.passed else "FAIL") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    right = {2, 3}
    lines = []
    for j, row in enumerate(rows):
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


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
