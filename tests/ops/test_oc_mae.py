"""The object-centric MAE ops: object function (Eq. 1-2), broadcast/unshuffle, unpatchify,
and the entropy losses (Eq. 5-6)."""

import math

import pytest
import torch

from ocdsl.losses import functions as fn
from ocdsl.ops import get
from ocdsl.ops.oc_mae import BroadcastUnshuffle, ObjectFunction
from ocdsl.ops.vit import RandomMasking, patchify
from ocdsl.shapes import Dim, ShapeError

from ._helpers import run_op, sym


# ---- object_function ------------------------------------------------------------------------

def test_object_function_equations():
    inferred, out, _ = run_op("object_function", {"tokens": sym("B", 6, 4), "cls": sym("B", 3, 4)}, {})
    assert inferred == {"slots": sym("B", 3, 4), "attention": sym("B", 3, 6),
                        "log_attention": sym("B", 3, 6)}
    z, c = torch.randn(2, 6, 4), torch.randn(2, 3, 4)
    slots, attn, log_attn = ObjectFunction(4)(z, c)
    # Eq. 1: softmax over the K class tokens for every patch
    a = torch.softmax(torch.einsum("bnd,bkd->bnk", z, c) / 2.0, dim=-1)          # (b, n, k)
    torch.testing.assert_close(attn, a.transpose(1, 2))
    torch.testing.assert_close(attn.sum(1), torch.ones(2, 6))
    torch.testing.assert_close(log_attn, attn.log())
    # Eq. 2: normalised weights over the patches, slots as weighted means
    w = a / (a.sum(dim=1, keepdim=True) + 1e-8)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(2, 3))
    torch.testing.assert_close(slots, torch.einsum("bnk,bnd->bkd", w, z))


def test_object_function_log_attention_stays_finite():
    z = torch.tensor([[[100.0, 0.0]]])                               # one patch, huge logits
    c = torch.tensor([[[100.0, 0.0], [-100.0, 0.0]]])
    _, attn, log_attn = ObjectFunction(2)(z, c)
    assert float(attn[0, 1, 0]) == 0.0 and torch.isfinite(log_attn).all()


def test_object_function_checks_the_class_tokens():
    with pytest.raises(ShapeError, match=r"input 'cls': expected \(b, k, d\) = \(B, K, 4\)"):
        get("object_function").infer({"tokens": sym("B", 6, 4), "cls": sym("B", 3, 5)}, {})


# ---- broadcast_unshuffle --------------------------------------------------------------------

def _naive_broadcast(m: BroadcastUnshuffle, slots, log_attn, ids):
    """The paper's Fig. 1 literally: concat, Linear, append mask tokens, gather."""
    b, k, l = log_attn.shape
    n = ids.shape[1]
    x = torch.cat([slots[:, :, None].expand(b, k, l, slots.shape[-1]), log_attn[..., None]], -1)
    x = m.embed(x)                                                   # (b, k, l, e)
    x = torch.cat([x, m.mask_token.expand(b, k, n - l, x.shape[-1])], 2)
    return torch.stack([torch.stack([x[i, j][ids[i]] for j in range(k)]) for i in range(b)])


def test_broadcast_unshuffle_matches_the_literal_construction():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 5)
    kept, mask, ids = RandomMasking(0.5)(x)                          # l = 3 of n = 7
    slots, log_attn = torch.randn(2, 4, 6), torch.randn(2, 4, 3).log_softmax(1)
    inferred, _, m = run_op("broadcast_unshuffle",
                            {"slots": sym("B", 4, 6), "log_attention": sym("B", 4, 3),
                             "ids_restore": sym("B", 7)}, {"dim": 10},
                            {"slots": slots, "log_attention": log_attn, "ids_restore": ids})
    assert inferred == {"tokens": sym("B", 4, 7, 10), "attention": sym("B", 4, 7)}
    tokens, attn = m(slots, log_attn, ids)
    torch.testing.assert_close(tokens, _naive_broadcast(m, slots, log_attn, ids))
    # dropped patches: the mask token and zero attention; kept ones: a_ik in the grid order
    dropped = mask.bool()
    for b in range(2):
        torch.testing.assert_close(tokens[b][:, dropped[b]],
                                   m.mask_token[0, 0].expand(4, int(dropped[b].sum()), 10))
        assert (attn[b][:, dropped[b]] == 0).all()
        torch.testing.assert_close(attn[b][:, ~dropped[b]].sum(0), torch.ones(3))
    assert not m.embed.bias.detach().any()


