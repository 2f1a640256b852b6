"""Reconstruction error per image.

Two conventions, both on images in [0, 1]:

- ``reduction="sum"`` (default, the ClevrTex evaluator [CTX] ``clevrtex_eval.py`` L218-454,
  docs/papers.md, Evaluation conventions): per image, the **sum** over C, H, W of the squared
  error, ``F.mse_loss(recon, image, reduction='none').sum((1, 2, 3))``. This is the "MSE"
  of the ClevrTex tables (its scale grows with the resolution: 3 x 128 x 128 terms).
- ``reduction="mean"``: per image, the mean over C, H, W (per-pixel-per-channel MSE), the
  number usually logged as a training loss; equals the sum divided by C*H*W.

Inputs are not clamped or range-checked: a decoder whose output leaves [0, 1] is scored as
it is (as the evaluator does). Images normalised to another range (e.g. [-1, 1]) must be
mapped back to [0, 1] first, or the numbers are not comparable with the papers'.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["mse"]


def mse(recon: Tensor, image: Tensor, *, reduction: Literal["sum", "mean"] = "sum") -> Tensor:
    """Squared reconstruction error per image.

    Args:
        recon: reconstruction ``b c h w`` (any trailing shape ``b ...``), floating, in [0, 1].
        image: target with the same shape, in [0, 1].
        reduction: ``"sum"`` over all non-batch axes (ClevrTex) or ``"mean"`` over them.

    Returns:
        float64 ``b``, >= 0.

    Raises:
        ValueError: shapes differ, fewer than 2 axes, or unknown ``reduction``.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction: expected 'sum' or 'mean', got {reduction!r}")
    if tuple(recon.shape) != tuple(image.shape):
        raise ValueError(f"recon: expected the image's shape (b c h w) = {tuple(image.shape)}, "
                         f"got {tuple(recon.shape)}")
    if recon.dim() < 2:
        raise ValueError(f"recon: expected (b c h w), got shape {tuple(recon.shape)}")
    err = (recon.detach().to(torch.float64) - image.detach().to(torch.float64)) ** 2   # (b, c, h, w)
    dims = tuple(range(1, err.dim()))
    return err.sum(dim=dims) if reduction == "sum" else err.mean(dim=dims)
