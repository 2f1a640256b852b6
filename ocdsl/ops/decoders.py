"""Decoders from slots to images: ``spatial_broadcast_decoder``."""

from __future__ import annotations

from typing import Any, Sequence

import einops
import torch
from torch import nn

from ocdsl.ops._common import ACTIVATIONS, as_list, expect_rank, size_list
from ocdsl.ops._common import activation as make_activation
from ocdsl.ops.position import SoftPositionEmbedding
from ocdsl.ops.registry import OpDef, Port, Symmetry, enum, register, size, sizes
from ocdsl.shapes import Dim, Shape, ShapeError

__all__ = ["SpatialBroadcastDecoder", "decoder_resolution"]


def decoder_resolution(broadcast: Sequence[int], kernels: Sequence[int],
                       strides: Sequence[int]) -> tuple[int, int]:
    """Output ``(h, w)`` of the conv layers: a stride-s layer multiplies by s
    (ConvTranspose2d, padding k // 2, output_padding s - 1; odd k), stride 1 keeps it."""
    h, w = int(broadcast[0]), int(broadcast[1])
    for k, s in zip(kernels, strides):
        if s > 1 and k % 2 == 0:
            raise ShapeError(f"spatial_broadcast_decoder: expected an odd kernel for a stride-{s} "
                             f"layer, got {k}")
        h, w = h * s, w * s
    return h, w


