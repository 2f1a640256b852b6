"""The timing loop every benchmark here uses: ocdsl.train.perf.alternate (one loop for
bench/ and `ocdsl bench`). Timings drift by about ±10 % from run to run, and far more on a
shared machine, so compare variants by alternating them in one process; report medians and
ratios, never wall-clock across runs."""

from __future__ import annotations

import argparse

from ocdsl.train.perf import alternate

__all__ = ["alternate", "matching_bench", "matching_report"]


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


def matching_report(res: dict, spec, args, *, header: str, match: str, loss: str, loss_label: str,
                    **fields) -> dict:
    """What both matching benchmarks print and return from ``alternate``'s result ``res``
    (``"forward"``, the matching ``match`` and the loss ``loss``): the medians in ms and the
    ratios ``match_over_forward`` and ``<loss_label>_over_forward``; ``fields`` (images,
    slots, ...) go into the returned dict after the spec's name; ``--json`` writes it."""
    import json
    from pathlib import Path

    med = {k: v["median_s"] for k, v in res.items()}
    out = {"spec": spec.name, **fields, "threads": args.threads,
           "median_ms": {k: 1e3 * v for k, v in med.items()},
           "match_over_forward": med[match] / med["forward"],
           f"{loss_label}_over_forward": med[loss] / med["forward"]}
    print(f"{spec.name}: {header}, K = {fields['slots']}, {args.threads} threads")
    width = 1 + max(map(len, med))
    for k, v in out["median_ms"].items():
        print(f"  {k:{width}s} {v:9.2f} ms")
    print(f"  matching / forward = {out['match_over_forward']:.4f};  {loss_label} / forward = "
          f"{out[f'{loss_label}_over_forward']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out
