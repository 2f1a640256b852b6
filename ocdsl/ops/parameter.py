"""A learned tensor as a node: ``parameter`` (e.g. K learned queries ``K D``)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from ocdsl.ops._common import expect_rank, size_list
from ocdsl.ops.registry import OpDef, Port, enum, number, register, sizes
from ocdsl.shapes import Dim, Shape

__all__ = ["LearnedTensor", "PARAMETER_INITS"]

PARAMETER_INITS = ("normal", "trunc_normal", "zeros", "xavier_uniform")


class LearnedTensor(nn.Module):
    """A learned tensor of a fixed shape, the same for every sample, repeated over the
    batch of another tensor (a view: no copy).

    Args:
        shape (`list[int]`):
            The tensor's shape without the batch, e.g. ``[K, D]`` for K learned queries.
        init (`str`, *optional*, defaults to `"normal"`):
            `"normal"` (N(0, std^2)), `"trunc_normal"` (N(0, std^2) truncated to [-2, 2],
            timm's ViT init), `"zeros"` or `"xavier_uniform"` (Glorot-uniform over
            the last two axes as fan-in / fan-out, like a Keras weight).
        std (`float`, *optional*, defaults to 1.0):
            Standard deviation of the normal init.

    Shapes:
        batch: b ...    any tensor whose first axis is the batch (only its size is read)
        -> out: b *shape

    Raises:
        ValueError: an unknown init, or ``xavier_uniform`` for a shape of fewer than 2 axes.

    Source:
        Learned initial slots / queries: SAVi and Invariant Slot Attention's
        ``ParamStateInit`` (N(0, 1)); BO-QSA's learnable queries (Jia et al., ICLR 2023);
        the slot-attention queries of contrastive slot attention (Baldassarre & Azizpour 2022).
    """

    def __init__(self, shape: Sequence[int], init: str = "normal", std: float = 1.0):
        super().__init__()
        if init not in PARAMETER_INITS:
            raise ValueError(f"unknown init {init!r}, expected one of {', '.join(PARAMETER_INITS)}")
        self.value = nn.Parameter(torch.empty(*[int(n) for n in shape]))
        if init == "normal":
            nn.init.normal_(self.value, std=float(std))
        elif init == "trunc_normal":
            nn.init.trunc_normal_(self.value, std=float(std), a=-2.0, b=2.0)
        elif init == "zeros":
            nn.init.zeros_(self.value)
        else:
            if self.value.dim() < 2:
                raise ValueError(f"init 'xavier_uniform' needs at least 2 axes, got shape {list(shape)}")
            fan_in, fan_out = self.value.shape[-2], self.value.shape[-1]
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(self.value, -bound, bound)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.value.expand(batch.shape[0], *self.value.shape)   # (b, *shape)


def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x = in_shapes["batch"]
    expect_rank("batch", x, "B", at_least=True)
    return {"out": (Dim.of(x[0]),) + tuple(Dim.of(n) for n in size_list(params["shape"], "shape"))}


def _init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _infer(in_shapes, params)
    return {"shape": size_list(params["shape"], "shape"), "init": params["init"],
            "std": float(params["std"])}


register(OpDef(
    name="parameter",
    module=LearnedTensor,
    inputs=(Port("batch", "B ...", doc="any tensor whose first axis is the batch, e.g. the image"),),
    outputs=("out",),
    params={
        "shape": sizes("the tensor's shape without the batch, e.g. [\"K\", \"D\"]"),
        "init": enum("initialisation", PARAMETER_INITS, default="normal"),
        "std": number("standard deviation of the normal init", exclusiveMinimum=0, default=1.0),
    },
    infer=_infer,
    init_args=_init_args,
    required=("shape",),
    summary="a learned tensor (e.g. K learned queries), repeated over the batch",
))
