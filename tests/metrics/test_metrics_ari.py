"""ARI / ARI-FG against sklearn's adjusted_rand_score (default) and DeepMind's formula ("nan")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import adjusted_rand_score

from ocdsl.metrics import ari, ari_fg, contingency

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def label_pairs_bhw(draw, max_side: int = 6, max_k: int = 5):
    """(pred labels, true labels), int64 (b h w), with few labels so that degenerate cases occur."""
    b = draw(st.integers(1, 3))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    kt = draw(st.integers(1, max_k))
    kp = draw(st.integers(1, max_k))
    true = draw(arrays(np.int64, (b, h, w), elements=st.integers(0, kt - 1)))
    pred = draw(arrays(np.int64, (b, h, w), elements=st.integers(0, kp - 1)))
    return torch.from_numpy(pred), torch.from_numpy(true)


def soft_masks(labels: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """Soft masks (b k h w) whose argmax over k is ``labels`` (random, softmax-normalised)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.rand(labels.shape[0], k, *labels.shape[1:], generator=g)          # [0, 1)
    logits = logits + 2.0 * torch.nn.functional.one_hot(labels, k).movedim(-1, 1)   # winner by > 1
    return torch.softmax(logits, dim=1)


def sk_ari(pred: torch.Tensor, true: torch.Tensor, fg: bool) -> list[float]:
    out = []
    for p, t in zip(pred.reshape(pred.shape[0], -1).numpy(), true.reshape(true.shape[0], -1).numpy()):
        if fg:
            p, t = p[t > 0], t[t > 0]
            if t.size == 0:
                out.append(float("nan"))                           # our convention: no foreground
                continue
        out.append(adjusted_rand_score(t, p))
    return out


def dm_ari(pred: torch.Tensor, true: torch.Tensor, fg: bool) -> list[float]:
    """numpy transcription of DeepMind's adjusted_rand_index (segmentation_metrics.py L20-92),
    with labels l one-hot into channel l (ARI) or l - 1 (ARI-FG: ``true[..., 1:]``)."""
    out = []
    for p, t in zip(pred.reshape(pred.shape[0], -1).numpy(), true.reshape(true.shape[0], -1).numpy()):
        nt = int(true.max()) + 1
        t_oh = np.eye(nt)[t][:, 1:] if fg else np.eye(nt)[t]        # (n, groups)
        p_oh = np.eye(int(pred.max()) + 1)[p]
        n = t_oh.sum()
        nij = p_oh.T @ t_oh
        a, b = nij.sum(0), nij.sum(1)
        rindex = (nij * (nij - 1)).sum()
        aindex, bindex = (a * (a - 1)).sum(), (b * (b - 1)).sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = aindex * bindex / (n * (n - 1))
            value = (rindex - expected) / ((aindex + bindex) / 2 - expected)
        t_ids = t_oh.argmax(-1) if t_oh.shape[1] else np.zeros_like(t)
        both_single = np.all(t_ids == t_ids[:1]) and np.all(p == p[:1])
        value = 1.0 if both_single else value
        if fg and n == 0:
            value = float("nan")                                   # our convention: no foreground
        out.append(float(value))
    return out


def close(a, b) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                               atol=1e-6, rtol=0, equal_nan=True)


# ------------------------------------------------------------------------- sklearn convention

@FAST
@given(label_pairs_bhw())
def test_ari_equals_sklearn(pair):
    pred, true = pair
    got = ari(pred, true)
    assert got.shape == (true.shape[0],) and got.dtype == torch.float64
    close(got, sk_ari(pred, true, fg=False))


@FAST
@given(label_pairs_bhw())
def test_ari_fg_equals_sklearn_on_foreground(pair):
    pred, true = pair
    close(ari_fg(pred, true), sk_ari(pred, true, fg=True))
    close(ari(pred, true, ignore_background=True), sk_ari(pred, true, fg=True))


@FAST
@given(label_pairs_bhw(), st.integers(0, 3))
def test_soft_masks_equal_label_form(pair, extra_slots):
    pred, true = pair
    k = int(pred.max()) + 1 + extra_slots
    masks = soft_masks(pred, k)
    assert torch.equal(masks.argmax(1), pred)
    close(ari(masks, true), ari(pred, true))
    close(ari_fg(masks, true), ari_fg(pred, true))
    close(ari_fg(masks, true, degenerate="nan"), ari_fg(pred, true, degenerate="nan"))


@FAST
@given(label_pairs_bhw(), st.randoms(use_true_random=False))
def test_label_permutation_gives_one(pair, rnd):
    _, true = pair
    perm = list(range(10))
    rnd.shuffle(perm)
    pred = torch.tensor(perm)[true] + 7                            # relabelled, shifted values
    assert torch.all(ari(pred, true) == 1.0)
    fg = ari_fg(pred, true)
    has_fg = (true > 0).flatten(1).any(1)
    assert torch.all(fg[has_fg] == 1.0) and torch.all(torch.isnan(fg[~has_fg]))


def test_flat_bn_form_and_large_label_values():
    g = torch.Generator().manual_seed(1)
    true = torch.randint(0, 4, (4, 50), generator=g)
    pred = torch.randint(0, 3, (4, 50), generator=g) * 1000 + 5
    close(ari(pred, true), sk_ari(pred, true, fg=False))
    close(ari_fg(pred, true), sk_ari(pred, true, fg=True))


