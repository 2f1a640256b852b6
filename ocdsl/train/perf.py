"""Measuring speed on a shared machine: alternated timing rounds, the machine's matmul and
convolution peak, and the FLOPs of a training step (``ocdsl bench``, bench/run.py).

Whole-process timings drift by about ±10 % from run to run and far more where other jobs
share the cores, so everything here is measured in one process and reported as medians and
ratios: variants are alternated in rounds (drift hits all alike), the peak is measured in
the same process as the step it is compared with, and each timing also records the
process's CPU time (waiting for a core does not count in it).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Hashable

import torch

__all__ = ["alternate", "measure_peaks", "step_flops", "CONV_OPS"]

#: aten ops FlopCounterMode counts that are convolutions (the rest it counts are matmuls:
#: mm, addmm, bmm, baddbmm, scaled dot-product attention).
CONV_OPS = ("convolution", "convolution_backward", "_convolution")


def alternate(steps: dict[Hashable, Callable[[], object]], *, rounds: int, steps_per_round: int,
              warmup: int = 2) -> dict[Hashable, dict]:
    """Time each zero-argument ``steps[key]()``: ``warmup`` calls each (a cold
    torch.compile included), then ``rounds`` rounds in which every variant runs
    ``steps_per_round`` calls in turn, so drift of the machine hits all alike.

    Returns ``{key: {"median_s": seconds per call (median over rounds), "warmup_s": seconds
    of the warm-up calls, "times": per-round seconds per call, "cpu_median_s": the process's
    CPU seconds per call (all threads; median over rounds)}}``."""
    out: dict[Hashable, dict] = {}
    for key, fn in steps.items():
        t0 = time.perf_counter()
        for _ in range(warmup):
            fn()
        out[key] = {"warmup_s": time.perf_counter() - t0, "times": [], "cpu": []}
    for _ in range(rounds):
        for key, fn in steps.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps_per_round):
                fn()
            out[key]["times"].append((time.perf_counter() - t0) / steps_per_round)
            out[key]["cpu"].append((time.process_time() - c0) / steps_per_round)
    for v in out.values():
        v["median_s"] = statistics.median(v["times"])
        v["cpu_median_s"] = statistics.median(v.pop("cpu"))
    return out


def measure_peaks(device: str = "cpu", repeats: int = 5) -> dict[str, float]:
    """The best FLOP/s this process gets here from a large fp32 GEMM and a large convolution.

    Returns ``{"matmul_gflops", "conv_gflops"}`` (GFLOP/s, 1 multiply-add = 2 FLOPs; the best
    of ``repeats`` timed calls after one warm-up): ``mm`` of two 1024 x 1024 matrices, and a
    64 -> 64 channel 5x5 'same' ``conv2d`` forward on 16 channels-last 32x32 images
    (oneDNN's native layout on the CPU)."""
    dev = torch.device(device)
    a, b = torch.randn(1024, 1024, device=dev), torch.randn(1024, 1024, device=dev)
    x = torch.randn(16, 64, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 5, 5, device=dev).contiguous(memory_format=torch.channels_last)
    jobs = {"matmul_gflops": (lambda: a @ b, 2 * 1024 ** 3),
            "conv_gflops": (lambda: torch.nn.functional.conv2d(x, w, padding=2),
                            2 * 16 * 32 * 32 * 64 * 64 * 25)}
    out = {}
    for name, (fn, flops) in jobs.items():
        fn()
        best = float("inf")
        for _ in range(repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        out[name] = flops / best / 1e9
    return out


def step_flops(step: Callable[[], object]) -> dict[str, float]:
    """FLOPs of one call of ``step`` (a training step: forward, backward, optimizer), from
    ``torch.utils.flop_counter.FlopCounterMode``, split into convolutions (:data:`CONV_OPS`)
    and the rest (matmuls). Elementwise ops, norms and softmaxes are not counted (they are
    memory-bound; the counter has no formula for them). Returns ``{"total", "conv",
    "matmul"}`` in FLOPs (1 multiply-add = 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    per_op = counter.get_flop_counts().get("Global", {})
    conv = sum(n for op, n in per_op.items() if str(op).split(".")[1] in CONV_OPS)
    total = float(counter.get_total_flops())
    return {"total": total, "conv": float(conv), "matmul": total - float(conv)}
