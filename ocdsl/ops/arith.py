"""Element-wise ops: ``add``, ``subtract`` (two tensors of one shape), ``zeros_like`` (a
tensor of zeros shaped like its input) and ``activation`` (a function of each element, e.g.
a sigmoid squashing predictions into [0, 1]).

These are the plumbing of iterative blocks: the attentive sequential auto-encoder's error
image ``x - c_t`` (Eq. 1), its canvas update ``c_{t+1} = c_t + write`` (Eq. 6) and its
blank first canvas ``c_0 = 0`` (Çetin & Cinbiş 2022).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ocdsl.ops._common import ELEMENTWISE
from ocdsl.ops._common import activation as make_activation
from ocdsl.ops.registry import OpDef, Port, enum, register
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["Add", "Subtract", "ZerosLike", "Activation"]


class Add(nn.Module):
    """``x + y``, element-wise.

    Shapes:
        x: ...    y: ... (the same shape; no broadcasting, so a mistake is a shape error)
        -> out: ...

    Raises:
        ShapeError (shape rule): ``x`` and ``y`` differ in shape.

    Source:
        Çetin & Cinbiş 2022, Eq. 6 (the canvas update ``c_{t+1} = c_t + write``).
    """

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class Subtract(nn.Module):
    """``x - y``, element-wise.

    Shapes:
        x: ...    y: ... (the same shape)
        -> out: ...

    Raises:
        ShapeError (shape rule): ``x`` and ``y`` differ in shape.

    Source:
        Çetin & Cinbiş 2022, Eq. 1 (the error image ``x - c_t``).
    """

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x - y


class ZerosLike(nn.Module):
    """A tensor of zeros with the shape, dtype and device of ``x`` (no gradient to ``x``).

    Shapes:
        x: ...  -> out: ... (all 0)

    Source:
        Çetin & Cinbiş 2022, Sec. 3 (the first canvas c_0 = 0 on MNIST-Scenes).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class Activation(nn.Module):
    """An element-wise function: ``out = f(x)``.

    Args:
        function (`str`):
            One of ``ocdsl.ops._common.ELEMENTWISE``: ``"sigmoid"`` (into (0, 1)), ``"tanh"``
            (into (-1, 1)), ``"relu"``, ``"leaky_relu"`` (slope 0.01), ``"gelu"``,
            ``"celu"``, ``"silu"`` or ``"none"`` (identity).

    Shapes:
        x: ...  -> out: ... (the same shape)

    Raises:
        ValueError: an unknown ``function`` (the schema refuses it first).

    Source:
        Locatello et al. 2020, App. E.2 / official SlotAttentionClassifier
        (google-research/google-research slot_attention/model.py @ 0c1bbe5): the set
        prediction MLP's last layer is a sigmoid, so every property lies in [0, 1].
    """

    def __init__(self, function: str):
        super().__init__()
        self.function = function
        self.f = make_activation(function)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


def _same_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x, y = in_shapes["x"], in_shapes["y"]
    if len(x) != len(y) or any(Dim.of(a) != Dim.of(b) for a, b in zip(x, y)):
        raise ShapeError(f"inputs 'x' and 'y': expected the same shape, got {fmt_shape(x)} and {fmt_shape(y)}")
    return {"out": tuple(x)}


def _no_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    return {}


for _name, _module, _summary in (("add", Add, "x + y, element-wise (same shapes)"),
                                 ("subtract", Subtract, "x - y, element-wise (same shapes)")):
    register(OpDef(
        name=_name, module=_module,
        inputs=(Port("x", "...", doc="any tensor"), Port("y", "...", doc="a tensor of x's shape")),
        outputs=("out",), params={}, infer=_same_infer, init_args=_no_args, summary=_summary,
    ))

register(OpDef(
    name="zeros_like", module=ZerosLike,
    inputs=(Port("x", "...", doc="any tensor (only its shape is used)"),),
    outputs=("out",), params={},
    infer=lambda in_shapes, params: {"out": tuple(in_shapes["x"])},
    init_args=_no_args, summary="zeros shaped like x (e.g. a blank first canvas)",
))

register(OpDef(
    name="activation", module=Activation,
    inputs=(Port("x", "...", doc="any tensor"),),
    outputs=("out",),
    params={"function": enum("the element-wise function, e.g. sigmoid (into [0, 1])", list(ELEMENTWISE))},
    infer=lambda in_shapes, params: {"out": tuple(in_shapes["x"])},
    init_args=lambda in_shapes, params: {"function": params["function"]},
    required=("function",),
    summary="an element-wise function of x (sigmoid, tanh, relu, ...)",
))
