"""Compositing ops: ``alpha_composite`` (per-slot images + alpha logits -> image, masks) and
``occlusion_composite`` (AST-Seg: layers with masks and activations over a background)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ocdsl.ops._common import expect_rank
from ocdsl.ops.registry import OpDef, Port, Symmetry, number, register
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["AlphaComposite", "OcclusionComposite", "mix_layers", "occlusion_weights"]


# ---- shared helpers -------------------------------------------------------------------------

def mix_layers(weights: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """``image = sum_k weights_k * rgb_k``.

    Shapes:
        weights: b k h w,  rgb: b k c h w  ->  b c h w
    """
    return torch.einsum("bkhw,bkchw->bchw", weights, rgb)


def _expect_shape(port: str, got: Shape, expected: Shape, layout: str, source: str) -> None:
    """Raise ``input '<port>': expected (<layout>) = (B, 3, 1, 4, 5) (from <source>), got ...``."""
    if tuple(got) != tuple(expected):
        raise ShapeError(f"input '{port}': expected ({layout}) = {fmt_shape(expected)} "
                         f"(from {source}), got {fmt_shape(got)}")


# ---- alpha_composite ------------------------------------------------------------------------

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
        masks = alpha_logits.squeeze(2).softmax(dim=1)                # (B, K, H, W)
        return mix_layers(masks, rgb), masks                          # (B, C, H, W), (B, K, H, W)


def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    rgb, alpha = in_shapes["rgb"], in_shapes["alpha_logits"]
    expect_rank("rgb", rgb, "B K C H W")
    expect_rank("alpha_logits", alpha, "B K 1 H W")
    b, k, c, h, w = rgb
    _expect_shape("alpha_logits", alpha, (b, k, Dim.of(1), h, w), "b, k, 1, h, w",
                  f"rgb {fmt_shape(rgb)}")
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


# ---- occlusion_composite --------------------------------------------------------------------

#: log(largest float) minus this margin bounds the mask gradient alpha_k / S (see below).
_GRAD_EXP_MARGIN = 16.0


class _OcclusionWeights(torch.autograd.Function):
    """``w_k = alpha_k M_k / sum_j alpha_j M_j`` from ``log alpha`` and ``M >= 0``, in log
    space, with the exact gradient of that formula (also at ``M_k = 0``).

    Forward: ``z_k = log alpha_k - max_j log alpha_j + log M_k`` (``-inf`` where
    ``M_k <= 0``), ``w = exp(z - logsumexp_k z)``: no exp of a raw log-activation, ``log M``
    not rounded away next to large logits, and ``w_k`` exactly 0 where ``M_k = 0``.
    Backward (``g = dL/dw``, ``c_k = g_k - sum_j w_j g_j``):
    ``dL/dlog alpha_k = sum_hw w_k c_k`` and ``dL/dM_k = (alpha_k / S) c_k`` with
    ``alpha_k / S = exp(log alpha_k - logsumexp z)``, finite at ``M_k = 0`` (where autograd
    through ``log M`` would give ``0 * inf = nan``).
    """

    @staticmethod
    def forward(ctx, log_alpha: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        # log_alpha: (B, J) with J = K + 1; masks: (B, J, H, W)
        # minus the largest (exact for nearby floats): log M keeps its precision next to
        # logits of 1000 in float32; w and a - lse do not change
        a = log_alpha - log_alpha.amax(dim=1, keepdim=True)
        a = a[:, :, None, None]                                            # (B, J, 1, 1)
        log_m = torch.where(masks > 0, masks.log(), float("-inf"))         # (B, J, H, W)
        z = a + log_m                                                      # Eq. 17 log-numerator
        lse = torch.logsumexp(z, dim=1, keepdim=True)                      # (B, 1, H, W) log S
        w = (z - lse).exp()                                                # Eq. 17 (B, J, H, W)
        ctx.save_for_backward(a, lse, w)
        return w

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, lse, w = ctx.saved_tensors
        c = g - (w * g).sum(dim=1, keepdim=True)                           # (B, J, H, W)
        grad_a = (w * c).sum(dim=(2, 3)) if ctx.needs_input_grad[0] else None
        grad_m = None
        if ctx.needs_input_grad[1]:
            cap = math.log(torch.finfo(w.dtype).max) - _GRAD_EXP_MARGIN
            grad_m = (a - lse).clamp(max=cap).exp() * c                    # alpha_k / S * c_k
        return grad_a, grad_m


def occlusion_weights(log_alpha: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Normalised occlusion weights ``w_k = alpha_k M_k / sum_j alpha_j M_j`` (Eq. 17),
    computed in log space (see :class:`OcclusionComposite`).

    Shapes:
        log_alpha: b j,  masks: b j h w  ->  b j h w     sums to 1 over j where some
                                                         ``M_j > 0``
    """
    return _OcclusionWeights.apply(log_alpha, masks)


