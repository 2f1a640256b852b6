"""Vision-transformer token ops: ``patch_embedding``, ``sincos_position_embedding``,
``random_masking``, ``class_tokens``.

The token side of an MAE-style ViT (He et al. 2022) as used by the object-centric MAE of
Vikström & Ilin (2022): patches are embedded by a strided convolution, get a fixed 2-D
sin-cos position embedding, a random subset is kept, and K learned class tokens are made to
be prepended (the transformer blocks that process them are in ocdsl/ops/vit.py). The
patch-embedding kernel is initialised xavier-uniform as a (D, C*p*p) matrix, as in MAE.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import einops
import torch
from torch import nn

from ocdsl.ops._common import expect_dim, expect_rank, size_list
from ocdsl.ops.registry import OpDef, Port, dynamic_size, number, register, schedulable, size, sizes
from ocdsl.shapes import Dim, Shape, ShapeError

__all__ = ["PatchEmbedding", "SinCosPositionEmbedding", "RandomMasking", "ClassTokens", "sincos_2d",
           "patchify", "unpatchify", "kept_count"]


# ---- helpers --------------------------------------------------------------------------------

def sincos_2d(dim: int, height: int, width: int) -> torch.Tensor:
    """The fixed 2-D sin-cos position embedding of an ``height x width`` patch grid.

    Patch ``i = row * width + col`` gets ``[emb(col), emb(row)]`` (column half first, as in
    MAE's ``get_2d_sincos_pos_embed``), where ``emb(p) = [sin(p w_j), cos(p w_j)]`` over
    ``w_j = 10000 ** (-j / (dim / 4))``, ``j = 0 .. dim / 4 - 1``.

    Shapes:
        out: (h w) dim        float32

    Raises:
        ValueError: ``dim`` not divisible by 4.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position embedding: expected a size divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)   # (D/4,)
    rows = torch.arange(height, dtype=torch.float64).repeat_interleave(width)       # (h w,)
    cols = torch.arange(width, dtype=torch.float64).repeat(height)                  # (h w,)

    def emb(pos: torch.Tensor) -> torch.Tensor:
        angles = pos[:, None] * omega[None, :]                                       # (h w, D/4)
        return torch.cat([angles.sin(), angles.cos()], dim=1)                       # (h w, D/2)

    return torch.cat([emb(cols), emb(rows)], dim=1).float()                         # (h w, D)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``b c (h p) (w q) -> b (h w) (p q c)``: each patch as one row, channels fastest."""
    return einops.rearrange(images, "b c (h p) (w q) -> b (h w) (p q c)", p=patch, q=patch)


