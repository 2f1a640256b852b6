"""Benchmark (not a timed test): a training step of the object-centric MAE that ocdsl
generates from specs/oc_mae.toml against the hand-written reference of the same model
(bench/reference_oc_mae.py), in one process.

Both models get the same weights (the reference loads the generated model's state) and are
first checked to give the same outputs; then the training step (forward + the spec's loss +
backward + AdamW) is timed, the variants alternated in rounds so that machine drift hits
all alike (docs/results.md, The machines). Reported: median step time per variant and
mask ratio, and the ratio ocdsl / reference. Two mask ratios: 0.75 (training start: 12 of 49 patches kept) and
0 (the end of the anneal: every patch).

    python bench/run_oc_mae.py                    # eager, batch 32, 2 threads
    python bench/run_oc_mae.py --compile          # also torch.compile both (cold compile!)
    python bench/run_oc_mae.py --json out.json
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
import reference_oc_mae as ref  # noqa: E402

import ocdsl  # noqa: E402


def _ocdsl_step(model, opt, x, ratio):
    sched = {**model.schedules(0), "mask_ratio": ratio}
    base = getattr(model, "_orig_mod", model)
    base.set_schedules(sched)
    out = model(x)
    loss = base.losses({"image": x}, out, sched, 0)[base.LOSS]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _reference_step(model, opt, x, ratio):
    w = 1e-4  # the warm-up weights of the spec (same arithmetic as ocdsl's total loss)
    loss = ref.losses(model(x, mask_ratio=ratio), x, w, w)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def check_same_outputs(o, r, x) -> float:
    """Largest |difference| of the reconstructions at ratio 0.75 with the same RNG."""
    o.eval(), r.eval()
    with torch.no_grad():
        o.set_schedules({**o.schedules(0), "mask_ratio": 0.75})
        torch.manual_seed(0)
        a = o(x)["composite.image"]
        torch.manual_seed(0)
        b = r(x, mask_ratio=0.75)["recon"]
    o.train(), r.train()
    return float((a - b).abs().max())


def bench(batch: int, rounds: int, steps_per_round: int, compile_: bool) -> dict:
    torch.manual_seed(0)
    x = torch.rand(batch, 3, 35, 35) * 2 - 1
    o = ocdsl.compile(REPO / "specs" / "oc_mae.toml", torch_compile=False)
    r = ref.build_model()
    ref.load_ocdsl_state(r, o.state_dict())
    max_diff = check_same_outputs(o, r, x)
    params = {"ocdsl": sum(p.numel() for p in o.parameters()),
              "reference": sum(p.numel() for p in r.parameters())}
    modes = ["eager"] + (["compiled"] if compile_ else [])
    steps = {}
    for mode in modes:
        for name, model, step in (("reference", r, _reference_step), ("ocdsl", o, _ocdsl_step)):
            m = ref.build_model() if name == "reference" else ocdsl.compile(
                REPO / "specs" / "oc_mae.toml", torch_compile=False)
            m.load_state_dict(model.state_dict())
            opt = ref.make_optimizer(m)  # same AdamW groups for both (matrices decay)
            fwd = torch.compile(m, dynamic=True) if mode == "compiled" else m
            for ratio in (0.75, 0.0):
                steps[(name, mode, ratio)] = lambda s=step, f=fwd, op=opt, q=ratio: s(f, op, x, q)
    t = alternate(steps, rounds=rounds, steps_per_round=steps_per_round, warmup=2)
    res = {"batch": batch, "rounds": rounds, "steps_per_round": steps_per_round,
           "threads": torch.get_num_threads(), "params": params,
           "max_abs_diff_recon": max_diff, "rows": []}
    for mode in modes:
        for ratio in (0.75, 0.0):
            rm = t[("reference", mode, ratio)]["median_s"]
            om = t[("ocdsl", mode, ratio)]["median_s"]
            res["rows"].append({"mode": mode, "mask_ratio": ratio, "reference_s": rm, "ocdsl_s": om,
                                "ratio": om / rm})
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps-per-round", type=int, default=3)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = bench(args.batch, args.rounds, args.steps_per_round, args.compile)
    print(f"object-centric MAE, Tetrominoes 35x35, batch {res['batch']}, {res['threads']} threads; "
          f"params ocdsl {res['params']['ocdsl']:,} / reference {res['params']['reference']:,}; "
          f"same weights, max |recon difference| {res['max_abs_diff_recon']:.2e}")
    for row in res["rows"]:
        print(f"  {row['mode']:9s} mask ratio {row['mask_ratio']:.2f}  reference {row['reference_s'] * 1e3:7.1f} ms  "
              f"ocdsl {row['ocdsl_s'] * 1e3:7.1f} ms  ocdsl/reference {row['ratio']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
