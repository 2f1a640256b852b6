"""Blocks and loops in the spec language: a block used like an op, a repeat node with a
carried state, T from [dims] or from a schedule, the generated for loop, YAML."""

from __future__ import annotations

import pytest
import torch

import ocdsl
from ocdsl.pipeline import build
from ocdsl.spec import loads

TOY = """
[dims]
D = 4
T = 3

[model.inputs]
x = "B D"

[blocks.step]                      # h <- h + W x: the state h is carried
inputs = { x = "B D", h = "B D" }
outputs = { h = "next", delta = "update" }

[blocks.step.nodes.update]
op = "linear"
input = "x"
size = "D"

[blocks.step.nodes.next]
op = "add"
inputs = { x = "h", y = "update" }

[model.nodes.h0]
op = "zeros_like"
input = "x"

[model.nodes.loop]
op = "repeat"
block = "step"
times = TIMES
inputs = { x = "x", h = "h0" }
carry = ["h"]
output = { h = "B STEPS D", final_h = "B D" }

[model.nodes.once]
op = "step"
inputs = { x = "x", h = "h0" }

[losses]
total = "mse(loop.final_h, x) + mean(once.h)"

[schedules]
grow = "1 + step // 10"

[train]
loss = "total"
steps = 30
"""


def _toy(times: str = '"T"', steps: str = "T") -> str:
    return TOY.replace("TIMES", times).replace("STEPS", steps)


def test_repeat_carries_state_with_one_set_of_weights(tmp_path):
    c = build(loads(_toy(), file=str(tmp_path / "toy.toml")))
    assert "for _ in range(self.loop.times):" in c.source
    assert "class StepBlock(nn.Module):" in c.source
    model = c.instantiate(torch_compile=False)
    # one linear per node that uses the block (loop and once), not one per step
    assert sum(p.numel() for p in model.loop.parameters()) == 4 * 4 + 4
    x = torch.randn(2, 4)
    out = model(x)
    assert out["loop.h"].shape == (2, 3, 4) and out["loop.delta"].shape == (2, 3, 4)
    u = model.loop.update(x)
    for t in range(3):   # h_t = (t + 1) W x: the state went through every step
        torch.testing.assert_close(out["loop.h"][:, t], (t + 1) * u)
    torch.testing.assert_close(out["loop.final_h"], 3 * u)
    torch.testing.assert_close(out["once.h"], model.once.update(x))


def test_times_from_a_schedule_grows_during_training(tmp_path):
    c = build(loads(_toy('"grow"', "grow"), file=str(tmp_path / "toy.toml")))
    assert "self.loop.times = round(sched['grow'])" in c.source
    model = c.instantiate(torch_compile=False)
    x = torch.randn(2, 4)
    assert model(x)["loop.h"].shape == (2, 1, 4)          # step 0: 1 step
    model.set_schedules(model.schedules(25))
    assert model(x)["loop.h"].shape == (2, 3, 4)          # step 25: 3 steps


def test_yaml_blocks(tmp_path):
    text = """
dims: {D: 4}
model:
  inputs: {x: "B D"}
  nodes:
    loop:
      op: repeat
      block: step
      times: 2
      inputs: {h: x}
      carry: [h]
blocks:
  step:
    inputs: {h: "B D"}
    outputs: {h: next}
    nodes:
      next: {op: linear, input: h, size: D}
losses: {total: "mean(loop.final_h)"}
train: {loss: total}
"""
    c = build(loads(text, "yaml", file=str(tmp_path / "toy.yaml")))
    out = c.instantiate(torch_compile=False)(torch.randn(3, 4))
    assert out["loop.h"].shape == (3, 2, 4)


def test_block_errors_point_at_the_block(tmp_path):
    bad = _toy().replace('op = "add"\ninputs = { x = "h", y = "update" }', 'op = "add"\ninputs = { x = "h", y = "nowhere" }')
    try:
        build(loads(bad, file=str(tmp_path / "toy.toml")))
    except ocdsl.SpecError as e:
        text = e.format()
    else:
        raise AssertionError("expected a SpecError")
    assert "blocks.step.nodes.next.inputs.y" in text and "nowhere" in text


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_torch_compile_through_the_loop(tmp_path):
    c = build(loads(_toy(), file=str(tmp_path / "toy.toml")))
    eager = c.instantiate(torch_compile=False)
    compiled = c.instantiate(torch_compile=True)
    compiled.load_state_dict(eager.state_dict())
    x = torch.randn(2, 4)
    want, got = eager(x), compiled(x)
    for k in want:
        torch.testing.assert_close(got[k], want[k])
