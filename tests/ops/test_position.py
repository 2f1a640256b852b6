import pytest
import torch

from ocdsl.ops import get
from ocdsl.ops.position import SoftPositionEmbedding, build_grid
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym


def test_grid_corners():
    g = build_grid(5, 7)
    assert g.shape == (5, 7, 4)
    torch.testing.assert_close(g[0, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]))
    torch.testing.assert_close(g[0, -1], torch.tensor([0.0, 1.0, 1.0, 0.0]))  # x runs along W
    torch.testing.assert_close(g[-1, 0], torch.tensor([1.0, 0.0, 0.0, 1.0]))  # y runs along H
    torch.testing.assert_close(g[-1, -1], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(g[2, 3], torch.tensor([0.5, 0.5, 0.5, 0.5]))


def test_shape_rule_and_added_embedding():
    inferred, out, module = run_op("soft_position_embedding", {"x": sym("B", 6, 5, 7)}, {})
    assert inferred["out"] == sym("B", 6, 5, 7)
    x = torch.zeros(1, 6, 5, 7)
    y = module(x)
    # On a zero input the output is Linear(grid): bias + W @ [y, x, 1-y, 1-x].
    corner = module.proj.bias + module.proj.weight @ torch.tensor([0.0, 0.0, 1.0, 1.0])
    torch.testing.assert_close(y[0, :, 0, 0], corner)
    assert "grid" not in module.state_dict()          # derived, not a weight


def test_other_resolution_at_run_time():
    m = SoftPositionEmbedding(3, [4, 4])
    assert m(torch.zeros(2, 3, 6, 5)).shape == (2, 3, 6, 5)


def test_rank_error():
    with pytest.raises(ShapeError, match="expected 4 axes.*got 3"):
        get("soft_position_embedding").infer({"x": sym("B", 16, 8)}, {})


def test_learned_position_embedding_adds_a_trunc_normal_parameter():
    inferred, out, module = run_op("learned_position_embedding", {"x": sym("B", 16, 8)}, {})
    assert inferred["out"] == sym("B", 16, 8)
    assert module.pos.shape == (16, 8) and "pos" in module.state_dict()
    x = torch.randn(2, 16, 8)
    torch.testing.assert_close(module(x), x + module.pos)
    small = get("learned_position_embedding").module(4096, 16, std=0.02)
    assert abs(float(small.pos.std()) - 0.02) < 0.003
    wide = get("learned_position_embedding").module(4096, 16, std=1.5)
    assert float(wide.pos.abs().max()) <= 2.0 < 3 * 1.5                # truncated to [-2, 2] (timm)
    with pytest.raises(ShapeError, match="expected 3 axes"):
        get("learned_position_embedding").infer({"x": sym("B", 6, 5, 7)}, {})
