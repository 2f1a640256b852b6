import pytest
import torch

from ocdsl.ops import get
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym


def test_sa_feature_mlp_pre_norm():
    inferred, _, module = run_op("mlp", {"x": sym("B", 35, 8)},
                                 {"sizes": [8, 8], "norm": "pre"})
    assert inferred["out"] == sym("B", 35, 8)
    assert isinstance(module.norm, torch.nn.LayerNorm)
    assert isinstance(module.layers[-1], torch.nn.Linear)   # no activation after the last


@pytest.mark.parametrize("rank", [2, 4])
def test_any_rank_and_final_activation(rank):
    shape = ("B",) + (3,) * (rank - 2) + (5,)
    inferred, out, _ = run_op("mlp", {"x": sym(*shape)},
                              {"sizes": [7, 2], "final_activation": True})
    assert inferred["out"][-1].value == 2 and len(inferred["out"]) == rank
    assert (out["out"] >= 0).all()


def test_residual():
    _, _, module = run_op("mlp", {"x": sym("B", 4, 6)},
                          {"sizes": [12, 6], "residual": True, "norm": "pre"})
    for p in module.layers.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 4, 6)
    torch.testing.assert_close(module(x), x)


def test_residual_size_error():
    with pytest.raises(ShapeError, match="expected the last size to equal the input size 6, got"):
        get("mlp").infer({"x": sym("B", 4, 6)}, {"sizes": [12, 5], "residual": True})


def test_layer_norm():
    inferred, out, module = run_op("layer_norm", {"x": sym("B", 3, 5)}, {"eps": 1e-3})
    assert inferred["out"] == sym("B", 3, 5)
    assert module.eps == 1e-3
    torch.testing.assert_close(out["out"].mean(-1), torch.zeros(2, 3), atol=1e-5, rtol=0)


def test_rank_zero_error():
    with pytest.raises(ShapeError, match="expected at least 1 axes.*got 0"):
        get("layer_norm").infer({"x": ()}, {})
