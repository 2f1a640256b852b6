"""Soft-argmax localisation: ``soft_argmax`` (AST-Seg, Sauvalle & de La Fortelle 2023)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ocdsl.ops._common import expect_rank, optional_shape
from ocdsl.ops.registry import OpDef, Port, Symmetry, number, register
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["SoftArgmax", "normalized_grid"]


def normalized_grid(n: int, *, device=None, dtype=None) -> torch.Tensor:
    """Pixel-centre coordinates of an axis of ``n`` pixels on [-1, 1] (Eq. 12-13).

    ``grid[i] = 2 * (i / (n - 1) - 0.5)``: the first pixel centre is -1, the last is +1,
    one pixel is ``2 / (n - 1)`` (PyTorch's ``align_corners=True`` convention).

    Shapes:
        out: n
    """
    i = torch.arange(n, device=device, dtype=dtype)
    return 2.0 * (i / (n - 1) - 0.5)


class SoftArgmax(nn.Module):
    """Soft-argmax: K attention maps, each a softmax over all h*w positions, give K
    coordinates (the attention-weighted mean position) and K attention-weighted feature
    vectors.

    One line of ``forward`` per equation::

        Eq. 10-11  p_k(i, j) = softmax over (i, j) of logits_k(i, j) / temperature
                                                        b k h w   sums to 1 over h*w
        Eq. 12     x_j = 2 (j / (w - 1) - 0.5)          w         x on [-1, 1] along W
        Eq. 13     y_i = 2 (i / (h - 1) - 0.5)          h         y on [-1, 1] along H
        Eq. 14     x_k = sum_ij p_k(i, j) x_j           b k
        Eq. 15     y_k = sum_ij p_k(i, j) y_i           b k
        Eq. 16     phi_k = sum_ij p_k(i, j) phi(i, j)   b k c     attention-weighted features

    Args:
        temperature (`float`, *optional*, defaults to 1.0):
            Divides the logits before the softmax; lower is closer to a hard argmax.

    Shapes:
        logits:      b k h w                   attention logits (e.g. the first K channels of
                                               the AST-Seg encoder output), h, w >= 2
        features:    b c h w    (optional)     feature map phi pooled by each attention map
        -> coords:    b k 2                    (x, y) in [-1, 1]: x along w (Eq. 14), y along
                                               h (Eq. 15); -1 / +1 = centre of the first /
                                               last pixel
        -> features:  b k c                    Eq. 16; b k 0 (empty) when ``features`` is not
                                               connected
        -> attention: b k h w                  the softmax p_k (Eq. 11); sums to 1 over h*w

    Units:
        Coordinates are normalised: one pixel along w is ``2 / (w - 1)``, along h
        ``2 / (h - 1)``.

    Symmetries:
        Translation equivariance (Proposition 2.1): shifting ``logits`` (and ``features``)
        by (u, v) pixels -- u along w, v along h -- moves ``coords`` by exactly
        (2u / (w - 1), 2v / (h - 1)), shifts ``attention`` by (u, v) and leaves the pooled
        ``features`` unchanged, *provided the attention mass stays inside the frame*: every
        position whose content leaves the frame has p = 0 (logits of -inf, or low enough that
        exp underflows), and the positions that enter carry no mass either. Exact up to
        floating-point rounding (a few ulp; checked at 1e-12 in float64).

        When mass leaves the frame the result is biased toward the interior: with m the
        attention mass that leaves (and none entering), the softmax renormalises over what
        stays, and the x-coordinate is off by ``m / (1 - m) * (x_mean - x_out)``, where
        ``x_mean`` is the unshifted estimate and ``x_out`` the mean position of the departing
        mass (measured before the shift). With finite logits everywhere some mass always sits
        on the border, so a learned localiser is only approximately equivariant near the
        edges (the shift changes the logits that enter, too).

        Permutation equivariance over the k maps (each map is pooled independently).

    Raises:
        ShapeError (shape rule): ``logits`` or ``features`` not 4-D, h or w below 2 (the grid
        of Eq. 12-13 divides by w - 1), or ``features`` not matching ``logits`` in (b, h, w)
        (expected vs got).

    Source:
        Sauvalle & de La Fortelle, "Unsupervised Multi-Object Segmentation Using Attention
        and Soft-Argmax", WACV 2023, Sec. 3 Eq. 10-16 and Proposition 2.1 (translation
        equivariance); official code MF_models_encoder.py (coordinates
        ``2 * (i / (w - 1) - 0.5)``, softmax over all h*w positions).
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature: expected a positive number, got {temperature}")
        self.temperature = float(temperature)

    def grid(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """Coordinates of the ``n`` pixel centres of one axis (Eq. 12-13)."""
        return normalized_grid(n, device=like.device, dtype=like.dtype)

    def forward(self, logits: torch.Tensor, features: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, k, h, w = logits.shape
        p = (logits.flatten(2) / self.temperature).softmax(dim=-1)    # Eq. 11 (B, K, H*W)
        attention = p.view(b, k, h, w)                                # (B, K, H, W)
        xs, ys = self.grid(w, logits), self.grid(h, logits)           # Eq. 12-13 (W,), (H,)
        x = torch.einsum("bkhw,w->bk", attention, xs)                 # Eq. 14 (B, K)
        y = torch.einsum("bkhw,h->bk", attention, ys)                 # Eq. 15 (B, K)
        coords = torch.stack([x, y], dim=-1)                          # (B, K, 2)
        if features is None:
            pooled = logits.new_zeros(b, k, 0)                        # (B, K, 0)
        else:
            pooled = torch.einsum("bkhw,bchw->bkc", attention, features)  # Eq. 16 (B, K, C)
        return coords, pooled, attention


def _check(in_shapes: dict[str, Shape]) -> Shape:
    logits = tuple(in_shapes["logits"])
    expect_rank("logits", logits, "B K H W")
    b, _, h, w = logits
    for name, d in (("h", h), ("w", w)):
        if d.is_concrete and d.value < 2:
            raise ShapeError(f"input 'logits': expected {name} >= 2 (the coordinate grid "
                             f"divides by {name} - 1), got {fmt_shape(logits)}")
    feats = optional_shape(in_shapes, "features")
    if feats is not None:
        expect_rank("features", feats, "B C H W")
        expected = (b, feats[1], h, w)
        if tuple(feats) != expected:
            raise ShapeError(f"input 'features': expected (b, c, h, w) = {fmt_shape(expected)} "
                             f"(b, h, w from logits {fmt_shape(logits)}), got {fmt_shape(feats)}")
    return logits


def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    b, k, h, w = _check(in_shapes)
    feats = optional_shape(in_shapes, "features")
    c = feats[1] if feats is not None else Dim.of(0)
    return {"coords": (b, k, Dim.of(2)), "features": (b, k, c), "attention": (b, k, h, w)}


def _init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _check(in_shapes)
    return {"temperature": float(params["temperature"])}


register(OpDef(
    name="soft_argmax",
    module=SoftArgmax,
    inputs=(
        Port("logits", "B K H W", doc="K attention logit maps; softmax over all h*w positions"),
        Port("features", "B C H W", optional=True,
             doc="feature map pooled by each attention map (Eq. 16)"),
    ),
    outputs=("coords", "features", "attention"),
    params={
        "temperature": number("divides the logits before the softmax over positions",
                              exclusiveMinimum=0),
    },
    infer=_infer,
    init_args=_init_args,
    symmetries=(
        # Output values: an axis letter = that output axis moves with the input; "x normalized"
        # = component 0 of the last axis moves by 2u/(w-1) (ocdsl.invariance documents the
        # vocabulary); None = unchanged.
        Symmetry("translation_equivariance", {"logits": "W", "features": "W"},
                 {"coords": "x normalized", "attention": "W", "features": None},
                 doc="Prop. 2.1: a shift by u pixels along w moves x by 2u/(w-1), shifts the "
                     "attention and leaves the pooled features unchanged (mass inside the "
                     "frame)"),
        Symmetry("translation_equivariance", {"logits": "H", "features": "H"},
                 {"coords": "y normalized", "attention": "H", "features": None},
                 doc="Prop. 2.1 along h: a shift by v pixels moves y by 2v/(h-1)"),
        Symmetry("permutation_equivariance", {"logits": "K"},
                 {"coords": "K", "features": "K", "attention": "K"},
                 doc="each attention map is pooled independently"),
    ),
    summary="soft-argmax: attention maps -> coordinates in [-1, 1] and pooled features "
            "(AST-Seg Eq. 10-16)",
))
