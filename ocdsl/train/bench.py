"""``ocdsl bench SPEC``: how fast a spec's model trains here, eager vs torch.compile.

One process, the variants alternated in rounds so that machine drift hits all alike;
reported as medians and as the ratio compiled / eager (docs/results.md, The machines:
whole-process timings drift by about ±10 %, so compare variants in one process, never
wall-clock across runs). Inputs are random tensors of the spec's input shapes at the
spec's batch size, in the data's value range; the step is the spec's own loss,
backward and optimizer. A spec with ``[[train.phases]]`` is timed in one phase (default: the
last, e.g. AST-Seg's joint fine-tuning), with that phase's frozen nodes, loss and optimizer.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch

__all__ = ["benchmark_step", "format_bench", "make_step"]


def _random_inputs(spec, batch: int, device: str) -> dict[str, torch.Tensor]:
    lo, hi = spec.data_cfg.range
    return {name: torch.rand(*shape, device=device) * (hi - lo) + lo
            for name, shape in spec.input_shapes(batch).items()}


def make_step(spec, model: torch.nn.Module, inputs: dict[str, torch.Tensor], device: str,
              phase) -> Callable[[], float]:
    """A zero-argument training step of ``phase`` (an ocdsl.train.phases.Phase) on the fixed
    ``inputs``: the trainer's own step (:meth:`ocdsl.train.trainer.Trainer.update`: the
    phase's frozen nodes, optimizer and loss, gradient clipping), at a step well into the
    phase (past warm-ups), repeated without advancing. Returns the loss as a float."""
    from ocdsl.train.phases import PhasePlan
    from ocdsl.train.trainer import Trainer

    trainer = Trainer(spec, model, device=device, plan=PhasePlan((phase,), explicit=False), total=None)
    trainer.enter(phase)
    arg = next(iter(inputs.values())) if len(inputs) == 1 else inputs
    at = phase.start + min(1000, phase.steps - 1)  # a step well into the phase (past warm-ups)

    def step() -> float:
        res = trainer.update(arg, inputs, at)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return float(res.loss.detach())

    return step


def benchmark_step(compiled, *, device: str = "cpu", batch: int | None = None, rounds: int = 5,
                   steps_per_round: int = 3, modes: tuple[str, ...] = ("eager", "compiled"),
                   phase: str | None = None) -> dict[str, Any]:
    """Median training-step time of ``compiled`` (an ``ocdsl.pipeline.Compiled``) per mode.

    ``phase``: the ``[[train.phases]]`` name to time (default: the last phase).
    Returns ``{"batch", "phase", "modes": {mode: {"step_s", "warmup_s", "images_per_s"}},
    "compiled_over_eager"}``; ``warmup_s`` covers 2 steps (the cold compile included).
    Raises UserError for a phase the spec does not have."""
    from ocdsl.errors import Diagnostic, UserError, did_you_mean
    from ocdsl.train.phases import plan_phases

    spec = compiled.spec
    batch = int(batch or spec.train.batch_size)
    nodes = [n for n, d in compiled.graph.nodes(data=True) if d.get("kind") == "op"]
    plan = plan_phases(spec, nodes, None if spec.phases else (spec.total_steps or 1))
    names = [p.name for p in plan.phases]
    if phase is not None and phase not in names:
        raise UserError(Diagnostic(f"--phase: the spec has no phase '{phase}' (phases: {', '.join(names)})",
                                   file=str(spec.path), hint=did_you_mean(phase, names)))
    ph = plan.phases[names.index(phase) if phase is not None else -1]
    torch.manual_seed(0)
    inputs = _random_inputs(spec, batch, device)
    runs: dict[str, dict[str, Any]] = {}
    for mode in modes:
        model = compiled.instantiate(device=device, torch_compile=(mode == "compiled"))
        fn = make_step(spec, model, inputs, device, ph)
        t0 = time.perf_counter()
        fn(), fn()
        runs[mode] = {"fn": fn, "warmup_s": time.perf_counter() - t0, "times": []}
    for _ in range(rounds):
        for r in runs.values():
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                r["fn"]()
            r["times"].append((time.perf_counter() - t0) / steps_per_round)
    res: dict[str, Any] = {"batch": batch, "device": device, "phase": ph.name if plan.explicit else None,
                           "modes": {}}
    for mode, r in runs.items():
        med = statistics.median(r["times"])
        res["modes"][mode] = {"step_s": med, "warmup_s": r["warmup_s"], "images_per_s": batch / med}
    if {"eager", "compiled"} <= set(runs):
        res["compiled_over_eager"] = res["modes"]["compiled"]["step_s"] / res["modes"]["eager"]["step_s"]
    return res


def format_bench(name: str, res: dict[str, Any], front_end_ms: dict[str, float] | None = None) -> str:
    where = f", phase '{res['phase']}'" if res.get("phase") else ""
    lines = [f"{name}: training step on {res['device']}, batch {res['batch']}{where} (median of rounds)"]
    for mode, m in res["modes"].items():
        lines.append(f"  {mode:9s} {m['step_s'] * 1e3:9.1f} ms/step  {m['images_per_s']:8.1f} images/s  "
                     f"(first 2 steps {m['warmup_s']:.1f} s)")
    if "compiled_over_eager" in res:
        lines.append(f"  compiled / eager = {res['compiled_over_eager']:.3f}")
    if front_end_ms:
        lines.append("  front end: " + ", ".join(f"{k} {v:.1f} ms" for k, v in front_end_ms.items()))
    return "\n".join(lines)