class OcclusionComposite(nn.Module):
    """AST-Seg compositing: each object layer's mask times its activation, normalised over
    the objects and the background, weights the layers' colours (Eq. 17-18).

    With ``alpha_0 = exp(background_logit)`` (learned), ``M_0 = 1`` and ``L_0`` the
    background; objects k = 1..K with ``alpha_k = exp(log_alpha_k)``, mask ``M_k`` and
    colour ``L_k``::

        Eq. 17  w_k = alpha_k M_k / sum_{j=0..K} alpha_j M_j          b (k+1) h w
        Eq. 18  image = sum_{k=0..K} w_k L_k                         b 3 h w
                segmentation = argmax_k w_k                          b h w   0 = background

    Computed in log space: ``w = softmax_k(log alpha_k + log M_k)``, equal to Eq. 17 but with
    no ``exp`` of a raw activation latent (``exp(latent)`` overflows float32 above ~88.7,
    and the direct formula then gives inf / inf = nan). ``w_k`` is exactly 0 where
    ``M_k = 0``; the gradients are those of Eq. 17, finite there too:
    ``dw/dM_k = alpha_k / S`` (a custom backward; autograd through ``log M_k`` would give
    nan). That factor is clamped at ``finfo.max * e^-16`` (reached only where
    ``alpha_k / S`` exceeds it, i.e. ``M_k`` below ~1e-31 in float32). Masks <= 0 count as
    0. Not twice differentiable.

    Args:
        background_logit (`float`, *optional*, defaults to 11.0):
            Initial value of the learned background activation logit
            (``alpha_0 = exp(background_logit)``), a parameter of the module.

    Shapes:
        layers:           b k 4 h w      RGB (channels 0-2) and mask M_k in [0, 1] (channel 3)
        log_alpha:        b k            log alpha_k (``latent_split``'s ``log_alpha``)
        background:       b 3 h w        L_0
        -> image:          b 3 h w        Eq. 18
        -> weights:        b (k+1) h w    Eq. 17; index 0 = background; sums to 1 over k+1
        -> segmentation:   b h w          int64 argmax of ``weights`` (0 = background, k = object k)

    Units:
        ``image`` in the units of the layers and background ([0, 1] in AST-Seg); ``weights``
        in [0, 1]. A background logit of 11 makes an object with ``alpha = 1`` and a full
        mask weigh e^-11 against the background: objects must learn large activations.

    Symmetries:
        Permuting k in ``layers`` and ``log_alpha`` together leaves ``image`` unchanged
        (``weights`` and ``segmentation`` relabel objects 1..K accordingly; the background
        stays at index 0).

    Raises:
        ShapeError (shape rule): ``layers`` not 5-D or its channel count not 4,
        ``log_alpha`` not ``(b, k)`` of ``layers``, ``background`` not ``(b, 3, h, w)`` of
        ``layers`` (expected vs got).

    Source:
        Sauvalle & de La Fortelle, WACV 2023, Sec. 3, Eq. 17-18 (M_0 = 1, alpha_0 learned);
        [AST] MF_models_renderer.py L94 (background activation logit, a parameter
        initialised to ``initial_background_activation_logit`` = 11), L98
        (background mask of ones) and L139-160 (direct ``exp`` and normalisation, background
        at index 0; here log space, same values). The code's
        ``variable_background_activation`` (L95-96, a per-pixel background logit) is not
        offered.
    """

    def __init__(self, background_logit: float = 11.0):
        super().__init__()
        self.background_logit = nn.Parameter(torch.tensor(float(background_logit)))

    def forward(self, layers: torch.Tensor, log_alpha: torch.Tensor, background: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = layers.shape[0]
        rgb, masks = layers[:, :, :3], layers[:, :, 3]               # (B, K, 3, H, W), (B, K, H, W)
        bg = self.background_logit.to(log_alpha.dtype).expand(b, 1)  # (B, 1)  log alpha_0
        logits = torch.cat([bg, log_alpha], dim=1)                    # (B, K+1)
        masks = torch.cat([torch.ones_like(masks[:, :1]), masks], 1)  # (B, K+1, H, W)  M_0 = 1
        weights = occlusion_weights(logits, masks)                    # Eq. 17 (B, K+1, H, W)
        image = weights[:, 0, None] * background + mix_layers(weights[:, 1:], rgb)  # Eq. 18
        segmentation = weights.argmax(dim=1)                          # (B, H, W) int64
        return image, weights, segmentation                           # (B, 3, H, W), ...


def _occlusion_check(in_shapes: dict[str, Shape]) -> Shape:
    layers = tuple(in_shapes["layers"])
    expect_rank("layers", layers, "B K 4 H W")
    b, k, c, h, w = layers
    if c != Dim.of(4):
        raise ShapeError(f"input 'layers': expected 4 channels (RGB + mask) on axis 2, got {c} "
                         f"in {fmt_shape(layers)}")
    src = f"layers {fmt_shape(layers)}"
    alpha, bg = tuple(in_shapes["log_alpha"]), tuple(in_shapes["background"])
    _expect_shape("log_alpha", alpha, (b, k), "b, k", src)
    _expect_shape("background", bg, (b, Dim.of(3), h, w), "b, 3, h, w", src)
    return layers


def _occlusion_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    b, k, _, h, w = _occlusion_check(in_shapes)
    # k.value: K + 1 needs a number (ShapeError if K were still symbolic)
    return {"image": (b, Dim.of(3), h, w), "weights": (b, Dim.of(k.value + 1), h, w),
            "segmentation": (b, h, w)}


def _occlusion_init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _occlusion_check(in_shapes)
    return {"background_logit": float(params["background_logit"])}


register(OpDef(
    name="occlusion_composite",
    module=OcclusionComposite,
    inputs=(Port("layers", "B K 4 H W", doc="per-object RGB + mask M_k in [0, 1] "
                                            "(spatial_transformer output)"),
            Port("log_alpha", "B K", doc="log alpha_k, the object activation latent "
                                         "(latent_split.log_alpha)"),
            Port("background", "B 3 H W", doc="background image L_0")),
    outputs=("image", "weights", "segmentation"),
    params={
        "background_logit": number("initial value of the learned background activation "
                                   "logit (alpha_0 = exp); AST: 11"),
    },
    infer=_occlusion_infer,
    init_args=_occlusion_init_args,
    symmetries=(
        Symmetry("permutation_invariance", {"layers": "K", "log_alpha": "K"}, {"image": None},
                 doc="Eq. 17-18 sum over the objects: their order does not matter"),
    ),
    summary="AST-Seg occlusion compositing: masks x activations normalised over objects and "
            "background (Eq. 17-18)",
))
