"""The timing loop every benchmark here uses (docs/results.md, The machines: timings drift
by about ±10 % from run to run, so compare variants by alternating them in one process;
report medians and ratios, never wall-clock across runs)."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Hashable

__all__ = ["alternate"]


def alternate(steps: dict[Hashable, Callable[[], object]], *, rounds: int, steps_per_round: int,
              warmup: int = 2) -> dict[Hashable, dict[str, float]]:
    """Time each zero-argument ``steps[key]()``: ``warmup`` calls each (a cold
    torch.compile included), then ``rounds`` rounds in which every variant runs
    ``steps_per_round`` calls in turn, so drift of the machine hits all alike.

    Returns ``{key: {"median_s": seconds per call (median over rounds), "warmup_s": seconds
    of the warm-up calls, "times": per-round seconds per call}}``."""
    out: dict[Hashable, dict] = {}
    for key, fn in steps.items():
        t0 = time.perf_counter()
        for _ in range(warmup):
            fn()
        out[key] = {"warmup_s": time.perf_counter() - t0, "times": []}
    for _ in range(rounds):
        for key, fn in steps.items():
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                fn()
            out[key]["times"].append((time.perf_counter() - t0) / steps_per_round)
    for v in out.values():
        v["median_s"] = statistics.median(v["times"])
    return out
