"""Benchmarks (not timed tests): ratios against a reference measured in the same process.

1. Training step (forward + backward + Adam) of the model ocdsl generates from
   specs/slot_attention.toml, with its exact rewrites (the default) and without them
   (``rewrites = []``), against the hand-written PyTorch reference of the same model
   (bench/reference_slot_attention.py), eager and torch.compile, alternating the variants
   in rounds so that machine drift hits all of them alike. Reported: median step time
   and process CPU time and their ratios to the reference in the same mode, the FLOPs of
   each step (FlopCounterMode) and the achieved GFLOP/s against the matmul and
   convolution peak measured in the same process. (OC-MAE against its reference:
   bench/run_oc_mae.py.)
2. Front end + codegen: for every shipped spec, the median time of load (parse, extends,
   validate), graph analysis (build + shape inference, then the exact rewrites) and source
   generation.
3. Broadcast-convolution folding (the ``fold_broadcast`` rewrite, on by default): the main
   job's training step (batch 8, fp32, eager) with the rewrite (the default), without it
   (``--set compile.rewrites=[]``) and of the hand-written reference (with the main job's
   learned initial slots), alternated in rounds; reported: median step times and the ratios
   folded / unfolded, folded / reference and unfolded / reference.
4. Front-end scaling: generated specs of 10, 100 and 1000 nodes (a chain of ``linear``
   nodes, every output declared), the median time of load, graph analysis and codegen,
   and the time per node (linear scaling keeps it flat).
5. Each rewrite: the main job's step with ``fold_broadcast`` alone and with it plus each
   other rewrite, against the reference (wall and process CPU time, alternated rounds).
6. A spec variant: the main job's step as shipped and with the ``--set`` overrides given
   (e.g. a lever of bench/levers.py), alternated in rounds; reported: median wall and
   process CPU time per step, FLOPs per step, and variant / shipped for each.

    python bench/run.py                   # all parts
    python bench/run.py --no-compile      # skip the torch.compile variants (fast)
    python bench/run.py --only fold --threads 1 --rounds 5 --steps-per-round 3   # part 3 only
    python bench/run.py --only scale      # part 4 only
    python bench/run.py --only rewrites --threads 1 --rounds 5 --steps-per-round 2   # part 5 only
    python bench/run.py --only variant --threads 1 --set model.nodes.decoder.kernel=3   # part 6
    python bench/run.py --json out.json   # also write the numbers
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _timing import alternate  # noqa: E402
import reference_slot_attention as ref  # noqa: E402

import ocdsl  # noqa: E402
from ocdsl.codegen import generate_source  # noqa: E402
from ocdsl.graph import analyse  # noqa: E402
from ocdsl.graph.rewrites import apply_rewrites  # noqa: E402
from ocdsl.spec import load  # noqa: E402
from ocdsl.spec.load import loads  # noqa: E402
from ocdsl.train.perf import measure_peaks, step_flops  # noqa: E402


def _step_fn(model, kind: str, lr: float = 4e-4):
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(x: torch.Tensor) -> float:
        out = model(x)
        recon = out["recon"] if kind == "reference" else out["composite.image"]
        loss = torch.nn.functional.mse_loss(recon, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def bench_training_step(batch: int, rounds: int, steps_per_round: int, compile_: bool) -> dict:
    """Part 1: reference, ocdsl (rewrites on, the default) and ocdsl without rewrites, eager
    and (with ``compile_``) torch.compile, all alternated in one process; the same weights in
    both ocdsl builds and the main job's learned initial slots with straight-through in the
    reference. Also the FLOPs of each eager step and the machine's peaks, same process."""
    torch.manual_seed(0)
    x = torch.rand(batch, 3, 35, 35) * 2 - 1
    spec = REPO / "specs" / "slot_attention.toml"
    steps, n_params, flops = {}, {}, {}
    for mode in (["eager", "compiled"] if compile_ else ["eager"]):
        models = {"reference": ref.build_model(slot_init="learned", straight_through=True),
                  "ocdsl": ocdsl.compile(spec, torch_compile=False),
                  "ocdsl, no rewrites": ocdsl.compile(spec, torch_compile=False, overrides=["compile.rewrites=[]"])}
        models["ocdsl, no rewrites"].load_state_dict(models["ocdsl"].state_dict())
        for name, model in models.items():
            n_params[name] = sum(p.numel() for p in model.parameters())
            if mode == "compiled":
                model.compile()
            fn = _step_fn(model, name)
            steps[(name, mode)] = lambda fn=fn: fn(x)
            if mode == "eager":
                flops[name] = step_flops(steps[(name, mode)])
    # warm-up 3 steps each (the cold compile in compiled mode)
    t = alternate(steps, rounds=rounds, steps_per_round=steps_per_round, warmup=3)
    res = {"batch": batch, "rounds": rounds, "steps_per_round": steps_per_round, "threads": torch.get_num_threads(),
           "params": n_params, "flops": flops, "peaks": measure_peaks(), "rows": {}}
    for (name, mode), v in t.items():
        r = t[("reference", mode)]
        res["rows"][f"{name} ({mode})"] = {
            "step_s": v["median_s"], "cpu_s": v["cpu_median_s"], "warmup_s": v["warmup_s"],
            "over_reference": v["median_s"] / r["median_s"], "cpu_over_reference": v["cpu_median_s"] / r["cpu_median_s"],
            "gflops": flops[name]["total"] / v["median_s"] / 1e9, "times": v["times"]}
    return res


