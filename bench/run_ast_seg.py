"""Benchmark (not a timed test): the training step of AST-Seg (specs/ast_seg.toml) in each
phase of its curriculum, in one process.

Each phase's step is what `ocdsl run` does in that phase: the phase's frozen nodes, its loss
(background_fit, then total) and its optimizer, on the same random batch. The phases are
alternated in rounds (bench/_timing.py), so the ratios to the joint phase are comparable;
the absolute times are this machine's. AST-Seg has no hand-written reference here: the
reference run is the joint-phase step (everything trains). Eager only: torch.compile is
slower than eager for Segformer on this CPU (docs/results.md, The machines), so
`compile = "auto"` keeps AST-Seg eager on the CPU.

    python bench/run_ast_seg.py                  # batch 16 (the spec's), 2 threads
    python bench/run_ast_seg.py --spec specs/variants/ast_seg_unet.toml --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _timing import alternate  # noqa: E402

from ocdsl.pipeline import build  # noqa: E402
from ocdsl.train.bench import make_step  # noqa: E402
from ocdsl.train.phases import plan_phases  # noqa: E402


def phase_step(compiled, phase, x):
    """A zero-argument training step of ``phase`` on batch ``x`` (its own model copy), as
    `ocdsl bench --phase` times it, and the phase's trainable parameter count."""
    torch.manual_seed(0)
    model = compiled.instantiate(torch_compile=False)
    step = make_step(compiled.spec, model, {"image": x}, "cpu", phase)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return step, trainable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(REPO / "specs" / "ast_seg.toml"))
    ap.add_argument("--batch", type=int, help="default: the spec's train.batch_size")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps-per-round", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    c = build(args.spec)
    spec = c.spec
    batch = args.batch or spec.train.batch_size
    h, w = spec.dims["H"], spec.dims["W"]
    x = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(0))
    plan = plan_phases(spec, list(spec.nodes))
    steps, trainable = {}, {}
    for ph in plan.phases:
        steps[ph.name], trainable[ph.name] = phase_step(c, ph, x)
    t = alternate(steps, rounds=args.rounds, steps_per_round=args.steps_per_round, warmup=2)
    ref = plan.phases[-1].name
    res = {"spec": spec.name, "batch": batch, "threads": torch.get_num_threads(), "reference": ref,
           "phases": {n: {"step_s": v["median_s"], "ratio_to_" + ref: v["median_s"] / t[ref]["median_s"],
                          "trainable_params": trainable[n]} for n, v in t.items()}}
    print(f"{spec.name}: training step per phase, batch {batch}, {res['threads']} threads, eager "
          f"(median of {args.rounds} alternated rounds)")
    for n, v in res["phases"].items():
        print(f"  {n:20s} {v['step_s'] * 1e3:8.1f} ms/step  {batch / v['step_s']:6.1f} images/s  "
              f"x{v['ratio_to_' + ref]:.2f} of '{ref}'  ({v['trainable_params']:,} trainable parameters)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