def unpatchify(tokens: torch.Tensor, patch: int, height: int) -> torch.Tensor:
    """Inverse of :func:`patchify` over any leading axes:
    ``... (h w) (p q c) -> ... c (h p) (w q)`` with ``h = height // patch``."""
    return einops.rearrange(tokens, "... (h w) (p q c) -> ... c (h p) (w q)",
                            h=height // patch, p=patch, q=patch)


def kept_count(n: int, ratio: float) -> int:
    """Patches kept by :class:`RandomMasking`: ``floor(n (1 - ratio))``, at least 1.

    A tolerance of 1e-9 absorbs float error (``20 * (1 - 0.8)`` is 3.999999999999999 in
    floating point; the count is 4)."""
    return max(1, math.floor(n * (1.0 - float(ratio)) + 1e-9))


# ---- patch_embedding ------------------------------------------------------------------------

class PatchEmbedding(nn.Module):
    """Patch embedding: a ``Conv2d(C, D, kernel = stride = patch)``, flattened to tokens.

    ``out[b, i] = W patch_i(image[b]) + bias`` for the ``N = (H / p) (W / p)`` non-overlapping
    ``p x p`` patches in row-major order (``i = row * (W / p) + col``).

    Args:
        in_channels (`int`):
            Image channels ``C``.
        dim (`int`):
            Token size ``D``.
        patch (`int`):
            Patch side ``p`` in pixels; ``H`` and ``W`` must be multiples of it.

    Shapes:
        image: b c h w
        -> out: b n d          n = (h / p) (w / p)

    Raises:
        ShapeError (shape rule): the image not 4-D, or ``H`` / ``W`` not a multiple of ``p``.

    Source:
        Dosovitskiy et al. 2021 (ViT), Sec. 3.1; He et al. 2022 (MAE) init: the kernel as a
        ``(D, C p p)`` matrix xavier-uniform. Vikström & Ilin 2022, Sec. 3 (patch sizes in
        Table 7: 5 for Tetrominoes 35x35, 8 for Multi-dSprites, 16 for CLEVR/ClevrTex).
    """

    def __init__(self, in_channels: int, dim: int, patch: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch)
        nn.init.xavier_uniform_(self.proj.weight.view(dim, -1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.proj(image)                                         # (B, D, H/p, W/p)
        return einops.rearrange(x, "b d h w -> b (h w) d")           # (B, N, D)


def _patch_grid(image: Shape, patch: int) -> tuple[Dim, int, int, int]:
    expect_rank("image", image, "B C H W")
    b, c, h, w = image
    hv, wv = h.value, w.value
    if patch < 1 or hv % patch or wv % patch:
        raise ShapeError(f"'patch': expected a divisor of the image size {hv}x{wv}, got {patch}")
    return b, c.value, hv // patch, wv // patch


def _patch_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    b, _, gh, gw = _patch_grid(in_shapes["image"], int(params["patch"]))
    return {"out": (b, Dim.of(gh * gw), Dim.of(int(params["dim"])))}


def _patch_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _, c, _, _ = _patch_grid(in_shapes["image"], int(params["patch"]))
    return {"in_channels": c, "dim": int(params["dim"]), "patch": int(params["patch"])}


register(OpDef(
    name="patch_embedding",
    module=PatchEmbedding,
    inputs=(Port("image", "B C H W", doc="image, channels first"),),
    outputs=("out",),
    params={
        "patch": size("patch side p in pixels (kernel = stride of the conv)"),
        "dim": size("token size D"),
    },
    infer=_patch_infer,
    init_args=_patch_init,
    required=("patch", "dim"),
    summary="non-overlapping p x p patches -> tokens (Conv2d kernel = stride = p)",
))


# ---- sincos_position_embedding ---------------------------------------------------------------

class SinCosPositionEmbedding(nn.Module):
    """Adds the fixed 2-D sin-cos position embedding of a patch grid to tokens.

    ``out[..., i, :] = x[..., i, :] + sincos_2d(D, h, w)[i]`` (see :func:`sincos_2d`); no
    weights (the table is a non-persistent buffer). Leading axes are batch axes, so the same
    op adds the decoder embedding to per-slot token grids ``b k n d``.

    Args:
        dim (`int`):
            Token size ``D`` (a multiple of 4).
        grid (`list[int]`):
            ``[h, w]`` of the patch grid; the tokens must number ``h * w``.

    Shapes:
        x:   b ... n d         n = h w
        -> out: b ... n d

    Raises:
        ShapeError (shape rule): fewer than 3 axes, ``n != h * w``, or ``d`` not a multiple
        of 4.

    Source:
        He et al. 2022 (MAE), fixed 2-D sin-cos embedding on the patches only (no class
        token); Vikström & Ilin 2022, Sec. 3: in the encoder (after the patch embedding) and
        in the decoder (after unshuffling).
    """

    def __init__(self, dim: int, grid: Sequence[int]):
        super().__init__()
        self.register_buffer("table", sincos_2d(dim, int(grid[0]), int(grid[1])),
                             persistent=False)                       # (N, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table.to(x.dtype)                            # (B, ..., N, D)


def _grid(params: dict[str, Any]) -> tuple[int, int]:
    g = size_list(params["grid"], "grid")
    if len(g) != 2:
        raise ShapeError(f"'grid': expected [h, w], got {g}")
    return g[0], g[1]


def _sincos_check(in_shapes: dict[str, Shape], params: dict[str, Any]) -> Shape:
    x = tuple(in_shapes["x"])
    expect_rank("x", x, "B N D", at_least=True)
    gh, gw = _grid(params)
    expect_dim("input 'x' tokens", gh * gw, x[-2], context=f"grid {gh}x{gw}")
    if x[-1].value % 4:
        raise ShapeError(f"input 'x': expected a token size divisible by 4, got {x[-1]}")
    return x


def _sincos_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    return {"out": _sincos_check(in_shapes, params)}


def _sincos_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    x = _sincos_check(in_shapes, params)
    return {"dim": x[-1].value, "grid": list(_grid(params))}


register(OpDef(
    name="sincos_position_embedding",
    module=SinCosPositionEmbedding,
    inputs=(Port("x", "B N D", doc="tokens of an h x w patch grid (leading batch axes allowed)"),),
    outputs=("out",),
    params={"grid": sizes("[h, w] of the patch grid", minItems=2, maxItems=2)},
    infer=_sincos_infer,
    init_args=_sincos_init,
    required=("grid",),
    summary="adds the fixed 2-D sin-cos embedding of an h x w patch grid",
))


# ---- random_masking --------------------------------------------------------------------------

class RandomMasking(nn.Module):
    """Per-sample random masking: keep ``L = floor(N (1 - ratio))`` of the N tokens.

    Each sample draws uniform noise per token; the L tokens with the smallest noise are kept
    (in that random order) and the rest are dropped. ``ids_restore`` undoes the shuffle: the
    decoder appends mask tokens after the L kept ones and gathers with it.
    ``ratio`` is a plain attribute read at every forward, so a schedule can anneal it
    (``ratio = "mask_ratio"`` in the spec; generated ``set_schedules``). At ``ratio = 0``
    nothing is dropped and the order is kept (``ids_restore = arange(N)``): evaluation is
    deterministic. The draw uses the global torch RNG.

    Args:
        ratio (`float`, *optional*, defaults to 0.75):
            Fraction of tokens dropped, in [0, 1). Paper: 0.75 (0.5 on Multi-dSprites),
            annealed to 0 after warm-up.
        kept (`str`, *optional*, defaults to `"L"`):
            Name of the run-time size ``L`` in output signatures (``"B L D"``).

    Shapes:
        x: b n d
        -> tokens:      b l d      l = max(1, floor(n (1 - ratio))): known at run time
        -> mask:        b n        1.0 where the token was dropped, 0.0 where kept
        -> ids_restore: b n        int64; tokens of the full grid = gather(cat(kept, dropped),
                                   ids_restore)

    Raises:
        ShapeError (shape rule): ``x`` not 3-D, or ``ratio`` outside [0, 1).
        ValueError (forward): ``ratio`` (as set by a schedule) outside [0, 1).

    Source:
        He et al. 2022 (MAE), Sec. 3 "random sampling" (per-sample shuffling by argsort of
        uniform noise); Vikström & Ilin 2022, Sec. 3.3 (mask ratio r0 until epoch 10, then
        annealed linearly to 0 at epoch 300); keeps ``int(N (1 - r))`` patches as MAE does.
    """

    def __init__(self, ratio: float = 0.75, kept: str = "L"):
        super().__init__()
        self.ratio = float(ratio)
        self.kept = kept

    # Outside torch.compile's graphs: the ratio changes every step (a compiled graph would
    # guard on it and recompile); what follows sees a dynamic kept-token count instead.
    @torch.compiler.disable
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        r = float(self.ratio)
        if not 0.0 <= r < 1.0:
            raise ValueError(f"random_masking: expected a ratio in [0, 1), got {r}")
        if r == 0.0:
            ids = torch.arange(n, device=x.device).expand(b, n)     # (B, N): identity
            return x, x.new_zeros(b, n), ids
        keep = kept_count(n, r)
        noise = torch.rand(b, n, device=x.device)                    # (B, N) uniform
        ids_shuffle = noise.argsort(dim=1)                           # (B, N) small = kept
        ids_restore = ids_shuffle.argsort(dim=1)                     # (B, N) inverse
        ids_keep = ids_shuffle[:, :keep]                             # (B, L)
        tokens = x.gather(1, ids_keep[..., None].expand(b, keep, d))  # (B, L, D)
        mask = (ids_restore >= keep).to(x.dtype)                     # (B, N) 1 = dropped
        return tokens, mask, ids_restore

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}, kept={self.kept!r}"


def _ratio_ok(params: dict[str, Any]) -> float:
    r = float(params["ratio"])
    if not 0.0 <= r < 1.0:
        raise ShapeError(f"'ratio': expected a value in [0, 1), got {r}")
    return r


def _masking_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x = in_shapes["x"]
    expect_rank("x", x, "B N D")
    _ratio_ok(params)
    b, n, d = x
    return {"tokens": (b, Dim.of(str(params["kept"])), d), "mask": (b, n),
            "ids_restore": (b, n)}


def _masking_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    return {"ratio": _ratio_ok(params), "kept": str(params["kept"])}


register(OpDef(
    name="random_masking",
    module=RandomMasking,
    inputs=(Port("x", "B N D", doc="tokens (after the position embedding)"),),
    outputs=("tokens", "mask", "ids_restore"),
    params={
        "ratio": schedulable("fraction of tokens dropped, in [0, 1); paper 0.75 (0.5 on "
                             "Multi-dSprites).", minimum=0, exclusiveMaximum=1),
        "kept": dynamic_size("name of the run-time number of kept tokens in output "
                             "signatures (\"B L D\")", "L"),
    },
    infer=_masking_infer,
    init_args=_masking_init,
    # The kept count changes as the ratio anneals: a compiled graph would recompile for
    # every new length, and ViT steps gain nothing from torch.compile here (docs/results.md).
    compile_on_cpu=False,
    summary="MAE per-sample random masking: keep floor(N (1 - ratio)) tokens",
))


# ---- class_tokens ----------------------------------------------------------------------------

class ClassTokens(nn.Module):
    """K learned class tokens, one copy per sample, optionally with Gaussian noise.

    ``out[b] = tokens + noise * eps_b``, ``eps_b ~ N(0, I)`` drawn per sample and only in
    training mode (``noise`` is a plain attribute: a schedule can switch it off after
    warm-up). The input only gives the batch size, device and dtype.

    Args:
        num_tokens (`int`):
            Number of class tokens ``K`` (one per slot).
        dim (`int`):
            Token size ``D``.
        init_std (`float`, *optional*, defaults to 0.002):
            Standard deviation of the normal init (small, so that the tokens start nearly
            identical and break symmetry through the data).
        noise (`float`, *optional*, defaults to 0.0):
            Scale of the training-time noise. Paper: 0.1 during warm-up on ClevrTex, else 0.

    Shapes:
        x: b ...               any tensor whose first axis is the batch
        -> out: b k d

    Raises:
        ShapeError (shape rule): ``x`` has no axes.

    Source:
        Vikström & Ilin 2022, Sec. 3.1 (K class tokens prepended after masking, one per
        object) and App. (init N(0, 0.002^2); ClevrTex: noise 0.1 N(0, 1) during warm-up).
    """

    def __init__(self, num_tokens: int, dim: int, init_std: float = 0.002, noise: float = 0.0):
        super().__init__()
        self.tokens = nn.Parameter(torch.empty(1, num_tokens, dim))
        nn.init.normal_(self.tokens, std=init_std)
        self.noise = float(noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tokens.expand(x.shape[0], -1, -1)                 # (B, K, D)
        if self.training and self.noise > 0:
            out = out + self.noise * torch.randn_like(out)           # warm-up noise
        return out

    def extra_repr(self) -> str:
        return f"noise={self.noise}"


def _cls_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x = in_shapes["x"]
    if len(x) < 1:
        raise ShapeError("input 'x': expected at least 1 axis (the batch), got a scalar")
    return {"out": (Dim.of(x[0]), Dim.of(int(params["num_tokens"])), Dim.of(int(params["dim"])))}


def _cls_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    noise = float(params["noise"])
    if noise < 0:
        raise ShapeError(f"'noise': expected a value >= 0, got {noise}")
    return {"num_tokens": int(params["num_tokens"]), "dim": int(params["dim"]),
            "init_std": float(params["init_std"]), "noise": noise}


register(OpDef(
    name="class_tokens",
    module=ClassTokens,
    inputs=(Port("x", "B ...", doc="any tensor with the batch first (gives B)"),),
    outputs=("out",),
    params={
        "num_tokens": size("number of class tokens K (one per slot)"),
        "dim": size("token size D"),
        "init_std": number("standard deviation of the normal init; paper 0.002",
                           exclusiveMinimum=0),
        "noise": schedulable("scale of the N(0, 1) noise added in training mode; paper 0.1 "
                             "during warm-up on ClevrTex, else 0.", minimum=0),
    },
    infer=_cls_infer,
    init_args=_cls_init,
    required=("num_tokens", "dim"),
    summary="K learned class tokens per sample (optional training-time noise)",
))
