"""``ocdsl bench SPEC``: how fast a spec's model trains here: eager vs torch.compile, with
and without the exact rewrites (``[compile] rewrites``), the FLOP/s achieved against the
machine's matmul and convolution peak, and the step time as the image and the slot count
grow.

One process, the variants alternated in rounds so that machine drift hits all alike;
reported as medians and as ratios (docs/results.md, The machines: whole-process timings
drift by about ±10 %, so compare variants in one process, never wall-clock across runs). Inputs are random tensors of the spec's input shapes at the
spec's batch size, in the data's value range; the step is the spec's own loss,
backward and optimizer. A spec with ``[[train.phases]]`` is timed in one phase (default: the
last, e.g. AST-Seg's joint fine-tuning), with that phase's frozen nodes, loss and optimizer.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ocdsl.train.perf import alternate, measure_peaks, step_flops

__all__ = ["benchmark_step", "format_bench", "make_step", "scaling_sweep", "scaling_points", "format_scaling"]


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


def _phase(compiled, phase: str | None):
    """The ``[[train.phases]]`` phase called ``phase`` (default: the last); UserError for a
    phase the spec does not have."""
    from ocdsl.errors import Diagnostic, UserError, did_you_mean
    from ocdsl.train.phases import plan_phases

    spec = compiled.spec
    nodes = [n for n, d in compiled.graph.nodes(data=True) if d.get("kind") == "op"]
    plan = plan_phases(spec, nodes, None if spec.phases else (spec.total_steps or 1))
    names = [p.name for p in plan.phases]
    if phase is not None and phase not in names:
        raise UserError(Diagnostic(f"--phase: the spec has no phase '{phase}' (phases: {', '.join(names)})",
                                   file=str(spec.path), hint=did_you_mean(phase, names)))
    return plan.phases[names.index(phase) if phase is not None else -1], plan.explicit


def benchmark_step(compiled, *, device: str = "cpu", batch: int | None = None, rounds: int = 5,
                   steps_per_round: int = 3, modes: tuple[str, ...] = ("eager", "compiled"),
                   phase: str | None = None, unrewritten=None, flops: bool = True) -> dict[str, Any]:
    """Median training-step time of ``compiled`` (an ``ocdsl.pipeline.Compiled``) per mode,
    and of ``unrewritten`` (the same spec built with ``[compile] rewrites = []``) where given,
    all with the same weights, alternated in rounds (:func:`ocdsl.train.perf.alternate`).

    ``phase``: the ``[[train.phases]]`` name to time (default: the last phase).
    ``flops``: also count one eager step's FLOPs (:func:`~ocdsl.train.perf.step_flops`)
    and measure the peaks here (:func:`~ocdsl.train.perf.measure_peaks`).
    Returns ``{"batch", "device", "phase", "variants": {label: {"mode", "rewrites",
    "step_s", "cpu_s", "warmup_s", "images_per_s"}}, "modes": {mode: the rewritten
    variant}, "compiled_over_eager", "flops": {label: {"total", "conv", "matmul"}},
    "peaks": {"matmul_gflops", "conv_gflops"}}``; labels are ``"eager"``, ``"compiled"`` and
    ``"<mode>, no rewrites"``; ``warmup_s`` covers 2 steps (a cold compile included).
    Raises UserError for a phase the spec does not have."""
    spec = compiled.spec
    batch = int(batch or spec.train.batch_size)
    ph, explicit = _phase(compiled, phase)
    torch.manual_seed(0)
    inputs = _random_inputs(spec, batch, device)
    builds = {True: compiled, **({False: unrewritten} if unrewritten is not None else {})}
    state = None
    steps: dict[str, Callable[[], float]] = {}
    labels: dict[str, tuple[str, bool]] = {}
    for mode in modes:
        for rewritten, c in builds.items():
            model = c.instantiate(device=device, torch_compile=(mode == "compiled"))
            base = getattr(model, "_orig_mod", model)
            state = state or {k: v.clone() for k, v in base.state_dict().items()}
            base.load_state_dict(state)
            label = mode if rewritten else f"{mode}, no rewrites"
            steps[label], labels[label] = make_step(spec, model, inputs, device, ph), (mode, rewritten)
    counted = {label: step_flops(fn) for label, fn in steps.items()
               if flops and labels[label][0] == "eager"}
    t = alternate(steps, rounds=rounds, steps_per_round=steps_per_round, warmup=2)
    res: dict[str, Any] = {"batch": batch, "device": device, "phase": ph.name if explicit else None,
                           "variants": {}, "flops": counted}
    for label, r in t.items():
        mode, rewritten = labels[label]
        res["variants"][label] = {"mode": mode, "rewrites": rewritten, "step_s": r["median_s"],
                                  "cpu_s": r["cpu_median_s"], "warmup_s": r["warmup_s"],
                                  "images_per_s": batch / r["median_s"]}
    res["modes"] = {m: res["variants"][m] for m in modes}
    if {"eager", "compiled"} <= set(modes):
        res["compiled_over_eager"] = res["modes"]["compiled"]["step_s"] / res["modes"]["eager"]["step_s"]
    if flops:
        res["peaks"] = measure_peaks(device)
    return res


def format_bench(name: str, res: dict[str, Any], front_end_ms: dict[str, float] | None = None) -> str:
    """The table ``ocdsl bench`` prints: one row per variant (ms/step, CPU s/step, images/s,
    the ratio to the eager rewritten step, achieved GFLOP/s where counted), then the peaks
    and the front-end times."""
    where = f", phase '{res['phase']}'" if res.get("phase") else ""
    lines = [f"{name}: training step on {res['device']}, batch {res['batch']}{where} "
             f"(median of alternated rounds, one process)",
             f"  {'variant':22s} {'ms/step':>9s} {'cpu s/step':>10s} {'images/s':>9s} "
             f"{'/ eager':>8s} {'GFLOP':>7s} {'GFLOP/s':>8s}"]
    base = res["variants"]["eager"]["step_s"] if "eager" in res["variants"] else None
    for label, v in res["variants"].items():
        f = res.get("flops", {}).get(label) or res.get("flops", {}).get(
            "eager" if v["rewrites"] else "eager, no rewrites")
        gflop = f"{f['total'] / 1e9:7.2f}" if f else f"{'-':>7s}"
        rate = f"{f['total'] / v['step_s'] / 1e9:8.1f}" if f else f"{'-':>8s}"
        ratio = f"{v['step_s'] / base:8.3f}" if base else f"{'-':>8s}"
        lines.append(f"  {label:22s} {v['step_s'] * 1e3:9.1f} {v['cpu_s']:10.2f} {v['images_per_s']:9.1f} "
                     f"{ratio} {gflop} {rate}   (first 2 steps {v['warmup_s']:.1f} s)")
    if "compiled_over_eager" in res:
        lines.append(f"  compiled / eager = {res['compiled_over_eager']:.3f}")
    if res.get("flops", {}).get("eager"):
        f = res["flops"]["eager"]
        lines.append(f"  FLOPs per step (eager, rewritten): {f['conv'] / f['total']:.1%} convolution, "
                     f"{f['matmul'] / f['total']:.1%} matmul (FlopCounterMode; elementwise ops not counted)")
    if res.get("peaks"):
        p = res["peaks"]
        lines.append(f"  peak here, same process: matmul {p['matmul_gflops']:.1f} GFLOP/s, "
                     f"convolution {p['conv_gflops']:.1f} GFLOP/s")
    if front_end_ms:
        lines.append("  front end: " + ", ".join(f"{k} {v:.1f} ms" for k, v in front_end_ms.items()))
    return "\n".join(lines)


def scaling_points(spec) -> list[dict[str, int]]:
    """The points ``ocdsl bench --scale`` times: the spec as written, the image at twice
    its height and width (where the spec has dims ``H`` and ``W``), twice the slots (dim
    ``K``), and both."""
    dims = {k: int(v) for k, v in spec.dims.items()}
    image = {"H": 2 * dims["H"], "W": 2 * dims["W"]} if {"H", "W"} <= set(dims) else {}
    slots = {"K": 2 * dims["K"]} if "K" in dims else {}
    points: list[dict[str, int]] = []
    for p in ({}, image, slots, {**image, **slots}):
        if p not in points:
            points.append(p)
    return points


def scaling_sweep(points: list[tuple[dict[str, int], Any]], *, device: str = "cpu",
                  batch: int | None = None, rounds: int = 3, steps_per_round: int = 1) -> list[dict[str, Any]]:
    """The eager training step at each of ``points``: ``(dims, compiled)`` pairs, where
    ``compiled`` is the spec built with ``--set dims.<name>=<value>`` for each of ``dims``
    (see :func:`scaling_points`), all points alternated in rounds in one process. Returns
    one ``{"dims", "step_s", "cpu_s", "gflop"}`` per point, in order."""
    steps, out = {}, []
    for i, (dims, c) in enumerate(points):
        ph, _ = _phase(c, None)
        torch.manual_seed(0)
        model = c.instantiate(device=device, torch_compile=False)
        b = int(batch or c.spec.train.batch_size)
        steps[i] = make_step(c.spec, model, _random_inputs(c.spec, b, device), device, ph)
        out.append({"dims": dict(dims), "gflop": step_flops(steps[i])["total"] / 1e9})
    t = alternate(steps, rounds=rounds, steps_per_round=steps_per_round, warmup=1)
    for i, row in enumerate(out):
        row["step_s"], row["cpu_s"] = t[i]["median_s"], t[i]["cpu_median_s"]
    return out


def format_scaling(rows: list[dict[str, Any]]) -> str:
    """One line per point of :func:`scaling_sweep`: dims, ms/step, GFLOP, time relative to
    the first point."""
    lines = ["  scaling (eager, alternated rounds): " + f"{'dims':18s} {'ms/step':>9s} {'GFLOP':>7s} {'x first':>8s}"]
    for r in rows:
        dims = " ".join(f"{k}={v}" for k, v in r["dims"].items())
        lines.append(f"  {'':36s}{dims:18s} {r['step_s'] * 1e3:9.1f} {r['gflop']:7.2f} "
                     f"{r['step_s'] / rows[0]['step_s']:8.2f}")
    return "\n".join(lines)
