import pytest
import torch

from ocdsl.ops import get
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym


def test_full_resolution_variant():
    # Tetrominoes: broadcast at full resolution, 3 x Conv(F, 5), Conv(C + 1, 3).
    inferred, out, module = run_op("spatial_broadcast_decoder", {"slots": sym("B", 3, 8)},
                                   {"resolution": [7, 6], "channels": [4, 4, 4], "kernel": 5,
                                    "out_channels": 4})
    assert inferred == {"rgb": sym("B", 3, 3, 7, 6), "alpha_logits": sym("B", 3, 1, 7, 6)}
    convs = [m for m in module.layers if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5)] * 3 + [(3, 3)]


def test_clevr_variant_upsamples():
    # CLEVR: broadcast 8x8 (here 2x2), 4 x ConvT(s2) + ConvT(s1) + out conv -> 16x (32x32).
    inferred, _, module = run_op("spatial_broadcast_decoder", {"slots": sym("B", 2, 4)},
                                 {"resolution": [32, 32], "broadcast": [2, 2],
                                  "channels": [3, 3, 3, 3, 3], "strides": [2, 2, 2, 2, 1],
                                  "kernel": 5, "out_channels": 4})
    assert inferred["rgb"] == sym("B", 2, 3, 32, 32)
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in module.layers) == 4


def test_bad_strides_say_expected_and_got():
    with pytest.raises(ShapeError, match=r"expected the strides \[2, 2, 1\] to take the 8x8 "
                                         r"broadcast grid to the resolution 64x64, got 32x32"):
        get("spatial_broadcast_decoder").infer(
            {"slots": sym("B", 4, 8)},
            {"resolution": [64, 64], "broadcast": [8, 8], "channels": [4, 4, 4],
             "strides": [2, 2, 1], "out_channels": 4})


def test_strides_length_error():
    with pytest.raises(ShapeError, match="expected 2 values.*got 3"):
        get("spatial_broadcast_decoder").infer(
            {"slots": sym("B", 4, 8)},
            {"resolution": [8, 8], "channels": [4, 4], "strides": [1, 1, 1], "out_channels": 4})


def test_slots_are_decoded_independently():
    m = get("spatial_broadcast_decoder").module(slot_size=4, resolution=[5, 5], channels=[3],
                                                out_channels=2)
    slots = torch.randn(2, 3, 4)
    perm = torch.tensor([1, 2, 0])
    rgb, alpha = m(slots)
    rgb_p, alpha_p = m(slots[:, perm])
    torch.testing.assert_close(rgb_p, rgb[:, perm])
    torch.testing.assert_close(alpha_p, alpha[:, perm])