def print_training_step(ts: dict) -> None:
    p = ts["peaks"]
    print(f"\ntraining step, Slot Attention Tetrominoes 35x35 (the main job), batch {ts['batch']}, fp32, "
          f"{ts['threads']} threads, median of {ts['rounds']} alternated rounds x {ts['steps_per_round']} steps; "
          f"peak here: matmul {p['matmul_gflops']:.0f}, conv {p['conv_gflops']:.0f} GFLOP/s")
    print(f"  {'variant':32s} {'ms/step':>8s} {'/ ref':>6s} {'cpu s':>6s} {'cpu / ref':>9s} {'GFLOP':>6s} "
          f"{'GFLOP/s':>8s} {'% conv peak':>11s}")
    for name, r in ts["rows"].items():
        f = ts["flops"][name.rsplit(" (", 1)[0]]
        print(f"  {name:32s} {r['step_s'] * 1e3:8.1f} {r['over_reference']:6.3f} {r['cpu_s']:6.3f} "
              f"{r['cpu_over_reference']:9.3f} {f['total'] / 1e9:6.2f} {r['gflops']:8.1f} "
              f"{r['gflops'] / p['conv_gflops']:11.1%}")


def _time_stages(load_spec, repeats: int) -> dict:
    """Median ms of load (``load_spec()``), graph analysis + rewrites, and codegen."""
    t_load, t_graph, t_gen = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        spec = load_spec()
        t1 = time.perf_counter()
        G = apply_rewrites(spec, analyse(spec))
        t2 = time.perf_counter()
        generate_source(spec, G)
        t3 = time.perf_counter()
        t_load.append(t1 - t0), t_graph.append(t2 - t1), t_gen.append(t3 - t2)
    return {"load_ms": 1e3 * statistics.median(t_load), "graph_ms": 1e3 * statistics.median(t_graph),
            "codegen_ms": 1e3 * statistics.median(t_gen)}


def bench_front_end(repeats: int) -> dict:
    return {str(path.relative_to(REPO)): _time_stages(lambda path=path: load(path), repeats)
            for path in sorted((REPO / "specs").rglob("*.toml"))}


def chain_spec(n: int) -> str:
    """A spec of ``n`` ``linear`` nodes in a chain (each output declared)."""
    lines = ['[meta]\nname = "chain"\n[dims]\nD = 8\n[model.inputs]\nx = "B D"\n']
    prev = "x"
    for i in range(n):
        lines.append(f'[model.nodes.n{i}]\nop = "linear"\ninput = "{prev}"\nsize = "D"\noutput = "B D"\n')
        prev = f"n{i}"
    lines.append(f'[losses]\nl = "mean({prev})"\n[train]\nloss = "l"\n')
    return "\n".join(lines)


def bench_front_end_scaling(sizes=(10, 100, 1000), repeats: int = 3) -> dict:
    """Part 4: load / graph / codegen time of generated specs of ``sizes`` nodes."""
    out = {}
    for n in sizes:
        text = chain_spec(n)
        ms = _time_stages(lambda: loads(text), repeats)
        ms["total_ms"] = sum(ms.values())
        ms["ms_per_node"] = ms["total_ms"] / n
        out[n] = ms
    return out


