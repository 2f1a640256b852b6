"""Ops of the object-centric MAE (Vikström & Ilin 2022): ``object_function``,
``broadcast_unshuffle``, ``unpatchify``.

Between the ViT encoder and decoder (ocdsl/ops/vit.py): the class tokens compete for the
patches (Eq. 1), each slot is the weighted mean of its patches (Eq. 2), every slot is
broadcast back to the full patch grid with its log-attention as an extra channel and MAE
mask tokens where patches were dropped, and the decoder's patches become per-slot RGB and
alpha logits, composited by ``alpha_composite`` (Eq. 3, ocdsl/ops/composite.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import einops
import torch
import torch.nn.functional as F
from torch import nn

from ocdsl.ops._common import expect_dim, expect_rank, size_list
from ocdsl.ops.registry import OpDef, Port, Symmetry, number, register, size, sizes
from ocdsl.ops.vit_tokens import unpatchify
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["ObjectFunction", "BroadcastUnshuffle", "Unpatchify"]


# ---- object_function -------------------------------------------------------------------------

class ObjectFunction(nn.Module):
    """The object function: class tokens compete for patch tokens; slots are the weighted
    means of the patches they win.

    One line of ``forward`` per step of the paper::

        Eq. 1   logits_ik = z_i . c_k / sqrt(D)          b k n
                a_ik = softmax over k (slots) of logits  b k n    competition between slots
        Eq. 2   w_ik = a_ik / (sum_i a_ik + eps)         b k n    normalised over patches i
                slot_k = sum_i w_ik z_i                  b k d

    ``log_attention`` is ``log_softmax`` over k (the decoder's extra channel), computed
    directly rather than as ``log(a)`` so that it stays finite.

    Args:
        dim (`int`):
            Token size ``D`` (the logits are scaled by ``D ** -0.5``).
        epsilon (`float`, *optional*, defaults to 1e-8):
            Added to the per-slot attention mass before normalising over patches (Eq. 2), so
            a slot that wins no patch gets a zero slot rather than NaN.

    Shapes:
        tokens: b n d            encoder outputs of the (kept) patches
        cls:    b k d            encoder outputs of the class tokens
        -> slots:         b k d
        -> attention:     b k n  a_ik: sums to 1 over k at each patch
        -> log_attention: b k n  log a_ik

    Symmetries:
        Permuting the class tokens (k) permutes every output along k; permuting the patch
        tokens (n) leaves the slots unchanged and permutes the attention columns.

    Raises:
        ShapeError (shape rule): inputs not 3-D, or batch or token size differing between
        ``tokens`` and ``cls`` (expected vs got).

    Source:
        Vikström & Ilin 2022, Sec. 3.1, Eq. 1-2 (eps 1e-8 as in the authors' code).
    """

    def __init__(self, dim: int, epsilon: float = 1e-8):
        super().__init__()
        self.scale = dim ** -0.5
        self.epsilon = epsilon

    def forward(self, tokens: torch.Tensor,
                cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = torch.einsum("bnd,bkd->bkn", tokens, cls) * self.scale  # Eq. 1 (B, K, N)
        log_attn = logits.log_softmax(dim=1)                         # Eq. 1 over slots k
        attn = log_attn.exp()                                        #       (B, K, N)
        weights = attn / (attn.sum(dim=-1, keepdim=True) + self.epsilon)  # Eq. 2 over n
        slots = torch.einsum("bkn,bnd->bkd", weights, tokens)        # Eq. 2 (B, K, D)
        return slots, attn, log_attn


def _of_check(in_shapes: dict[str, Shape]) -> tuple[Shape, Shape]:
    t, c = tuple(in_shapes["tokens"]), tuple(in_shapes["cls"])
    expect_rank("tokens", t, "B N D")
    expect_rank("cls", c, "B K D")
    if c[0] != t[0] or c[2] != t[2]:
        raise ShapeError(f"input 'cls': expected (b, k, d) = ({t[0]}, K, {t[2]}) (from tokens "
                         f"{fmt_shape(t)}), got {fmt_shape(c)}")
    return t, c


def _of_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    (b, n, d), (_, k, _) = _of_check(in_shapes)
    return {"slots": (b, k, d), "attention": (b, k, n), "log_attention": (b, k, n)}


def _of_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    t, _ = _of_check(in_shapes)
    return {"dim": t[2].value, "epsilon": float(params["epsilon"])}


register(OpDef(
    name="object_function",
    module=ObjectFunction,
    inputs=(Port("tokens", "B N D", doc="encoder outputs of the patch tokens"),
            Port("cls", "B K D", doc="encoder outputs of the class tokens")),
    outputs=("slots", "attention", "log_attention"),
    params={"epsilon": number("added to each slot's attention mass before normalising over "
                              "patches (Eq. 2)", minimum=0)},
    infer=_of_infer,
    init_args=_of_init,
    symmetries=(
        Symmetry("permutation_equivariance", {"cls": "K"},
                 {"slots": "K", "attention": "K", "log_attention": "K"},
                 doc="the slots follow the class tokens"),
        Symmetry("permutation_invariance", {"tokens": "N"}, {"slots": None},
                 doc="a slot is a weighted mean over the patches: their order does not matter"),
        Symmetry("permutation_equivariance", {"tokens": "N"},
                 {"attention": "N", "log_attention": "N"},
                 doc="permuting the patches permutes the attention columns"),
    ),
    summary="object function (Vikström & Ilin 2022, Eq. 1-2): slots from class tokens",
))


# ---- broadcast_unshuffle ---------------------------------------------------------------------

class BroadcastUnshuffle(nn.Module):
    """Broadcast each slot to the full patch grid: ``[slot_k ; log a_ik]`` at the kept
    patches, an MAE mask token at the dropped ones, in the original patch order.

    ::

        x_kik  = Linear([s_k ; log a_ik])               b k l e   l kept patches
        x_k    = cat(x_k, mask_token x (n - l))         b k n e   shuffled order
        out_k  = gather(x_k, ids_restore)               b k n e   original patch order

    The Linear is computed as ``W_s s_k + w_a log a_ik + b`` (the same weights, without
    materialising the broadcast concatenation). ``attention`` is ``a_ik`` unshuffled the same
    way, with 0 at the dropped patches (for figures).

    Args:
        slot_size (`int`):
            Slot size ``D`` (the encoder's token size).
        dim (`int`):
            Decoder token size ``E``.
        mask_std (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal init of the mask token (MAE).

    Shapes:
        slots:         b k d
        log_attention: b k l        log a_ik over the kept patches
        ids_restore:   b n          int64, from random_masking
        -> tokens:     b k n e
        -> attention:  b k n        a_ik on the full grid, 0 where the patch was dropped

    Symmetries:
        Permuting k in ``slots`` and ``log_attention`` together permutes both outputs
        along k (each slot is broadcast independently).

    Raises:
        ShapeError (shape rule): wrong ranks, batch or K differing between the inputs, or
        more kept patches than patches.

    Source:
        Vikström & Ilin 2022, Sec. 3.2 (Fig. 1, "broadcast module": slot plus log of the
        patch mask, Linear(D+1 -> D_dec), mask tokens, unshuffle); He et al. 2022 (MAE mask
        token init N(0, 0.02^2)). Linear xavier-uniform with zero bias.
    """

    def __init__(self, slot_size: int, dim: int, mask_std: float = 0.02):
        super().__init__()
        self.slot_size = slot_size
        self.embed = nn.Linear(slot_size + 1, dim)
        nn.init.xavier_uniform_(self.embed.weight)
        nn.init.zeros_(self.embed.bias)
        self.mask_token = nn.Parameter(torch.empty(1, 1, 1, dim))
        nn.init.normal_(self.mask_token, std=mask_std)

    def forward(self, slots: torch.Tensor, log_attention: torch.Tensor,
                ids_restore: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, k, l = log_attention.shape
        n = ids_restore.shape[1]
        w_slot, w_attn = self.embed.weight.split([self.slot_size, 1], dim=1)  # (E, D), (E, 1)
        x = F.linear(slots, w_slot, self.embed.bias)[:, :, None, :]  # (B, K, 1, E)
        x = x + log_attention[..., None] * w_attn[:, 0]              # (B, K, L, E)
        e = x.shape[-1]
        x = torch.cat([x, self.mask_token.expand(b, k, n - l, e)], dim=2)  # (B, K, N, E)
        index = ids_restore[:, None, :]                              # (B, 1, N)
        x = x.gather(2, index[..., None].expand(b, k, n, e))         # (B, K, N, E) unshuffled
        attn = torch.cat([log_attention.exp(),
                          log_attention.new_zeros(b, k, n - l)], dim=2)  # (B, K, N)
        attn = attn.gather(2, index.expand(b, k, n))                 # (B, K, N) unshuffled
        return x, attn


def _bu_check(in_shapes: dict[str, Shape]) -> tuple[Shape, Shape, Shape]:
    s, a, ids = (tuple(in_shapes[p]) for p in ("slots", "log_attention", "ids_restore"))
    expect_rank("slots", s, "B K D")
    expect_rank("log_attention", a, "B K L")
    expect_rank("ids_restore", ids, "B N")
    if a[0] != s[0] or a[1] != s[1]:
        raise ShapeError(f"input 'log_attention': expected (b, k, l) = ({s[0]}, {s[1]}, L) (from "
                         f"slots {fmt_shape(s)}), got {fmt_shape(a)}")
    expect_dim("input 'ids_restore' batch", s[0], ids[0])
    if a[2].is_concrete and ids[1].is_concrete and a[2].value > ids[1].value:
        raise ShapeError(f"input 'log_attention': expected at most {ids[1]} kept patches (the "
                         f"grid of ids_restore), got {a[2]}")
    return s, a, ids


def _bu_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    (b, k, _), _, (_, n) = _bu_check(in_shapes)
    return {"tokens": (b, k, n, Dim.of(int(params["dim"]))), "attention": (b, k, n)}


def _bu_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    s, _, _ = _bu_check(in_shapes)
    return {"slot_size": s[2].value, "dim": int(params["dim"]),
            "mask_std": float(params["mask_std"])}


register(OpDef(
    name="broadcast_unshuffle",
    module=BroadcastUnshuffle,
    inputs=(Port("slots", "B K D", doc="slots from the object function"),
            Port("log_attention", "B K L", doc="log a_ik over the kept patches"),
            Port("ids_restore", "B N", doc="random_masking's inverse shuffle")),
    outputs=("tokens", "attention"),
    params={
        "dim": size("decoder token size E"),
        "mask_std": number("standard deviation of the mask token's normal init (MAE: 0.02)",
                           exclusiveMinimum=0),
    },
    infer=_bu_infer,
    init_args=_bu_init,
    required=("dim",),
    symmetries=(
        Symmetry("permutation_equivariance", {"slots": "K", "log_attention": "K"},
                 {"tokens": "K", "attention": "K"},
                 doc="each slot is broadcast independently"),
    ),
    summary="slot + log-attention per kept patch, MAE mask tokens, unshuffle to the grid",
))


# ---- unpatchify ------------------------------------------------------------------------------

class Unpatchify(nn.Module):
    """Per-slot patches back to images, split into colour and an alpha logit.

    ``b k (h w) (p q c) -> b k c (h p) (w q)`` (the inverse of ``patchify``, channels fastest
    within a patch, patches row-major); the first ``c - 1`` channels are the slot's RGB, the
    last its alpha logit. No weights.

    Args:
        patch (`int`):
            Patch side ``p``.
        resolution (`list[int]`):
            Output ``[H, W]`` (multiples of ``p``).

    Shapes:
        x: b k n f                 n = (H / p)(W / p), f = p p c
        -> rgb:          b k (c-1) h w
        -> alpha_logits: b k 1 h w         softmax over k gives the masks (alpha_composite)

    Symmetries:
        Permuting k permutes both outputs along k.

    Raises:
        ShapeError (shape rule): ``x`` not 4-D, ``n`` not the patch grid of ``resolution``,
        or ``f`` not ``p * p * c`` with ``c >= 2``.

    Source:
        He et al. 2022 (MAE unpatchify); Vikström & Ilin 2022, Sec. 3.2 (decoder outputs
        p^2 * 4 values per patch: RGB and an alpha channel; alphas softmaxed over slots, Eq. 3).
    """

    def __init__(self, patch: int, resolution: Sequence[int]):
        super().__init__()
        self.patch = int(patch)
        self.height = int(resolution[0])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = unpatchify(x, self.patch, self.height)              # (B, K, C+1, H, W)
        rgb, alpha = images.split([images.shape[2] - 1, 1], dim=2)   # (B,K,C,H,W), (B,K,1,H,W)
        return rgb, alpha


def _up_check(in_shapes: dict[str, Shape], params: dict[str, Any]) -> tuple[Shape, int, int, int, int]:
    x = tuple(in_shapes["x"])
    expect_rank("x", x, "B K N F")
    p = int(params["patch"])
    res = size_list(params["resolution"], "resolution")
    if len(res) != 2:
        raise ShapeError(f"'resolution': expected [h, w], got {res}")
    h, w = res
    if h % p or w % p:
        raise ShapeError(f"'patch': expected a divisor of the resolution {h}x{w}, got {p}")
    expect_dim("input 'x' patches", (h // p) * (w // p), x[2],
               context=f"a {h // p}x{w // p} grid of {p}x{p} patches")
    f = x[3].value
    if f % (p * p) or f // (p * p) < 2:
        raise ShapeError(f"input 'x': expected p * p * c features with c >= 2 (RGB + alpha), "
                         f"p = {p}, got {f}")
    return x, p, h, w, f // (p * p)


def _up_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    (b, k, _, _), _, h, w, c = _up_check(in_shapes, params)
    return {"rgb": (b, k, Dim.of(c - 1), Dim.of(h), Dim.of(w)),
            "alpha_logits": (b, k, Dim.of(1), Dim.of(h), Dim.of(w))}


def _up_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _, p, h, w, _ = _up_check(in_shapes, params)
    return {"patch": p, "resolution": [h, w]}


register(OpDef(
    name="unpatchify",
    module=Unpatchify,
    inputs=(Port("x", "B K N F", doc="per-slot patch predictions, F = p * p * (C + 1)"),),
    outputs=("rgb", "alpha_logits"),
    params={
        "patch": size("patch side p"),
        "resolution": sizes("output [H, W]", minItems=2, maxItems=2),
    },
    infer=_up_infer,
    init_args=_up_init,
    required=("patch", "resolution"),
    symmetries=(
        Symmetry("permutation_equivariance", {"x": "K"}, {"rgb": "K", "alpha_logits": "K"},
                 doc="each slot is reshaped independently"),
    ),
    summary="per-slot patches -> RGB (B K C H W) and alpha logits (B K 1 H W)",
))
