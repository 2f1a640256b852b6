"""Decoders from slots to images: ``spatial_broadcast_decoder``."""

from __future__ import annotations

from itertools import islice
from typing import Any, Sequence

import einops
import torch
from torch import nn

from ocdsl.ops._common import ACTIVATIONS, as_list, expect_rank, size_list
from ocdsl.ops._common import activation as make_activation
from ocdsl.ops.position import SoftPositionEmbedding
from ocdsl.ops.registry import OpDef, Port, Symmetry, enum, register, size, sizes
from ocdsl.shapes import Dim, Shape, ShapeError

__all__ = ["SpatialBroadcastDecoder", "decoder_resolution", "tap_mask", "border_classes", "fold_classes"]


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


def tap_mask(n_out: int, n_in: int, kernel: int, stride: int = 1, padding: int | None = None,
             transposed: bool = False) -> torch.Tensor:
    """Which taps of a 1-D kernel read a real (not zero-padded) input, per output position.

    Shapes:
        out: n_out kernel      bool; out[i, u]: tap u of output i lands inside the input

    ``Conv`` (cross-correlation): ``out[i] = sum_u w[u] x[i * stride - padding + u]``; with
    ``padding=None`` PyTorch's 'same' (stride 1, left padding ``(kernel - 1) // 2``).
    ``ConvTranspose``: ``out[i] = sum_{a, u : a * stride - padding + u = i} w[u] x[a]``.
    """
    i = torch.arange(n_out).unsqueeze(1)                       # (n_out, 1)
    u = torch.arange(kernel).unsqueeze(0)                      # (1, kernel)
    if padding is None:
        if stride != 1 or transposed:
            raise ValueError("padding='same' needs a stride-1 Conv")
        padding = (kernel - 1) // 2
    if not transposed:
        a = i * stride - padding + u                           # input index read by tap u
        return (a >= 0) & (a < n_in)
    num = i + padding - u                                      # a * stride for tap u
    return (num >= 0) & (num % stride == 0) & (num // stride < n_in)


def border_classes(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of a :func:`tap_mask` (in order of first appearance) and each
    position's row among them.

    Shapes:
        mask:    n k        bool
        -> classes: r k     float (1. where the tap is valid); r <= n classes
        -> index:   n       long; mask[i] == classes[index[i]]
    """
    seen: dict[tuple[bool, ...], int] = {}
    index = [seen.setdefault(tuple(bool(v) for v in row), len(seen)) for row in mask.tolist()]
    classes = torch.tensor(list(seen), dtype=torch.float32).reshape(len(seen), mask.shape[1])
    return classes, torch.tensor(index, dtype=torch.long)


def _fold_masks(broadcast: Sequence[int], kernel: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column tap masks (:func:`tap_mask`) of a decoder's first layer as
    SpatialBroadcastDecoder builds it: a 'same' Conv2d at stride 1, else
    ConvTranspose2d(padding k // 2, output_padding s - 1), on the ``broadcast`` grid."""
    h0, w0 = int(broadcast[0]), int(broadcast[1])
    h1, w1 = decoder_resolution((h0, w0), [kernel], [stride])
    if stride == 1:
        return tap_mask(h1, h0, kernel), tap_mask(w1, w0, kernel)
    return (tap_mask(h1, h0, kernel, stride, kernel // 2, transposed=True),
            tap_mask(w1, w0, kernel, stride, kernel // 2, transposed=True))


def fold_classes(broadcast: Sequence[int], kernel: int, stride: int) -> tuple[int, int]:
    """Numbers of row and column border classes of a decoder's folded first layer
    (``fold_broadcast``) on the ``broadcast`` grid.

    Counted on the grid with each side capped at ``2 * kernel + 2`` cells: a row's tap mask
    depends only on its distance to the nearer border (up to the kernel's reach) and on its
    index modulo ``stride``, so a longer side adds rows of classes already seen and the count
    is the same (tests/ops/test_decoders.py compares both). Time and memory are then bounded
    however large a spec makes the grid."""
    cap = 2 * int(kernel) + 2
    capped = [min(int(n), cap) for n in broadcast[:2]]
    rows, cols = _fold_masks(capped, kernel, stride)
    return len(border_classes(rows)[0]), len(border_classes(cols)[0])


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
        fold_broadcast (`bool`, *optional*, defaults to `False`):
            Compute the first layer by broadcast-convolution folding (below): same
            parameters and state-dict keys, same outputs and gradients up to floating-point
            rounding, far fewer FLOPs. Turned on by the compiler rewrite ``fold_broadcast``
            (ocdsl/graph/rewrites.py; spec ``[compile] rewrites``).
        channels_last (`bool`, *optional*, defaults to `False`):
            Run the convolutions on channels-last (NHWC in memory) tensors, so oneDNN reads
            and writes its native layout instead of reordering every call; with
            ``fold_broadcast`` the folded first layer is gathered straight into that layout.
            Same shapes, values and state dict: only the strides differ. Turned on by the
            compiler rewrite ``channels_last``.

    Shapes:
        slots:          b k d
        -> rgb:          b k c h w          c = out_channels - 1; (h, w) = resolution
        -> alpha_logits: b k 1 h w          softmax over k gives the masks (alpha_composite)

    Broadcast-convolution folding (``fold_broadcast=True``; ocdsl's, not the paper's):
        The first layer ``conv`` (weight ``W``, bias ``b``) sees ``x = tile(s) + p``: the slot
        ``s`` (``d``) repeated over the ``h0 x w0`` broadcast grid plus the position
        embedding ``p`` (``1 d h0 w0``), which is the same for every slot and image. The
        layer is affine and its padding is zeros, so

            conv(tile(s) + p) = conv(p) + conv_nobias(tile(s))
            conv_nobias(tile(s))[:, i, j] = M[r(i), c(j)] @ s
            M[r, c] = sum_{u, v} R[r, u] C[c, v] W[:, :, u, v]        (o d; W as o d u v)

        where ``R`` (``r kh``) / ``C`` (``c kw``) are the distinct rows of the row / column
        tap masks (:func:`tap_mask`: ``mask[i, u]`` = tap ``u`` of output row ``i`` reads a
        real input row, not padding) and ``r(i)`` / ``c(j)`` the class of row ``i`` / column
        ``j`` (:func:`border_classes`). The classes come from the actual masks, so any
        kernel, padding and grid size is covered, a grid smaller than the kernel too (for a
        stride-1 'same' ``k x k`` conv with ``h0, w0 >= k`` there are ``k x k`` classes: 25
        for 5x5). The same identity holds for a strided ``ConvTranspose2d`` first layer
        (the CLEVR decoder), whose masks also depend on the output position modulo the
        stride; it is folded the same way. Per forward::

            conv(p):   1 o h1 w1                once, shared by all (b k) slot images
            M:         r c o d                  from W by masked sums (no matmul, so
                                                autocast leaves it in the weights' dtype)
            y:         (b k) o (r c)            y[n, :, (r c)] = M[r, c] @ s[n]
            out:       (b k) o h1 w1            y[n, :, r(i) c + c(j)] + conv(p)[0, :, i, j]

        For the main job (35x35 grid, d = 64, o = 32, 5x5) the b k convolutions of a
        64-channel 35x35 image (63 M multiply-adds each: about half the decoder's and 40 %
        of the model's forward FLOPs) become one, plus a (b k) x 64 by 64 x 800 matmul and
        a gather.

    Raises:
        ShapeError (shape rule): ``slots`` not 3-D, ``strides`` / ``kernel`` of the wrong
        length, an even kernel at stride > 1, or strides that do not take ``broadcast`` to
        ``resolution`` (expected vs got).

    Source:
        Watters et al. 2019, "Spatial Broadcast Decoder: A Simple Architecture for Learning
        Disentangled Representations in VAEs" (the decoder; the folding is ocdsl's);
        Locatello et al. 2020, App. E.1:
        Tetrominoes / Multi-dSprites broadcast at full resolution, 3 x Conv(32, 5, ReLU),
        Conv(4, 3); CLEVR broadcast 8x8, 4 x ConvT(64, 5, s2, ReLU), ConvT(64, 5, s1, ReLU),
        ConvT(4, 3, s1). PyTorch default init (Keras: glorot-uniform, zero biases).
    """

    def __init__(self, slot_size: int, resolution: Sequence[int], channels: Sequence[int],
                 out_channels: int, broadcast: Sequence[int] | None = None,
                 kernel: int | Sequence[int] = 5, strides: Sequence[int] | None = None,
                 out_kernel: int = 3, activation: str = "relu", fold_broadcast: bool = False,
                 channels_last: bool = False):
        super().__init__()
        self.channels_last = bool(channels_last)
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
        self.fold_broadcast = bool(fold_broadcast)
        if self.fold_broadcast:
            h1, w1 = decoder_resolution(self.broadcast, kernels[:1], strides[:1])
            rows, cols = _fold_masks(self.broadcast, kernels[0], strides[0])
            row_classes, row_index = border_classes(rows)            # (r, kh), (h1,)
            col_classes, col_index = border_classes(cols)            # (c, kw), (w1,)
            # Non-persistent: derived from the sizes, so the state dict is the unfolded one.
            self.register_buffer("fold_rows", row_classes, persistent=False)
            self.register_buffer("fold_cols", col_classes, persistent=False)
            index = row_index.unsqueeze(1) * len(col_classes) + col_index.unsqueeze(0)
            self.register_buffer("fold_index", index.flatten(), persistent=False)  # (h1 w1,)
            self.fold_out = (h1, w1)

    def _folded_first_layer(self, slots: torch.Tensor) -> torch.Tensor:
        """``layers[0](tile(slots) + p)`` by folding (class docstring): ``b k d -> (b k) o h1 w1``."""
        conv = self.layers[0]
        weight = conv.weight                                         # (O, D, kh, kw); ConvT: (D, O, kh, kw)
        if isinstance(conv, nn.ConvTranspose2d):
            weight = weight.transpose(0, 1)                          # (O, D, kh, kw)
        rows = self.fold_rows.to(weight.dtype)                       # (r, kh)
        cols = self.fold_cols.to(weight.dtype)                       # (c, kw)
        m = (weight.unsqueeze(0) * cols[:, None, None, None, :]).sum(-1)   # (c, O, D, kh)
        m = (m.unsqueeze(0) * rows[:, None, None, None, :]).sum(-1)        # (r, c, O, D)
        r, c, o, d = m.shape
        h1, w1 = self.fold_out
        p = self.pos.embedding(*self.broadcast, dtype=slots.dtype, device=slots.device)  # (1, D, h0, w0)
        if self.channels_last:                                       # gather into NHWC memory
            m = einops.rearrange(m, "r c o d -> d (r c o)")
            y = slots.reshape(-1, d) @ m                             # ((B K), (r c) O)
            y = y.view(-1, r * c, o).index_select(1, self.fold_index)    # ((B K), h1 w1, O)
            y = y.view(-1, h1, w1, o).permute(0, 3, 1, 2)            # ((B K), O, h1, w1), NHWC strides
            return y + conv(p).contiguous(memory_format=torch.channels_last)
        m = einops.rearrange(m, "r c o d -> d (o r c)")
        y = slots.reshape(-1, d) @ m                                 # ((B K), O (r c))
        y = y.view(-1, o, r * c).index_select(2, self.fold_index)    # ((B K), O, h1 w1)
        return y.view(-1, o, h1, w1) + conv(p)                       # ((B K), O, h1, w1)

    def forward(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = slots.shape[0]
        h, w = self.broadcast
        if self.fold_broadcast:
            x = self._folded_first_layer(slots)                      # ((B K), O, h1, w1)
            for layer in islice(self.layers, 1, None):
                x = layer(x)                                         # ((B K), C+1, H, W)
        else:
            x = einops.repeat(slots, "b k d -> (b k) d h w", h=h, w=w)   # ((B K), D, h, w)
            x = self.pos(x)                                              # ((B K), D, h, w)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)      # NHWC strides
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
    kernels = size_list(as_list(params["kernel"], n, "kernel"), "kernel")
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
    kernel = params["kernel"]
    return {
        "slot_size": d.value,
        "resolution": resolution,
        "channels": channels,
        "out_channels": int(params["out_channels"]),
        "broadcast": broadcast,
        "kernel": kernels if isinstance(kernel, list) else int(kernel),
        "strides": strides,
        "out_kernel": int(params["out_kernel"]),
        "activation": params["activation"],
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
                   "description": "kernel size of the hidden layers (one for all or one per "
                                  "layer)"},
        "strides": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                    "description": "stride of each hidden layer: 1 = 'same' Conv2d, s > 1 = "
                                   "ConvTranspose2d upsampling by s (default: all 1)"},
        "out_kernel": {"type": "integer", "minimum": 1,
                       "description": "kernel size of the output conv (no activation)"},
        "out_channels": size("channels of the output conv: colour channels + 1 alpha logit"),
        "activation": enum("activation after each hidden layer", ACTIVATIONS),
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