def bench_fold_broadcast(batch: int, rounds: int, steps_per_round: int) -> dict:
    """Part 3: the main job's eager fp32 training step, folded / unfolded / reference."""
    torch.manual_seed(0)
    x = torch.rand(batch, 3, 35, 35) * 2 - 1
    spec = REPO / "specs" / "slot_attention.toml"
    models = {
        "reference": ref.build_model(slot_init="learned"),
        "folded": ocdsl.compile(spec, torch_compile=False),
        "unfolded": ocdsl.compile(spec, torch_compile=False, overrides=["compile.rewrites=[]"]),
    }
    assert models["folded"].decoder.fold_broadcast and not models["unfolded"].decoder.fold_broadcast
    models["unfolded"].load_state_dict(models["folded"].state_dict())  # same weights, same keys
    steps = {}
    for name, model in models.items():
        fn = _step_fn(model, "reference" if name == "reference" else "ocdsl")
        steps[name] = lambda fn=fn: fn(x)
    t = alternate(steps, rounds=rounds, steps_per_round=steps_per_round, warmup=2)
    med = {k: v["median_s"] for k, v in t.items()}
    return {"batch": batch, "rounds": rounds, "steps_per_round": steps_per_round,
            "threads": torch.get_num_threads(), "median_s": med,
            "times_s": {k: v["times"] for k, v in t.items()},
            "folded_over_unfolded": med["folded"] / med["unfolded"],
            "folded_over_reference": med["folded"] / med["reference"],
            "unfolded_over_reference": med["unfolded"] / med["reference"]}


def bench_each_rewrite(batch: int, rounds: int, steps_per_round: int) -> dict:
    """Part 5: the main job's eager fp32 training step with ``fold_broadcast`` alone and with
    ``fold_broadcast`` plus each other rewrite, against the hand-written reference (learned
    initial slots, straight-through, like the main job), alternated in rounds; reported:
    median wall and process CPU time per step and reference / variant for both."""
    from ocdsl.graph.rewrites import PASSES

    torch.manual_seed(0)
    x = torch.rand(batch, 3, 35, 35) * 2 - 1
    spec = REPO / "specs" / "slot_attention.toml"
    models = {"reference": ref.build_model(slot_init="learned", straight_through=True)}
    for extra in [None, *(n for n in PASSES if n != "fold_broadcast")]:
        names = ["fold_broadcast"] + ([extra] if extra else [])
        listed = ", ".join(f'"{n}"' for n in names)
        models[" + ".join(names)] = ocdsl.compile(spec, torch_compile=False, overrides=[f"compile.rewrites=[{listed}]"])
    steps = {name: (lambda fn=_step_fn(m, name): fn(x)) for name, m in models.items()}
    t = alternate(steps, rounds=rounds, steps_per_round=steps_per_round, warmup=2)
    r = t["reference"]
    return {"batch": batch, "threads": torch.get_num_threads(), "rounds": rounds, "steps_per_round": steps_per_round,
            "rows": {k: {"step_s": v["median_s"], "cpu_s": v["cpu_median_s"],
                         "ref_over_this": r["median_s"] / v["median_s"],
                         "cpu_ref_over_this": r["cpu_median_s"] / v["cpu_median_s"], "times": v["times"]}
                     for k, v in t.items()}}


def bench_variant(overrides: list[str], batch: int, rounds: int, steps_per_round: int) -> dict:
    """Part 6: the main job's eager fp32 training step as shipped and with ``overrides``
    (``--set`` strings), alternated in rounds; both start from seed 0's initialisation."""
    torch.manual_seed(0)
    x = torch.rand(batch, 3, 35, 35) * 2 - 1
    spec = REPO / "specs" / "slot_attention.toml"
    steps, flops = {}, {}
    for name, ov in (("shipped", []), ("variant", overrides)):
        torch.manual_seed(0)
        fn = _step_fn(ocdsl.compile(spec, torch_compile=False, overrides=ov), name)
        steps[name] = lambda fn=fn: fn(x)
        flops[name] = step_flops(steps[name])["total"]
    t = alternate(steps, rounds=rounds, steps_per_round=steps_per_round, warmup=2)
    s, v = t["shipped"], t["variant"]
    return {"overrides": overrides, "batch": batch, "threads": torch.get_num_threads(), "rounds": rounds,
            "steps_per_round": steps_per_round, "flops": flops,
            "median_s": {k: r["median_s"] for k, r in t.items()},
            "cpu_median_s": {k: r["cpu_median_s"] for k, r in t.items()},
            "times_s": {k: r["times"] for k, r in t.items()},
            "variant_over_shipped": v["median_s"] / s["median_s"],
            "cpu_variant_over_shipped": v["cpu_median_s"] / s["cpu_median_s"],
            "flops_variant_over_shipped": flops["variant"] / flops["shipped"]}


