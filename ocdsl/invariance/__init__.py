"""Declared symmetries -> hypothesis property checks.

Two sources of symmetries, one machinery (transforms.py, search.py):

- a spec's ``[[invariances]]``, run on the compiled model: :func:`run_checks`,
  :func:`check`, ``ocdsl check SPEC``. declarations.py documents the keys and their
  meaning and resolves them against the graph (static: ``ocdsl validate`` runs it),
  properties.py turns them into properties of the model, report.py prints the results;
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

from ocdsl.invariance.properties import check_op, run_checks
from ocdsl.invariance.report import Report, check, format_failures, format_report, format_table, main_check
from ocdsl.invariance.search import Result
from ocdsl.invariance.transforms import Tolerance, default_tolerance

__all__ = ["Result", "Report", "Tolerance", "default_tolerance", "run_checks", "check",
           "check_op", "format_table", "format_failures", "format_report", "main_check"]
