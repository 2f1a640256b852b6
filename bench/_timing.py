"""The timing loop every benchmark here uses: ocdsl.train.perf.alternate (one loop for
bench/ and `ocdsl bench`). Timings drift by about ±10 % from run to run, and far more on a
shared machine, so compare variants by alternating them in one process; report medians and
ratios, never wall-clock across runs."""

from __future__ import annotations

import argparse

from ocdsl.train.perf import alternate

__all__ = ["alternate", "matching_bench"]


def matching_bench(description: str, default_spec: str, argv=None):
    """The command line and the model both matching benchmarks (bench/run_osc_matching.py,
    bench/run_set_matching.py) share: parse ``argv`` (--spec, --batch, --set, --rounds,
    --steps-per-round, --threads, --json), set the thread count, build the spec and
    instantiate its model in eval mode (eager, initial weights from seed 0).
    Returns (args, spec, images per batch, model)."""
    import torch

    from ocdsl.pipeline import build

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--spec", default=default_spec)
    ap.add_argument("--batch", type=int, default=None, help="images per batch (default: train.batch_size)")
    ap.add_argument("--set", action="append", default=[], dest="overrides", help="spec override key=value")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps-per-round", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    compiled = build(args.spec, overrides=args.overrides or None)
    spec = compiled.spec
    torch.manual_seed(0)
    model = compiled.instantiate(torch_compile=False).eval()
    return args, spec, args.batch or spec.train.batch_size, model
