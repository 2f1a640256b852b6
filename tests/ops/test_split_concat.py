"""split and concat (ocdsl/ops/tensor.py): AST-Seg's channel split of the feature map and
the [coords ; features] estimate."""

import pytest
import torch

from ocdsl.ops import get
from ocdsl.ops.tensor import Concat, Split
from ocdsl.shapes import Dim, ShapeError

from ._helpers import run_op, sym


def test_split_channels_like_ast_seg():
    x = torch.randn(2, 10, 4, 5)
    inferred, out, m = run_op("split", {"input": sym("B", 10, 4, 5)}, {"sizes": [3, 7]},
                              inputs={"input": x})
    assert inferred == {"first": sym("B", 3, 4, 5), "second": sym("B", 7, 4, 5)}
    assert torch.equal(out["first"], x[:, :3]) and torch.equal(out["second"], x[:, 3:])
    assert m.axis == 1                                       # the default


@pytest.mark.parametrize("axis", [-1, 2])
def test_split_last_axis_negative_or_positive(axis):
    x = torch.randn(2, 3, 6)
    inferred, out, _ = run_op("split", {"input": sym("B", 3, 6)}, {"sizes": [4, 2], "axis": axis},
                              inputs={"input": x})
    assert inferred == {"first": sym("B", 3, 4), "second": sym("B", 3, 2)}
    assert torch.equal(out["first"], x[..., :4]) and torch.equal(out["second"], x[..., 4:])


@pytest.mark.parametrize("shape, params, match", [
    (sym("B", 10, 4), {"sizes": [3, 6]},
     r"expected axis 1 of size 3 \+ 6 = 9 \(the sizes\), got 10 in \(B, 10, 4\)"),
    (sym("B", 10, 4), {"sizes": [3, 7], "axis": 3},
     r"expected an axis of input 'input' \(-3 \.\. 2\), got 3"),
    (sym("B", 10, 4), {"sizes": [3, 7], "axis": -4}, r"got -4 for 3 axes"),
    (sym("B", 10, 4), {"sizes": [3, 3, 4]}, "expected exactly 2 sizes, got 3"),
    (sym("B", 10, 4), {"sizes": [1, 1], "axis": 0}, r"expected axis 0 of size 1 \+ 1 = 2 .*got B"),
])
def test_split_errors_say_expected_and_got(shape, params, match):
    with pytest.raises(ShapeError, match=match):
        get("split").infer({"input": shape}, params)


def test_split_schema_takes_exactly_two_sizes():
    jsonschema = pytest.importorskip("jsonschema")
    schema = get("split").params_schema()
    jsonschema.validate({"sizes": ["K", "Z + 1 + S"], "axis": 1}, schema)
    for bad in ({"sizes": [1, 2, 3]}, {"sizes": [4]}, {"axis": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    with pytest.raises(ValueError, match="expected 2 sizes"):
        Split([1, 2, 3])


def test_concat_last_axis_like_the_ast_seg_estimates():
    coords, feats = torch.randn(2, 4, 2), torch.randn(2, 4, 5)
    inferred, out, _ = run_op("concat", {"first": sym("B", 4, 2), "second": sym("B", 4, 5)}, {},
                              inputs={"first": coords, "second": feats})
    assert inferred == {"out": sym("B", 4, 7)}
    assert torch.equal(out["out"][..., :2], coords) and torch.equal(out["out"][..., 2:], feats)


def test_concat_other_axes_and_symbolic_sizes():
    infer = get("concat").infer
    assert infer({"first": sym("B", 3, 8), "second": sym("B", 5, 8)}, {"axis": 1}) == \
        {"out": sym("B", 8, 8)}
    assert infer({"first": sym("B", 3), "second": sym("B", 3)}, {"axis": 0}) == \
        {"out": (Dim(2, ("B",)), Dim.of(3))}
    x, y = torch.randn(1, 3, 2), torch.randn(1, 1, 2)
    assert torch.equal(Concat(axis=-2)(x, y), torch.cat([x, y], dim=1))


@pytest.mark.parametrize("first, second, params, match", [
    (sym("B", 4, 2), sym("B", 5, 3), {}, r"input 'second': expected \(B, 4, 3\) \(all axes but 2 "
                                         r"as in input 'first' \(B, 4, 2\)\), got \(B, 5, 3\)"),
    (sym("B", 4, 2), sym("B", 4), {}, r"expected 3 axes like input 'first' .*got 2 axes"),
    (sym("B", 4, 2), sym("B", 4, 2), {"axis": 3},
     r"expected an axis of input 'first' \(-3 \.\. 2\)"),
    (sym("B", 4), sym("K", 4), {"axis": 0}, r"expected sizes along the axis that add up.*B \+ K"),
])
def test_concat_errors_say_expected_and_got(first, second, params, match):
    with pytest.raises(ShapeError, match=match):
        get("concat").infer({"first": first, "second": second}, params)


def test_split_then_concat_is_the_identity():
    x = torch.randn(2, 9, 3, 3)
    for axis, sizes in ((1, [4, 5]), (-1, [1, 2]), (0, [1, 1])):
        first, second = Split(sizes, axis)(x)
        assert torch.equal(Concat(axis)(first, second), x)


def test_ports_and_no_symmetries_declared():
    split, concat = get("split"), get("concat")
    assert [p.name for p in split.inputs] == ["input"] and split.outputs == ("first", "second")
    assert [(p.name, p.optional) for p in concat.inputs] == [("first", False), ("second", False)]
    assert concat.outputs == ("out",)
    assert split.symmetries == () and concat.symmetries == ()
