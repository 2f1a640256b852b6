"""Value domains: every schedule and learning rate evaluated over the whole run before training.

A schedule is a function of the step (and of the run's length and the phase clock). One that
is fine at step 0 can take the log of 0 at the end of a decay, divide by zero at a phase
boundary, or overflow late in the run; the trainer would then stop with a non-finite loss
hours in. This pass evaluates, with the same interpreter the trainer's values follow
(``Spec.schedule_values``):

- every step ``0 .. total_steps`` for runs of at most :data:`FULL_RUN` steps;
- for longer runs, the steps that matter: the first and last, phase boundaries and their
  neighbours, the steps where a schedule's value or a number written in it (a warm-up
  length, a decay period) is reached, and :data:`SAMPLES` steps spread evenly plus powers
  of two.

At each step, each ``[schedules]`` entry, each learning rate written as an expression
(``train.optimizer.lr``, a phase's) and each schedulable op parameter must be a finite real
number (a learning rate also >= 0, an op parameter within its schema's bounds). The first
failure of each key is an error naming the key and the step, located at the failing
sub-expression where the interpreter raised (``log(0)``, a division by zero, an overflow).
Expression evaluation itself is bounded in time and size (ocdsl/spec/expr.py refuses huge
integer powers and products before computing them).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import networkx as nx

from ocdsl.errors import Diagnostic, SpecError
from ocdsl.spec import expr as E
from ocdsl.spec.model import Spec

__all__ = ["check_values", "steps_to_check", "phase_clocks", "FULL_RUN", "SAMPLES"]

#: Runs of at most this many steps are checked at every step.
FULL_RUN = 1000
#: Evenly spread steps checked in longer runs (besides the steps that matter).
SAMPLES = 500


def phase_clocks(spec: Spec) -> list[tuple[int, int, int, int]]:
    """``(start, end, clock_start, clock_steps)`` of each training phase as written (one
    phase spanning ``train.steps`` without phases); phases sharing a clock share its start
    and length (as ocdsl/train/phases.py plans them)."""
    phases = spec.train.phases
    if not phases:
        total = spec.total_steps or 1
        return [(0, total, 0, total)]
    starts, t = [], 0
    for p in phases:
        starts.append(t)
        t += p.steps
    clock = [p.clock or f"#{i}" for i, p in enumerate(phases)]
    out = []
    for i, p in enumerate(phases):
        run = [j for j in range(len(phases)) if clock[j] == clock[i]]
        out.append((starts[i], starts[i] + p.steps, starts[run[0]], sum(phases[j].steps for j in run)))
    return out


def steps_to_check(spec: Spec, total: int, clocks: list[tuple[int, int, int, int]]) -> list[int]:
    """The steps :func:`check_values` evaluates (see the module docstring), sorted."""
    if total <= FULL_RUN:
        return list(range(total + 1))
    points = {0, 1, 2, total - 1, total}
    for start, end, _, _ in clocks:
        points |= {start - 1, start, start + 1, end - 1, end}
    p = 1
    while p < total:
        points.add(p)
        p *= 2
    points |= {round(i * total / SAMPLES) for i in range(SAMPLES + 1)}
    marks: set[float] = set()
    for expr in spec.schedules.values():
        marks |= {abs(float(e.value)) for e in E.walk(expr) if isinstance(e, E.Num)}
    try:
        marks |= {abs(float(v)) for v in spec.schedule_values(0, total_steps=total).values()
                  if isinstance(v, (int, float)) and math.isfinite(v)}
    except SpecError:
        pass  # reported when step 0 is checked
    for m in marks:
        if 1 <= m < total:
            points |= {math.floor(m) - 1, math.floor(m), math.ceil(m), math.ceil(m) + 1}
    return sorted(s for s in points if 0 <= s <= total)


def _phase_at(clocks: list[tuple[int, int, int, int]], step: int) -> tuple[int, int]:
    for start, end, cstart, csteps in clocks:
        if step < end:
            return step - cstart, csteps
    _, _, cstart, csteps = clocks[-1]
    return step - cstart, csteps


def _bad(value: Any) -> str | None:
    """Why ``value`` is not a usable schedule value, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, complex):
        return f"is the complex number {value} (a fractional power of a negative number?)"
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value}"
    if not isinstance(value, (int, float)):
        return f"is {type(value).__name__}, not a number"
    return None


def _lr_keys(spec: Spec) -> list[tuple[tuple, E.Expr]]:
    """Learning rates written as expressions (not a number, not a schedule name)."""
    out, seen = [], set()
    for opt in [spec.train.optimizer] + [p.optimizer for p in spec.train.phases]:
        lr = getattr(opt, "lr", None)
        if not isinstance(lr, str) or lr in spec.schedules or lr in seen:
            continue
        seen.add(lr)
        kp = tuple(opt.keypath) + ("lr",)
        try:
            out.append((kp, E.parse(lr, **_where(spec, kp))))
        except SpecError:
            continue  # validation reported it
    return out


def _where(spec: Spec, kp: tuple) -> dict:
    """parse() keywords placing the string at ``kp`` in its file."""
    v = spec.locations.value(kp)
    if v is not None:
        return {"file": v.file, "line": v.line, "col": v.col, "keypath": kp}
    loc = spec.locations.get(kp)
    return {"file": loc.file, "line": loc.line, "col": loc.col, "keypath": kp, "exact": False}


def _scheduled_params(G: nx.MultiDiGraph | None) -> list[tuple[tuple, str, dict]]:
    """``(keypath, schedule, param schema)`` of each op parameter driven by a schedule."""
    out = []
    for _, data in (G.nodes(data=True) if G is not None else ()):
        for key, sched in (data.get("scheduled") or {}).items():
            out.append((tuple(data["node"].keypath) + (key,), sched, data["opdef"].params.get(key) or {}))
    return out


