"""Compositing ops: ``alpha_composite`` (per-slot images + alpha logits -> image, masks)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ocdsl.ops._common import expect_rank
from ocdsl.ops.registry import OpDef, Port, Symmetry, register
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["AlphaComposite"]


class AlphaComposite(nn.Module):
    """Mix per-slot reconstructions with masks given by a softmax over slots of the alpha
    logits.

    ``masks = softmax_k(alpha_logits)``; ``image = sum_k masks_k * rgb_k``. The masks form a
    partition of unity at every pixel (the segmentation the metrics and figures use).

    Args:
        (none): the module takes no constructor arguments and has no weights.

    Shapes:
        rgb:          b k c h w
        alpha_logits: b k 1 h w
        -> image:     b c h w             sum over k of masks * rgb
        -> masks:     b k h w             softmax over k; sums to 1 over k at each pixel

    Symmetries:
        Permuting k in both inputs together leaves ``image`` unchanged and permutes
        ``masks`` the same way.

    Raises:
        ShapeError (shape rule): inputs not 5-D, the alpha channel not 1, or ``b k h w``
        differing between the two inputs (expected vs got).

    Source:
        Locatello et al. 2020, App. E.1 ("the alpha masks are normalised with a softmax over
        slots and used to combine the individual reconstructions"); the same mixture of
        per-component images as MONet (Burgess et al. 2019) and IODINE (Greff et al. 2019).
    """

    def forward(self, rgb: torch.Tensor,
                alpha_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        masks = alpha_logits.softmax(dim=1)                          # (B, K, 1, H, W)
        image = (masks * rgb).sum(dim=1)                             # (B, C, H, W)
        return image, masks.squeeze(2)                               # (B, C, H, W), (B, K, H, W)


def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    rgb, alpha = in_shapes["rgb"], in_shapes["alpha_logits"]
    expect_rank("rgb", rgb, "B K C H W")
    expect_rank("alpha_logits", alpha, "B K 1 H W")
    b, k, c, h, w = rgb
    expected = (b, k, Dim.of(1), h, w)
    if tuple(alpha) != expected:
        raise ShapeError(f"input 'alpha_logits': expected (b, k, 1, h, w) = {fmt_shape(expected)} "
                         f"(from rgb {fmt_shape(rgb)}), got {fmt_shape(alpha)}")
    return {"image": (b, c, h, w), "masks": (b, k, h, w)}


def _init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    return {}


register(OpDef(
    name="alpha_composite",
    module=AlphaComposite,
    inputs=(Port("rgb", "B K C H W", doc="per-slot reconstructions"),
            Port("alpha_logits", "B K 1 H W", doc="per-slot alpha logits")),
    outputs=("image", "masks"),
    params={},
    infer=_infer,
    init_args=_init_args,
    symmetries=(
        Symmetry("permutation_invariance", {"rgb": "K", "alpha_logits": "K"}, {"image": None},
                 doc="the composite does not depend on the order of the slots"),
        Symmetry("permutation_equivariance", {"rgb": "K", "alpha_logits": "K"},
                 {"masks": "K"}, doc="the masks follow the slots"),
    ),
    summary="softmax-over-slots alpha compositing of per-slot images",
))
