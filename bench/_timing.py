"""The timing loop every benchmark here uses: ocdsl.train.perf.alternate (one loop for
bench/ and `ocdsl bench`). Timings drift by about ±10 % from run to run, and far more on a
shared machine, so compare variants by alternating them in one process; report medians and
ratios, never wall-clock across runs."""

from __future__ import annotations

from ocdsl.train.perf import alternate

__all__ = ["alternate"]
