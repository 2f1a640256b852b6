"""mIoU / mIoU_fg with Hungarian matching, ClevrTex evaluator conventions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ocdsl.metrics import matched_ious, miou, miou_fg

FAST = settings(max_examples=30, deadline=None)


def onehot_bkhw(labels: torch.Tensor, k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, k).movedim(-1, 1).float()      # (b, k, h, w)


@st.composite
def seg_pairs_bhw(draw, max_side: int = 5, max_k: int = 4):
    """(pred slot labels, true labels) int64 (b h w); pred in [0, kp), true in [0, kt)."""
    b = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kt, kp = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    true = draw(arrays(np.int64, (b, h, w), elements=st.integers(0, kt - 1)))
    pred = draw(arrays(np.int64, (b, h, w), elements=st.integers(0, kp - 1)))
    return torch.from_numpy(pred), torch.from_numpy(true), kp


def test_perfect_segmentation_is_one():
    true = torch.tensor([[[0, 0, 1], [2, 2, 1], [0, 3, 3]]])
    assert miou(onehot_bkhw(true, 4), true).item() == 1.0
    assert miou_fg(onehot_bkhw(true, 4), true).item() == 1.0
    # more slots than objects: the extra (empty) slots do not count
    assert miou(onehot_bkhw(true, 7), true).item() == 1.0
    assert miou_fg(onehot_bkhw(true, 7), true).item() == 1.0


@FAST
@given(seg_pairs_bhw(), st.randoms(use_true_random=False))
def test_permuted_perfect_segmentation_is_one(pair, rnd):
    _, true, _ = pair
    k = int(true.max()) + 1 + rnd.randint(0, 2)
    perm = list(range(k))
    rnd.shuffle(perm)
    masks = onehot_bkhw(torch.tensor(perm)[true], k)
    assert torch.all(miou(masks, true) == 1.0)
    fg = miou_fg(masks, true)
    has_fg = (true > 0).flatten(1).any(1)
    assert torch.all(fg[has_fg] == 1.0)
    assert torch.all(torch.isnan(fg[~has_fg]))                     # background only, one slot


def test_hand_example_under_segmentation():
    # true = [bg bg A A], pred = [s0 s0 s0 s1]; IoU(s0, bg) = 2/3, IoU(s1, A) = 1/2
    true = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 0, 0, 1]])
    ious, visible, match = matched_ious(pred, true)
    assert match.tolist() == [[0, 1]] and visible.tolist() == [[True, True]]
    assert miou(pred, true).item() == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert miou_fg(pred, true).item() == pytest.approx(0.5)


def test_hand_example_over_segmentation_counts_unmatched_slot():
    # true = [bg bg bg A], pred = [s0 s0 s2 s1]: s2 is matched to the empty padded index 2 with
    # IoU 0, but counts as a pair because it is non-empty (num_pairs = 3).
    true = torch.tensor([[0, 0, 0, 1]])
    pred = torch.tensor([[0, 0, 2, 1]])
    assert miou(pred, true).item() == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert miou_fg(pred, true).item() == pytest.approx((1 + 0) / 2)


def test_hand_example_missed_object():
    # true = [bg A B B], pred = [s0 s0 s1 s1]: B found exactly, A merged into the background slot
    true = torch.tensor([[0, 1, 2, 2]])
    pred = onehot_bkhw(torch.tensor([[0, 0, 1, 1]]), 3)           # soft-mask form (1, 3, 4)
    # IoU(s0, bg) = 1/2, IoU(s0, A) = 1/2, IoU(s1, B) = 1 -> matched sum 3/2 over 3 pairs
    assert miou(pred, true).item() == pytest.approx(1.5 / 3)
    fg = miou_fg(pred, true).item()
    assert fg in (pytest.approx(1.0 / 2), pytest.approx(1.5 / 2))  # tie: s0 goes to bg or A


def test_background_only_ground_truth():
    true = torch.zeros(2, 2, 2, dtype=torch.long)
    pred = torch.tensor([[[0, 0], [0, 0]], [[0, 0], [1, 1]]])
    m, f = miou(pred, true), miou_fg(pred, true)
    assert m[0].item() == 1.0 and math.isnan(f[0].item())          # one slot: num_pairs = 1
    assert m[1].item() == pytest.approx(0.5 / 2) and f[1].item() == 0.0


def test_ground_truth_without_background_pixel():
    # Deviation from the evaluator's `num_pairs - 1` (which gives inf here): the denominator
    # counts visible foreground pairs only.
    true = torch.ones(1, 2, 2, dtype=torch.long)
    pred = torch.zeros(1, 2, 2, dtype=torch.long)
    assert miou(pred, true).item() == 1.0 and miou_fg(pred, true).item() == 1.0
    # with a background pixel both denominators agree: num_pairs - 1 == visible pairs t >= 1
    true = torch.tensor([[[0, 1], [1, 2]]])
    pred = torch.tensor([[[3, 1], [1, 1]]])
    ious, visible, _ = matched_ious(pred, true)
    assert miou_fg(pred, true).item() == pytest.approx(ious[0, 1:].sum().item() / (visible.sum().item() - 1))


def _brute_force_max_iou_sum(pred: np.ndarray, true: np.ndarray, k: int) -> float:
    ious = np.zeros((k, k))
    for p in range(k):
        for t in range(k):
            pm, tm = pred == p, true == t
            if pm.any() and tm.any():
                ious[p, t] = (pm & tm).sum() / (pm | tm).sum()
    return max(sum(ious[perm[t], t] for t in range(k)) for perm in itertools.permutations(range(k)))


@FAST
@given(seg_pairs_bhw())
def test_matching_is_optimal_and_forms_agree(pair):
    pred, true, kp = pair
    masks = onehot_bkhw(pred, kp)
    ious, visible, match = matched_ious(masks, true)
    k = max(kp, int(true.max()) + 1)
    assert ious.shape == visible.shape == match.shape == (true.shape[0], k)
    for b in range(true.shape[0]):
        assert sorted(match[b].tolist()) == list(range(k))         # a permutation
        best = _brute_force_max_iou_sum(pred[b].numpy(), true[b].numpy(), k)
        assert ious[b].sum().item() == pytest.approx(best, abs=1e-9)
    np.testing.assert_allclose(miou(masks, true), miou(pred, true), equal_nan=True)
    m = miou(masks, true)
    assert torch.all((m >= 0) & (m <= 1))
    f = miou_fg(masks, true)
    assert torch.all(torch.isnan(f) | ((f >= 0) & (f <= 1)))


def test_errors():
    t = torch.zeros(1, 3, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\(1, K, 3, 3\)"):
        miou(torch.zeros(1, 4, 3, 2), t)
    with pytest.raises(ValueError, match=">= 0"):
        miou(t - 1, t)
    with pytest.raises(TypeError):
        miou_fg(t, t.float())