def _out_of_bounds(value: float, prop: dict) -> str | None:
    for k, ok, word in (("minimum", lambda v, b: v >= b, ">="), ("maximum", lambda v, b: v <= b, "<="),
                        ("exclusiveMinimum", lambda v, b: v > b, ">"),
                        ("exclusiveMaximum", lambda v, b: v < b, "<")):
        if k in prop and not ok(value, prop[k]):
            return f"{word} {prop[k]}"
    return None


def check_values(spec: Spec, G: nx.MultiDiGraph | None = None, total_steps: int | None = None) -> list[Diagnostic]:
    """Errors for every key whose value fails at some step of the run (see the module
    docstring); at most one per key, at its first failing step (between two checked steps
    of a long run, the failure is traced back by bisection to the step where it starts)."""
    total = int(total_steps or spec.total_steps or 1)
    clocks = phase_clocks(spec)
    lrs, params = _lr_keys(spec), _scheduled_params(G)
    if not spec.schedules and not lrs:
        return []

    def failures(step: int) -> dict[tuple, Diagnostic]:
        return _failures(spec, step, clocks, total, lrs, params)

    diags: dict[tuple, Diagnostic] = {}
    last_ok = -1
    for step in steps_to_check(spec, total, clocks):
        found = {k: d for k, d in failures(step).items() if k not in diags}
        for kp, d in found.items():
            lo, hi = last_ok, step
            while hi - lo > 1:
                mid = (lo + hi) // 2
                got = failures(mid).get(kp)
                if got is not None:
                    hi, d = mid, got
                else:
                    lo = mid
            diags[kp] = d
        if not found:
            last_ok = step
        if len(diags) >= len(spec.schedules) + len(lrs) + len(params):
            break
    return list(diags.values())


def _failures(spec: Spec, step: int, clocks, total: int, lrs, params) -> dict[tuple, Diagnostic]:
    """keypath -> the error of every key that fails at ``step``."""
    out: dict[tuple, Diagnostic] = {}
    phase_step, phase_steps = _phase_at(clocks, step)
    try:
        values = spec.schedule_values(step, phase_step, phase_steps, total)
    except SpecError as e:
        return {d.keypath: _set_since(spec, _at_step(d, step)) for d in e.diagnostics}
    for name, v in values.items():
        why = _bad(v)
        if why:
            out[("schedules", name)] = spec.diag(("schedules", name), f"schedule '{name}' {why} at step {step}", _HINT)
    env = {**spec.dims, **values, "step": step, "total_steps": total, "phase_step": phase_step,
           "phase_steps": phase_steps}
    if spec.steps_per_epoch:
        env["epoch"] = step / spec.steps_per_epoch
    _check_lrs(spec, lrs, env, step, out)
    _check_params(spec, params, values, step, out)
    return out


_HINT = "every schedule must be a finite number at every step of the run: guard the domain (max(x, 1e-8))"


def _set_since(spec: Spec, d: Diagnostic) -> Diagnostic:
    """``d``, an error in evaluating schedule ``d.keypath``, moved to a schedule or dim its
    expression uses that was set after it (by a variant of the spec that wrote the
    expression, or by an override), naming where the expression is: the change that made
    it fail is reported at its own line (a variant is told at its own line, not the base's)."""
    if len(d.keypath) != 2 or d.keypath[0] != "schedules" or d.keypath[1] not in spec.schedules:
        return d
    locs = spec.locations
    rank = locs.derivation(d.keypath)
    later = [kp for kp in (("schedules", n) if n in spec.schedules else ("dims", n)
                           for n in sorted(E.names(spec.schedules[d.keypath[1]]))
                           if n in spec.schedules or n in spec.dims)
             if locs.derivation(kp) < rank]
    if not later:
        return d
    at = min(later, key=locs.derivation)
    loc = locs.get(at)
    where = f"{d.file}:{d.line}:{d.col}" if d.line else d.file
    return Diagnostic(f"{d.message} (in {d.keypath[0]}.{d.keypath[1]} at {where})", file=loc.file,
                      line=loc.line, col=loc.col, keypath=at, hint=d.hint, severity=d.severity)


def _at_step(d: Diagnostic, step: int) -> Diagnostic:
    return Diagnostic(f"{d.message} at step {step}", file=d.file, line=d.line, col=d.col, keypath=d.keypath,
                      hint=d.hint or _HINT, severity=d.severity)


def _check_lrs(spec: Spec, lrs: Iterable[tuple[tuple, E.Expr]], env: dict, step: int, diags: dict) -> None:
    for kp, expr in lrs:
        if kp in diags:
            continue
        try:
            v = E.evaluate(expr, env, file=spec.locations.get(kp).file, keypath=kp)
        except SpecError as e:
            diags[kp] = _at_step(e.diagnostics[0], step)
            continue
        why = _bad(v) or (f"is negative ({v})" if v < 0 else None)
        if why:
            diags[kp] = spec.diag(kp, f"the learning rate {why} at step {step}", _HINT)


def _check_params(spec: Spec, params: list, values: dict, step: int, diags: dict) -> None:
    for kp, sched, prop in params:
        if kp in diags or sched not in values or _bad(values[sched]):
            continue
        why = _out_of_bounds(float(values[sched]), prop)
        if why:
            diags[kp] = spec.diag(kp, f"'{kp[-1]}' follows schedule '{sched}', which is {values[sched]} at step "
                                      f"{step}; it must be {why}", "bound the schedule, e.g. clamp(x, 0, 1)")
