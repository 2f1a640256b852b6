"""Input coercion shared by the segmentation metrics.

Two forms of prediction are accepted everywhere:

- integer (or bool) labels with the same shape as the ground truth, ``b h w`` or ``b n``;
- floating soft masks with one more axis, ``b k h w`` or ``b k n``; the argmax over ``k``
  is taken (as the ClevrTex evaluator and DeepMind's ``segmentation_metrics`` do), ties
  going to the lowest slot index (``torch.argmax``).

Ground truth is always an integer label map, ``b h w`` or ``b n``, with 0 = background.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _fmt(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def check_labels(true: Tensor, name: str = "true") -> Tensor:
    """Validate a ground-truth label map ``b h w`` / ``b n`` -> ``b n`` int64.

    Raises TypeError for a non-integer dtype, ValueError for a wrong rank or negative labels.
    """
    if not isinstance(true, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of integer labels, got {type(true).__name__}")
    if true.is_floating_point() or true.is_complex():
        raise TypeError(f"{name}: expected integer labels (b h w) with 0 = background, got dtype {true.dtype}")
    if true.dim() not in (2, 3):
        raise ValueError(f"{name}: expected labels (b h w) or (b n), got shape {_fmt(true.shape)}")
    true = true.reshape(true.shape[0], -1).long()
    if true.numel() and int(true.min()) < 0:
        raise ValueError(f"{name}: labels must be >= 0 (0 = background), got min {int(true.min())}")
    return true


def pred_labels(pred: Tensor, true: Tensor) -> Tensor:
    """Predicted labels ``b n`` (int64) from labels ``b h w``/``b n`` or soft masks ``b k h w``/``b k n``.

    ``true`` is the (unflattened) ground truth, used to tell the two forms apart and to
    check sizes. Raises ValueError on a shape mismatch, TypeError on a float tensor with
    the rank of labels.
    """
    if not isinstance(pred, Tensor):
        raise TypeError(f"pred: expected a torch.Tensor, got {type(pred).__name__}")
    spatial = tuple(true.shape[1:])
    b = true.shape[0]
    axes = "h w" if len(spatial) == 2 else "n"
    dims = ", ".join(map(str, spatial))
    if pred.is_floating_point():
        if pred.dim() != true.dim() + 1:
            raise TypeError(
                f"pred: a floating tensor is read as soft masks (b k {axes}) = ({b}, K, {dims}), "
                f"got shape {_fmt(pred.shape)}; pass labels as an integer tensor")
        if pred.shape[0] != b or tuple(pred.shape[2:]) != spatial:
            raise ValueError(
                f"pred: expected soft masks (b k {axes}) = ({b}, K, {dims}), "
                f"got {_fmt(pred.shape)}")
        if pred.shape[1] == 0:
            raise ValueError("pred: soft masks need at least one slot (K >= 1), got K = 0")
        # argmax over a contiguous last axis: same result (first maximum), ~2x faster on CPU
        return pred.movedim(1, -1).contiguous().argmax(dim=-1).reshape(b, -1)
    if pred.dtype == torch.bool:
        pred = pred.long()
    if pred.is_complex():
        raise TypeError(f"pred: expected integer labels or floating soft masks, got dtype {pred.dtype}")
    if tuple(pred.shape) != tuple(true.shape):
        raise ValueError(f"pred: expected labels with the ground truth's shape {_fmt(true.shape)}, "
                         f"got {_fmt(pred.shape)}")
    return pred.reshape(b, -1).long()


def compact(labels: Tensor) -> tuple[Tensor, int]:
    """Relabel ``b n`` integer labels to 0..L-1 (consistently over the batch) -> (ids, L).

    Lets arbitrary (large, sparse, negative) label values be one-hot encoded compactly.
    """
    if labels.numel() == 0:
        return labels, 1
    uniq, inv = torch.unique(labels, return_inverse=True)
    return inv.reshape(labels.shape), int(uniq.numel())


def counts(rows: Tensor, n_rows: int, cols: Tensor, n_cols: int, keep: Tensor | None = None) -> Tensor:
    """Per-image contingency table: ``b n`` ids in [0, n_rows) and [0, n_cols) -> int64 ``b n_rows n_cols``.

    ``out[b, i, j]`` = number of pixels (with ``keep``, if given, True) whose row id is i and
    column id j. Equal to the one-hot einsum ``einsum('bni,bnj->bij', one_hot(rows), one_hot(cols))``
    of DeepMind's ``segmentation_metrics``, computed with one ``bincount`` over flat
    indices: exact integers, O(b n) memory, deterministic on CUDA, ~10x faster than the einsum.
    """
    b = rows.shape[0]
    cells = n_rows * n_cols
    idx = rows * n_cols + cols + torch.arange(b, device=rows.device).unsqueeze(1) * cells   # (b, n)
    if keep is not None:
        idx = torch.where(keep, idx, torch.full_like(idx, b * cells))  # dropped pixels -> spare bin
    flat = torch.bincount(idx.reshape(-1), minlength=b * cells + 1)
    return flat[: b * cells].reshape(b, n_rows, n_cols)
