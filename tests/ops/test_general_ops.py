"""The general ops a user reaches for: ``linear``, ``reduce``, ``parameter``, and
``rearrange`` / ``reduce`` axis sizes written as [dims] expressions -- as ops, and through
a spec (load -> shapes -> generated code -> forward)."""

import pytest
import torch

from ocdsl.errors import SpecError
from ocdsl.ops import get
from ocdsl.ops.tensor import rearrange_shape
from ocdsl.pipeline import build
from ocdsl.shapes import ShapeError
from ocdsl.spec.load import loads

from ._helpers import run_op, sym


def test_linear_maps_the_last_axis():
    inferred, out, module = run_op("linear", {"x": sym("B", 4, 6)}, {"size": 3})
    assert inferred == {"out": sym("B", 4, 3)}
    x = torch.randn(2, 4, 6)
    assert torch.allclose(module(x), x @ module.weight.T + module.bias)
    _, _, no_bias = run_op("linear", {"x": sym("B", 6)}, {"size": 3, "bias": False})
    assert no_bias.bias is None


@pytest.mark.parametrize("reduction, fn", [("mean", torch.mean), ("sum", torch.sum),
                                           ("max", torch.amax), ("min", torch.amin)])
def test_reduce_over_named_axes(reduction, fn):
    inferred, out, module = run_op("reduce", {"x": sym("B", 4, 5, 6)},
                                   {"pattern": "b k h w -> b w", "reduction": reduction})
    assert inferred == {"out": sym("B", 6)}
    x = torch.randn(2, 4, 5, 6)
    assert torch.allclose(module(x), fn(x, dim=(1, 2)))


def test_reduce_shape_rules():
    assert rearrange_shape("b ... c -> b c", sym("B", 2, 3, 4), reduction=True) == sym("B", 4)
    assert rearrange_shape("b (k d) -> b d", sym("B", 12), {"k": 3}, reduction=True) == sym("B", 4)
    assert rearrange_shape("b k d -> b 1 d", sym("B", 3, 4), reduction=True) == sym("B", 1, 4)
    with pytest.raises(ShapeError, match="only on the right"):
        rearrange_shape("b k -> b k z", sym("B", 3), reduction=True)
    with pytest.raises(ShapeError, match="same axis names"):     # rearrange still may not drop axes
        rearrange_shape("b k d -> b d", sym("B", 3, 4))


def test_parameter_is_one_learned_tensor_repeated_over_the_batch():
    inferred, out, module = run_op("parameter", {"batch": sym("B", 3, 8, 8)}, {"shape": [4, 5]})
    assert inferred == {"out": sym("B", 4, 5)}
    assert torch.equal(out["out"][0], out["out"][1]) and out["out"][0].data_ptr() == module.value.data_ptr()
    out["out"].sum().backward()
    assert torch.equal(module.value.grad, torch.full((4, 5), 2.0))      # one gradient per sample
    _, z, _ = run_op("parameter", {"batch": sym("B", 3)}, {"shape": [2], "init": "zeros"})
    assert torch.equal(z["out"], torch.zeros(2, 2))
    _, _, normal = run_op("parameter", {"batch": sym("B", 3)}, {"shape": [400, 50], "std": 0.1})
    assert normal.value.std().item() == pytest.approx(0.1, rel=0.05)


SPEC = """
[meta]
name = "general_ops"
[dims]
K = 4
D = 8
E = 6
[model.inputs]
image = "B 3 8 8"
[model.nodes.queries]
op = "parameter"
input = "image"
shape = ["K", "D"]
std = 0.5
output = "B K D"
[model.nodes.project]
op = "linear"
input = "queries"
size = "E"
output = "B K E"
[model.nodes.split_heads]
op = "rearrange"
input = "project"
pattern = "b k (h e) -> b h k e"
axes = { h = "E // 3" }
output = "B 2 K 3"
[model.nodes.pooled]
op = "reduce"
input = "split_heads"
pattern = "b h k e -> b e"
reduction = "max"
output = "B 3"
[losses]
size = "mean(pooled)"
[train]
loss = "size"
"""


def test_general_ops_compose_in_a_spec_with_dims_in_axis_sizes():
    compiled = build(loads(SPEC))
    assert "axes={'h': 2}" in compiled.source and "'max'" in compiled.source
    model = compiled.instantiate(torch_compile=False)
    out = model(torch.randn(2, 3, 8, 8))
    assert out["pooled"].shape == (2, 3)
    q = model.queries.value.detach()
    e = q @ model.project.weight.T + model.project.bias
    assert torch.allclose(out["pooled"][0], e.reshape(4, 2, 3).amax(dim=(0, 1)), atol=1e-6)


def test_an_axis_size_naming_an_unknown_dim_is_a_located_error():
    bad = SPEC.replace('axes = { h = "E // 3" }', 'axes = { h = "Q // 3" }')
    with pytest.raises(SpecError) as e:
        build(loads(bad))
    text = str(e.value)
    assert "axes.h" in text and "Q" in text


@pytest.mark.parametrize("function, ref", [("sigmoid", torch.sigmoid), ("tanh", torch.tanh),
                                           ("relu", torch.relu), ("none", lambda x: x)])
def test_activation_is_elementwise(function, ref):
    inferred, out, module = run_op("activation", {"x": sym("B", 5, 14)}, {"function": function})
    assert inferred == {"out": sym("B", 5, 14)}
    x = torch.randn(2, 5, 14)
    assert torch.equal(module(x), ref(x))


def test_activation_needs_a_known_function():
    from ocdsl.ops.arith import Activation

    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        Activation("softplus")
    assert "sigmoid" in get("activation").params["function"]["enum"]
