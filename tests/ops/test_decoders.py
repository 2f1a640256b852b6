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


# ---- broadcast-convolution folding (fold_broadcast): exact in float64 ------------------------

from ocdsl.ops.decoders import SpatialBroadcastDecoder, border_classes, fold_classes, tap_mask  # noqa: E402

MAIN_JOB = dict(slot_size=64, resolution=[35, 35], channels=[32, 32, 32], out_channels=4, kernel=5)
FOLD_CASES = {
    "main_job_35x35_k5": (MAIN_JOB, 2, 4),
    "odd_grid_3x7_k5": (dict(slot_size=6, resolution=[3, 7], channels=[4, 5], out_channels=4,
                             kernel=5), 2, 3),
    "grid_1x2_k5": (dict(slot_size=5, resolution=[1, 2], channels=[3], out_channels=2, kernel=5), 2, 3),
    "k3_9x8": (dict(slot_size=6, resolution=[9, 8], channels=[4, 4], out_channels=4, kernel=3), 2, 3),
    "k7_9x11": (dict(slot_size=6, resolution=[9, 11], channels=[4, 4], out_channels=4, kernel=7), 2, 3),
    "k4_even_same_10x9": (dict(slot_size=6, resolution=[10, 9], channels=[4], out_channels=4,
                               kernel=4), 2, 3),
    "k7_first_k3_after": (dict(slot_size=6, resolution=[10, 9], channels=[4, 4], out_channels=4,
                               kernel=[7, 3], out_kernel=5), 2, 3),
    # ConvTranspose2d first layer (the CLEVR decoder: 8x8 broadcast, ConvT(5, stride 2) ...)
    "clevr_convT_8x8_s2": (dict(slot_size=8, resolution=[32, 32], broadcast=[8, 8],
                                channels=[4, 4, 4], strides=[2, 2, 1], out_channels=4, kernel=5), 2, 3),
    "convT_s3_2x5_k5": (dict(slot_size=6, resolution=[6, 15], broadcast=[2, 5], channels=[4, 4],
                             strides=[3, 1], out_channels=4, kernel=[5, 3]), 2, 2),
}


def _fwd_bwd(module, slots, g_rgb, g_alpha):
    s = slots.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    rgb, alpha = module(s)
    ((rgb * g_rgb).sum() + (alpha * g_alpha).sum()).backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    return rgb, alpha, s.grad, grads


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", sorted(FOLD_CASES))
def test_folded_decoder_equals_unfolded_in_float64(case):
    kw, b, k = FOLD_CASES[case]
    plain = SpatialBroadcastDecoder(**kw).double()
    folded = SpatialBroadcastDecoder(**kw, fold_broadcast=True).double()
    # Same parameters, same state-dict keys: checkpoints interchange.
    assert list(folded.state_dict()) == list(plain.state_dict())
    folded.load_state_dict(plain.state_dict())
    with torch.no_grad():  # non-zero biases, so a bias counted per slot or per class would show
        for p in plain.parameters():
            if p.ndim == 1:
                p.normal_()
        folded.load_state_dict(plain.state_dict())
    slots = torch.randn(b, k, kw["slot_size"], dtype=torch.float64)
    rgb, alpha = plain(slots)
    g_rgb, g_alpha = torch.randn_like(rgb), torch.randn_like(alpha)
    ref = _fwd_bwd(plain, slots, g_rgb, g_alpha)
    got = _fwd_bwd(folded, slots, g_rgb, g_alpha)
    assert ref[0].abs().max() > 1e-3 and ref[2].abs().max() > 1e-3   # not trivially zero
    torch.testing.assert_close(got[0], ref[0], rtol=0, atol=1e-10)   # rgb
    torch.testing.assert_close(got[1], ref[1], rtol=0, atol=1e-10)   # alpha logits
    torch.testing.assert_close(got[2], ref[2], rtol=0, atol=1e-10)   # d/d slots
    assert set(got[3]) == set(ref[3]) and len(ref[3]) == len(list(plain.parameters()))
    for name, g in ref[3].items():                                    # every parameter
        assert g is not None and got[3][name] is not None, name
        torch.testing.assert_close(got[3][name], g, rtol=0, atol=1e-10, msg=name)