def test_hand_cases():
    t = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 2], [0, 0, 0, 0], [0, 0, 1, 1]])
    p = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [0, 1, 2, 3], [0, 1, 0, 1]])
    close(ari(p, t), [1.0, 0.5714285714285715, 0.0, -0.5])         # sklearn docstring examples


def test_degenerate_cases_sklearn_convention():
    one_cluster = torch.zeros(1, 3, 3, dtype=torch.long)
    own = torch.arange(9).reshape(1, 3, 3)
    assert ari(one_cluster, one_cluster).item() == 1.0                    # both one cluster
    assert ari(own, own + 3).item() == 1.0                                # both all singletons
    assert ari(own, one_cluster).item() == 0.0                            # sklearn: 0.0
    assert adjusted_rand_score(one_cluster.flatten(), own.flatten()) == 0.0
    one_px = torch.zeros(1, 3, 3, dtype=torch.long)
    one_px[0, 1, 1] = 2
    assert ari_fg(own, one_px).item() == 1.0                              # 1 foreground pixel
    single_obj = torch.tensor([[[0, 0, 1], [0, 1, 1], [0, 0, 0]]])
    assert ari_fg(single_obj * 4, single_obj).item() == 1.0               # one object, perfect
    assert ari_fg(torch.tensor([[[0, 0, 1], [0, 1, 2], [0, 0, 0]]]), single_obj).item() == 0.0
    assert torch.isnan(ari_fg(own, one_cluster)).all()                    # no foreground -> NaN
    assert ari(own, one_cluster, ignore_background=False).item() == 0.0   # plain ARI is defined


# ------------------------------------------------------------------------- DeepMind convention

@FAST
@given(label_pairs_bhw())
def test_nan_convention_equals_deepmind_formula(pair):
    pred, true = pair
    close(ari(pred, true, degenerate="nan"), dm_ari(pred, true, fg=False))
    close(ari_fg(pred, true, degenerate="nan"), dm_ari(pred, true, fg=True))


@FAST
@given(label_pairs_bhw())
def test_nan_convention_agrees_with_sklearn_where_defined(pair):
    pred, true = pair
    for fg in (False, True):
        dm = ari(pred, true, ignore_background=fg, degenerate="nan")
        sk = torch.tensor(sk_ari(pred, true, fg=fg), dtype=torch.float64)
        ok = ~torch.isnan(dm)
        close(dm[ok], sk[ok])
        # NaN only where sklearn's value is the degenerate 1.0 (or no foreground)
        assert torch.all((sk[~ok] == 1.0) | torch.isnan(sk[~ok]))


def test_degenerate_cases_nan_convention():
    t = torch.tensor([[[0, 0, 1], [0, 1, 1], [0, 0, 0]],           # one object, perfectly found
                      [[0, 0, 0], [0, 2, 0], [0, 0, 0]],           # one foreground pixel
                      [[0, 0, 0], [0, 0, 0], [0, 0, 0]]])          # no foreground
    p = torch.tensor([[[0, 0, 1], [0, 1, 1], [0, 0, 0]],
                      [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
                      [[0, 0, 0], [0, 1, 0], [0, 0, 0]]])
    assert torch.isnan(ari_fg(p, t, degenerate="nan")).all()
    close(ari_fg(p, t), [1.0, 1.0, float("nan")])
    # DeepMind's own special case: one cluster over the whole image in both -> 1.0
    whole = torch.ones(1, 3, 3, dtype=torch.long)
    assert ari(whole * 0, whole, degenerate="nan").item() == 1.0
    assert ari_fg(whole * 0, whole, degenerate="nan").item() == 1.0


# ------------------------------------------------------------------------- misc

def test_contingency_counts_kept_pixels():
    t = torch.tensor([[0, 1, 1, 2]])
    p = torch.tensor([[5, 5, 6, 6]])
    assert contingency(p, t).tolist() == [[[1, 0], [1, 1], [0, 1]]]
    assert contingency(p, t, ignore_background=True).sum().item() == 3


def test_errors():
    t = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(TypeError, match="soft masks"):
        ari(torch.zeros(2, 4, 4), t)                                # float labels are ambiguous
    with pytest.raises(ValueError, match=r"\(2, K, 4, 4\)"):
        ari(torch.zeros(2, 3, 4, 5), t)
    with pytest.raises(ValueError, match="shape"):
        ari(torch.zeros(2, 4, 5, dtype=torch.long), t)
    with pytest.raises(TypeError, match="integer"):
        ari(t, t.float())
    with pytest.raises(ValueError, match=">= 0"):
        ari(t, t - 1)
    with pytest.raises(ValueError, match="degenerate"):
        ari(t, t, degenerate="deepmind")


@pytest.mark.slow
@SLOW
@given(label_pairs_bhw(max_side=10, max_k=8))
def test_ari_against_references_many_examples(pair):
    pred, true = pair
    close(ari(pred, true), sk_ari(pred, true, fg=False))
    close(ari_fg(pred, true), sk_ari(pred, true, fg=True))
    close(ari(pred, true, degenerate="nan"), dm_ari(pred, true, fg=False))
    close(ari_fg(pred, true, degenerate="nan"), dm_ari(pred, true, fg=True))
