"""Feature generators (AST-Seg's foreground encoder backbone): ``segformer``, ``unet_features``.

Both map an image ``b 3 H W`` in [0, 1] to a feature map at a quarter of the resolution,
``b F h w``, whose channels the spec splits into attention logits and pooled features
(AST-Seg: ``F = K + z_what + 1 + S``). ``segformer`` wraps transformers'
``SegformerForSemanticSegmentation`` (the paper's backbone, mit-b3); ``unet_features`` is a
convolutional drop-in for the Table 8 ablation.

transformers is imported inside the constructor and :meth:`Segformer.load_pretrained` (its
checks in ocdsl/ops/segformer_weights.py), never at module import (importing it costs about
4 s: docs/results.md, "The machines").
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ocdsl.ops._common import expect_dim, expect_rank, size_list
from ocdsl.ops.registry import OpDef, Port, enum, register, size, sizes
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["Segformer", "UNetFeatures", "VARIANTS", "segformer_config", "segformer_stage_sizes",
           "segformer_output_size", "SEGFORMER_MIN_SIZE", "unet_output_size", "WEIGHT_FILES"]


# ---- Segformer ------------------------------------------------------------------------------

#: Per-variant sizes of the official MiT encoders (nvidia/mit-b0 .. mit-b5 config.json;
#: Xie et al. 2021, Table 6 and Sec. 4.1: decoder width 256 for B0/B1, 768 for B2-B5).
VARIANTS: dict[str, dict[str, tuple[int, ...] | int]] = {
    "b0": {"hidden_sizes": (32, 64, 160, 256), "depths": (2, 2, 2, 2),
           "decoder_hidden_size": 256},
    "b1": {"hidden_sizes": (64, 128, 320, 512), "depths": (2, 2, 2, 2),
           "decoder_hidden_size": 256},
    "b2": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 4, 6, 3),
           "decoder_hidden_size": 768},
    "b3": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 4, 18, 3),
           "decoder_hidden_size": 768},
    "b4": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 8, 27, 3),
           "decoder_hidden_size": 768},
    "b5": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 6, 40, 3),
           "decoder_hidden_size": 768},
}

#: Shared by every variant (the same in all six official configs).
COMMON = {
    "num_attention_heads": (1, 2, 5, 8),
    "sr_ratios": (8, 4, 2, 1),
    "patch_sizes": (7, 3, 3, 3),
    "strides": (4, 2, 2, 2),
    "mlp_ratios": (4, 4, 4, 4),
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "classifier_dropout_prob": 0.1,
    "drop_path_rate": 0.1,
    "layer_norm_eps": 1e-6,
}

#: Weight files a local checkpoint directory may hold (what transformers' from_pretrained reads).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def segformer_config(variant: str, channels: int):
    """The ``transformers.SegformerConfig`` of ``variant`` with ``num_labels = channels``."""
    if variant not in VARIANTS:
        raise ValueError(f"segformer variant: expected one of {', '.join(VARIANTS)}, "
                         f"got {variant!r}")
    from transformers import SegformerConfig
    sizes_ = VARIANTS[variant]
    return SegformerConfig(
        num_channels=3, num_encoder_blocks=4, num_labels=int(channels),
        hidden_sizes=list(sizes_["hidden_sizes"]), depths=list(sizes_["depths"]),
        decoder_hidden_size=int(sizes_["decoder_hidden_size"]),
        **{k: list(v) if isinstance(v, tuple) else v for k, v in COMMON.items()})


def segformer_stage_sizes(n: int) -> list[int]:
    """Side length of the four encoder stages' maps for an input side of ``n`` pixels.

    Stage ``i`` is an overlapping patch embedding: a convolution with kernel ``k_i``, stride
    ``s_i`` and padding ``k_i // 2`` (kernels 7, 3, 3, 3; strides 4, 2, 2, 2), so
    ``n_i = floor((n_{i-1} + 2 * (k_i // 2) - k_i) / s_i) + 1`` = ``ceil(n / 4)``,
    ``ceil(n / 8)``, ``ceil(n / 16)``, ``ceil(n / 32)``.
    """
    out = []
    for k, s in zip(COMMON["patch_sizes"], COMMON["strides"]):
        n = (n + 2 * (k // 2) - k) // s + 1
        out.append(n)
    return out


def segformer_output_size(n: int) -> int:
    """Side of the decode head's logits: the stage-1 map, ``ceil(n / 4)``."""
    return segformer_stage_sizes(n)[0]


def _min_size() -> int:
    # Efficient self-attention reduces keys/values with a conv of kernel = stride = sr_i
    # (8, 4, 2, 1) over stage i's map: every stage map must be at least sr_i pixels.
    n = 1
    while any(m < r for m, r in zip(segformer_stage_sizes(n), COMMON["sr_ratios"])):
        n += 1
    return n


#: Smallest image side Segformer accepts (29: stage-1 map ceil(29/4) = 8 = its reduction ratio).
SEGFORMER_MIN_SIZE = _min_size()


class Segformer(nn.Module):
    """Segformer (MiT encoder + all-MLP decode head) as a feature-map generator: one logit
    map per output channel at a quarter of the input resolution.

    ``out = SegformerForSemanticSegmentation(config)(pixel_values=image).logits``: the
    decode head's logits, *not* upsampled to the input size. The encoder's four stages
    (strides 4, 8, 16, 32) are projected to the decoder width, bilinearly upsampled to the
    stage-1 map, concatenated, fused (1x1 conv, BatchNorm, ReLU, dropout 0.1) and
    classified by a 1x1 conv into ``channels`` maps.

    Random initialisation (transformers' ``_init_weights``) by default; the paper starts
    the encoder from ImageNet-pretrained ``nvidia/mit-b3`` and the decode head from random
    weights, which :meth:`load_pretrained` reproduces from a local copy.

    Args:
        channels (`int`):
            Output channels ``F`` (``num_labels`` of the config). AST-Seg: ``K + z_what + 1 + S``.
        variant (`str`, *optional*, defaults to ``"b3"``):
            MiT size, ``"b0"`` .. ``"b5"``, with the official configs' hidden sizes, depths
            and decoder width (``VARIANTS``); b3 (the paper's): hidden sizes 64/128/320/512,
            depths 3/4/18/3, decoder 768. All variants: heads 1/2/5/8, reduction ratios
            8/4/2/1, MLP ratio 4, classifier dropout 0.1, drop-path 0.1, LayerNorm eps 1e-6.

    Shapes:
        image: b 3 H W       float in [0, 1]; no ImageNet mean/std normalisation (as the
                             authors' code feeds it), H, W >= 29
        -> out: b F h w      h = ceil(H / 4), w = ceil(W / 4) (= H / 4, W / 4 when divisible)

    Units:
        ``out`` is unbounded logits. One output pixel covers 4 x 4 input pixels.

    Size rule:
        Stage ``i`` embeds overlapping patches with a strided conv (kernels 7, 3, 3, 3;
        strides 4, 2, 2, 2; padding k // 2), so its map is ``ceil(H / 4)``, ``ceil(H / 8)``,
        ``ceil(H / 16)``, ``ceil(H / 32)`` pixels high. No divisibility is needed, but each
        stage's attention shrinks keys/values with a conv of kernel = stride = 8, 4, 2, 1,
        which needs a map at least that large: ``ceil(H / 4) >= 8`` decides, i.e.
        ``H >= 29`` (likewise W).

    Pretrained weights:
        The ``pretrained`` param (schema marker ``"x-pretrained": true``) is not a
        constructor argument: the pipeline resolves the path relative to the spec file and
        calls :meth:`load_pretrained` after construction.

    Raises:
        ShapeError (shape rule): ``image`` not 4-D, not 3 channels, or H or W below 29
            (expected vs got).
        ValueError (constructor): unknown ``variant``.
        FileNotFoundError / ValueError (:meth:`load_pretrained`): see there.

    Source:
        Sauvalle & de La Fortelle, "Unsupervised Multi-Object Segmentation Using Attention
        and Soft-Argmax", WACV 2023, Sec. 3 (Segformer feature and attention map generator,
        output at h/4 x w/4); official code MF_models_encoder.py L9-21 (mit-b3 encoder,
        config with ``num_labels`` = output channels, new decode head, ``.logits``) and
        MF_data.py L98 (inputs in [0, 1]). Xie et al., "SegFormer", NeurIPS 2021 (MiT-B0..B5).
    """

    def __init__(self, channels: int, variant: str = "b3"):
        super().__init__()
        from transformers import SegformerForSemanticSegmentation
        self.variant = variant
        self.channels = int(channels)
        self.net = SegformerForSemanticSegmentation(segformer_config(variant, channels))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=image).logits                    # (B, F, H/4, W/4)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, channels={self.channels}"

    def load_pretrained(self, path: os.PathLike | str) -> None:
        """Load the MiT encoder weights from a local Hugging Face checkpoint directory.

        ``path`` is a directory such as a copy of ``nvidia/mit-b3``: weights in
        ``model.safetensors`` or ``pytorch_model.bin`` (or their sharded ``*.index.json``),
        usually with ``config.json``. Keys may carry the ``segformer.`` prefix (a
        ``SegformerForImageClassification`` / ``...ForSemanticSegmentation`` checkpoint) or
        not (a ``SegformerModel``), in transformers' current or legacy (``encoder.block``)
        naming: transformers' ``from_pretrained(..., local_files_only=True)`` reads them, so
        nothing is ever downloaded. Only the encoder is loaded; a classifier or decode head
        in the checkpoint is ignored (the decode head stays randomly initialised, as in the
        paper).

        Raises:
            FileNotFoundError: ``path`` does not exist, is not a directory, or holds none of
                ``model.safetensors``, ``model.safetensors.index.json``,
                ``pytorch_model.bin``, ``pytorch_model.bin.index.json``.
            ValueError: its ``config.json`` is not a Segformer config or describes another
                variant (hidden sizes, depths, heads: expected vs found), or the weights do
                not cover this variant's encoder (missing or wrongly shaped tensors).
        """
        from ocdsl.ops.segformer_weights import load_mit_encoder
        encoder = load_mit_encoder(Path(path), self.variant, self.channels)
        self.net.segformer.load_state_dict(encoder.state_dict())


def _check_image(image: Shape, min_size: int, why: str) -> tuple[Dim, Dim, Dim]:
    expect_rank("image", image, "B C H W")
    b, c, h, w = image
    expect_dim("input 'image' channels", 3, c,
               context=f"in {fmt_shape(image)}; an RGB image is b 3 H W")
    for name, d in (("H", h), ("W", w)):
        if d.is_concrete and d.value < min_size:
            raise ShapeError(f"input 'image': expected {name} >= {min_size} ({why}), "
                             f"got {fmt_shape(image)}")
    return b, h, w


_SEGFORMER_WHY = ("Segformer's stage maps ceil(n/4), ceil(n/8), ceil(n/16) of a side n must be "
                  "at least their key/value reduction ratios 8, 4, 2")


def _quarter(d: Dim, name: str, image: Shape) -> Dim:
    if d.is_concrete:
        return Dim.of(segformer_output_size(d.value))
    try:
        return d // 4
    except ShapeError:
        raise ShapeError(f"input 'image': expected a symbolic {name} divisible by 4 "
                         f"(output side ceil({name}/4)), got {fmt_shape(image)}") from None


def _segformer_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    image = tuple(in_shapes["image"])
    b, h, w = _check_image(image, SEGFORMER_MIN_SIZE, _SEGFORMER_WHY)
    return {"out": (b, Dim.of(int(params["channels"])), _quarter(h, "H", image),
                    _quarter(w, "W", image))}


def _segformer_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _segformer_infer(in_shapes, params)
    # ``pretrained`` is deliberately absent: the pipeline calls load_pretrained(path).
    return {"channels": int(params["channels"]), "variant": str(params["variant"])}


register(OpDef(
    name="segformer",
    module=Segformer,
    inputs=(Port("image", "B 3 H W", doc="RGB image in [0, 1] (no ImageNet normalisation)"),),
    outputs=("out",),
    params={
        "variant": enum("MiT size (official mit-b0..b5 configs); the paper uses b3",
                        VARIANTS),
        "channels": size("output channels F (num_labels); AST-Seg: K + z_what + 1 + S"),
        "pretrained": {"type": "string", "minLength": 1, "x-pretrained": True,
                       "description": "local Hugging Face checkpoint directory of the encoder "
                                      "(e.g. a copy of nvidia/mit-b3: config.json + "
                                      "model.safetensors or pytorch_model.bin), relative to the "
                                      "spec file; never downloaded. Omit for random init"},
    },
    infer=_segformer_infer,
    init_args=_segformer_init,
    required=("channels",),
    compile_on_cpu=False,
    warmup_before_compile=True,       # torch.compile is slower on the CPU (docs/results.md)
    summary="Segformer (MiT-b0..b5 + all-MLP head) feature map at H/4 x W/4 (AST-Seg backbone)",
))


# ---- U-Net ----------------------------------------------------------------------------------

def _groups(c: int) -> int:
    """GroupNorm groups: 8 where ``c`` allows, else the largest common divisor with 8."""
    return math.gcd(c, 8)


class _ConvBlock(nn.Sequential):
    """Two (3x3 conv without bias, GroupNorm, ReLU) layers, ``c_in -> c_out -> c_out``."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(_groups(c_out), c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.GroupNorm(_groups(c_out), c_out),
            nn.ReLU())


def unet_output_size(n: int, output_stride: int = 4) -> int:
    """Side of the U-Net's output for an input side ``n``: ``floor(n / output_stride)``
    (each 2x2 max-pool floors; the decoder pads back to the skip's size)."""
    for _ in range(int(math.log2(output_stride))):
        n //= 2
    return n


class UNetFeatures(nn.Module):
    """A small U-Net feature-map generator: a convolutional drop-in for ``segformer``
    (same input, output at a quarter of the resolution by default).

    Level ``i`` works at ``H / 2^i`` with ``widths[i]`` channels::

        encoder  e_0 = Block(image)                     b widths[0] H W
                 e_i = Block(MaxPool2(e_{i-1}))          b widths[i] H/2^i W/2^i
        decoder  d_L = e_L                               (L = len(widths) - 1, the bottom)
                 d_i = Block([ConvT2x2s2(d_{i+1}) ; e_i])  for i = L-1 .. s   (skip concat)
        head     out = Conv1x1(d_s)                      b F H/2^s W/2^s   s = log2(output_stride)

    ``Block`` = two (3x3 conv without bias, GroupNorm(gcd(c, 8) groups), ReLU); the
    up-sampling is a 2x2 stride-2 transposed conv (``widths[i+1] -> widths[i]``), zero-padded
    on the bottom/right when the skip map is one pixel larger (odd sizes). Levels below the
    output level (``i < s``) only feed the encoder. This architecture is ocdsl's own: the
    paper's Table 8 reports the ablation only as "U-Net".

    Args:
        channels (`int`):
            Output channels ``F``.
        widths (`list[int]`, *optional*, defaults to ``[32, 64, 128, 128, 256, 256]``):
            Channels per level, from full resolution down; the default reaches H/32 like
            Segformer's last stage. Needs at least ``log2(output_stride) + 2`` levels (one
            decoder step).
        output_stride (`int`, *optional*, defaults to 4):
            1, 2 or 4: output at ``H / output_stride``. 4 is the drop-in for ``segformer``;
            1 gives a full-resolution map like the authors' U-Net.

    Shapes:
        image: b 3 H W       float in [0, 1], H, W >= 2^(len(widths) - 1)
        -> out: b F h w      h = floor(H / output_stride), w = floor(W / output_stride)

    Units:
        ``out`` is unbounded (a 1x1 conv with bias, no activation).

    Raises:
        ShapeError (shape rule): ``image`` not 4-D or not 3 channels, H or W below
            ``2^(len(widths) - 1)`` (the bottom level would be empty), too few levels for
            ``output_stride``.
        ValueError (constructor): the same level / stride problems.

    Source:
        Sauvalle & de La Fortelle, WACV 2023, Table 8 ("U-Net" instead of Segformer).
        ⚠ The authors' U-Net (official code MF_models_encoder.py L25-155) differs: full
        resolution output, BatchNorm + CELU, 4x4 stride-2 convs down and transposed convs up
        with residual 3x3 blocks, 5 levels of [80, 128, 192, 256, 256, 256] channels below
        200 px. ocdsl keeps the drop-in quarter resolution by default; ``output_stride = 1``
        gives the full-resolution variant with ocdsl's blocks. Ronneberger et al. 2015 for the
        U-Net pattern (conv blocks, max-pool down, up-conv + skip concat).
    """

    def __init__(self, channels: int, widths: Sequence[int] = (32, 64, 128, 128, 256, 256),
                 output_stride: int = 4):
        super().__init__()
        widths = [int(c) for c in widths]
        _check_unet_levels(len(widths), output_stride, ValueError)
        self.out_level = int(math.log2(output_stride))
        self.down = nn.ModuleList(
            _ConvBlock(3 if i == 0 else widths[i - 1], c) for i, c in enumerate(widths))
        levels = range(self.out_level, len(widths) - 1)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in levels)
        self.fuse = nn.ModuleList(_ConvBlock(2 * widths[i], widths[i]) for i in levels)
        self.head = nn.Conv2d(widths[self.out_level], int(channels), 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = []
        x = image                                                     # (B, 3, H, W)
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))            # (B, C_i, H/2^i, W/2^i)
            skips.append(x)
        for j in reversed(range(len(self.up))):                       # level i = s + j
            skip = skips[self.out_level + j]                          # (B, C_i, H_i, W_i)
            x = self.up[j](x)                                         # (B, C_i, 2H_{i+1}, ..)
            dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
            if dh or dw:
                x = F.pad(x, (0, dw, 0, dh))                          # odd sizes: pad to skip
            x = self.fuse[j](torch.cat([x, skip], dim=1))             # (B, C_i, H_i, W_i)
        return self.head(x)                                           # (B, F, H/s, W/s)


def _check_unet_levels(n_levels: int, output_stride: int, error=ShapeError) -> None:
    if output_stride not in (1, 2, 4):
        raise error(f"'output_stride': expected 1, 2 or 4, got {output_stride}")
    need = int(math.log2(output_stride)) + 2
    if n_levels < need:
        raise error(f"'widths': expected at least {need} levels for output_stride "
                    f"{output_stride} (the output level and one below it), got {n_levels}")


def _unet_params(params: dict[str, Any]) -> tuple[list[int], int]:
    widths = size_list(params["widths"], "widths")
    stride = int(params["output_stride"])
    _check_unet_levels(len(widths), stride)
    return widths, stride


def _unet_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    widths, stride = _unet_params(params)
    image = tuple(in_shapes["image"])
    bottom = 2 ** (len(widths) - 1)
    b, h, w = _check_image(image, bottom, f"{len(widths)} levels halve it "
                                          f"{len(widths) - 1} times")

    def out(d: Dim) -> Dim:
        if d.is_concrete:
            return Dim.of(unet_output_size(d.value, stride))
        try:
            return d // stride
        except ShapeError:
            raise ShapeError(f"input 'image': expected symbolic sizes divisible by "
                             f"{stride}, got {fmt_shape(image)}") from None

    return {"out": (b, Dim.of(int(params["channels"])), out(h), out(w))}


def _unet_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _unet_infer(in_shapes, params)
    widths, stride = _unet_params(params)
    return {"channels": int(params["channels"]), "widths": widths, "output_stride": stride}


register(OpDef(
    name="unet_features",
    module=UNetFeatures,
    inputs=(Port("image", "B 3 H W", doc="RGB image in [0, 1]"),),
    outputs=("out",),
    params={
        "channels": size("output channels F"),
        "widths": sizes("channels per level from full resolution down (each level halves H, "
                        "W); default [32, 64, 128, 128, 256, 256]"),
        "output_stride": enum("output resolution H / output_stride: 4 = drop-in for "
                              "segformer, 1 = full resolution like the authors' U-Net",
                              (1, 2, 4)),
    },
    infer=_unet_infer,
    init_args=_unet_init,
    required=("channels",),
    summary="small U-Net feature map at H/4 x W/4 (AST-Seg Table 8 ablation; ocdsl's design)",
))
