"""Mean IoU after Hungarian matching (mIoU, mIoU_fg), following the ClevrTex evaluator.

Source: ClevrTex evaluator [CTX] ``clevrtex_eval.py`` L218-454 (docs/papers.md, Evaluation
conventions), step by step:

1. predicted masks -> argmax over K -> one-hot ``b k n``; the ground-truth index map (0 =
   background) -> one-hot with ``max(true.max() + 1, K)`` channels; both zero-padded to the same K;
2. IoU matrix ``iou[b, p, t]``, set to 0 where the predicted or the true mask is empty;
3. per image, ``scipy.optimize.linear_sum_assignment(iou.T, maximize=True)`` (background
   included in the matching) gives for every true index t its predicted partner and IoU_t;
4. ``num_pairs`` = number of t for which the true mask or its matched predicted mask is non-empty;
5. ``mIoU = sum_t IoU_t / num_pairs``; ``mIoU_fg = sum_{t >= 1} IoU_t / (num_pairs - 1)``
   (the ClevrTex tables report mIoU_fg).

One deliberate deviation: the denominator of mIoU_fg is the number of *visible pairs with
t >= 1*. It equals ``num_pairs - 1`` whenever pair 0 is visible, i.e. whenever the ground truth
has a background pixel (always on ClevrTex / CLEVR / Tetrominoes / Multi-dSprites); on an image
with no label-0 pixel whose index 0 is matched to an empty slot, the evaluator's
``num_pairs - 1`` would count one pair too few (and give inf for a single perfectly found object).

Conventions that follow from it (kept, not "fixed"):

- Background-only ground truth: a prediction with one non-empty slot gives mIoU = 1 and
  mIoU_fg = 0/0 = NaN (skipped by :func:`ocdsl.metrics.summarize`); with s > 1 non-empty slots,
  mIoU = IoU_0 / s and mIoU_fg = 0.
- Over-segmentation is penalised through ``num_pairs``: an unmatched non-empty predicted slot
  counts as a pair with IoU 0.
- Index 0 is always taken as the background, even when the image has no label-0 pixel.
- Ties in the assignment are broken by scipy exactly as in the evaluator (same matrix layout).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ocdsl.metrics._inputs import check_labels, counts, pred_labels

__all__ = ["miou", "miou_fg", "matched_ious"]


def matched_ious(pred: Tensor, true: Tensor, *, num_slots: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Hungarian-matched IoUs per ground-truth index (ClevrTex ``ious_alignment``).

    Args:
        pred: soft masks ``b k h w`` / ``b k n`` (floating; argmax over k, one-hot), or integer
            slot labels ``b h w`` / ``b n`` in [0, K).
        true: integer labels ``b h w`` / ``b n``, 0 = background, >= 0.
        num_slots: K for integer ``pred`` (default: max label + 1 over the batch; soft masks
            use their k). Only the padding depends on it, and empty padded slots never count.

    Returns:
        ``(ious, visible, match)``: ``ious`` float64 ``b k`` (IoU of true index t with its matched
        prediction, t in [0, K), K padded as in step 1), ``visible`` bool ``b k`` (true mask t or
        its matched prediction non-empty), ``match`` int64 ``b k`` (predicted index matched to t).

    Raises:
        TypeError / ValueError on wrong dtypes or shapes, ValueError on negative labels.
    """
    from scipy.optimize import linear_sum_assignment              # lazy: keeps `import ocdsl` fast

    true_bn = check_labels(true)                                   # (b, n)
    pred_bn = pred_labels(pred, true)                              # (b, n)
    if pred_bn.numel() and int(pred_bn.min()) < 0:
        raise ValueError(f"pred: slot labels must be >= 0, got min {int(pred_bn.min())}")
    if pred.is_floating_point():
        k_pred = pred.shape[1]
    else:
        k_pred = int(pred_bn.max()) + 1 if pred_bn.numel() else 1
        if num_slots is not None:
            if num_slots < k_pred:
                raise ValueError(f"num_slots: expected >= max slot label + 1 = {k_pred}, got {num_slots}")
            k_pred = num_slots
    k_true = int(true_bn.max()) + 1 if true_bn.numel() else 1
    k = max(k_pred, k_true)                                        # common padded K
    inter = counts(pred_bn, k, true_bn, k).to(torch.float64)       # (b, p, t) = one-hot einsum
    p_size = inter.sum(dim=2)                                      # (b, k) predicted mask sizes
    t_size = inter.sum(dim=1)                                      # (b, k) true mask sizes
    union = p_size.unsqueeze(2) + t_size.unsqueeze(1) - inter      # (b, p, t)
    empty = (p_size == 0).unsqueeze(2) | (t_size == 0).unsqueeze(1)
    iou = torch.where(empty, torch.zeros_like(inter), inter / union.clamp(min=1))  # (b, p, t)

    iou_np = iou.cpu().numpy()
    match = np.zeros((iou_np.shape[0], k), dtype=np.int64)
    ious = np.zeros((iou_np.shape[0], k), dtype=np.float64)
    for i in range(iou_np.shape[0]):
        cost = iou_np[i].T                                         # (t, p), as the evaluator
        t_ind, p_ind = linear_sum_assignment(cost, maximize=True)  # t_ind = arange(k): square
        match[i, t_ind] = p_ind
        ious[i, t_ind] = cost[t_ind, p_ind]
    match_t = torch.from_numpy(match).to(true_bn.device)
    ious_t = torch.from_numpy(ious).to(true_bn.device)
    matched_nonempty = torch.gather(p_size > 0, 1, match_t)         # (b, k)
    visible = (t_size > 0) | matched_nonempty                      # ClevrTex `vism`
    return ious_t, visible, match_t


def miou(pred: Tensor, true: Tensor) -> Tensor:
    """mIoU per image: sum of matched IoUs (background included) / ``num_pairs``.

    Args / raises as :func:`matched_ious`. Returns float64 ``b`` in [0, 1].
    """
    ious, visible, _ = matched_ious(pred, true)
    return ious.sum(dim=1) / visible.sum(dim=1).to(ious.dtype)


def miou_fg(pred: Tensor, true: Tensor) -> Tensor:
    """mIoU_fg per image: sum of matched IoUs over true indices t >= 1 / visible pairs with t >= 1.

    That denominator is the evaluator's ``num_pairs - 1`` whenever the image has a background
    pixel (module docstring). Args / raises as :func:`matched_ious`. Returns float64 ``b`` in
    [0, 1], NaN where no pair t >= 1 is visible (background-only ground truth predicted with
    one slot).
    """
    ious, visible, _ = matched_ious(pred, true)
    return _fg(ious, visible)


def _fg(ious: Tensor, visible: Tensor) -> Tensor:
    """``b k`` matched IoUs and visibility -> ``b`` mIoU_fg (see the module docstring)."""
    return ious[:, 1:].sum(dim=1) / visible[:, 1:].sum(dim=1).to(ious.dtype)
