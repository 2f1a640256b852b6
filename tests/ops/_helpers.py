"""Run an op the way generated code will: infer -> init_args -> module(**kwargs) -> forward."""

from __future__ import annotations

import ast
from typing import Any

import torch

from ocdsl.ops import get
from ocdsl.shapes import Dim, Shape, shape

BATCH = 2


def sym(*dims) -> Shape:
    """``sym("B", 3, 8, 8)`` -> the Shape graph/ would hand an op."""
    return shape(*dims)


def concrete(s: Shape, b: int = BATCH) -> tuple[int, ...]:
    """Substitute B (the only free symbol) and return ints."""
    out = []
    for d in s:
        v = d.coeff
        for sname in d.symbols:
            assert sname == "B", f"unexpected free symbol {sname} in {s}"
            v *= b
        out.append(v)
    return tuple(out)


def assert_literal(value: Any) -> None:
    """init_args must be plain literals that generated code can write out."""
    assert ast.literal_eval(repr(value)) == value, value


def run_op(name: str, in_shapes: dict[str, Shape], params: dict[str, Any],
           inputs: dict[str, torch.Tensor] | None = None):
    """Returns (inferred shapes, actual outputs dict, module)."""
    op = get(name)
    inferred = op.infer(in_shapes, params)
    assert tuple(inferred) == op.outputs, (tuple(inferred), op.outputs)
    kwargs = op.init_args(in_shapes, params)
    assert_literal(kwargs)
    module = op.module(**kwargs)
    if inputs is None:
        inputs = {p: torch.randn(concrete(s)) for p, s in in_shapes.items()}
    if len(op.inputs) == 1:
        out = module(inputs[op.inputs[0].name])
    else:
        out = module(**{p.name: inputs.get(p.name) for p in op.inputs})
    if len(op.outputs) == 1:
        out = (out,)
    outputs = dict(zip(op.outputs, out))
    for port, s in inferred.items():
        assert tuple(outputs[port].shape) == concrete(s), (port, outputs[port].shape, s)
    return inferred, outputs, module


__all__ = ["BATCH", "sym", "concrete", "run_op", "assert_literal", "Dim"]
