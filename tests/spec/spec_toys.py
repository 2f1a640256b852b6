"""Toy ops and a toy spec shared by the spec front-end tests (kept out of conftest.py so
test modules can import them by a unique name)."""

from __future__ import annotations

from ocdsl.ops.registry import OpDef, Port, boolean, enum, integer, number, size, sizes


class ToyLinear:
    """Toy op: ``x`` (B N I) -> ``out`` (B N width)."""


class ToySplit:
    """Toy op with two input ports and two outputs."""


TOY_OPS = (
    OpDef(name="toy_linear", module=ToyLinear, inputs=(Port("x", "B N I"),), outputs=("out",),
          params={"width": size("output width"), "hidden": sizes("hidden widths"),
                  "bias": boolean("add a bias"), "depth": integer("layers", minimum=1),
                  "scale": number("output scale"), "mode": enum("mode", ["fast", "slow"])},
          infer=lambda s, p: {"out": s["x"]}, init_args=lambda s, p: {}, required=("width",)),
    OpDef(name="toy_split", module=ToySplit, inputs=(Port("a", "B N D"), Port("b", "B N D", optional=True)),
          outputs=("left", "right"), params={"parts": integer("how many parts", minimum=1)},
          infer=lambda s, p: {"left": s["a"], "right": s["a"]}, init_args=lambda s, p: {}),
)


TOY_SPEC = """\
[meta]
name = "toy"

[dims]
N = 6
I = 4
D = 8
W = "D * 2"

[model.inputs]
x = "B N I"

[model.nodes.lin]
op = "toy_linear"
input = "x"
width = "D"
hidden = ["W", 3]
output = "B N D"

[model.nodes.split]
op = "toy_split"
inputs = { a = "lin", b = "lin.out" }
output = { left = "B N D", right = "B N D" }

[losses]
rec = "mean(split.left) + mean(split.right)"
total = "rec * weight"

[schedules]
weight = "min(1, step / warmup)"
warmup = 100
lr = "1e-3 * weight"

[train]
loss = "total"
optimizer = { name = "adam", lr = "lr" }
batch_size = 4
steps = 10

[data]
dataset = "toy"

[eval]
masks = "split.left"
metrics = ["mse"]
reconstruction = "split.right"
"""
