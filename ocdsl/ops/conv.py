"""Convolution ops: ``conv_stack`` (the CNN encoder of Slot Attention and friends)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from ocdsl.ops._common import ACTIVATIONS, as_list, expect_rank, size_list
from ocdsl.ops._common import activation as make_activation
from ocdsl.ops.registry import OpDef, Port, boolean, enum, register, sizes
from ocdsl.shapes import Dim, Shape, ShapeError

__all__ = ["ConvStack", "conv_out_size"]


def conv_out_size(n: int, kernel: int, stride: int) -> int:
    """Output length of a 'same'-padded conv: ``n`` at stride 1, else
    ``floor((n + 2 * ((k - 1) // 2) - k) / s) + 1`` (= ceil(n / s) for odd k)."""
    if stride == 1:
        return n
    pad = (kernel - 1) // 2
    return (n + 2 * pad - kernel) // stride + 1


class ConvStack(nn.Module):
    """A stack of 'same'-padded 2-D convolutions, each followed by an optional norm and an
    activation: the CNN encoder of Slot Attention.

    Layer ``i`` is ``Conv2d(c_{i-1}, channels[i], kernel[i], stride[i])`` -> norm -> activation.
    Stride-1 layers use ``padding="same"``; a stride-``s`` layer pads ``(k - 1) // 2`` so an
    odd kernel gives ``ceil(h / s)``. A conv followed by a norm has no bias.

    Args:
        in_channels (`int`):
            Channels ``Cin`` of the input feature map.
        channels (`list[int]`):
            Output channels of each layer; ``len(channels)`` layers.
        kernel (`int` or `list[int]`, *optional*, defaults to 5):
            Kernel size (square), one for all layers or one per layer.
        stride (`int` or `list[int]`, *optional*, defaults to 1):
            Stride, one for all layers or one per layer.
        activation (`str`, *optional*, defaults to `"relu"`):
            `"relu"`, `"gelu"`, `"celu"`, `"silu"` or `"none"`.
        last_activation (`bool`, *optional*, defaults to `True`):
            Apply the activation (and norm) after the last layer too. The Slot Attention
            encoder applies ReLU after every conv, so the default is True.
        norm (`str`, *optional*, defaults to `"none"`):
            `"none"`, `"group"` (GroupNorm with gcd(32, C) groups) or `"batch"` (BatchNorm2d).
        channels_last (`bool`, *optional*, defaults to `False`):
            Run the stack on a channels-last (NHWC in memory) copy of the input, so oneDNN's
            convolutions read and write their native layout instead of reordering every
            call; the output stays channels-last (same shape and values: only the strides
            differ). Turned on by the compiler rewrite ``channels_last``
            (ocdsl/graph/rewrites.py; spec ``[compile] rewrites``).

    Shapes:
        x:   b cin h w
        out: b cout h' w'      cout = channels[-1]; h' = h at stride 1 (ceil(h / s) at stride s)

    Raises:
        ValueError: an unknown activation or norm name (the spec schema rejects these first).

    Source:
        Locatello et al. 2020, App. E.1 (Tetrominoes / Multi-dSprites: 4 x Conv(32, 5x5,
        'same', ReLU); CLEVR: 4 x Conv(64, 5x5, 'same', ReLU)). PyTorch default init
        (kaiming-uniform); the official Keras code uses glorot-uniform weights, zero biases.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], kernel: int | Sequence[int] = 5,
                 stride: int | Sequence[int] = 1, activation: str = "relu",
                 last_activation: bool = True, norm: str = "none", channels_last: bool = False):
        super().__init__()
        self.channels_last = bool(channels_last)
        n = len(channels)
        kernels = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel] * n
        strides = list(stride) if isinstance(stride, (list, tuple)) else [stride] * n
        if norm not in ("none", "group", "batch"):
            raise ValueError(f"unknown norm {norm!r}, expected 'none', 'group' or 'batch'")
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, (c, k, s) in enumerate(zip(channels, kernels, strides)):
            last = i == n - 1
            post = not last or last_activation
            use_norm = norm != "none" and post
            pad: Any = "same" if s == 1 else (k - 1) // 2
            layers.append(nn.Conv2d(c_in, c, k, stride=s, padding=pad, bias=not use_norm))
            if use_norm:
                layers.append(nn.GroupNorm(math.gcd(32, c), c) if norm == "group"
                              else nn.BatchNorm2d(c))
            if post:
                layers.append(make_activation(activation))
            c_in = c
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # (B, Cin, H, W), NHWC strides
        return self.layers(x)  # (B, Cin, H, W) -> (B, Cout, H', W')



def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x = in_shapes["x"]
    expect_rank("x", x, "B C H W")
    channels = size_list(params["channels"], "channels")
    n = len(channels)
    kernels = size_list(as_list(params["kernel"], n, "kernel"), "kernel")
    strides = size_list(as_list(params["stride"], n, "stride"), "stride")
    b, _, h, w = x
    for i, (k, s) in enumerate(zip(kernels, strides)):
        pad = 2 * ((k - 1) // 2)  # 'same' padding
        if h.is_concrete and w.is_concrete and k > min(h.value, w.value) + pad:
            raise ShapeError(f"conv_stack: layer {i + 1}'s kernel {k} is larger than its input {h}x{w} "
                             f"with its padding ({pad} pixels)")
        if s != 1:
            h = Dim.of(conv_out_size(h.value, k, s))
            w = Dim.of(conv_out_size(w.value, k, s))
            if h.value < 1 or w.value < 1:
                raise ShapeError(f"conv_stack: expected a positive output size, got {h}x{w} "
                                 f"(kernel {k}, stride {s})")
    return {"out": (b, Dim.of(channels[-1]), h, w)}


def _init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    x = in_shapes["x"]
    expect_rank("x", x, "B C H W")
    channels = size_list(params["channels"], "channels")
    kernel = params["kernel"]
    stride = params["stride"]
    return {
        "in_channels": x[1].value,
        "channels": channels,
        "kernel": size_list(kernel, "kernel") if isinstance(kernel, list) else int(kernel),
        "stride": size_list(stride, "stride") if isinstance(stride, list) else int(stride),
        "activation": params["activation"],
        "last_activation": bool(params["last_activation"]),
        "norm": params["norm"],
    }


_INT_OR_LIST = {"anyOf": [{"type": "integer", "minimum": 1},
                          {"type": "array", "items": {"type": "integer", "minimum": 1},
                           "minItems": 1}]}

register(OpDef(
    name="conv_stack",
    module=ConvStack,
    inputs=(Port("x", "B C H W", doc="feature map, channels first"),),
    outputs=("out",),
    params={
        "channels": sizes("output channels of each conv layer (one layer per entry)"),
        "kernel": {**_INT_OR_LIST,
                   "description": "square kernel size, one for all layers or one per layer"},
        "stride": {**_INT_OR_LIST,
                   "description": "stride, one for all layers or one per layer ('same' padding)"},
        "activation": enum("activation after each conv", ACTIVATIONS),
        "last_activation": boolean("apply norm + activation after the last conv too "
                                   "(the Slot Attention encoder does)"),
        "norm": enum("normalisation after each conv: none, group (GroupNorm) or batch "
                     "(BatchNorm2d)", ["none", "group", "batch"]),
    },
    infer=_infer,
    init_args=_init_args,
    required=("channels",),
    summary="stack of 'same'-padded Conv2d layers with activations (CNN encoder)",
))
