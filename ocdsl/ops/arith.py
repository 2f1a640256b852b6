"""Element-wise arithmetic: ``add``, ``subtract`` (two tensors of one shape) and
``zeros_like`` (a tensor of zeros shaped like its input).

These are the plumbing of iterative blocks: the attentive sequential auto-encoder's error
image ``x - c_t`` (Eq. 1), its canvas update ``c_{t+1} = c_t + write`` (Eq. 6) and its
blank first canvas ``c_0 = 0`` (Çetin & Cinbiş 2022).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ocdsl.ops.registry import OpDef, Port, register
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["Add", "Subtract", "ZerosLike"]


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
