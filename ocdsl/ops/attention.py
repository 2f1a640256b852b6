"""Cross-attention from a set of queries to a set of inputs: ``cross_attention`` (the
object function without competition of contrastive slot attention's variant)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ocdsl.ops._common import expect_rank
from ocdsl.ops.registry import OpDef, Port, Symmetry, integer, number, register
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["CrossAttention", "CrossAttentionLayer"]


class CrossAttentionLayer(nn.Module):
    """One pre-LN cross-attention layer: ``q = q + MHA(LN(q), LN(x), LN(x))``, then
    ``q = q + MLP(LN(q))`` (GELU). Returns the queries and the heads' mean attention."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int, ln_eps: float = 1e-5):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim, eps=ln_eps)
        self.norm_x = nn.LayerNorm(dim, eps=ln_eps)
        self.attn = nn.MultiheadAttention(dim, heads, bias=False, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim, eps=ln_eps)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_hidden), nn.GELU(), nn.Linear(mlp_hidden, dim))

    def forward(self, queries: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.norm_x(inputs)                                           # (B, N, D)
        upd, attn = self.attn(self.norm_q(queries), x, x, need_weights=True,
                              average_attn_weights=True)                  # (B, K, D), (B, K, N)
        queries = queries + upd
        return queries + self.mlp(self.norm_mlp(queries)), attn


class CrossAttention(nn.Module):
    """``layers`` layers of multi-head cross-attention: K queries read N inputs, each query
    independently (softmax over the inputs, no competition between queries, unlike slot
    attention's softmax over the slots).

    Args:
        dim (`int`):
            Size ``D`` of queries and inputs.
        layers (`int`, *optional*, defaults to 2):
            Number of layers (contrastive slot attention's variant: 2).
        heads (`int`, *optional*, defaults to 4):
            Attention heads; must divide ``D``.
        mlp_hidden (`int`, *optional*, defaults to ``2 * dim``):
            Hidden size of each layer's GELU MLP.
        ln_eps (`float`, *optional*, defaults to 1e-5):
            LayerNorm epsilon.

    Shapes:
        queries: b k d     e.g. K learned queries (the ``parameter`` op)
        features: b n d    e.g. ViT patch tokens
        -> queries:   b k d
        -> attention: b k n    the last layer's attention, mean over heads; sums to 1 over n

    Symmetries:
        Permutation-equivariant in the queries (k) for both outputs; invariant in the inputs'
        order (n) for the queries and equivariant for the attention (no positional terms).

    Raises:
        ShapeError (shape rule): an input not 3-D, ``queries`` and ``features`` of different
        batch or feature size, or ``heads`` not dividing ``D``.

    Source:
        Baldassarre & Azizpour, "Towards self-supervised learning of global and
        object-centric representations", ICLR 2022 workshop, Sec. 3 (the cross-attention
        object function, 2 layers, 4 heads); attention as in Vaswani et al., NeurIPS 2017,
        Sec. 3.2 (``torch.nn.MultiheadAttention``, bias-free projections), pre-LN layers.
    """

    def __init__(self, dim: int, layers: int = 2, heads: int = 4, mlp_hidden: int | None = None,
                 ln_eps: float = 1e-5):
        super().__init__()
        hidden = 2 * dim if mlp_hidden is None else mlp_hidden
        self.layers = nn.ModuleList(CrossAttentionLayer(dim, heads, hidden, ln_eps) for _ in range(layers))

    def forward(self, queries: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attn = features.new_empty(0)
        for layer in self.layers:
            queries, attn = layer(queries, features)
        return queries, attn                                              # (B, K, D), (B, K, N)


def _check(in_shapes: dict[str, Shape], params: dict[str, Any]) -> tuple[Shape, Shape]:
    q, x = in_shapes["queries"], in_shapes["features"]
    expect_rank("queries", q, "B K D")
    expect_rank("features", x, "B N D")
    if Dim.of(q[0]) != Dim.of(x[0]) or Dim.of(q[2]) != Dim.of(x[2]):
        raise ShapeError(f"input 'features': expected (b, n, d) with b, d of the queries "
                         f"{fmt_shape(q)}, got {fmt_shape(x)}")
    heads = int(params["heads"])
    if not Dim.of(q[2]).is_concrete or Dim.of(q[2]).value % heads:
        raise ShapeError(f"'heads': expected a divisor of the feature size {q[2]}, got {heads}")
    return q, x


def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    q, x = _check(in_shapes, params)
    return {"queries": tuple(q), "attention": (q[0], q[1], x[1])}


def _init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    q, _ = _check(in_shapes, params)
    dim = Dim.of(q[2]).value
    return {"dim": dim, "layers": int(params["layers"]), "heads": int(params["heads"]),
            "mlp_hidden": int(params.get("mlp_hidden", 2 * dim)), "ln_eps": float(params["ln_eps"])}


register(OpDef(
    name="cross_attention",
    module=CrossAttention,
    inputs=(Port("queries", "B K D", doc="the queries, e.g. K learned queries"),
            Port("features", "B N D", doc="what the queries read, e.g. patch tokens")),
    outputs=("queries", "attention"),
    params={
        "layers": integer("number of cross-attention layers", minimum=1, default=2),
        "heads": integer("attention heads (divides D)", minimum=1, default=4),
        "mlp_hidden": integer("hidden size of each layer's MLP; default 2 * D", minimum=1),
        "ln_eps": number("LayerNorm epsilon", exclusiveMinimum=0, default=1e-5),
    },
    infer=_infer,
    init_args=_init_args,
    symmetries=(
        Symmetry("permutation_equivariance", {"queries": "K"}, {"queries": "K", "attention": "K"},
                 doc="permuting the queries permutes the output queries and attention rows"),
        Symmetry("permutation_invariance", {"features": "N"}, {"queries": None},
                 doc="the queries do not depend on the order of the features"),
        Symmetry("permutation_equivariance", {"features": "N"}, {"attention": "N"},
                 doc="permuting the inputs permutes the attention columns"),
    ),
    summary="multi-head cross-attention layers: K queries read N inputs (no competition)",
))