class SpatialBroadcastDecoder(nn.Module):
    """Spatial broadcast decoder: each slot is tiled over a grid, given a soft position
    embedding and decoded by convolutions to RGB and an alpha logit.

    Slots are decoded independently as one ``(b k)`` batch. Layer ``i`` is a 'same'-padded
    ``Conv2d(k_i)`` at stride 1 or ``ConvTranspose2d(k_i, stride s, padding k_i // 2,
    output_padding s - 1)`` (exactly ``s`` x upsampling; k = 5, s = 2 is the paper's CLEVR
    decoder), each followed by the activation; then a 'same' ``Conv2d(out_kernel)`` to
    ``out_channels`` with no activation, split into RGB (the first ``out_channels - 1``)
    and the alpha logit (the last channel).

    Args:
        slot_size (`int`):
            Slot size ``D`` (channels of the broadcast grid).
        resolution (`list[int]`):
            Output ``[H, W]``.
        channels (`list[int]`):
            Output channels of each hidden conv layer.
        out_channels (`int`):
            Channels of the last conv, ``C + 1`` (RGB + alpha logit).
        broadcast (`list[int]`, *optional*, defaults to ``resolution``):
            ``[h, w]`` of the broadcast grid; the strides must take it to ``resolution``.
        kernel (`int` or `list[int]`, *optional*, defaults to 5):
            Kernel size of the hidden layers (one for all, or one per layer).
        strides (`list[int]`, *optional*, defaults to all 1):
            Stride of each hidden layer.
        out_kernel (`int`, *optional*, defaults to 3):
            Kernel size of the output conv.
        activation (`str`, *optional*, defaults to `"relu"`):
            Activation after each hidden layer.

    Shapes:
        slots:          b k d
        -> rgb:          b k c h w          c = out_channels - 1; (h, w) = resolution
        -> alpha_logits: b k 1 h w          softmax over k gives the masks (alpha_composite)

    Raises:
        ShapeError (shape rule): ``slots`` not 3-D, ``strides`` / ``kernel`` of the wrong
        length, an even kernel at stride > 1, or strides that do not take ``broadcast`` to
        ``resolution`` (expected vs got).

    Source:
        Watters et al. 2019, "Spatial Broadcast Decoder"; Locatello et al. 2020, App. E.1:
        Tetrominoes / Multi-dSprites broadcast at full resolution, 3 x Conv(32, 5, ReLU),
        Conv(4, 3); CLEVR broadcast 8x8, 4 x ConvT(64, 5, s2, ReLU), ConvT(64, 5, s1, ReLU),
        ConvT(4, 3, s1). PyTorch default init (Keras: glorot-uniform, zero biases).
    """

    def __init__(self, slot_size: int, resolution: Sequence[int], channels: Sequence[int],
                 out_channels: int, broadcast: Sequence[int] | None = None,
                 kernel: int | Sequence[int] = 5, strides: Sequence[int] | None = None,
                 out_kernel: int = 3, activation: str = "relu"):
        super().__init__()
        n = len(channels)
        kernels = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel] * n
        strides = [1] * n if strides is None else list(strides)
        grid = list(resolution if broadcast is None else broadcast)
        self.broadcast = (int(grid[0]), int(grid[1]))
        self.out_channels = out_channels
        self.pos = SoftPositionEmbedding(slot_size, self.broadcast)
        layers: list[nn.Module] = []
        c_in = slot_size
        for c, k, s in zip(channels, kernels, strides):
            if s == 1:
                layers.append(nn.Conv2d(c_in, c, k, padding="same"))
            else:
                layers.append(nn.ConvTranspose2d(c_in, c, k, stride=s, padding=k // 2,
                                                 output_padding=s - 1))
            layers.append(make_activation(activation))
            c_in = c
        layers.append(nn.Conv2d(c_in, out_channels, out_kernel, padding="same"))
        self.layers = nn.Sequential(*layers)

    def forward(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = slots.shape[0]
        h, w = self.broadcast
        x = einops.repeat(slots, "b k d -> (b k) d h w", h=h, w=w)   # ((B K), D, h, w)
        x = self.pos(x)                                              # ((B K), D, h, w)
        x = self.layers(x)                                           # ((B K), C+1, H, W)
        x = einops.rearrange(x, "(b k) c h w -> b k c h w", b=b)     # (B, K, C+1, H, W)
        rgb, alpha = x.split([self.out_channels - 1, 1], dim=2)      # (B,K,C,H,W), (B,K,1,H,W)
        return rgb, alpha


def _layout(params: dict[str, Any]) -> tuple[list[int], list[int], list[int], list[int],
                                             list[int]]:
    channels = size_list(params["channels"], "channels")
    n = len(channels)
    resolution = size_list(params["resolution"], "resolution")
    broadcast = size_list(params.get("broadcast") or resolution, "broadcast")
    for name, v in (("resolution", resolution), ("broadcast", broadcast)):
        if len(v) != 2:
            raise ShapeError(f"'{name}': expected [h, w], got {v}")
    kernels = size_list(as_list(params.get("kernel", 5), n, "kernel"), "kernel")
    strides = params.get("strides")
    strides = [1] * n if strides is None else size_list(strides, "strides")
    if len(strides) != n:
        raise ShapeError(f"'strides': expected {n} values (one per entry of 'channels'), "
                         f"got {len(strides)}: {strides}")
    got = decoder_resolution(broadcast, kernels, strides)
    if list(got) != resolution:
        raise ShapeError(
            f"spatial_broadcast_decoder: expected the strides {strides} to take the "
            f"{broadcast[0]}x{broadcast[1]} broadcast grid to the resolution "
            f"{resolution[0]}x{resolution[1]}, got {got[0]}x{got[1]}")
    return channels, resolution, broadcast, kernels, strides


def _check_slots(in_shapes: dict[str, Shape]) -> Shape:
    s = in_shapes["slots"]
    expect_rank("slots", s, "B K D")
    return tuple(s)


def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    b, k, _ = _check_slots(in_shapes)
    _, resolution, _, _, _ = _layout(params)
    out_channels = int(params["out_channels"])
    if out_channels < 2:
        raise ShapeError(f"'out_channels': expected at least 2 (colour channels + 1 alpha), "
                         f"got {out_channels}")
    h, w = Dim.of(resolution[0]), Dim.of(resolution[1])
    return {"rgb": (b, k, Dim.of(out_channels - 1), h, w), "alpha_logits": (b, k, Dim.of(1), h, w)}


def _init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _, _, d = _check_slots(in_shapes)
    channels, resolution, broadcast, kernels, strides = _layout(params)
    kernel = params.get("kernel", 5)
    return {
        "slot_size": d.value,
        "resolution": resolution,
        "channels": channels,
        "out_channels": int(params["out_channels"]),
        "broadcast": broadcast,
        "kernel": kernels if isinstance(kernel, list) else int(kernel),
        "strides": strides,
        "out_kernel": int(params.get("out_kernel", 3)),
        "activation": params.get("activation", "relu"),
    }


register(OpDef(
    name="spatial_broadcast_decoder",
    module=SpatialBroadcastDecoder,
    inputs=(Port("slots", "B K D", doc="slots, decoded independently"),),
    outputs=("rgb", "alpha_logits"),
    params={
        "resolution": sizes("output [H, W]", minItems=2, maxItems=2),
        "broadcast": sizes("[h, w] of the broadcast grid (default: resolution; CLEVR: [8, 8])",
                           minItems=2, maxItems=2),
        "channels": sizes("output channels of each hidden conv layer"),
        "kernel": {"anyOf": [{"type": "integer", "minimum": 1},
                             {"type": "array", "items": {"type": "integer", "minimum": 1},
                              "minItems": 1}],
                   "default": 5,
                   "description": "kernel size of the hidden layers (one for all or one per "
                                  "layer)"},
        "strides": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                    "description": "stride of each hidden layer: 1 = 'same' Conv2d, s > 1 = "
                                   "ConvTranspose2d upsampling by s (default: all 1)"},
        "out_kernel": {"type": "integer", "minimum": 1, "default": 3,
                       "description": "kernel size of the output conv (no activation)"},
        "out_channels": size("channels of the output conv: colour channels + 1 alpha logit"),
        "activation": enum("activation after each hidden layer", ACTIVATIONS, default="relu"),
    },
    infer=_infer,
    init_args=_init_args,
    required=("resolution", "channels", "out_channels"),
    symmetries=(
        Symmetry("permutation_equivariance", {"slots": "K"},
                 {"rgb": "K", "alpha_logits": "K"},
                 doc="each slot is decoded independently"),
    ),
    summary="spatial broadcast decoder: slots -> per-slot RGB and alpha logits",
))
