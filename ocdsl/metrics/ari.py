"""Adjusted Rand index (ARI) and foreground ARI (ARI-FG), batched in torch.

Sources:

- ClevrTex evaluator [CTX] ``clevrtex_eval.py`` L218-454: ``sklearn.metrics.adjusted_rand_score``
  per image on argmax labels; ARI-FG keeps the pixels whose ground truth is > 0; the scores
  are averaged over images.
- DeepMind ``segmentation_metrics.py`` [MOD] L20-92: the same index through a one-hot
  contingency table (einsum), ignoring pixels whose ground truth is zero-hot; its degenerate
  cases give NaN where sklearn gives 1.0.

The value is computed from the contingency table ``n_ij`` (DeepMind's one-hot einsum, here
one ``bincount``: the same integers) with sklearn's pair-confusion formula (sklearn >= 0.24
``adjusted_rand_score``)::

    tp = sum n_ij^2 - n         fp = sum_j b_j^2 - sum n_ij^2     (b_j: predicted sizes)
    fn = sum_i a_i^2 - sum n_ij^2   (a_i: true sizes)     tn = n^2 - tp - fp - fn - n
    ari = 2 (tp tn - fn fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn))

which equals Hubert & Arabie's (index - expected) / (max - expected) wherever the latter is
defined. Counts and their sums are exact int64 (immune to autocast and TF32); only the final
products and ratio are float64.

Degenerate cases (the convention, chosen by ``degenerate``):

- ``"sklearn"`` (default): exactly ``adjusted_rand_score``: 1.0 whenever the two labelings of
  the kept pixels are the same partition with no pair disagreeing (``fn == fp == 0``), which
  covers both labelings being one cluster, every pixel its own cluster, and a single kept pixel.
- ``"nan"``: DeepMind's ``adjusted_rand_index``: NaN wherever its ratio is 0/0, i.e. fewer than
  two kept pixels, or both labelings one cluster, or both all singletons; except DeepMind's own
  special case, 1.0 when the argmax labels are constant over *all* pixels of the image for both
  prediction and ground truth (for ARI-FG the ground truth is compared as DeepMind's one-hot of
  ``true[..., 1:]`` argmaxes it: background and label 1 share id 0).
- In both conventions ARI-FG of an image with no foreground pixel is NaN (sklearn would say 1.0
  on the empty labeling, and the ClevrTex evaluator averages that 1.0 in). Average with
  ``torch.nanmean`` / :func:`ocdsl.metrics.summarize`, which also counts the skipped images.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ocdsl.metrics._inputs import check_labels, compact, counts, pred_labels

Degenerate = Literal["sklearn", "nan"]

__all__ = ["ari", "ari_fg", "contingency"]


def contingency(pred: Tensor, true: Tensor, *, ignore_background: bool = False) -> Tensor:
    """Per-image contingency table ``n[b, i, j]`` = #kept pixels with true id i and predicted id j.

    Args:
        pred: integer labels ``b h w`` / ``b n``, or soft masks ``b k h w`` / ``b k n`` (argmax over k).
        true: integer labels ``b h w`` / ``b n``, 0 = background, >= 0.
        ignore_background: keep only pixels with ``true > 0``.

    Returns:
        int64 ``b lt lp`` where lt, lp are the numbers of distinct true / predicted labels in
        the batch (labels are compacted over the batch, so ids are not the raw label values).
        It equals DeepMind's one-hot einsum ``nij`` (transposed), computed by a bincount.

    Raises:
        TypeError / ValueError on a wrong dtype or shape, ValueError on negative true labels.
    """
    true_bn = check_labels(true)                                   # (b, n)
    pred_bn = pred_labels(pred, true)                              # (b, n)
    return _table(true_bn, pred_bn, ignore_background)


def _table(true_bn: Tensor, pred_bn: Tensor, ignore_background: bool) -> Tensor:
    t_ids, lt = compact(true_bn)                                   # (b, n) in [0, lt)
    p_ids, lp = compact(pred_bn)                                   # (b, n) in [0, lp)
    keep = true_bn > 0 if ignore_background else None              # ARI-FG: background dropped
    return counts(t_ids, lt, p_ids, lp, keep)                      # (b, lt, lp)


def _all_equal(x: Tensor) -> Tensor:
    """``b n`` -> ``b`` bool: every entry equals the first (True for n = 0, as tf.reduce_all)."""
    if x.shape[1] == 0:
        return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    return (x == x[:, :1]).all(dim=1)


def ari(pred: Tensor, true: Tensor, *, ignore_background: bool = False,
        degenerate: Degenerate = "sklearn") -> Tensor:
    """Adjusted Rand index per image, equal to ``sklearn.metrics.adjusted_rand_score``.

    Args:
        pred: predicted segmentation: integer labels ``b h w`` (or ``b n``) with any values, or
            soft masks ``b k h w`` (or ``b k n``), floating, whose argmax over ``k`` is taken.
        true: ground-truth integer labels ``b h w`` (or ``b n``), 0 = background, >= 0.
        ignore_background: ARI-FG: score only pixels with ``true > 0`` (ClevrTex ``skip_0``,
            DeepMind ``true_mask[..., 1:]``).
        degenerate: ``"sklearn"`` (default) or ``"nan"`` (DeepMind); see the module docstring.

    Returns:
        float64 ``b`` on ``true``'s device, in [-1, 1] or NaN: NaN for ARI-FG of an image without
        foreground pixels (both conventions) and for DeepMind's degenerate cases under ``"nan"``.

    Raises:
        ValueError: unknown ``degenerate``, shape mismatch, negative true labels.
        TypeError: non-integer ``true``, or a floating ``pred`` with the rank of labels.
    """
    if degenerate not in ("sklearn", "nan"):
        raise ValueError(f"degenerate: expected 'sklearn' or 'nan', got {degenerate!r}")
    true_bn = check_labels(true)                                   # (b, n)
    pred_bn = pred_labels(pred, true)                              # (b, n)
    nij = _table(true_bn, pred_bn, ignore_background)              # (b, lt, lp) int64
    # exact integer sums (int64), then the ratio in float64
    n = nij.sum(dim=(1, 2))                                        # (b,) kept pixels
    sum_sq = (nij * nij).sum(dim=(1, 2))                           # (b,)
    sum_a2 = nij.sum(dim=2).square().sum(dim=1)                    # true cluster sizes a_i
    sum_b2 = nij.sum(dim=1).square().sum(dim=1)                    # predicted cluster sizes b_j
    # ordered pair counts (sklearn.metrics.cluster.pair_confusion_matrix)
    tp = sum_sq - n                                                # same cluster in both
    fp = sum_b2 - sum_sq                                           # same cluster in pred only
    fn = sum_a2 - sum_sq                                           # same cluster in true only
    tn = n * n - fp - fn - sum_sq                                  # apart in both
    tp, fp, fn, tn = (x.to(torch.float64) for x in (tp, fp, fn, tn))
    num = 2.0 * (tp * tn - fn * fp)
    den = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    agree = (fn == 0) & (fp == 0)                                  # sklearn: "full agreement" -> 1.0
    out = torch.where(agree, torch.ones_like(num), num / torch.where(agree, torch.ones_like(den), den))

    if degenerate == "nan":
        # DeepMind: (rindex - E) / (max - E) with aindex = sum a(a-1), bindex = sum b(b-1),
        # E = aindex * bindex / (n (n-1)), max = (aindex + bindex) / 2. With both indices in
        # [0, n(n-1)], max - E = 0 iff aindex == bindex in {0, n(n-1)} (AM-GM); n <= 1 is 0/0 too.
        aindex = sum_a2 - n
        bindex = sum_b2 - n
        undefined = (aindex == bindex) & ((aindex == 0) | (aindex == n * (n - 1)))
        true_dm = (true_bn - 1).clamp(min=0) if ignore_background else true_bn
        both_single = _all_equal(true_dm) & _all_equal(pred_bn)    # DeepMind's special case -> 1
        out = torch.where(undefined, torch.full_like(out, float("nan")), out)
        out = torch.where(both_single, torch.ones_like(out), out)

    if ignore_background:
        out = torch.where(n == 0, torch.full_like(out, float("nan")), out)   # no foreground: skip
    return out


def ari_fg(pred: Tensor, true: Tensor, *, degenerate: Degenerate = "sklearn") -> Tensor:
    """Foreground ARI: :func:`ari` with ``ignore_background=True`` (pixels with ``true > 0``).

    Shapes, range and errors as :func:`ari`; NaN for images without foreground pixels.
    """
    return ari(pred, true, ignore_background=True, degenerate=degenerate)