def test_broadcast_unshuffle_without_masking_keeps_the_order():
    m = BroadcastUnshuffle(3, 5)
    slots, log_attn = torch.randn(1, 2, 3), torch.randn(1, 2, 4)
    tokens, attn = m(slots, log_attn, torch.arange(4)[None])
    torch.testing.assert_close(attn, log_attn.exp())
    torch.testing.assert_close(tokens, _naive_broadcast(m, slots, log_attn, torch.arange(4)[None]))


def test_broadcast_unshuffle_accepts_the_run_time_size():
    out = get("broadcast_unshuffle").infer(
        {"slots": sym("B", 4, 6), "log_attention": (Dim.of("B"), Dim.of(4), Dim.of("L")),
         "ids_restore": sym("B", 49)}, {"dim": 8})
    assert out["tokens"] == sym("B", 4, 49, 8)
    with pytest.raises(ShapeError, match="expected at most 49 kept patches"):
        get("broadcast_unshuffle").infer({"slots": sym("B", 4, 6), "log_attention": sym("B", 4, 50),
                                          "ids_restore": sym("B", 49)}, {"dim": 8})


# ---- unpatchify -----------------------------------------------------------------------------

def test_unpatchify_splits_rgb_and_alpha_and_inverts_patchify():
    inferred, _, m = run_op("unpatchify", {"x": sym("B", 3, 6, 4 * 4 * 4)},
                            {"patch": 4, "resolution": [8, 12]})
    assert inferred == {"rgb": sym("B", 3, 3, 8, 12), "alpha_logits": sym("B", 3, 1, 8, 12)}
    images = torch.randn(2, 3, 4, 8, 12)                             # (b, k, c+1, h, w)
    tokens = patchify(images.flatten(0, 1), 4).unflatten(0, (2, 3))
    rgb, alpha = m(tokens)
    assert torch.equal(rgb, images[:, :, :3]) and torch.equal(alpha, images[:, :, 3:])


def test_unpatchify_errors():
    op = get("unpatchify")
    with pytest.raises(ShapeError, match=r"input 'x' patches: expected 6, got 5"):
        op.infer({"x": sym("B", 3, 5, 64)}, {"patch": 4, "resolution": [8, 12]})
    with pytest.raises(ShapeError, match="expected p \\* p \\* c features with c >= 2"):
        op.infer({"x": sym("B", 3, 6, 16)}, {"patch": 4, "resolution": [8, 12]})


# ---- entropy losses -------------------------------------------------------------------------

def test_pixel_entropy():
    k = 4
    uniform = torch.full((2, k, 3, 3), 1 / k)
    assert math.isclose(float(fn.pixel_entropy(uniform)), math.log(k), rel_tol=1e-5)
    onehot = torch.zeros(2, k, 3, 3)
    onehot[:, 1] = 1
    assert abs(float(fn.pixel_entropy(onehot))) < 1e-6
    assert math.isclose(float(fn.pixel_entropy(uniform[:, :, None])), math.log(k), rel_tol=1e-5)


def test_object_entropy_uses_the_mean_masks():
    k = 4
    # every pixel one-hot (pixel entropy 0), but the slots share the image equally
    m = torch.zeros(1, k, 2, 2)
    for i in range(k):
        m[0, i].view(-1)[i] = 1
    assert abs(float(fn.pixel_entropy(m))) < 1e-6
    assert math.isclose(float(fn.object_entropy(m)), math.log(k), rel_tol=1e-5)
    one = torch.zeros(1, k, 2, 2)
    one[0, 0] = 1                                                    # one slot takes all
    assert abs(float(fn.object_entropy(one))) < 1e-6
    with pytest.raises(ValueError, match=r"object_entropy: expected masks \(b, k, h, w\)"):
        fn.object_entropy(torch.zeros(2, 3))
