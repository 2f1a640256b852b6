"""background_autoencoder (AST-Seg's background model, from AE-NE): the block schedule and
channel presets of the authors' code, the block structure (coordinate channels, bias-free
conv, GroupNorm(c/16), CELU), the 0-255 input scaling, shapes, ranges, gradients, a hand
parameter count, and that background_loss training fits a fixed background."""

import pytest
import torch
from torch import nn

from ocdsl.losses import functions as fn
from ocdsl.ops import get
from ocdsl.ops.background import (BackgroundAutoencoder, background_schedule,
                                  coordinate_channels)
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym

TINY = {"encoder_channels": [3, 16, 16, 16, 16], "generator_channels": [4, 16, 16, 16, 16]}


def _convs(seq: nn.Sequential):
    return [block.conv for block in seq]


def test_shape_rule_matches_module_and_outputs_are_in_0_1():
    image = torch.rand(2, 3, 16, 16)
    inferred, out, _ = run_op("background_autoencoder", {"image": sym("B", 3, 16, 16)}, TINY,
                              {"image": image})
    assert inferred == {"image": sym("B", 3, 16, 16), "error": sym("B", 1, 16, 16)}
    for port in ("image", "error"):
        assert out[port].min() > 0 and out[port].max() < 1


def test_schedule_128_and_64_px():
    s128 = background_schedule(128, 128)
    assert [s.size_in[0] for s in s128] == [128, 64, 32, 16, 8, 4, 2]
    assert [(s.kernel[0], s.stride[0], s.padding[0]) for s in s128] == (
        [(5, 2, 2)] * 5 + [(4, 2, 1), (2, 1, 0)])
    assert s128[-1].size_out == (1, 1)
    s64 = background_schedule(64, 64)
    assert len(s64) == 6 and [s.kernel[0] for s in s64] == [5, 5, 5, 5, 4, 2]
    # 200 px and more: stride 3 while a side is above 5 pixels, then one kernel (no k4 s2).
    big = background_schedule(200, 320)
    assert [s.size_in for s in big] == [(200, 320), (67, 107), (23, 36), (8, 12), (3, 4)]
    assert big[0].stride == (3, 3) and big[-1].kernel == (3, 4) and big[-1].size_out == (1, 1)


def test_transposed_steps_restore_the_exact_size():
    for h in range(2, 40, 3):
        for w in (2, 7, 13, 31, 64, 250):
            steps = background_schedule(h, w)
            assert steps[0].size_in == (h, w) and steps[-1].size_out == (1, 1)
            for s in steps:
                for a in (0, 1):
                    back = ((s.size_out[a] - 1) * s.stride[a] - 2 * s.padding[a]
                            + s.kernel[a] + s.output_padding[a])
                    assert back == s.size_in[a], (h, w, s)
                    assert 0 <= s.output_padding[a] < s.stride[a]


def test_non_square_images_round_trip():
    m = BackgroundAutoencoder(24, 40, [3, 16, 16, 16, 16, 16], [4, 16, 16, 16, 16, 16])  # 5 blocks
    img, err = m(torch.rand(1, 3, 24, 40))
    assert img.shape == (1, 3, 24, 40) and err.shape == (1, 1, 24, 40)


def test_presets_are_the_papers_lists():
    op = get("background_autoencoder")
    args = op.init_args({"image": sym("B", 3, 128, 128)}, {})          # default: complex
    assert args == {"height": 128, "width": 128,
                    "encoder_channels": [3, 64, 320, 640, 640, 320, 16, 16],
                    "generator_channels": [4, 144, 640, 1280, 640, 320, 16, 16]}
    clevr = op.init_args({"image": sym("B", 3, 128, 128)}, {"preset": "simple"})
    assert clevr["encoder_channels"] == [3, 64, 160, 320, 160, 160, 32, 16]
    assert clevr["generator_channels"] == [4, 144, 256, 512, 256, 256, 32, 16]
    # 64 px (6 blocks), [AST] background/models.py n_blocks == 6
    c64 = op.init_args({"image": sym("B", 3, 64, 64)}, {"preset": "complex"})
    assert c64["encoder_channels"] == [3, 64, 160, 320, 160, 16, 16]
    assert c64["generator_channels"] == [4, 144, 640, 1280, 640, 16, 16]
    s64 = op.init_args({"image": sym("B", 3, 64, 64)}, {"preset": "simple"})
    assert s64["encoder_channels"] == [3, 64, 160, 320, 160, 32, 16]
    assert s64["generator_channels"] == [4, 144, 256, 512, 256, 32, 16]
    own = op.init_args({"image": sym("B", 3, 64, 64)},
                       {"encoder_channels": [3, 32, 32, 32, 32, 16, 16]})
    assert own["encoder_channels"] == [3, 32, 32, 32, 32, 16, 16]
    assert own["generator_channels"] == c64["generator_channels"]    # the default preset's


