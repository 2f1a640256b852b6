import pytest
import torch

from ocdsl.ops import get
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym


def test_sa_encoder_shape_and_relu_after_last():
    inferred, out, module = run_op("conv_stack", {"x": sym("B", 3, 9, 9)},
                                   {"channels": [4, 4, 4, 4], "kernel": 5})
    assert inferred["out"] == sym("B", 4, 9, 9)
    assert (out["out"] >= 0).all()                     # ReLU after every conv, the last too
    assert isinstance(module.layers[-1], torch.nn.ReLU)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("kernel,stride,size", [(3, 2, 9), (5, 2, 8), (4, 1, 7), (3, [1, 2], 7)])
def test_strided_and_even_kernels(kernel, stride, size):
    run_op("conv_stack", {"x": sym("B", 2, size, size + 1)},
           {"channels": [3, 5], "kernel": kernel, "stride": stride})


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_norms_and_no_last_activation(norm):
    _, out, module = run_op("conv_stack", {"x": sym("B", 2, 6, 6)},
                            {"channels": [8, 3], "kernel": 3, "norm": norm,
                             "activation": "gelu", "last_activation": False})
    assert isinstance(module.layers[-1], torch.nn.Conv2d)
    assert (out["out"] < 0).any()


def test_rank_error_says_expected_and_got():
    with pytest.raises(ShapeError, match=r"expected 4 axes .*got 3 axes \(B, 3, 9\)"):
        get("conv_stack").infer({"x": sym("B", 3, 9)}, {"channels": [4]})


def test_stride_list_length_error():
    with pytest.raises(ShapeError, match=r"expected 2 values .*got 3"):
        get("conv_stack").infer({"x": sym("B", 3, 9, 9)}, {"channels": [4, 4], "stride": [1, 1, 2]})
