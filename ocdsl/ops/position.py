"""Positional ops: ``soft_position_embedding`` (Slot Attention's learned grid embedding) and
``learned_position_embedding`` (a ViT's learned per-token embedding)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ocdsl.ops._common import expect_rank
from ocdsl.ops.registry import OpDef, Port, number, register
from ocdsl.shapes import Shape

__all__ = ["SoftPositionEmbedding", "LearnedPositionEmbedding", "build_grid"]


def build_grid(height: int, width: int, *, device=None, dtype=None) -> torch.Tensor:
    """The 4-channel position grid ``[y, x, 1 - y, 1 - x]`` with y, x on ``linspace(0, 1)``.

    Shapes:
        out: h w 4     out[i, j] = (i / (h - 1), j / (w - 1), 1 - i / (h - 1), 1 - j / (w - 1))
    """
    ys = torch.linspace(0.0, 1.0, height, device=device, dtype=dtype)
    xs = torch.linspace(0.0, 1.0, width, device=device, dtype=dtype)
    y, x = torch.meshgrid(ys, xs, indexing="ij")                # (H, W) each; y runs along H
    return torch.stack([y, x, 1.0 - y, 1.0 - x], dim=-1)        # (H, W, 4)


class SoftPositionEmbedding(nn.Module):
    """Soft position embedding: a linear map of the 4-channel coordinate grid, added to the
    features.

    ``out = x + rearrange(Linear(4 -> C)(grid), "h w c -> 1 c h w")`` with ``grid[i, j] =
    [y, x, 1 - y, 1 - x]``, ``y = i / (H - 1)``, ``x = j / (W - 1)`` (linspace(0, 1)). The
    grid is a non-persistent buffer (not in the state dict); an input of another resolution
    gets a grid of its own size, so a trained model also runs at other resolutions.

    Args:
        channels (`int`):
            Feature channels ``C`` (output size of the Linear(4 -> C), which has a bias).
        resolution (`list[int]`):
            ``[H, W]`` of the feature map the grid is built for.

    Shapes:
        x:   b c h w
        out: b c h w

    Raises:
        ShapeError (shape rule): the input is not 4-D.

    Source:
        Locatello et al. 2020, App. E.1 ("positional embedding": a linear projection of the
        4-dim [y, x, 1-y, 1-x] grid, added to the CNN features and to the broadcast slots
        in the decoder). Linear uses PyTorch's default init (Keras: glorot-uniform, zero bias).
    """

    def __init__(self, channels: int, resolution: Sequence[int]):
        super().__init__()
        height, width = int(resolution[0]), int(resolution[1])
        self.proj = nn.Linear(4, channels)
        self.register_buffer("grid", build_grid(height, width), persistent=False)  # (H, W, 4)

    def embedding(self, height: int, width: int, dtype: torch.dtype | None = None,
                  device: torch.device | None = None) -> torch.Tensor:
        """The embedding alone, ``1 c h w`` (what :meth:`forward` adds): ``Linear(grid)``."""
        grid = self.grid
        if grid.shape[0] != height or grid.shape[1] != width:
            grid = build_grid(height, width, device=device or grid.device)  # (H, W, 4)
        emb = self.proj(grid.to(dtype or self.proj.weight.dtype))  # (H, W, C)
        return emb.permute(2, 0, 1).unsqueeze(0)                  # (1, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding(x.shape[-2], x.shape[-1], x.dtype, x.device)  # (B, C, H, W)


def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x = in_shapes["x"]
    expect_rank("x", x, "B C H W")
    return {"out": tuple(x)}


def _init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    x = in_shapes["x"]
    expect_rank("x", x, "B C H W")
    return {"channels": x[1].value, "resolution": [x[2].value, x[3].value]}


register(OpDef(
    name="soft_position_embedding",
    module=SoftPositionEmbedding,
    inputs=(Port("x", "B C H W", doc="feature map, channels first"),),
    outputs=("out",),
    params={},
    infer=_infer,
    init_args=_init_args,
    summary="adds Linear(4 -> C) of the [y, x, 1-y, 1-x] grid to a B C H W feature map",
))


class LearnedPositionEmbedding(nn.Module):
    """A learned position embedding of a token sequence, added to the tokens.

    ``out = x + pos`` with ``pos`` an ``N x D`` parameter, initialised from a normal of
    standard deviation ``std`` truncated to [-2, 2] (timm's ``trunc_normal_(std=0.02)``, the
    ViT convention).

    Args:
        tokens (`int`): N, the number of tokens (e.g. the patches of a grid).
        dim (`int`): D, the token size.
        std (`float`, *optional*, defaults to 0.02): standard deviation of the init.

    Shapes:
        x:   b n d
        out: b n d

    Raises:
        ShapeError (shape rule): the input is not 3-D.

    Source:
        Dosovitskiy et al. 2021 (ViT, Eq. 1: learned 1-D position embeddings); contrastive slot
        attention (Baldassarre & Azizpour 2022, Sec. 4: trunc-normal 0.02; the authors' code
        adds it before every encoder layer, ocdsl adds it once before the encoder).
    """

    def __init__(self, tokens: int, dim: int, std: float = 0.02):
        super().__init__()
        self.pos = nn.Parameter(torch.empty(int(tokens), int(dim)))
        nn.init.trunc_normal_(self.pos, std=float(std), a=-2.0, b=2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos.to(x.dtype)                          # (b, n, d)


def _infer_learned(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x = in_shapes["x"]
    expect_rank("x", x, "B N D")
    return {"out": tuple(x)}


def _init_learned(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    x = in_shapes["x"]
    expect_rank("x", x, "B N D")
    return {"tokens": x[1].value, "dim": x[2].value, "std": float(params["std"])}


register(OpDef(
    name="learned_position_embedding",
    module=LearnedPositionEmbedding,
    inputs=(Port("x", "B N D", doc="tokens"),),
    outputs=("out",),
    params={"std": number("standard deviation of the truncated-normal init", exclusiveMinimum=0,
                          default=0.02)},
    infer=_infer_learned,
    init_args=_init_learned,
    summary="adds a learned N x D position embedding (trunc-normal init) to B N D tokens",
))