def test_64_px_structure_and_hand_parameter_count():
    """64 px, simple preset: 6 encoder blocks k5 s2 p2 (x4), k4 s2 p1, k2; bias-free convs
    over [x ; 2 coords]; GroupNorm(c // 16) + CELU everywhere but the last generator block."""
    enc = [3, 64, 160, 320, 160, 32, 16]
    gen = [4, 144, 256, 512, 256, 32, 16]
    m = BackgroundAutoencoder(64, 64, enc, gen)
    econv, gconv = _convs(m.encoder), _convs(m.generator)
    assert [c.kernel_size for c in econv] == [(5, 5)] * 4 + [(4, 4), (2, 2)]
    assert [c.stride for c in econv] == [(2, 2)] * 5 + [(1, 1)]
    assert [c.padding for c in econv] == [(2, 2)] * 4 + [(1, 1), (0, 0)]
    assert [c.in_channels for c in econv] == [c + 2 for c in enc[:-1]]
    assert [c.out_channels for c in econv] == enc[1:]
    assert all(isinstance(c, nn.ConvTranspose2d) for c in gconv)
    assert [c.kernel_size for c in gconv] == [(2, 2), (4, 4)] + [(5, 5)] * 4
    assert [c.in_channels for c in gconv] == [c + 2 for c in gen[:0:-1]]   # 18, 34, 258, ...
    assert [c.out_channels for c in gconv] == gen[-2::-1]                  # 32, 256, ..., 4
    assert all(c.bias is None for c in econv + gconv)
    norms = [b.norm for b in list(m.encoder) + list(m.generator)]
    assert [n.num_groups for n in norms[:-1]] == [4, 10, 20, 10, 2, 1, 2, 16, 32, 16, 9]
    assert isinstance(norms[-1], nn.Identity) and isinstance(m.generator[-1].act, nn.Identity)
    assert all(isinstance(b.act, nn.CELU) for b in list(m.encoder) + list(m.generator)[:-1])
    hand = (
        # encoder: (c_in + 2) * c_out * k * k + GroupNorm (weight + bias)
        5 * 64 * 25 + 2 * 64
        + 66 * 160 * 25 + 2 * 160
        + 162 * 320 * 25 + 2 * 320
        + 322 * 160 * 25 + 2 * 160
        + 162 * 32 * 16 + 2 * 32
        + 34 * 16 * 4 + 2 * 16
        # generator, 1 x 1 -> 64 x 64
        + 18 * 32 * 4 + 2 * 32
        + 34 * 256 * 16 + 2 * 256
        + 258 * 512 * 25 + 2 * 512
        + 514 * 256 * 25 + 2 * 256
        + 258 * 144 * 25 + 2 * 144
        + 146 * 4 * 25                     # last block: no norm, no bias
    )
    assert sum(p.numel() for p in m.parameters()) == hand
    assert not any("coords" in k for k in m.state_dict())         # buffers, not saved


def test_coordinate_channels():
    c = coordinate_channels(3, 2, dtype=torch.float64)
    assert c.shape == (1, 2, 3, 2)
    torch.testing.assert_close(c[0, 0], torch.tensor([[-0.5, -0.5], [0.0, 0.0], [0.5, 0.5]],
                                                     dtype=torch.float64))   # rows
    torch.testing.assert_close(c[0, 1], torch.tensor([[-0.5, 0.5]] * 3, dtype=torch.float64))
    assert coordinate_channels(1, 1).flatten().tolist() == [1.0, 1.0]   # size-1 axis -> 1
    assert coordinate_channels(1, 3)[0, 0].flatten().tolist() == [1.0, 1.0, 1.0]


