"""The ViT ops: patch embedding, sin-cos embedding, random masking, class tokens, the
encoder and the per-slot decoder (shapes, exact values, error messages)."""

import math

import pytest
import torch

from ocdsl.ops import get
from ocdsl.ops.vit import (Block, ClassTokens, RandomMasking, kept_count, patchify, sincos_2d,
                           unpatchify)
from ocdsl.shapes import Dim, ShapeError

from ._helpers import run_op, sym


# ---- patch_embedding ------------------------------------------------------------------------

def test_patch_embedding_shapes_and_patch_order():
    inferred, out, module = run_op("patch_embedding", {"image": sym("B", 3, 10, 15)},
                                   {"patch": 5, "dim": 8})
    assert inferred == {"out": sym("B", 6, 8)}
    # token i is patch (row, col) = divmod(i, 3): the conv applied to that patch alone
    x = torch.randn(2, 3, 10, 15)
    tokens = module(x)
    w, b = module.proj.weight, module.proj.bias
    for i in (0, 2, 4):
        r, c = divmod(i, 3)
        patch = x[:, :, 5 * r:5 * r + 5, 5 * c:5 * c + 5]
        expected = torch.einsum("bchw,dchw->bd", patch, w) + b
        torch.testing.assert_close(tokens[:, i], expected, rtol=1e-5, atol=1e-5)


def test_patch_embedding_needs_a_divisor():
    with pytest.raises(ShapeError, match=r"'patch': expected a divisor of the image size 35x35, got 4"):
        get("patch_embedding").infer({"image": sym("B", 3, 35, 35)}, {"patch": 4, "dim": 8})


# ---- sin-cos embedding ----------------------------------------------------------------------

def test_sincos_values():
    t = sincos_2d(8, 2, 3)                                           # (6, 8): quarter = 2
    assert t.shape == (6, 8)
    omega = [1.0, 1.0 / 100.0]                                       # 10000 ** (-j / 2)
    for i in range(6):
        row, col = divmod(i, 3)
        want = ([math.sin(col * w) for w in omega] + [math.cos(col * w) for w in omega]
                + [math.sin(row * w) for w in omega] + [math.cos(row * w) for w in omega])
        torch.testing.assert_close(t[i], torch.tensor(want, dtype=torch.float32))


def test_sincos_op_adds_over_leading_axes():
    inferred, out, module = run_op("sincos_position_embedding", {"x": sym("B", 3, 6, 8)},
                                   {"grid": [2, 3]})
    assert inferred == {"out": sym("B", 3, 6, 8)}
    x = torch.zeros(2, 3, 6, 8)
    torch.testing.assert_close(module(x), sincos_2d(8, 2, 3).expand(2, 3, 6, 8))
    assert "table" not in module.state_dict()                        # fixed, not saved


def test_sincos_grid_must_match():
    with pytest.raises(ShapeError, match=r"input 'x' tokens: expected 9, got 6 \(grid 3x3\)"):
        get("sincos_position_embedding").infer({"x": sym("B", 6, 8)}, {"grid": [3, 3]})
    with pytest.raises(ShapeError, match="divisible by 4"):
        get("sincos_position_embedding").infer({"x": sym("B", 6, 6)}, {"grid": [2, 3]})


# ---- random_masking -------------------------------------------------------------------------

@pytest.mark.parametrize("n,ratio", [(49, 0.75), (64, 0.5), (20, 0.8), (49, 0.3), (5, 0.99)])
def test_masking_keeps_floor_n_times_one_minus_r_per_sample(n, ratio):
    x = torch.randn(4, n, 3)
    tokens, mask, ids = RandomMasking(ratio)(x)
    keep = max(1, math.floor(round(n * (1 - ratio), 9)))
    assert tokens.shape == (4, keep, 3)
    assert (mask.sum(dim=1) == n - keep).all()                      # per sample
    for b in range(4):
        # the kept tokens are x at the unmasked positions, in the order ids_restore says
        full = torch.cat([tokens[b], torch.zeros(n - keep, 3)])[ids[b]]
        kept = mask[b] == 0
        torch.testing.assert_close(full[kept], x[b][kept])
        assert sorted(ids[b].tolist()) == list(range(n))


def test_masking_differs_between_samples_and_follows_the_rng():
    x = torch.randn(8, 49, 2)
    torch.manual_seed(1)
    _, m1, _ = RandomMasking(0.75)(x)
    torch.manual_seed(1)
    _, m2, _ = RandomMasking(0.75)(x)
    assert torch.equal(m1, m2)
    assert len({tuple(r.tolist()) for r in m1}) > 1


def test_masking_ratio_zero_is_the_identity_and_ratio_is_read_each_forward():
    x = torch.randn(2, 6, 3)
    m = RandomMasking(0.5)
    assert m(x)[0].shape == (2, 3, 3)
    m.ratio = 0.0                                                    # as set_schedules does
    tokens, mask, ids = m(x)
    assert torch.equal(tokens, x) and not mask.any()
    assert torch.equal(ids, torch.arange(6).expand(2, 6))
    m.ratio = 1.0
    with pytest.raises(ValueError, match=r"expected a ratio in \[0, 1\), got 1.0"):
        m(x)


def test_kept_count_absorbs_float_error():
    assert 20 * (1 - 0.8) < 4 and kept_count(20, 0.8) == 4
    assert kept_count(49, 0.75) == 12 and kept_count(4, 0.99) == 1


