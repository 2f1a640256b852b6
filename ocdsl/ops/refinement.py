"""Latent refinement: ``transformer_refinement`` (AST-Seg, Sauvalle & de La Fortelle 2023)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ocdsl.ops._common import expect_rank
from ocdsl.ops.registry import OpDef, Port, Symmetry, integer, number, register, size
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["TransformerRefinement"]


class TransformerRefinement(nn.Module):
    """Refine K per-object estimates jointly with a transformer encoder without positional
    encoding; the projected result *replaces* the estimates (no residual)::

        e   = Linear(d -> width)(x)                      b k width    embedding
        e'  = TransformerEncoder(e)                       b k width    ``layers`` post-LN layers
        out = Linear(width -> out_features)(e')           b k f        refined [x, y, s, alpha, z]

    Each encoder layer is PyTorch's ``nn.TransformerEncoderLayer`` with ``norm_first=False``
    (post-LN: ``x = LN(x + SelfAttn(x))``, ``x = LN(x + FF(x))``), ReLU feed-forward
    ``width -> feedforward -> width``, dropout ``dropout`` (attention weights, after
    attention, inside and after the feed-forward), no final LayerNorm. ``nn.TransformerEncoder``
    deep-copies one initialised layer, so all layers start from the same weights (as in the
    authors' code). Dropout is active in training mode only.

    ``layers = 0`` is the "no transformer encoder" ablation: the module has no parameters and
    returns its input unchanged (``out_features`` must then be ``d``).

    Args:
        in_features (`int`):
            Size ``d`` of each estimate. AST-Seg: ``3 + S + z_what`` ([x, y, s(S), alpha, z]).
        out_features (`int`, *optional*, defaults to ``in_features``):
            Size of each refined vector.
        width (`int`, *optional*, defaults to 256):
            Transformer width (``d_model``); a multiple of ``heads``.
        layers (`int`, *optional*, defaults to 6):
            Encoder layers; 0 = identity (no parameters).
        heads (`int`, *optional*, defaults to 8):
            Attention heads.
        feedforward (`int`, *optional*, defaults to 512):
            Hidden size of each layer's feed-forward block.
        dropout (`float`, *optional*, defaults to 0.1):
            Dropout probability of every encoder layer (training mode only).

    Shapes:
        input: b k d
        -> out: b k f        f = out_features (= d by default)

    Symmetries:
        Permutation equivariance over k: no positional encoding, self-attention and the
        token-wise Linear / feed-forward layers treat the K estimates as a set (exact up to
        rounding in eval mode; in training mode dropout masks are drawn per position).

    Raises:
        ShapeError (shape rule): ``input`` not 3-D, ``width`` not a multiple of ``heads``,
        or ``layers = 0`` with ``out_features`` different from ``d`` (expected vs got).
        ValueError (constructor): the same parameter problems.

    Source:
        Sauvalle & de La Fortelle, "Unsupervised Multi-Object Segmentation Using Attention
        and Soft-Argmax", WACV 2023, Sec. 3 (transformer encoder refining the soft-argmax
        estimates, no positional encoding) and Table 8 ("no transformer encoder" ablation);
        official code MF_models_encoder.py L190-230 and MF_config.py (width 256, 8 heads,
        6 layers, feed-forward 512; PyTorch defaults dropout 0.1, ReLU, post-LN; the
        projection replaces the estimates). ⚠ The authors' code has no separate ablation
        switch: ``transformer_nlayers = 0`` there would keep the two Linear layers (a learned
        affine map d -> 256 -> d); ocdsl's ``layers = 0`` is the identity.
    """

    def __init__(self, in_features: int, out_features: int | None = None, width: int = 256,
                 layers: int = 6, heads: int = 8, feedforward: int = 512, dropout: float = 0.1):
        super().__init__()
        out_features = in_features if out_features is None else out_features
        problem = _param_problem(in_features, out_features, width, layers, heads)
        if problem:
            raise ValueError(f"transformer_refinement {problem}")
        self.layers = int(layers)
        if self.layers == 0:
            return                                    # identity: no parameters
        self.embed = nn.Linear(in_features, width)
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=feedforward, dropout=dropout, activation="relu",
            batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, num_layers=self.layers, norm=None,
                                             enable_nested_tensor=False)
        self.project = nn.Linear(width, out_features)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.layers == 0:
            return input                              # "no transformer encoder" ablation
        e = self.embed(input)                         # (B, K, width)
        e = self.encoder(e)                           # (B, K, width)
        return self.project(e)                        # (B, K, F)  replaces the estimates


def _param_problem(d: int, f: int, width: int, layers: int, heads: int) -> str:
    if layers < 0:
        return f"'layers': expected 0 or more, got {layers}"
    if layers == 0:
        if f != d:
            return (f"'out_features': expected {d} (= d: layers = 0 is the identity), "
                    f"got {f}")
        return ""
    if heads < 1 or width % heads:
        return f"'width': expected a multiple of heads = {heads}, got {width}"
    return ""


def _params(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    x = tuple(Dim.of(v) for v in in_shapes["input"])
    expect_rank("input", x, "B K D")
    if not x[2].is_concrete:
        raise ShapeError(f"input 'input': expected a numeric size d, got {fmt_shape(x)}")
    d = x[2].value
    args = {"in_features": d, "out_features": int(params.get("out_features", d)),
            "width": int(params["width"]), "layers": int(params["layers"]),
            "heads": int(params["heads"]),
            "feedforward": int(params["feedforward"]),
            "dropout": float(params["dropout"])}
    problem = _param_problem(d, args["out_features"], args["width"], args["layers"],
                             args["heads"])
    if problem:
        raise ShapeError(problem)
    return args


def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    args = _params(in_shapes, params)
    b, k, _ = in_shapes["input"]
    return {"out": (Dim.of(b), Dim.of(k), Dim.of(args["out_features"]))}


def _init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    args = _params(in_shapes, params)
    if args["layers"] == 0:
        return {"in_features": args["in_features"], "layers": 0}
    return args


register(OpDef(
    name="transformer_refinement",
    module=TransformerRefinement,
    inputs=(Port("input", "B K D", doc="K initial estimates [x0, y0, phi0] per image"),),
    outputs=("out",),
    params={
        "out_features": size("size of each refined vector (default: the input's d)"),
        "width": size("transformer width d_model, a multiple of heads"),
        "layers": integer("encoder layers; 0 = identity (the 'no transformer' ablation)",
                          minimum=0),
        "heads": integer("attention heads", minimum=1),
        "feedforward": size("feed-forward hidden size of each layer"),
        "dropout": number("dropout of every encoder layer (training mode only)",
                          minimum=0, exclusiveMaximum=1),
    },
    infer=_infer,
    init_args=_init_args,
    symmetries=(
        Symmetry("permutation_equivariance", {"input": "K"}, {"out": "K"},
                 doc="no positional encoding: the K estimates are refined as a set"),
    ),
    summary="post-LN transformer over the K estimates, no positional encoding, projection "
            "replaces the input (AST-Seg)",
))