def test_encoder_sees_255_scaled_image_with_coordinates_and_outputs_are_sigmoids():
    m = BackgroundAutoencoder(16, 16, **TINY)
    seen = {}
    m.encoder[0].conv.register_forward_hook(lambda mod, inp, out: seen.update(first=inp[0]))
    m.encoder[2].conv.register_forward_hook(lambda mod, inp, out: seen.update(third=inp[0]))
    m.generator[-1].conv.register_forward_hook(lambda mod, inp, out: seen.update(raw=out))
    image = torch.rand(2, 3, 16, 16)
    img, err = m(image)
    first = seen["first"]
    assert first.shape == (2, 5, 16, 16)
    torch.testing.assert_close(first[:, :3], 255 * image)
    torch.testing.assert_close(first[:, 3:], coordinate_channels(16, 16).expand(2, -1, -1, -1))
    torch.testing.assert_close(seen["third"][:, -2:],
                               coordinate_channels(4, 4).expand(2, -1, -1, -1))
    torch.testing.assert_close(img, torch.sigmoid(seen["raw"][:, :3]))
    torch.testing.assert_close(err, torch.sigmoid(seen["raw"][:, 3:]))


def test_gradient_reaches_every_parameter():
    m = BackgroundAutoencoder(16, 16, **TINY)
    image = torch.rand(2, 3, 16, 16)
    img, err = m(image)
    fn.background_loss(img, err, image).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_a_few_hundred_steps_fit_a_fixed_background():
    """Adam on one fixed smooth background: the robust loss falls more than 10x and the
    reconstruction error from ~0.14 to below 0.01 per channel (measured ~1e-3, ~1 s)."""
    h = w = 16
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    bg = torch.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy,
                      0.5 + 0.2 * torch.sin(6 * xx) * torch.cos(4 * yy)])
    image = bg[None].expand(4, -1, -1, -1)
    m = BackgroundAutoencoder(h, w, **TINY)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    img, err = m(image)
    first_loss, first_err = fn.background_loss(img, err, image).item(), (img - image).abs().mean()
    for _ in range(300):
        img, err = m(image)
        loss = fn.background_loss(img, err, image)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        img, err = m(image)
        last_loss = fn.background_loss(img, err, image).item()
    assert first_err > 0.1
    assert last_loss < first_loss / 10
    assert (img - image).abs().mean() < 0.01


@pytest.mark.parametrize("shape, params, match", [
    (sym("B", 3, 16), {}, "expected 4 axes"),
    (sym("B", 4, 64, 64), {}, r"expected 3 channels \(RGB\), got \(B, 4, 64, 64\)"),
    (sym("B", 3, "H", 64), {}, "expected a fixed h and w"),
    (sym("B", 3, 16, 16), {}, r"expected a resolution whose schedule has 5, 6 or 7 blocks.*"
                              r"got \(B, 3, 16, 16\) \(4 blocks\)"),
    (sym("B", 3, 64, 64), {"encoder_channels": [3, 16, 16, 16]},
     r"'encoder_channels': expected 7 values.*64x64 images take 6 blocks.*got 4"),
    (sym("B", 3, 16, 16), {**TINY, "encoder_channels": [1, 16, 16, 16, 16]},
     r"'encoder_channels': expected 3 as the first value .*got 1"),
    (sym("B", 3, 16, 16), {**TINY, "generator_channels": [3, 16, 16, 16, 16]},
     r"'generator_channels': expected 4 as the first value .*got 3"),
    (sym("B", 3, 16, 16), {**TINY, "generator_channels": [4, 16, 16, 16, 8]},
     r"expected the latent size 16 .*got 8"),
    (sym("B", 3, 16, 16), {**TINY, "encoder_channels": [3, 50, 16, 16, 16]},
     r"expected widths divisible by their GroupNorm group count.*got 50 \(3 groups\)"),
])
def test_shape_errors_say_expected_and_got(shape, params, match):
    with pytest.raises(ShapeError, match=match):
        get("background_autoencoder").infer({"image": shape}, params)


def test_registry_entry():
    op = get("background_autoencoder")
    assert [p.name for p in op.inputs] == ["image"] and op.outputs == ("image", "error")
    assert op.symmetries == ()        # coordinate channels: not translation-equivariant
    assert set(op.params) == {"preset", "encoder_channels", "generator_channels"}
    with pytest.raises(ValueError):
        BackgroundAutoencoder(16, 16, [3, 16, 16], [4, 16, 16])   # 4 blocks need 5 values