def print_variant(r: dict) -> None:
    m, c = r["median_s"], r["cpu_median_s"]
    print(f"variant {' '.join(r['overrides'])}: main job training step, batch {r['batch']}, fp32, eager, "
          f"{r['threads']} thread(s), median of {r['rounds']} alternated rounds x {r['steps_per_round']} steps")
    for k in ("shipped", "variant"):
        print(f"  {k:8s} wall {m[k] * 1e3:7.1f} ms  cpu {c[k] * 1e3:7.1f} ms  {r['flops'][k] / 1e9:6.3f} GFLOP")
    print(f"  variant/shipped: wall {r['variant_over_shipped']:.3f}  cpu {r['cpu_variant_over_shipped']:.3f}  "
          f"FLOPs {r['flops_variant_over_shipped']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8, help="batch of part 1 (default 8, the main job's)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps-per-round", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fold-batch", type=int, default=8, help="batch of part 3 (the main job's)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="the variant of part 6 (repeatable), e.g. model.nodes.decoder.kernel=3")
    ap.add_argument("--only", choices=["step", "front-end", "fold", "scale", "rewrites", "variant"], action="append",
                    help="run only these parts (repeatable); default all")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    parts = set(args.only or ["step", "front-end", "fold", "scale", "rewrites"])
    results = {}

    if "fold" in parts:
        fb = results["fold_broadcast"] = bench_fold_broadcast(args.fold_batch, args.rounds,
                                                              args.steps_per_round)
        m = fb["median_s"]
        print(f"fold_broadcast: main job training step, batch {fb['batch']}, fp32, eager, "
              f"{fb['threads']} thread(s), median of {fb['rounds']} alternated rounds x "
              f"{fb['steps_per_round']} steps")
        print(f"  folded {m['folded'] * 1e3:7.1f} ms  unfolded {m['unfolded'] * 1e3:7.1f} ms  "
              f"reference {m['reference'] * 1e3:7.1f} ms")
        print(f"  folded/unfolded {fb['folded_over_unfolded']:.3f}  folded/reference "
              f"{fb['folded_over_reference']:.3f}  unfolded/reference {fb['unfolded_over_reference']:.3f}")
    if "rewrites" in parts:
        er = results["each_rewrite"] = bench_each_rewrite(args.fold_batch, args.rounds, args.steps_per_round)
        print(f"each rewrite: main job training step, batch {er['batch']}, fp32, eager, {er['threads']} thread(s), "
              f"median of {er['rounds']} alternated rounds x {er['steps_per_round']} steps")
        for k, v in er["rows"].items():
            print(f"  {k:34s} wall {v['step_s'] * 1e3:8.1f} ms  ref/this {v['ref_over_this']:.3f}  "
                  f"cpu {v['cpu_s'] * 1e3:8.1f} ms  ref/this {v['cpu_ref_over_this']:.3f}")
    if "front-end" in parts:
        fe = results["front_end"] = bench_front_end(repeats=5)
        print("front end + codegen (median ms)")
        print(f"  {'spec':55s} {'load':>8s} {'graph':>8s} {'codegen':>8s}")
        for k, v in fe.items():
            print(f"  {k:55s} {v['load_ms']:8.1f} {v['graph_ms']:8.1f} {v['codegen_ms']:8.1f}")

    if "scale" in parts:
        sc = results["front_end_scaling"] = bench_front_end_scaling()
        print("front end + codegen of generated chain specs (median ms)")
        print(f"  {'nodes':>6s} {'load':>9s} {'graph':>9s} {'codegen':>9s} {'total':>9s} {'ms/node':>8s}")
        for n, v in sc.items():
            print(f"  {n:6d} {v['load_ms']:9.1f} {v['graph_ms']:9.1f} {v['codegen_ms']:9.1f} "
                  f"{v['total_ms']:9.1f} {v['ms_per_node']:8.2f}")

    if "variant" in parts:
        if not args.overrides:
            ap.error("part 'variant' needs at least one --set KEY=VALUE")
        print_variant(results.setdefault("variant", bench_variant(args.overrides, args.fold_batch, args.rounds,
                                                                  args.steps_per_round)))
    if "step" in parts:
        ts = results["training_step"] = bench_training_step(args.batch, args.rounds, args.steps_per_round,
                                                            not args.no_compile)
        print_training_step(ts)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
