"""cross_attention: each query attends over the inputs on its own (no competition), the
declared symmetries hold, and the shape rule's errors."""

import pytest
import torch

from ocdsl.ops import get
from ocdsl.ops.attention import CrossAttention
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym

F64 = torch.float64


def test_shape_rule_matches_the_module():
    inferred, out, module = run_op("cross_attention", {"queries": sym("B", 5, 8), "features": sym("B", 12, 8)},
                                   {"heads": 2})
    assert inferred == {"queries": sym("B", 5, 8), "attention": sym("B", 5, 12)}
    assert len(module.layers) == 2
    assert torch.allclose(out["attention"].sum(-1), torch.ones(2, 5), atol=1e-6)   # softmax over inputs


def test_queries_do_not_compete():
    """A query's output does not depend on the other queries (unlike slot attention)."""
    torch.manual_seed(0)
    m = CrossAttention(8, layers=2, heads=2).double()
    x = torch.randn(2, 10, 8, dtype=F64)
    q = torch.randn(2, 4, 8, dtype=F64)
    full, _ = m(q, x)
    alone, _ = m(q[:, :1], x)
    assert torch.allclose(full[:, :1], alone, atol=1e-12)


def test_declared_symmetries_hold():
    torch.manual_seed(1)
    m = CrossAttention(8, layers=2, heads=4).double()
    q, x = torch.randn(2, 4, 8, dtype=F64), torch.randn(2, 10, 8, dtype=F64)
    pk, pn = torch.randperm(4), torch.randperm(10)
    out, attn = m(q, x)
    out_k, attn_k = m(q[:, pk], x)
    assert torch.allclose(out_k, out[:, pk], atol=1e-12) and torch.allclose(attn_k, attn[:, pk], atol=1e-12)
    out_n, attn_n = m(q, x[:, pn])
    assert torch.allclose(out_n, out, atol=1e-12) and torch.allclose(attn_n, attn[:, :, pn], atol=1e-12)


@pytest.mark.parametrize("shapes, params, match", [
    ({"queries": sym("B", 4, 8), "features": sym("B", 10, 6)}, {}, "expected \\(b, n, d\\)"),
    ({"queries": sym("B", 4, 8), "features": sym("B", 10, 8)}, {"heads": 3}, "divisor of the feature size"),
    ({"queries": sym("B", 8), "features": sym("B", 10, 8)}, {}, "expected 3 axes"),
])
def test_shape_errors(shapes, params, match):
    with pytest.raises(ShapeError, match=match):
        get("cross_attention").infer(shapes, params)
