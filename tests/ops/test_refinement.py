"""transformer_refinement (AST-Seg): the post-LN encoder without positional encoding whose
projection replaces the K estimates; layers = 0 is the identity ablation; permutation
equivariance over K holds in eval mode and the check catches what breaks it."""

import warnings

import pytest
import torch
import torch.nn.functional as F

from ocdsl.invariance import check_op, format_failures
from ocdsl.ops import get
from ocdsl.ops.refinement import TransformerRefinement
from ocdsl.shapes import ShapeError

from ._helpers import assert_literal, run_op, sym


def test_defaults_are_the_papers():
    """docs/papers.md, AST-Seg: Linear(d -> 256), 6 post-LN layers, 8 heads, ff 512, dropout 0.1, ReLU,
    no final norm, Linear(256 -> d)."""
    d = 3 + 2 + 32
    m = TransformerRefinement(d)
    assert (m.embed.in_features, m.embed.out_features) == (d, 256)
    assert (m.project.in_features, m.project.out_features) == (256, d)
    assert len(m.encoder.layers) == 6 and m.encoder.norm is None
    for layer in m.encoder.layers:
        assert layer.norm_first is False and layer.self_attn.batch_first
        assert layer.self_attn.num_heads == 8 and layer.self_attn.embed_dim == 256
        assert (layer.linear1.in_features, layer.linear1.out_features) == (256, 512)
        assert layer.dropout.p == 0.1 and layer.self_attn.dropout == 0.1
        assert layer.activation is F.relu
    per_layer = (3 * 256 * 256 + 3 * 256) + (256 * 256 + 256) + (256 * 512 + 512) \
        + (512 * 256 + 256) + 2 * 2 * 256
    n = (d * 256 + 256) + 6 * per_layer + (256 * d + d)
    assert sum(p.numel() for p in m.parameters()) == n


def test_registry_defaults_and_shapes():
    inferred, out, m = run_op("transformer_refinement", {"input": sym("B", 4, 7)},
                              {"width": 8, "layers": 1, "heads": 2, "feedforward": 16})
    assert inferred == {"out": sym("B", 4, 7)} and out["out"].shape == (2, 4, 7)
    kwargs = get("transformer_refinement").init_args({"input": sym("B", 10, 37)}, {})
    assert kwargs == {"in_features": 37, "out_features": 37, "width": 256, "layers": 6,
                      "heads": 8, "feedforward": 512, "dropout": 0.1}
    inferred, _, _ = run_op("transformer_refinement", {"input": sym("B", 4, 7)},
                            {"out_features": 3, "width": 4, "layers": 1, "heads": 1,
                             "feedforward": 4})
    assert inferred == {"out": sym("B", 4, 3)}


def test_forward_is_embed_post_ln_layers_project_without_residual():
    """One layer written out by hand: x1 = LN1(e + SA(e)), x2 = LN2(x1 + W2 relu(W1 x1)),
    out = project(x2): the projection replaces the input (no outer residual)."""
    torch.manual_seed(0)
    m = TransformerRefinement(5, width=8, layers=1, heads=2, feedforward=16).eval()
    x = torch.randn(3, 4, 5)
    layer = m.encoder.layers[0]
    with torch.no_grad():
        e = m.embed(x)
        x1 = layer.norm1(e + layer.self_attn(e, e, e, need_weights=False)[0])
        x2 = layer.norm2(x1 + layer.linear2(F.relu(layer.linear1(x1))))
        torch.testing.assert_close(m(x), m.project(x2), atol=1e-5, rtol=1e-5)
    # with grad too: PyTorch's eval fast path is only taken without grad
    torch.testing.assert_close(m(x).detach(), m.project(x2), atol=1e-5, rtol=1e-5)


def test_zero_layers_is_the_identity_ablation():
    inferred, out, m = run_op("transformer_refinement", {"input": sym("B", 3, 6)}, {"layers": 0})
    x = torch.randn(2, 3, 6)
    assert inferred == {"out": sym("B", 3, 6)} and list(m.parameters()) == []
    assert torch.equal(m(x), x)
    kwargs = get("transformer_refinement").init_args({"input": sym("B", 3, 6)}, {"layers": 0})
    assert kwargs == {"in_features": 6, "layers": 0}
    assert_literal(kwargs)


@pytest.mark.parametrize("shape, params, match", [
    (sym("B", 3, 6), {"layers": 0, "out_features": 4},
     r"'out_features': expected 6 \(= d: layers = 0 is the identity\), got 4"),
    (sym("B", 3, 6), {"width": 10, "heads": 4},
     "'width': expected a multiple of heads = 4, got 10"),
    (sym("B", 6), {}, r"expected 3 axes \(B, K, D\)"),
])
def test_errors_say_expected_and_got(shape, params, match):
    with pytest.raises(ShapeError, match=match):
        get("transformer_refinement").infer({"input": shape}, params)
    if "layers" in params or "heads" in params:
        d = shape[-1].value
        with pytest.raises(ValueError, match=match):
            TransformerRefinement(d, **{k: v for k, v in params.items()})


def test_construction_is_silent_and_dropout_acts_in_training_only():
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # e.g. the nested-tensor warning
        m = TransformerRefinement(6, width=8, layers=2, heads=2, feedforward=8, dropout=0.5)
    x = torch.randn(2, 5, 6)
    m.train()
    assert not torch.equal(m(x), m(x))
    m.eval()
    assert torch.equal(m(x), m(x))


# ---- permutation equivariance over K (op_checks example) -------------------------------------

def test_permutation_equivariance_over_k_holds():
    results = check_op("transformer_refinement", examples=15)
    assert [r.property for r in results] == ["permutation_equivariance K"]
    assert all(r.passed for r in results), format_failures(results)


class _SlotIndexEmbedding(TransformerRefinement):
    """Adds a learned embedding per position k: a positional encoding the op must not have."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.index = torch.nn.Parameter(torch.randn(8, kwargs["in_features"]))

    def forward(self, input):
        return super().forward(input + self.index[: input.shape[1]])


class _StuckInTraining(TransformerRefinement):
    """Ignores .eval(): dropout stays on, with masks tied to positions."""

    def train(self, mode=True):
        return super().train(True)


@pytest.mark.parametrize("broken", [_SlotIndexEmbedding, _StuckInTraining])
def test_the_check_catches_a_positional_encoding_and_live_dropout(broken):
    results = check_op("transformer_refinement", examples=15, module=broken)
    (r,) = results
    assert not r.passed and "permutation of K" in r.counterexample