def test_folded_decoder_is_cheaper_and_takes_the_folded_path(monkeypatch):
    """The folded module never runs the first layer on a (b k) batch: it convolves the one
    position-embedding image only."""
    m = SpatialBroadcastDecoder(**MAIN_JOB, fold_broadcast=True)
    batches = []
    m.layers[0].register_forward_hook(lambda mod, inp, out: batches.append(inp[0].shape[0]))
    m(torch.randn(2, 4, 64))
    assert batches == [1]


def test_fold_classes_counts_on_a_capped_grid_as_on_the_whole_grid():
    """fold_classes caps each side at 2 * kernel + 2 cells; the count equals the one of
    the whole grid for every side up to three times the cap, odd and even kernels, strides
    1 to 3."""
    from ocdsl.ops.decoders import _fold_masks
    from ocdsl.shapes import ShapeError
    for kernel in range(1, 10):
        for stride in (1, 2, 3):
            for n in range(1, 3 * (2 * kernel + 2) + 1):
                try:
                    rows, cols = _fold_masks((n, n + 1), kernel, stride)
                except ShapeError:  # an even kernel at stride > 1
                    continue
                whole = (len(border_classes(rows)[0]), len(border_classes(cols)[0]))
                assert fold_classes((n, n + 1), kernel, stride) == whole, (kernel, stride, n)


def test_fold_classes_of_a_huge_grid_allocates_nothing_of_its_size():
    """A spec's 2**40-pixel side (validate runs the rewrite) is counted, not allocated."""
    assert fold_classes((2**40, 2**40 + 1), 5, 1) == (5, 5)
    assert fold_classes((2**40, 3), 5, 2) == fold_classes((12, 3), 5, 2)


def test_tap_masks_and_border_classes():
    # 'same' 5-tap conv on 7 positions: rows 0, 1 lose 2 / 1 taps on the left, rows 5, 6 on
    # the right, rows 2-4 are interior: 5 classes.
    mask = tap_mask(7, 7, 5)
    assert mask.sum(1).tolist() == [3, 4, 5, 5, 5, 4, 3]
    assert mask[0].tolist() == [False, False, True, True, True]
    classes, index = border_classes(mask)
    assert len(classes) == 5 and index.tolist() == [0, 1, 2, 2, 2, 3, 4]
    assert torch.equal(classes[index].bool(), mask)
    # Fewer positions than taps: 3 positions, 3 distinct classes, each with 3 valid taps.
    classes, index = border_classes(tap_mask(3, 3, 5))
    assert index.tolist() == [0, 1, 2] and classes.sum(1).tolist() == [3.0, 3.0, 3.0]
    # ConvTranspose stride 2, k 5, padding 2 (out[i] gets x[a] through tap u = i + 2 - 2a):
    # interior even outputs use taps 0, 2, 4 and odd ones 1, 3; the borders lose some.
    mask = tap_mask(8, 4, 5, 2, 2, transposed=True)
    assert mask[4].tolist() == [True, False, True, False, True]         # a = 3, 2, 1
    assert mask[3].tolist() == [False, True, False, True, False]        # a = 2, 1
    assert mask[0].tolist() == [True, False, True, False, False]        # a = 1, 0 (not -1)
    assert mask[7].tolist() == [False, False, False, True, False]       # a = 3 (not 4)
    assert fold_classes([35, 35], 5, 1) == (5, 5)
    assert fold_classes([3, 7], 5, 1) == (3, 5)
    m = SpatialBroadcastDecoder(**FOLD_CASES["clevr_convT_8x8_s2"][0], fold_broadcast=True)
    assert fold_classes([8, 8], 5, 2) == (len(m.fold_rows), len(m.fold_cols))
