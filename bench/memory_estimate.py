"""The resource estimate of `ocdsl validate` against the measured peak of one training step.

For each spec: the estimate (ocdsl/graph/resources.py) at its train.batch_size, and the
peak memory of one real training step (fp32, eager, CPU): forward, losses, backward and the
optimizer step, the second step of the run (so the optimizer state exists, as in every
later step). The peak is measured with torch.profiler (``profile_memory=True``): the
allocations and frees it records in order, summed, on top of what was live when the step
began (parameters, buffers, optimizer state, the input batch).

    python bench/memory_estimate.py specs/*.toml
"""

from __future__ import annotations

import argparse
import sys

import torch


def measured_peak(c) -> tuple[int, int]:
    """(peak bytes of the second training step, bytes live when it began)."""
    from torch.profiler import ProfilerActivity, profile

    spec = c.spec
    model = c.instantiate(torch_compile=False)
    model.train()
    batch = spec.train.batch_size
    loss_name = spec.train.phases[-1].loss if spec.train.phases else spec.train.loss
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-4)
    shapes = spec.input_shapes(batch)
    inputs = {n: torch.rand(*s) for n, s in shapes.items()}
    arg = next(iter(inputs.values())) if len(inputs) == 1 else inputs
    sched = model.schedules(0)
    if hasattr(model, "set_schedules"):
        model.set_schedules(sched)

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(arg)
        loss = model.losses(inputs, out, sched, 0)[loss_name]
        loss.backward()
        opt.step()

    step()  # creates the optimizer state
    seen, base = set(), 0
    tensors = list(model.parameters()) + list(model.buffers()) + list(inputs.values()) + [
        t for st in opt.state.values() for t in st.values() if isinstance(t, torch.Tensor)]
    for t in tensors:
        s = t.untyped_storage()
        if s.data_ptr() not in seen:
            seen.add(s.data_ptr())
            base += s.nbytes()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
        step()
    # The profiler's memory timeline (what prof.export_memory_timeline plots): every
    # allocation (CREATE) and free (DESTROY) of the step, in order.
    from torch.profiler._memory_profiler import Action

    live = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action == Action.CREATE:
            live += size
        elif action == Action.DESTROY:
            live -= size
        peak = max(peak, live)
    return base + peak, base


def main(argv=None) -> int:
    from ocdsl.graph.resources import estimate, format_bytes
    from ocdsl.pipeline import build

    ap = argparse.ArgumentParser()
    ap.add_argument("specs", nargs="+")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    print("| spec | batch | parameters | estimate | measured peak | estimate / measured |")
    print("|---|---|---|---|---|---|")
    for path in args.specs:
        c = build(path)
        est = estimate(c.spec, c.graph)
        peak, base = measured_peak(c)
        print(f"| {path} | {est.batch_size} | {est.parameters:,} | {format_bytes(est.step_bytes)} | "
              f"{format_bytes(peak)} | {est.step_bytes / peak:.2f} |", flush=True)
        print(f"  params+optimizer state {format_bytes(est.param_bytes + est.state_bytes)} input "
              f"{format_bytes(est.input_bytes)} activations {format_bytes(est.activation_bytes)}; "
              f"measured live at start {format_bytes(base)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
