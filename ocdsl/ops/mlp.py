"""Per-token ops on the last axis: ``mlp``, ``layer_norm`` and ``linear``."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ocdsl.ops._common import ACTIVATIONS, expect_rank, size_list
from ocdsl.ops._common import activation as make_activation
from ocdsl.ops.registry import OpDef, Port, boolean, enum, number, register, size, sizes
from ocdsl.shapes import Dim, Shape, ShapeError

__all__ = ["MLP", "LayerNorm", "Linear"]


class MLP(nn.Module):
    """A multi-layer perceptron on the last axis, with optional pre-LayerNorm and residual.

    ``out = [x +] Linear_n(act(... act(Linear_1(LN(x)))))``: an activation between layers,
    none after the last unless ``final_activation``; ``LN`` only with ``norm="pre"``.

    Args:
        in_features (`int`):
            Size ``Din`` of the input's last axis.
        sizes (`list[int]`):
            Output size of each Linear layer; ``Dout = sizes[-1]``.
        activation (`str`, *optional*, defaults to `"relu"`):
            `"relu"`, `"gelu"`, `"celu"`, `"silu"` or `"none"`.
        norm (`str`, *optional*, defaults to `"none"`):
            `"none"`, or `"pre"`: LayerNorm over the last axis before the first layer.
        residual (`bool`, *optional*, defaults to `False`):
            Add the (un-normalised) input to the output; needs ``Dout == Din``.
        final_activation (`bool`, *optional*, defaults to `False`):
            Apply the activation after the last layer too.
        ln_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the pre-LayerNorm (Keras default in the official code: 1e-3).

    Shapes:
        x:   ... din
        out: ... dout

    Raises:
        ValueError: ``residual`` with ``Dout != Din`` (the shape rule raises ShapeError first).

    Source:
        Locatello et al. 2020, App. E.1: the encoder's "LayerNorm, Dense(64, ReLU), Dense(64)"
        after flattening, and the slot MLP of Alg. 1 l.10. PyTorch default init.
    """

    def __init__(self, in_features: int, sizes: Sequence[int], activation: str = "relu",
                 norm: str = "none", residual: bool = False, final_activation: bool = False,
                 ln_eps: float = 1e-5):
        super().__init__()
        if residual and sizes[-1] != in_features:
            raise ValueError(f"residual MLP: expected output size {in_features}, got {sizes[-1]}")
        if norm not in ("none", "pre"):
            raise ValueError(f"unknown norm {norm!r}, expected 'none' or 'pre'")
        self.residual = residual
        self.norm = nn.LayerNorm(in_features, eps=ln_eps) if norm == "pre" else nn.Identity()
        layers: list[nn.Module] = []
        d = in_features
        for i, s in enumerate(sizes):
            layers.append(nn.Linear(d, s))
            if i < len(sizes) - 1 or final_activation:
                layers.append(make_activation(activation))
            d = s
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(self.norm(x))                            # (..., Din) -> (..., Dout)
        return x + y if self.residual else y


class LayerNorm(nn.LayerNorm):
    """Layer normalisation over the last axis, with a learned scale and shift.

    Args:
        features (`int`):
            Size ``D`` of the last axis.
        eps (`float`, *optional*, defaults to 1e-5):
            Added to the variance (the official Slot Attention code uses Keras' 1e-3).

    Shapes:
        x:   ... d
        out: ... d

    Raises:
        RuntimeError (forward): the last axis is not ``D``.

    Source:
        Ba et al. 2016, "Layer Normalization", Eq. 4; Slot Attention Alg. 1 l.3, 6, 10.
    """

    def __init__(self, features: int, eps: float = 1e-5):
        super().__init__(features, eps=eps)


class Linear(nn.Linear):
    """A fully connected layer on the last axis: ``out = x W^T + b``.

    Args:
        in_features (`int`):
            Size ``D`` of the input's last axis.
        out_features (`int`):
            Size ``E`` of the output's last axis.
        bias (`bool`, *optional*, defaults to `True`):
            Learn an additive bias ``b``.

    Shapes:
        x:   ... d
        out: ... e

    Raises:
        RuntimeError (forward): the last axis is not ``D``.

    Source:
        ``torch.nn.Linear`` (PyTorch default init: kaiming-uniform weights, uniform bias in
        +-1/sqrt(D)). E.g. the projection heads of contrastive slot attention (Baldassarre &
        Azizpour 2022, Sec. 3) or Slot Attention's k, q, v maps (Alg. 1 l.3, 6).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)


def _last_axis(in_shapes: dict[str, Shape]) -> Shape:
    x = in_shapes["x"]
    expect_rank("x", x, "D", at_least=True)
    return tuple(x)


def _mlp_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x = _last_axis(in_shapes)
    out_sizes = size_list(params["sizes"], "sizes")
    if params["residual"] and Dim.of(out_sizes[-1]) != x[-1]:
        raise ShapeError(f"residual mlp: expected the last size to equal the input size "
                         f"{x[-1]}, got sizes {out_sizes}")
    return {"out": x[:-1] + (Dim.of(out_sizes[-1]),)}


def _mlp_init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    x = _last_axis(in_shapes)
    return {
        "in_features": x[-1].value,
        "sizes": size_list(params["sizes"], "sizes"),
        "activation": params["activation"],
        "norm": params["norm"],
        "residual": bool(params["residual"]),
        "final_activation": bool(params["final_activation"]),
        "ln_eps": float(params["ln_eps"]),
    }


def _linear_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    return {"out": _last_axis(in_shapes)[:-1] + (Dim.of(size_list([params["size"]], "size")[0]),)}


def _linear_init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    return {"in_features": _last_axis(in_shapes)[-1].value,
            "out_features": size_list([params["size"]], "size")[0],
            "bias": bool(params["bias"])}


def _ln_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    return {"out": _last_axis(in_shapes)}


def _ln_init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    return {"features": _last_axis(in_shapes)[-1].value, "eps": float(params["eps"])}


register(OpDef(
    name="mlp",
    module=MLP,
    inputs=(Port("x", "... D", doc="any tensor; the MLP acts on the last axis"),),
    outputs=("out",),
    params={
        "sizes": sizes("output size of each Linear layer; the last is the output size"),
        "activation": enum("activation between layers", ACTIVATIONS),
        "norm": enum("'pre': LayerNorm over the input's last axis before the first layer",
                     ["none", "pre"]),
        "residual": boolean("add the input to the output (last size must equal input size)"),
        "final_activation": boolean("apply the activation after the last layer too"),
        "ln_eps": number("epsilon of the pre-LayerNorm (Keras official code: 1e-3)",
                         exclusiveMinimum=0),
    },
    infer=_mlp_infer,
    init_args=_mlp_init_args,
    required=("sizes",),
    summary="MLP on the last axis (optional pre-LayerNorm and residual)",
))

register(OpDef(
    name="layer_norm",
    module=LayerNorm,
    inputs=(Port("x", "... D", doc="any tensor; normalised over the last axis"),),
    outputs=("out",),
    params={
        "eps": number("added to the variance (Keras official code: 1e-3)",
                      exclusiveMinimum=0),
    },
    infer=_ln_infer,
    init_args=_ln_init_args,
    summary="LayerNorm over the last axis",
))

register(OpDef(
    name="linear",
    module=Linear,
    inputs=(Port("x", "... D", doc="any tensor; the layer acts on the last axis"),),
    outputs=("out",),
    params={
        "size": size("output size E of the last axis"),
        "bias": boolean("learn an additive bias", default=True),
    },
    infer=_linear_infer,
    init_args=_linear_init_args,
    required=("size",),
    summary="a fully connected layer on the last axis",
))
