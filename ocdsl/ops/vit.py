"""Vision-transformer blocks: ``transformer_encoder``, ``vit_decoder``.

The transformer of an MAE-style ViT (He et al. 2022) as used by the object-centric MAE of
Vikström & Ilin (2022): K learned class tokens are prepended to the kept patch tokens and
pre-LN transformer blocks (PyTorch's ``scaled_dot_product_attention``) process them; the
decoder runs the same blocks over each slot's token sequence. The token ops (patch embedding,
sin-cos position embedding, random masking, class tokens) are in ocdsl/ops/vit_tokens.py and
re-exported here. Init follows MAE / the authors' code: Linear layers xavier-uniform with
zero bias, LayerNorm weight 1 bias 0.
"""

from __future__ import annotations

from typing import Any

import einops
import torch
import torch.nn.functional as F
from torch import nn

from ocdsl.ops._common import expect_rank, optional_shape
from ocdsl.ops.registry import OpDef, Port, Symmetry, boolean, number, register, size
from ocdsl.ops.vit_tokens import (ClassTokens, PatchEmbedding, RandomMasking,  # noqa: F401 (re-exported)
                                  SinCosPositionEmbedding, kept_count, patchify, sincos_2d, unpatchify)
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["PatchEmbedding", "SinCosPositionEmbedding", "RandomMasking", "ClassTokens",
           "TransformerEncoder", "ViTDecoder", "Block", "sincos_2d", "patchify", "unpatchify",
           "kept_count", "init_vit_weights"]


def init_vit_weights(module: nn.Module) -> None:
    """MAE's init for one submodule: Linear xavier-uniform with zero bias, LayerNorm 1 / 0."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ---- transformer blocks ----------------------------------------------------------------------

class Block(nn.Module):
    """One pre-LN transformer block: ``x += Attn(LN(x))``, ``x += MLP(LN(x))``.

    Multi-head self-attention with a fused qkv Linear (bias ``qkv_bias``) and PyTorch's
    ``scaled_dot_product_attention`` (scale ``1 / sqrt(head size)``), an output Linear, and a
    GELU MLP ``dim -> mlp_ratio * dim -> dim``; no dropout. Tokens ``s n d`` (s sequences).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 ln_eps: float = 1e-5):
        super().__init__()
        if dim % heads:
            raise ValueError(f"transformer block: expected a size divisible by heads = {heads}, "
                             f"got {dim}")
        hidden = int(dim * mlp_ratio)
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=ln_eps)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=ln_eps)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(self.norm1(x))                                # (S, N, 3D)
        q, k, v = einops.rearrange(qkv, "s n (three h e) -> three s h n e",
                                   three=3, h=self.heads)            # (S, h, N, D/h) each
        a = F.scaled_dot_product_attention(q, k, v)                  # (S, h, N, D/h)
        x = x + self.proj(einops.rearrange(a, "s h n e -> s n (h e)"))  # (S, N, D)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))         # (S, N, D)


def _blocks(dim: int, depth: int, heads: int, mlp_ratio: float, qkv_bias: bool,
            ln_eps: float) -> nn.ModuleList:
    return nn.ModuleList(Block(dim, heads, mlp_ratio, qkv_bias, ln_eps) for _ in range(depth))


