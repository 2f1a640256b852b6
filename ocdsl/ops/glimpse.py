"""Glimpse rendering ops of AST-Seg (Sauvalle & de La Fortelle 2023): ``latent_split``,
``glimpse_generator``, ``spatial_transformer``.

The renderer turns each refined object latent ``[x, y, s, alpha, z_what]`` into an image
layer: ``latent_split`` reads the latent, ``glimpse_generator`` decodes ``z_what`` to a small
RGB + mask glimpse, ``spatial_transformer`` places that glimpse in the image at ``(x, y)``
with scale ``s``; ``occlusion_composite`` (ocdsl/ops/composite.py) mixes the layers with the
background.

Coordinates (``position``, ``boxes``) are normalized image coordinates in PyTorch's
``align_corners=False`` convention: -1 / +1 are the outer *edges* of the image, one pixel
is ``2 / W`` along x and ``2 / H`` along y, the centre of pixel column j is
``(2 j + 1) / W - 1``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import einops
import torch
import torch.nn.functional as F
from torch import nn

from ocdsl.ops._common import expect_rank, size_list
from ocdsl.ops.registry import OpDef, Port, Symmetry, enum, number, register, size, sizes
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["LatentSplit", "GlimpseGenerator", "SpatialTransformer", "SCALINGS",
           "default_glimpse_channels", "group_count", "affine_theta"]

#: how latent_split maps x, y to [-1, 1].
POSITIONS = ("clamp", "tanh")

#: scaling -> number of scale latents S.
SCALINGS = {"isotropic": 1, "anisotropic": 2}
DEFAULT_SCALE_RANGE = (1.3, 24.0)
GLIMPSE_CHANNELS = 4          # RGB + mask
CHANNELS_PER_GROUP = 16       # GroupNorm groups = max(1, c // 16), as in the AST code


# ---- latent_split ---------------------------------------------------------------------------

class LatentSplit(nn.Module):
    """Split each object latent into position, scale, alpha and z_what, and give the
    glimpse footprint.

    The latent of one object is laid out ``[x, y, s (S values), alpha, z_what (Z values)]``
    (paper order; ``d = 3 + S + Z``, S = 1 isotropic, 2 anisotropic). One line per output::

        position = clamp([x, y], -1, 1)                       b k 2   (tanh([x, y]) with position = "tanh")
        scale    = lo + (hi - lo) * sigmoid(s + scale_offset)  b k 2   isotropic: (s, s)
        log_alpha = alpha latent                              b k
        alpha    = exp(log_alpha)                             b k     (Eq. 17's alpha_k)
        what     = z_what                                     b k z
        boxes    = (x - 1/s_x, y - 1/s_y, x + 1/s_x, y + 1/s_y)   b k 4

    ``position`` is a hard clamp by default, as in the authors' code: a latent outside
    [-1, 1] gets no gradient through ``position`` (``boxes`` use the clamped value too). A
    slot pushed against the frame (a way to hide a glimpse that hurts the reconstruction)
    then stays there: in a short CPU run on Tetrominoes (docs/results.md) every slot ended
    at the corner (1, -1). ``position = "tanh"`` (ocdsl's option, not the paper's) squashes
    instead, so the gradient never vanishes exactly; in the same run it did not keep the
    slots off the frame either (they ended at x = 0.9995). ``alpha`` is
    exactly ``exp(log_alpha)`` and overflows to inf for a latent above ~88.7 in float32;
    ``occlusion_composite`` therefore takes ``log_alpha`` and works in log space
    (``alpha`` is there to inspect, and for specs that want the paper's quantity).

    Args:
        scaling (`str`, *optional*, defaults to `"isotropic"`):
            ``"isotropic"``: one scale latent (S = 1) used on both axes;
            ``"anisotropic"``: two (S = 2), ``s_x`` then ``s_y``.
        scale_range (`list[float]`, *optional*, defaults to ``[1.3, 24.0]``):
            ``[lo, hi]`` of the sigmoid-squashed scale, ``0 < lo < hi``.
        what (`int`):
            ``Z``, the size of ``z_what`` (checked against ``d`` by the shape rule).
        position (`str`, *optional*, defaults to `"clamp"`):
            ``"clamp"`` (the paper's code) or ``"tanh"`` (a gradient everywhere).
        scale_offset (`float`, *optional*, defaults to 0):
            Added to the scale latent before the sigmoid (ocdsl's option; 0 = the paper).
            A random refinement outputs latents near 0, so glimpses start at
            ``s = lo + (hi - lo) / 2`` (12.65: 8 % of the image width), and a glimpse that
            overlaps no object gets no gradient toward one. ``-4`` starts them at
            ``s = 1.7`` (most of the image): see docs/results.md for what it changed.

    Shapes:
        input:       b k d          d = 3 + S + Z, layout [x, y, s(S), alpha, z_what(Z)]
        -> position:  b k 2          (x, y) in [-1, 1]
        -> scale:     b k 2          (s_x, s_y) in (lo, hi); isotropic: s_x = s_y
        -> alpha:     b k            exp(log_alpha) > 0
        -> log_alpha: b k            the alpha latent (a log-activation)
        -> what:      b k z          z_what
        -> boxes:     b k 4          (x0, y0, x1, y1) of the glimpse footprint

    Units:
        ``position`` and ``boxes``: normalized image coordinates, -1 / +1 the image edges
        (``align_corners=False``, the convention of ``spatial_transformer``); a glimpse
        covers ``2 / s_x`` of that range along x, i.e. ``W / s_x`` pixels (1/s of the image
        width). ``boxes`` are not clipped to the image. ``scale`` is a zoom factor (the
        image is ``s`` glimpse widths wide). Note: ``soft_argmax`` gives coordinates with
        -1 / +1 at the first / last pixel *centres* (``align_corners=True``); AST-Seg feeds
        them through the refinement transformer unchanged, so the learned refinement
        absorbs the half-pixel difference, as in the authors' code.

    Symmetries:
        Permutation equivariance over k (each latent is split independently).

    Raises:
        ShapeError (shape rule): ``input`` not 3-D, its ``d`` not concrete or not
        ``3 + S + Z`` (the message gives the layout), ``scale_range`` not ``[lo, hi]`` with
        ``0 < lo < hi``.

    Source:
        Sauvalle & de La Fortelle, WACV 2023, Sec. 3 (latent [x, y, s, alpha, z_what],
        alpha = exp, scaling factor squashed to [1.3, 24]); [AST] MF_models_renderer.py
        L118-124 (clamp of x, y to [-1, 1]; s = min + (max - min) * sigmoid). ⚠ The code
        reads the activation logit at the fixed index 4, right only for anisotropic
        scaling (isotropic: index 4 is the first z_what value); here alpha is read at
        index ``2 + S`` (paper order) for both scalings.
    """

    def __init__(self, what: int, scaling: str = "isotropic",
                 scale_range: Sequence[float] = DEFAULT_SCALE_RANGE, position: str = "clamp",
                 scale_offset: float = 0.0):
        super().__init__()
        if scaling not in SCALINGS:
            raise ValueError(f"scaling: expected one of {', '.join(SCALINGS)}, got {scaling!r}")
        if position not in POSITIONS:
            raise ValueError(f"position: expected one of {', '.join(POSITIONS)}, got {position!r}")
        self.position = position
        self.scale_offset = float(scale_offset)
        lo, hi = _scale_range(scale_range)
        self.scaling, self.scale_dims, self.what = scaling, SCALINGS[scaling], int(what)
        self.scale_min, self.scale_max = lo, hi

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, ...]:
        xy, s, a, z = input.split([2, self.scale_dims, 1, self.what], dim=-1)
        position = xy.clamp(-1.0, 1.0) if self.position == "clamp" else xy.tanh()  # (B, K, 2)
        scale = self.scale_min + (self.scale_max - self.scale_min) * (s + self.scale_offset).sigmoid()  # (B, K, S)
        scale = scale.expand(*scale.shape[:-1], 2)                           # (B, K, 2)
        log_alpha = a.squeeze(-1)                                             # (B, K)
        half = scale.reciprocal()                                            # (B, K, 2)
        boxes = torch.cat([position - half, position + half], dim=-1)         # (B, K, 4)
        return position, scale, log_alpha.exp(), log_alpha, z, boxes


def _scale_range(value: Any) -> tuple[float, float]:
    v = list(value) if isinstance(value, (list, tuple)) else value
    if (not isinstance(v, list) or len(v) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            or not 0 < v[0] < v[1]):
        raise ShapeError(f"'scale_range': expected [lo, hi] with 0 < lo < hi, got {value!r}")
    return float(v[0]), float(v[1])


def _split_layout(in_shapes: dict[str, Shape], params: dict[str, Any]) -> tuple[Shape, int, int]:
    x = tuple(in_shapes["input"])
    expect_rank("input", x, "B K D")
    scaling = params["scaling"]
    if scaling not in SCALINGS:
        raise ShapeError(f"'scaling': expected one of {', '.join(SCALINGS)}, got {scaling!r}")
    s, z = SCALINGS[scaling], size_list([params["what"]], "what")[0]
    _scale_range(params["scale_range"])
    expected = 3 + s + z
    if not x[2].is_concrete or x[2].value != expected:
        raise ShapeError(
            f"input 'input': expected d = 3 + S + Z = 3 + {s} + {z} = {expected} "
            f"(layout [x, y, s({s}), alpha, z_what({z})], scaling = {scaling!r}), "
            f"got d = {x[2]} in {fmt_shape(x)}")
    return x, s, z


def _split_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    (b, k, _), _, z = _split_layout(in_shapes, params)
    return {"position": (b, k, Dim.of(2)), "scale": (b, k, Dim.of(2)), "alpha": (b, k),
            "log_alpha": (b, k), "what": (b, k, Dim.of(z)), "boxes": (b, k, Dim.of(4))}


def _split_init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _, _, z = _split_layout(in_shapes, params)
    lo, hi = _scale_range(params["scale_range"])
    return {"what": z, "scaling": params["scaling"], "scale_range": [lo, hi],
            "position": params["position"], "scale_offset": float(params["scale_offset"])}


register(OpDef(
    name="latent_split",
    module=LatentSplit,
    inputs=(Port("input", "B K D", doc="object latents [x, y, s(S), alpha, z_what(Z)]"),),
    outputs=("position", "scale", "alpha", "log_alpha", "what", "boxes"),
    params={
        "scaling": enum("isotropic: one scale latent for both axes (S = 1); anisotropic: "
                        "s_x and s_y (S = 2)", SCALINGS),
        "scale_range": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0},
                        "minItems": 2, "maxItems": 2,
                        "description": "[lo, hi]: scale = lo + (hi - lo) * sigmoid(latent)"},
        "what": size("Z, the size of z_what (d must be 3 + S + Z)"),
        "position": enum("how x, y reach [-1, 1]: 'clamp' (the authors' code; no gradient "
                         "outside) or 'tanh' (ocdsl's option: a gradient everywhere)", POSITIONS),
        "scale_offset": number("added to the scale latent before the sigmoid (ocdsl's option, 0 = "
                               "the paper): negative values start glimpses larger"),
    },
    infer=_split_infer,
    init_args=_split_init_args,
    required=("what",),
    symmetries=(
        Symmetry("permutation_equivariance", {"input": "K"},
                 {"position": "K", "scale": "K", "alpha": "K", "log_alpha": "K", "what": "K",
                  "boxes": "K"},
                 doc="each latent is split independently"),
    ),
    summary="AST-Seg latent split: [x, y, s, alpha, z_what] -> position, scale, alpha, "
            "z_what and the glimpse box",
))


# ---- glimpse_generator ----------------------------------------------------------------------

def default_glimpse_channels(glimpse: int) -> list[int]:
    """The AST channel list for a ``glimpse`` x ``glimpse`` output: ``2 * glimpse`` halved
    at every layer down to 8 (32 -> [64, 32, 16, 8], 64 -> [128, 64, 32, 16, 8])."""
    n = _layers_for(glimpse)
    return [2 * glimpse >> i for i in range(n)]


def group_count(channels: int) -> int:
    """GroupNorm groups of a layer: ``max(1, channels // 16)`` (the AST code's 8, 4, 2, 1, 1
    for 128, 64, 32, 16, 8)."""
    return max(1, channels // CHANNELS_PER_GROUP)


def _layers_for(glimpse: int) -> int:
    if glimpse < 4 or glimpse & (glimpse - 1):
        raise ShapeError(f"'size': expected a power of two >= 4 (the generator doubles a 2x2 "
                         f"map), got {glimpse}")
    return int(math.log2(glimpse)) - 1


class GlimpseGenerator(nn.Module):
    """Decode each ``z_what`` to a ``G x G`` glimpse: RGB and a mask, all in (0, 1).

    Each slot is one sample of a ``(b k)`` batch, seen as a ``Z x 1 x 1`` map::

        ConvTranspose2d(Z -> c_0, kernel 2, stride 1, no bias)           1x1 -> 2x2
        GroupNorm(groups(c_0), c_0), CELU
        for i = 1 .. n-1:
            ConvTranspose2d(c_{i-1} -> c_i, kernel 4, stride 2, padding 1, no bias)  x2
            GroupNorm(groups(c_i), c_i), CELU
        ConvTranspose2d(c_{n-1} -> 4, kernel 4, stride 2, padding 1, with bias)       x2
        Sigmoid

    with ``groups(c) = max(1, c // 16)``; ``G = 2 ** (n + 1)`` for ``n = len(channels)``.

    Args:
        what (`int`):
            ``Z``, the size of ``z_what`` (input channels).
        channels (`list[int]`):
            Output channels ``c_0 .. c_{n-1}`` of the hidden layers; each must be divisible
            by its group count. The op's default comes from ``size``: 32 ->
            ``[64, 32, 16, 8]`` (64-px images), 64 -> ``[128, 64, 32, 16, 8]`` (128-px).

    Shapes:
        what:        b k z
        -> glimpses: b k 4 g g       channels 0-2 RGB, channel 3 the mask; g = 2 ** (n + 1)

    Units:
        Values in (0, 1) (sigmoid). The glimpse spans the box [-1, 1]^2 that
        ``spatial_transformer`` maps onto the footprint ``boxes`` of ``latent_split``.

    Symmetries:
        Permutation equivariance over k: slots are decoded independently (GroupNorm
        normalises each sample on its own; no batch statistics).

    Raises:
        ShapeError (shape rule): ``what`` not 3-D, ``size`` not a power of two >= 4,
        ``channels`` not ``log2(size) - 1`` long, or a channel count not divisible by its
        GroupNorm group count (expected vs got).

    Source:
        Sauvalle & de La Fortelle, WACV 2023, Sec. 3 ("glimpse generator"); [AST]
        MF_models_renderer.py L11-82 (authoritative over the paper's Table 7): bias-free
        ConvTranspose2d + GroupNorm + CELU blocks, ConvT(k2, s1, p0) first, then
        ConvT(k4, s2, p1); the last ConvT has a bias, then Sigmoid; 4 output channels;
        GroupNorm groups (4, 2, 1, 1) from 64 channels, (8, 4, 2, 1, 1) from 128.
        PyTorch default init.
    """

    def __init__(self, what: int, channels: Sequence[int]):
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("glimpse_generator: expected at least one hidden layer")
        layers: list[nn.Module] = []
        c_in = int(what)
        for i, c in enumerate(channels):
            if i == 0:
                layers.append(nn.ConvTranspose2d(c_in, c, 2, 1, 0, bias=False))
            else:
                layers.append(nn.ConvTranspose2d(c_in, c, 4, 2, 1, bias=False))
            layers += [nn.GroupNorm(group_count(c), c), nn.CELU()]
            c_in = c
        layers += [nn.ConvTranspose2d(c_in, GLIMPSE_CHANNELS, 4, 2, 1, bias=True), nn.Sigmoid()]
        self.layers = nn.Sequential(*layers)
        self.size = 2 ** (len(channels) + 1)

    def forward(self, what: torch.Tensor) -> torch.Tensor:
        b = what.shape[0]
        x = einops.rearrange(what, "b k z -> (b k) z 1 1")                    # ((B K), Z, 1, 1)
        x = self.layers(x)                                                    # ((B K), 4, G, G)
        return einops.rearrange(x, "(b k) c h w -> b k c h w", b=b)           # (B, K, 4, G, G)


def _generator_layout(in_shapes: dict[str, Shape], params: dict[str, Any]
                      ) -> tuple[Shape, int, list[int]]:
    w = tuple(in_shapes["what"])
    expect_rank("what", w, "B K Z")
    glimpse = size_list([params["size"]], "size")[0]
    n = _layers_for(glimpse)
    if params.get("channels") is None:
        channels = default_glimpse_channels(glimpse)
    else:
        channels = size_list(params["channels"], "channels")
        if len(channels) != n:
            raise ShapeError(f"'channels': expected log2(size) - 1 = {n} values for a "
                             f"{glimpse}x{glimpse} glimpse (a 2x2 map doubled {n} times), "
                             f"got {len(channels)}: {channels}")
    for c in channels:
        if c % group_count(c):
            raise ShapeError(f"'channels': expected each count divisible by its GroupNorm "
                             f"group count max(1, c // {CHANNELS_PER_GROUP}), got {c} "
                             f"({group_count(c)} groups)")
    return w, glimpse, channels


def _generator_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    (b, k, _), g, _ = _generator_layout(in_shapes, params)
    return {"glimpses": (b, k, Dim.of(GLIMPSE_CHANNELS), Dim.of(g), Dim.of(g))}


def _generator_init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    (_, _, z), _, channels = _generator_layout(in_shapes, params)
    return {"what": z.value, "channels": channels}


register(OpDef(
    name="glimpse_generator",
    module=GlimpseGenerator,
    inputs=(Port("what", "B K Z", doc="z_what of each object, decoded independently"),),
    outputs=("glimpses",),
    params={
        "size": size("glimpse side G, a power of two >= 4 (AST: 32 for 64-px images, 64 for "
                     "128-px)", default=32),
        "channels": sizes("hidden ConvTranspose channels, log2(size) - 1 values (default "
                          "2*size halved per layer: 32 -> [64, 32, 16, 8], 64 -> "
                          "[128, 64, 32, 16, 8])"),
    },
    infer=_generator_infer,
    init_args=_generator_init_args,
    symmetries=(
        Symmetry("permutation_equivariance", {"what": "K"}, {"glimpses": "K"},
                 doc="each slot is decoded independently"),
    ),
    summary="AST-Seg glimpse generator: z_what -> G x G RGB + mask glimpse (ConvT + "
            "GroupNorm + CELU, sigmoid)",
))


# ---- spatial_transformer --------------------------------------------------------------------

def affine_theta(position: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``theta = [[s_x, 0, -x s_x], [0, s_y, -y s_y]]`` per object: maps an output (image)
    coordinate ``u`` to the glimpse coordinate ``s (u - x)``.

    Shapes:
        position: n 2,  scale: n 2  ->  n 2 3
    """
    x, y = position.unbind(-1)
    sx, sy = scale.unbind(-1)
    zero = torch.zeros_like(sx)
    return torch.stack([torch.stack([sx, zero, -x * sx], dim=-1),
                        torch.stack([zero, sy, -y * sy], dim=-1)], dim=-2)


class SpatialTransformer(nn.Module):
    """Place each glimpse in the image: the glimpse's [-1, 1]^2 lands on the box
    ``[x - 1/s_x, x + 1/s_x] x [y - 1/s_y, y + 1/s_y]`` of the output, zeros elsewhere.

    Per object (``(b k)`` batch)::

        theta = [[s_x, 0, -x s_x], [0, s_y, -y s_y]]                         (b k) 2 3
        grid  = affine_grid(theta, (b k, c, H, W), align_corners=False)     (b k) H W 2
        out   = grid_sample(glimpse, grid, bilinear, zeros padding, align_corners=False)

    so output pixel ``u`` (normalized) reads the glimpse at ``s (u - x)``.

    Args:
        resolution (`list[int]`):
            Output ``[H, W]``.

    Shapes:
        glimpses:   b k c g_h g_w    any channel count (AST: RGB + mask)
        position:   b k 2            (x, y), normalized image coordinates
        scale:      b k 2            (s_x, s_y) > 0
        -> layers:  b k c H W        each glimpse placed in its own layer; 0 outside its box

    Units:
        Normalized coordinates with -1 / +1 the image edges (``align_corners=False``) for
        both the glimpse and the image. The glimpse covers ``2 / s_x`` of the image's x range
        (``W / s_x`` pixels); with ``x = y = 0`` and ``s = 1`` the output is the glimpse
        resampled to H x W (bilinear, zero padding: the outermost half pixel fades to 0).

    Symmetries:
        Permutation equivariance over k (each object is placed independently).

    Raises:
        ShapeError (shape rule): ``glimpses`` not 5-D, ``position`` or ``scale`` not
        ``(b, k, 2)`` with the glimpses' b and k, ``resolution`` not ``[H, W]``
        (expected vs got).

    Source:
        Jaderberg et al. 2015 (spatial transformer networks); Sauvalle & de La Fortelle,
        WACV 2023, Sec. 3; [AST] MF_models_renderer.py L129-137 (theta as above,
        ``F.affine_grid`` + ``F.grid_sample`` with PyTorch's defaults: bilinear, zeros
        padding, align_corners=False).
    """

    def __init__(self, resolution: Sequence[int]):
        super().__init__()
        self.resolution = (int(resolution[0]), int(resolution[1]))

    def forward(self, glimpses: torch.Tensor, position: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
        b, k, c = glimpses.shape[:3]
        h, w = self.resolution
        theta = affine_theta(position.reshape(b * k, 2), scale.reshape(b * k, 2))  # ((B K), 2, 3)
        grid = F.affine_grid(theta, [b * k, c, h, w], align_corners=False)       # ((B K), H, W, 2)
        out = F.grid_sample(glimpses.flatten(0, 1), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=False)           # ((B K), C, H, W)
        return out.view(b, k, c, h, w)                                           # (B, K, C, H, W)


def _transformer_check(in_shapes: dict[str, Shape], params: dict[str, Any]
                       ) -> tuple[Shape, list[int]]:
    g = tuple(in_shapes["glimpses"])
    expect_rank("glimpses", g, "B K C Gh Gw")
    b, k = g[:2]
    for port in ("position", "scale"):
        s = tuple(in_shapes[port])
        expected = (b, k, Dim.of(2))
        if s != expected:
            raise ShapeError(f"input '{port}': expected (b, k, 2) = {fmt_shape(expected)} "
                             f"(b, k from glimpses {fmt_shape(g)}), got {fmt_shape(s)}")
    resolution = size_list(params["resolution"], "resolution")
    if len(resolution) != 2:
        raise ShapeError(f"'resolution': expected [H, W], got {resolution}")
    return g, resolution


def _transformer_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    (b, k, c, _, _), (h, w) = _transformer_check(in_shapes, params)
    return {"layers": (b, k, c, Dim.of(h), Dim.of(w))}


def _transformer_init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _, resolution = _transformer_check(in_shapes, params)
    return {"resolution": resolution}


register(OpDef(
    name="spatial_transformer",
    module=SpatialTransformer,
    inputs=(Port("glimpses", "B K C Gh Gw", doc="per-object glimpses (any channel count)"),
            Port("position", "B K 2", doc="(x, y) centre of each glimpse, normalized image "
                                          "coordinates (align_corners=False)"),
            Port("scale", "B K 2", doc="(s_x, s_y): the glimpse covers 2/s of the image range")),
    outputs=("layers",),
    params={
        "resolution": sizes("output [H, W]", minItems=2, maxItems=2),
    },
    infer=_transformer_infer,
    init_args=_transformer_init_args,
    required=("resolution",),
    symmetries=(
        Symmetry("permutation_equivariance", {"glimpses": "K", "position": "K", "scale": "K"},
                 {"layers": "K"}, doc="each object is placed independently"),
    ),
    summary="spatial transformer: place each glimpse at (x, y) with scale s "
            "(affine_grid + grid_sample)",
))