def test_masking_shape_rule_names_the_run_time_size():
    op = get("random_masking")
    out = op.infer({"x": sym("B", 49, 8)}, {"ratio": 0.75, "kept": "L"})
    assert out == {"tokens": (Dim.of("B"), Dim.of("L"), Dim.of(8)), "mask": sym("B", 49),
                   "ids_restore": sym("B", 49)}
    with pytest.raises(ShapeError, match=r"'ratio': expected a value in \[0, 1\), got 1.5"):
        op.infer({"x": sym("B", 49, 8)}, {"ratio": 1.5})
    assert op.params["ratio"]["x-schedule"] and op.params["kept"]["x-dynamic-size"]


# ---- class_tokens ---------------------------------------------------------------------------

def test_class_tokens_init_and_noise_only_in_training():
    torch.manual_seed(0)
    inferred, out, m = run_op("class_tokens", {"x": sym("B", 7, 16)},
                              {"num_tokens": 50, "dim": 40})
    assert inferred == {"out": sym("B", 50, 40)}
    assert abs(float(m.tokens.detach().std()) - 0.002) < 0.0003
    x = torch.zeros(3, 7, 16)
    m.eval()
    assert torch.equal(m(x), m.tokens.expand(3, 50, 40))
    m.noise = 0.1
    assert torch.equal(m(x), m.tokens.expand(3, 50, 40))            # eval: no noise
    m.train()
    diff = (m(x) - m.tokens).detach()
    assert abs(float(diff.std()) - 0.1) < 0.01
    assert not torch.equal(diff[0], diff[1])                         # per sample


# ---- transformer blocks ---------------------------------------------------------------------

def test_block_equals_explicit_attention():
    torch.manual_seed(0)
    blk = Block(8, heads=2, mlp_ratio=2.0)
    x = torch.randn(3, 5, 8)
    h = blk.norm1(x)
    q, k, v = blk.qkv(h).split(8, dim=-1)
    q, k, v = (t.reshape(3, 5, 2, 4).transpose(1, 2) for t in (q, k, v))   # (s, heads, n, e)
    a = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1) @ v            # scale 1/sqrt(4)
    y = x + blk.proj(a.transpose(1, 2).reshape(3, 5, 8))
    y = y + blk.fc2(torch.nn.functional.gelu(blk.fc1(blk.norm2(y))))
    torch.testing.assert_close(blk(x), y, rtol=1e-5, atol=1e-5)
    assert blk.fc1.out_features == 16


def test_encoder_with_and_without_class_tokens():
    inferred, out, m = run_op("transformer_encoder",
                              {"tokens": sym("B", 5, 8), "cls": sym("B", 3, 8)},
                              {"depth": 2, "heads": 2, "mlp_ratio": 2})
    assert inferred == {"tokens": sym("B", 5, 8), "cls": sym("B", 3, 8)}
    assert all(not l.bias.detach().any() for l in m.modules() if isinstance(l, torch.nn.Linear))
    # the split is [cls ; tokens]: the class part of the joint sequence comes back as cls
    tokens, cls = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    t_out, c_out = m(tokens, cls)
    joint_t, joint_c = m(torch.cat([cls, tokens], 1), None)
    torch.testing.assert_close(c_out, joint_t[:, :3])
    torch.testing.assert_close(t_out, joint_t[:, 3:])
    assert joint_c.shape == (2, 0, 8)
    inferred, _, _ = run_op("transformer_encoder", {"tokens": sym("B", 5, 8)},
                            {"depth": 1, "heads": 2})
    assert inferred["cls"] == sym("B", 0, 8)


def test_encoder_errors():
    op = get("transformer_encoder")
    with pytest.raises(ShapeError, match="'heads': expected a divisor of the token size 8, got 3"):
        op.infer({"tokens": sym("B", 5, 8)}, {"depth": 1, "heads": 3})
    with pytest.raises(ShapeError, match=r"input 'cls': expected \(b, k, d\) = \(B, K, 8\)"):
        op.infer({"tokens": sym("B", 5, 8), "cls": sym("B", 3, 6)}, {"depth": 1, "heads": 2})


def test_encoder_passes_a_run_time_size_through():
    out = get("transformer_encoder").infer(
        {"tokens": (Dim.of("B"), Dim.of("L"), Dim.of(8)), "cls": sym("B", 3, 8)},
        {"depth": 1, "heads": 2})
    assert out["tokens"] == (Dim.of("B"), Dim.of("L"), Dim.of(8))


def test_vit_decoder_decodes_each_slot_alone():
    inferred, _, m = run_op("vit_decoder", {"x": sym("B", 3, 4, 8)},
                            {"depth": 1, "heads": 2, "mlp_ratio": 2, "out_features": 12})
    assert inferred == {"out": sym("B", 3, 4, 12)}
    x = torch.randn(2, 3, 4, 8)
    full = m(x)
    torch.testing.assert_close(m(x[:, 1:2]), full[:, 1:2], rtol=1e-5, atol=1e-6)


# ---- patchify / unpatchify ------------------------------------------------------------------

@pytest.mark.parametrize("c,h,w,p", [(3, 35, 35, 5), (4, 8, 12, 4), (1, 6, 6, 1)])
def test_unpatchify_inverts_patchify(c, h, w, p):
    x = torch.randn(2, c, h, w)
    tokens = patchify(x, p)
    assert tokens.shape == (2, (h // p) * (w // p), p * p * c)
    assert torch.equal(unpatchify(tokens, p, h), x)
    # channels fastest within a patch: token 0 holds x[:, :, :p, :p] as (p q c)
    assert torch.equal(tokens[:, 0], x[:, :, :p, :p].permute(0, 2, 3, 1).reshape(2, -1))
