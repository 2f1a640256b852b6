"""Hypothesis strategies for the symmetry checks, named by the shape they draw.

Tensors are drawn as a *seed* (an int hypothesis shrinks toward 0) turned into values by a
seeded ``torch.Generator``: drawing every element through hypothesis would be slow, and a
seed shrinks to a short, reproducible counterexample. Sizes are drawn as ints and shrink
toward the smallest allowed.

``inputs_bnd(b, n, d)``    b n d    input tokens (slot attention inputs)
``slots_bkd(b, k, d)``     b k d    slots / initial slots
``rgb_bkchw(...)``         b k c h w per-slot images
``alpha_bk1hw(...)``       b k 1 h w per-slot alpha logits
``heatmaps_bkhw(...)``     b k h w  attention logit maps
``features_bchw(...)``     b c h w  feature maps
``images_bchw(...)``       b c h w  images

and the transforms: ``permutations_of(n, axis)`` -> :class:`Permutation`,
``shifts(sizes, axes, max_shift)`` -> :class:`Shift`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from hypothesis import strategies as st

from ocdsl.invariance.transforms import Permutation, Shift

__all__ = [
    "seeds", "batch_sizes", "tensor_from_seed", "tensors", "inputs_bnd", "slots_bkd",
    "rgb_bkchw", "alpha_bk1hw", "heatmaps_bkhw", "features_bchw", "images_bchw",
    "permutations_of", "shifts",
]

SEED_MAX = 2 ** 16 - 1


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, SEED_MAX)


def batch_sizes(max_batch: int = 2) -> st.SearchStrategy[int]:
    return st.integers(1, max(1, max_batch))


def tensor_from_seed(shape: Sequence[int], seed: int, dtype: torch.dtype = torch.float32,
                     scale: float = 1.0) -> torch.Tensor:
    """``scale * N(0, 1)`` of ``shape``, reproducible from ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    return (torch.randn(tuple(int(s) for s in shape), generator=g, dtype=torch.float64)
            * scale).to(dtype)


def tensors(shape: Sequence[int], dtype: torch.dtype = torch.float32,
            scale: float = 1.0) -> st.SearchStrategy[torch.Tensor]:
    return seeds().map(lambda s: tensor_from_seed(shape, s, dtype, scale))


def inputs_bnd(b: int, n: int, d: int, dtype=torch.float32):
    return tensors((b, n, d), dtype)


def slots_bkd(b: int, k: int, d: int, dtype=torch.float32):
    return tensors((b, k, d), dtype)


def rgb_bkchw(b: int, k: int, c: int, h: int, w: int, dtype=torch.float32):
    return tensors((b, k, c, h, w), dtype)


def alpha_bk1hw(b: int, k: int, h: int, w: int, dtype=torch.float32):
    return tensors((b, k, 1, h, w), dtype, scale=2.0)


def heatmaps_bkhw(b: int, k: int, h: int, w: int, dtype=torch.float32):
    """Logit maps with peaks: scale 3, so the softmax over positions is far from uniform."""
    return tensors((b, k, h, w), dtype, scale=3.0)


def features_bchw(b: int, c: int, h: int, w: int, dtype=torch.float32):
    return tensors((b, c, h, w), dtype)


def images_bchw(b: int, c: int, h: int, w: int, dtype=torch.float32):
    return tensors((b, c, h, w), dtype)


def permutations_of(n: int, axis: str = "") -> st.SearchStrategy[Permutation]:
    """Permutations of ``range(n)``; they shrink toward the identity (a failing one shrinks
    to few moved positions, often one swap)."""
    return st.permutations(list(range(n))).map(lambda p: Permutation(tuple(p), axis))


@st.composite
def shifts(draw, sizes: Sequence[int], axes: Sequence[str] = (),
           max_shift: int | None = None) -> Shift:
    """A shift of each axis (of ``sizes[i]`` pixels) by at most ``max_shift`` pixels, with
    a blanked border at least as wide as the shift, so no content leaves the frame; at
    least one pixel of content remains (border <= (n - 1) // 2)."""
    offsets, margins = [], []
    for n in sizes:
        room = max(0, (int(n) - 1) // 2)
        limit = room if max_shift is None else min(room, int(max_shift))
        u = draw(st.integers(-limit, limit))
        offsets.append(u)
        margins.append(draw(st.integers(abs(u), room)))
    return Shift(tuple(offsets), tuple(margins), tuple(axes), tuple(int(n) for n in sizes))