class TransformerEncoder(nn.Module):
    """A ViT encoder: optional class tokens prepended, pre-LN blocks, a final LayerNorm.

    ``z = LN(Blocks([cls ; tokens]))``; returns the token part and the class-token part of
    ``z`` separately. No position information is added here (the patches carry theirs, the
    class tokens none), so the encoder is permutation-equivariant in both token sets.

    Args:
        dim (`int`):
            Token size ``D``.
        depth (`int`):
            Number of blocks. Paper: 4.
        heads (`int`):
            Attention heads (``D`` divisible by it). Paper: D / 48 (Table 7).
        mlp_ratio (`float`, *optional*, defaults to 4.0):
            MLP hidden size / ``D``. Paper: 2.
        qkv_bias (`bool`, *optional*, defaults to `True`):
            Bias of the fused qkv projection.
        ln_eps (`float`, *optional*, defaults to 1e-5):
            LayerNorm epsilon (PyTorch's default, as in the authors' code).

    Shapes:
        tokens: b n d
        cls:    b k d      (optional)        class tokens, prepended
        -> tokens: b n d
        -> cls:    b k d                     (b, 0, d) when no class tokens are given

    Symmetries:
        Permuting the class tokens (k) permutes ``cls`` and leaves ``tokens`` unchanged;
        permuting the tokens (n) permutes ``tokens`` and leaves ``cls`` unchanged.

    Raises:
        ShapeError (shape rule): inputs not 3-D, batch or size of ``cls`` differing from
        ``tokens``, or ``D`` not divisible by ``heads``.

    Source:
        Dosovitskiy et al. 2021 (ViT) pre-LN blocks; Vikström & Ilin 2022, Sec. 3.1 and
        Table 7 (4 blocks, mlp_ratio 2, GELU, qkv bias, final LayerNorm; sizes 192/4,
        384/8, 768/16).
    """

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, ln_eps: float = 1e-5):
        super().__init__()
        self.blocks = _blocks(dim, depth, heads, mlp_ratio, qkv_bias, ln_eps)
        self.norm = nn.LayerNorm(dim, eps=ln_eps)
        self.apply(init_vit_weights)

    def forward(self, tokens: torch.Tensor,
                cls: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        k = 0 if cls is None else cls.shape[1]
        x = tokens if cls is None else torch.cat([cls, tokens], dim=1)  # (B, K+N, D)
        for block in self.blocks:
            x = block(x)                                             # (B, K+N, D)
        x = self.norm(x)                                             # (B, K+N, D)
        return x[:, k:], x[:, :k]                                    # (B, N, D), (B, K, D)


class ViTDecoder(nn.Module):
    """A per-sequence ViT decoder: pre-LN blocks, a LayerNorm and a Linear head, applied to
    each of the K token sequences independently (e.g. one sequence per slot).

    ``out[b, k] = Linear(LN(Blocks(x[b, k])))``; the ``b k`` axes are folded into one batch.

    Args:
        dim (`int`):
            Token size ``D``.
        depth (`int`):
            Number of blocks. Paper: 2.
        heads (`int`):
            Attention heads. Paper: D / 32 (Table 7).
        out_features (`int`):
            Output size per token. Paper: ``p * p * (C + 1)`` (a patch of RGB + alpha).
        mlp_ratio (`float`, *optional*, defaults to 4.0):
            MLP hidden size / ``D``. Paper: 2.
        qkv_bias (`bool`, *optional*, defaults to `True`):
            Bias of the fused qkv projection.
        ln_eps (`float`, *optional*, defaults to 1e-5):
            LayerNorm epsilon.

    Shapes:
        x: b k n d
        -> out: b k n f       f = out_features

    Symmetries:
        Permutation-equivariant in the sequences (k) and in the tokens of a sequence (n):
        position information must be in the tokens (sincos_position_embedding).

    Raises:
        ShapeError (shape rule): ``x`` not 4-D, or ``D`` not divisible by ``heads``.

    Source:
        He et al. 2022 (MAE decoder); Vikström & Ilin 2022, Sec. 3.2 and Table 7 (2 blocks,
        mlp_ratio 2, sizes 128/4, 256/8, 512/16, Linear(D_dec -> p^2 * 4)).
    """

    def __init__(self, dim: int, depth: int, heads: int, out_features: int,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, ln_eps: float = 1e-5):
        super().__init__()
        self.blocks = _blocks(dim, depth, heads, mlp_ratio, qkv_bias, ln_eps)
        self.norm = nn.LayerNorm(dim, eps=ln_eps)
        self.head = nn.Linear(dim, out_features)
        self.apply(init_vit_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = einops.rearrange(x, "b k n d -> (b k) n d")              # ((B K), N, D)
        for block in self.blocks:
            x = block(x)                                             # ((B K), N, D)
        x = self.head(self.norm(x))                                  # ((B K), N, F)
        return einops.rearrange(x, "(b k) n f -> b k n f", b=b)      # (B, K, N, F)


def _check_heads(d: Dim, params: dict[str, Any]) -> None:
    heads = int(params["heads"])
    if d.value % heads:
        raise ShapeError(f"'heads': expected a divisor of the token size {d}, got {heads}")


def _encoder_check(in_shapes: dict[str, Shape], params: dict[str, Any]) -> tuple[Shape, Shape]:
    t = tuple(in_shapes["tokens"])
    expect_rank("tokens", t, "B N D")
    _check_heads(t[2], params)
    cls = optional_shape(in_shapes, "cls")
    if cls is None:
        return t, (t[0], Dim.of(0), t[2])
    expect_rank("cls", cls, "B K D")
    if cls[0] != t[0] or cls[2] != t[2]:
        raise ShapeError(f"input 'cls': expected (b, k, d) = ({t[0]}, K, {t[2]}) (from tokens "
                         f"{fmt_shape(t)}), got {fmt_shape(cls)}")
    return t, tuple(cls)


def _encoder_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    t, cls = _encoder_check(in_shapes, params)
    return {"tokens": t, "cls": cls}


def _block_args(params: dict[str, Any]) -> dict[str, Any]:
    return {"depth": int(params["depth"]), "heads": int(params["heads"]),
            "mlp_ratio": float(params["mlp_ratio"]),
            "qkv_bias": bool(params["qkv_bias"]),
            "ln_eps": float(params["ln_eps"])}


def _encoder_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    t, _ = _encoder_check(in_shapes, params)
    return {"dim": t[2].value, **_block_args(params)}


_BLOCK_PARAMS = {
    "depth": size("number of transformer blocks"),
    "heads": size("attention heads (a divisor of the token size)"),
    "mlp_ratio": number("MLP hidden size / token size; paper 2", exclusiveMinimum=0, default=4.0),
    "qkv_bias": boolean("bias of the fused qkv projection", default=True),
    "ln_eps": number("LayerNorm epsilon", exclusiveMinimum=0, default=1e-5),
}

register(OpDef(
    name="transformer_encoder",
    module=TransformerEncoder,
    inputs=(Port("tokens", "B N D", doc="patch tokens"),
            Port("cls", "B K D", optional=True, doc="class tokens, prepended to the sequence")),
    outputs=("tokens", "cls"),
    params=dict(_BLOCK_PARAMS),
    infer=_encoder_infer,
    init_args=_encoder_init,
    required=("depth", "heads"),
    symmetries=(
        Symmetry("permutation_equivariance", {"cls": "K"}, {"cls": "K", "tokens": None},
                 doc="no position information in the class tokens: permuting them permutes "
                     "their outputs and leaves the patch tokens unchanged"),
        Symmetry("permutation_equivariance", {"tokens": "N"}, {"tokens": "N", "cls": None},
                 doc="self-attention without position information in the op itself"),
    ),
    summary="ViT encoder: [class tokens; tokens] -> pre-LN blocks (SDPA) -> LayerNorm",
))


def _decoder_check(in_shapes: dict[str, Shape], params: dict[str, Any]) -> Shape:
    x = tuple(in_shapes["x"])
    expect_rank("x", x, "B K N D")
    _check_heads(x[3], params)
    return x


def _decoder_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    b, k, n, _ = _decoder_check(in_shapes, params)
    return {"out": (b, k, n, Dim.of(int(params["out_features"])))}


def _decoder_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    x = _decoder_check(in_shapes, params)
    args = _block_args(params)
    return {"dim": x[3].value, "depth": args.pop("depth"), "heads": args.pop("heads"),
            "out_features": int(params["out_features"]), **args}


register(OpDef(
    name="vit_decoder",
    module=ViTDecoder,
    inputs=(Port("x", "B K N D", doc="K token sequences per sample, decoded independently"),),
    outputs=("out",),
    params={**_BLOCK_PARAMS,
            "out_features": size("output size per token; paper p * p * (C + 1)")},
    infer=_decoder_infer,
    init_args=_decoder_init,
    required=("depth", "heads", "out_features"),
    symmetries=(
        Symmetry("permutation_equivariance", {"x": "K"}, {"out": "K"},
                 doc="each sequence (slot) is decoded independently"),
        Symmetry("permutation_equivariance", {"x": "N"}, {"out": "N"},
                 doc="self-attention without position information in the op itself"),
    ),
    summary="per-sequence ViT decoder: pre-LN blocks -> LayerNorm -> Linear",
))
