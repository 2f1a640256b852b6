"""AST-Seg rendering ops: latent_split (latent layout, clamp, scale squashing, glimpse
boxes), glimpse_generator (the authors' layer stack) and spatial_transformer (a glimpse
lands on the box latent_split gives)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ocdsl.ops import get
from ocdsl.ops.glimpse import (GlimpseGenerator, LatentSplit, SpatialTransformer,
                               default_glimpse_channels, group_count)
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym


def pixel_centres(n: int) -> torch.Tensor:
    """Normalized centres of n pixels, align_corners=False: (2j + 1) / n - 1."""
    return (2 * torch.arange(n, dtype=torch.float64) + 1) / n - 1


# ---- latent_split -----------------------------------------------------------------------------

@pytest.mark.parametrize("scaling, s", [("isotropic", 1), ("anisotropic", 2)])
def test_latent_split_shape_rule_matches_module(scaling, s):
    inferred, out, _ = run_op("latent_split", {"input": sym("B", 5, 3 + s + 7)},
                              {"scaling": scaling, "what": 7})
    assert inferred == {"position": sym("B", 5, 2), "scale": sym("B", 5, 2),
                        "alpha": sym("B", 5), "log_alpha": sym("B", 5),
                        "what": sym("B", 5, 7), "boxes": sym("B", 5, 4)}


@pytest.mark.parametrize("scaling", ["isotropic", "anisotropic"])
def test_latent_split_reads_the_paper_order(scaling):
    """[x, y, s(S), alpha, z_what]: alpha at index 2 + S for both scalings (the code's fixed
    index 4 would read z_what[0] under isotropic scaling)."""
    s = 1 if scaling == "isotropic" else 2
    z = torch.tensor([10.0, 20.0, 30.0])
    scale_latents = torch.tensor([0.0, 2.0][:s])
    row = torch.cat([torch.tensor([0.25, -0.5]), scale_latents, torch.tensor([1.5]), z])
    position, scale, alpha, log_alpha, what, boxes = LatentSplit(3, scaling)(row.view(1, 1, -1))
    torch.testing.assert_close(position[0, 0], torch.tensor([0.25, -0.5]))
    sig = torch.sigmoid(scale_latents)
    expected_scale = 1.3 + (24 - 1.3) * sig
    if s == 1:
        expected_scale = expected_scale.repeat(2)                  # same s on both axes
    torch.testing.assert_close(scale[0, 0], expected_scale)
    assert log_alpha.item() == 1.5 and alpha.item() == pytest.approx(math.exp(1.5))
    torch.testing.assert_close(what[0, 0], z)


def test_latent_split_scale_range_and_extremes():
    m = LatentSplit(1, "anisotropic", scale_range=[2.0, 10.0])
    row = torch.tensor([[[0.0, 0.0, -200.0, 200.0, 0.0, 0.0]]])
    scale = m(row)[1][0, 0]
    assert scale.tolist() == [2.0, 10.0]                          # lo + (hi - lo) * {0, 1}
    assert m(torch.zeros(1, 1, 6))[1][0, 0].tolist() == [6.0, 6.0]   # sigmoid(0) = 1/2


def test_latent_split_clamps_position_like_the_code():
    """Hard clamp to [-1, 1]: the value saturates and the gradient is 0 outside."""
    x = torch.tensor([[[1.7, -0.3, 0.0, 0.0, 0.0], [-4.0, 0.9, 0.0, 0.0, 0.0]]],
                     requires_grad=True)
    position = LatentSplit(1)(x)[0]
    torch.testing.assert_close(position, torch.tensor([[[1.0, -0.3], [-1.0, 0.9]]]))
    position.sum().backward()
    assert x.grad[0, :, :2].tolist() == [[0.0, 1.0], [0.0, 1.0]]


def test_latent_split_tanh_position_keeps_a_gradient_outside_the_frame():
    x = torch.tensor([[[1.7, -0.3, 0.0, 0.0, 0.0], [-4.0, 0.9, 0.0, 0.0, 0.0]]],
                     requires_grad=True)
    position = LatentSplit(1, position="tanh")(x)[0]
    torch.testing.assert_close(position, torch.tanh(x[..., :2]))
    position.sum().backward()
    assert (x.grad[0, :, :2] > 0).all()                           # never exactly 0
    torch.testing.assert_close(x.grad[0, :, :2], 1 - torch.tanh(x[0, :, :2].detach()) ** 2)
    with pytest.raises(ValueError, match="position: expected one of clamp, tanh"):
        LatentSplit(1, position="sigmoid")


def test_latent_split_scale_offset_shifts_the_sigmoid():
    zeros = torch.zeros(1, 1, 5)
    assert LatentSplit(1)(zeros)[1][0, 0, 0].item() == pytest.approx(1.3 + 22.7 / 2)
    s = LatentSplit(1, scale_offset=-4.0)(zeros)[1][0, 0, 0].item()
    assert s == pytest.approx(1.3 + 22.7 * torch.sigmoid(torch.tensor(-4.0)).item())   # 1.71


def test_latent_split_boxes_are_the_glimpse_footprint():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 3 + 2 + 4) * 2
    position, scale, _, _, _, boxes = LatentSplit(4, "anisotropic")(x)
    (px, py), (sx, sy) = position.unbind(-1), scale.unbind(-1)
    expected = torch.stack([px - 1 / sx, py - 1 / sy, px + 1 / sx, py + 1 / sy], dim=-1)
    torch.testing.assert_close(boxes, expected)
    torch.testing.assert_close(boxes[..., 2] - boxes[..., 0], 2 / sx)   # 2/s of the range


def test_latent_split_alpha_overflows_but_log_alpha_does_not():
    x = torch.zeros(1, 1, 5)
    x[0, 0, 3] = 100.0                                             # isotropic: alpha at 3
    _, _, alpha, log_alpha, _, _ = LatentSplit(1)(x)
    assert torch.isinf(alpha).all() and log_alpha.item() == 100.0


@pytest.mark.parametrize("shapes, params, match", [
    ({"input": sym("B", 4, 11)}, {"what": 6},
     r"expected d = 3 \+ S \+ Z = 3 \+ 1 \+ 6 = 10 \(layout \[x, y, s\(1\), alpha, "
     r"z_what\(6\)\], scaling = 'isotropic'\), got d = 11 in \(B, 4, 11\)"),
    ({"input": sym("B", 4, 10)}, {"what": 6, "scaling": "anisotropic"},
     r"expected d = 3 \+ S \+ Z = 3 \+ 2 \+ 6 = 11 .*got d = 10"),
    ({"input": sym("B", 10)}, {"what": 6}, "expected 3 axes"),
    ({"input": sym("B", 4, 10)}, {"what": 6, "scale_range": [3.0, 2.0]},
     r"'scale_range': expected \[lo, hi\] with 0 < lo < hi, got \[3.0, 2.0\]"),
    ({"input": sym("B", 4, 10)}, {"what": 6, "scaling": "radial"}, "'scaling': expected one of"),
])
def test_latent_split_shape_errors_say_expected_and_got(shapes, params, match):
    with pytest.raises(ShapeError, match=match):
        get("latent_split").infer(shapes, params)


def test_latent_split_is_equivariant_over_k():
    x = torch.randn(2, 4, 8)
    perm = torch.tensor([3, 1, 0, 2])
    m = LatentSplit(3, "anisotropic")
    for a, b in zip(m(x[:, perm]), m(x)):
        torch.testing.assert_close(a, b[:, perm])
    syms = get("latent_split").symmetries
    assert syms[0].kind == "permutation_equivariance" and set(syms[0].output) == set(
        get("latent_split").outputs)


# ---- glimpse_generator ------------------------------------------------------------------------

def _layer_table(m: nn.Module) -> list[tuple]:
    out = []
    for layer in m.layers:
        if isinstance(layer, nn.ConvTranspose2d):
            out.append(("convT", layer.in_channels, layer.out_channels, layer.kernel_size[0],
                        layer.stride[0], layer.padding[0], layer.bias is not None))
        elif isinstance(layer, nn.GroupNorm):
            out.append(("gn", layer.num_groups, layer.num_channels))
        else:
            out.append(type(layer).__name__)
    return out


def _ast_table(z: int, channels: list[int], groups: list[int]) -> list[tuple]:
    """The layer stack of [AST] MF_models_renderer.py L11-82, written out."""
    table, c_in = [], z
    for i, (c, g) in enumerate(zip(channels, groups)):
        table.append(("convT", c_in, c, 2, 1, 0, False) if i == 0 else
                     ("convT", c_in, c, 4, 2, 1, False))
        table += [("gn", g, c), "CELU"]
        c_in = c
    return table + [("convT", c_in, 4, 4, 2, 1, True), "Sigmoid"]


@pytest.mark.parametrize("glimpse, channels, groups", [
    (32, [64, 32, 16, 8], [4, 2, 1, 1]),                # 64-px images
    (64, [128, 64, 32, 16, 8], [8, 4, 2, 1, 1]),        # 128-px images
])
def test_glimpse_generator_is_the_authors_stack(glimpse, channels, groups):
    assert default_glimpse_channels(glimpse) == channels
    assert [group_count(c) for c in channels] == groups
    kwargs = get("glimpse_generator").init_args({"what": sym("B", 3, 32)}, {"size": glimpse})
    assert kwargs == {"what": 32, "channels": channels}
    assert _layer_table(GlimpseGenerator(**kwargs)) == _ast_table(32, channels, groups)


def test_glimpse_generator_output_and_slot_independence():
    inferred, out, m = run_op("glimpse_generator", {"what": sym("B", 3, 5)},
                              {"size": 8, "channels": [16, 8]})
    assert inferred == {"glimpses": sym("B", 3, 4, 8, 8)}
    g = out["glimpses"]
    assert ((g > 0) & (g < 1)).all()                              # sigmoid
    what = torch.randn(2, 3, 5)
    base = m(what)
    changed = what.clone()
    changed[:, 1] += 1.0
    moved = m(changed)
    torch.testing.assert_close(moved[:, [0, 2]], base[:, [0, 2]])  # other slots untouched
    assert not torch.allclose(moved[:, 1], base[:, 1])
    perm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(m(what[:, perm]), base[:, perm])


def test_glimpse_generator_default_size_is_32():
    assert get("glimpse_generator").infer({"what": sym("B", 2, 4)}, {}) == {
        "glimpses": sym("B", 2, 4, 32, 32)}


@pytest.mark.parametrize("shapes, params, match", [
    ({"what": sym("B", 3, 5)}, {"size": 24}, r"'size': expected a power of two >= 4.*got 24"),
    ({"what": sym("B", 3, 5)}, {"size": 2}, r"'size': expected a power of two >= 4.*got 2"),
    ({"what": sym("B", 3, 5)}, {"size": 32, "channels": [64, 32, 16]},
     r"'channels': expected log2\(size\) - 1 = 4 values for a 32x32 glimpse.*got 3"),
    ({"what": sym("B", 3, 5)}, {"size": 8, "channels": [50, 8]},
     r"expected each count divisible by its GroupNorm group count.*got 50 \(3 groups\)"),
    ({"what": sym("B", 5)}, {}, "expected 3 axes"),
])
def test_glimpse_generator_shape_errors(shapes, params, match):
    with pytest.raises(ShapeError, match=match):
        get("glimpse_generator").infer(shapes, params)


# ---- spatial_transformer ----------------------------------------------------------------------

def _place(glimpses, x, y, sx, sy, resolution):
    b, k = glimpses.shape[:2]
    position = torch.tensor([x, y], dtype=glimpses.dtype).expand(b, k, 2)
    scale = torch.tensor([sx, sy], dtype=glimpses.dtype).expand(b, k, 2)
    return SpatialTransformer(resolution)(glimpses, position, scale)


def test_spatial_transformer_shape_rule_matches_module():
    shapes = {"glimpses": sym("B", 3, 4, 6, 6), "position": sym("B", 3, 2),
              "scale": sym("B", 3, 2)}
    inputs = {"glimpses": torch.rand(2, 3, 4, 6, 6), "position": torch.rand(2, 3, 2) - 0.5,
              "scale": 1 + torch.rand(2, 3, 2)}
    inferred, out, _ = run_op("spatial_transformer", shapes, {"resolution": [5, 7]}, inputs)
    assert inferred == {"layers": sym("B", 3, 4, 5, 7)}


def test_identity_placement_reproduces_the_glimpse():
    """x = y = 0, s = 1: the glimpse resampled to H x W (identity at the same size; bilinear
    resizing, zero padding only touching the outermost half pixel)."""
    g = torch.rand(2, 3, 4, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(_place(g, 0.0, 0.0, 1.0, 1.0, [8, 8]), g)
    down = _place(g, 0.0, 0.0, 1.0, 1.0, [4, 4]).flatten(0, 1)
    torch.testing.assert_close(down, F.interpolate(g.flatten(0, 1), size=(4, 4),
                                                   mode="bilinear", align_corners=False))
    up = _place(g, 0.0, 0.0, 1.0, 1.0, [16, 16]).flatten(0, 1)
    ref = F.interpolate(g.flatten(0, 1), size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])
    torch.testing.assert_close(up[..., 0, 1:-1], 0.75 * ref[..., 0, 1:-1])   # zero padding


@pytest.mark.parametrize("w, g, m, row", [(16, 8, 4, 0), (12, 4, 0, 3), (10, 5, 5, 2)])
def test_glimpse_lands_on_its_box_pixel_exactly(w, g, m, row):
    """With s = W / g (one glimpse pixel per image pixel) and the box edge on a pixel
    boundary, the glimpse is pasted at columns m .. m + g - 1 (rows likewise), the pixels
    whose centres lie inside latent_split's box; zero elsewhere."""
    h = w
    s = w / g
    x = -1 + 2 * m / w + 1 / s                              # box x0 = -1 + 2m/W
    y = -1 + 2 * row / h + 1 / s
    latent = torch.tensor([[[x, y, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    # scale latent 0 -> lo + (hi - lo) / 2 = s
    position, scale, _, _, _, boxes = LatentSplit(1, scale_range=[s / 2, 3 * s / 2])(latent)
    torch.testing.assert_close(scale, torch.full((1, 1, 2), s, dtype=torch.float64))
    glimpse = torch.rand(1, 1, 3, g, g, dtype=torch.float64) + 0.5
    out = SpatialTransformer([h, w])(glimpse, position, scale)[0, 0]
    cx, cy = pixel_centres(w), pixel_centres(h)
    inside_x = ((cx > boxes[0, 0, 0]) & (cx < boxes[0, 0, 2])).nonzero().flatten()
    inside_y = ((cy > boxes[0, 0, 1]) & (cy < boxes[0, 0, 3])).nonzero().flatten()
    assert inside_x.tolist() == list(range(m, m + g)) and inside_y.tolist() == list(
        range(row, row + g))
    expected = torch.zeros(3, h, w, dtype=torch.float64)
    expected[:, row:row + g, m:m + g] = glimpse[0, 0]
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("x, s", [(0.0, 1.0), (0.31, 2.7), (-0.62, 5.3), (0.8, 1.9), (-0.05, 11.0)])
def test_footprint_matches_the_box_and_is_centred(x, s):
    """A glimpse of ones at (x, 0) with scale s: along the centre row, output > 1/2 exactly at
    the pixels whose centres lie inside latent_split's box (bilinear: 1/2 at the box edge), the
    footprint covers 2/s of the width (W / s pixels), and its centroid is x."""
    w, g = 64, 16
    latent = torch.tensor([[[x, 0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    # scale_range chosen so the scale latent 0 gives exactly s
    split = LatentSplit(1, scale_range=[s / 2, 3 * s / 2])
    position, scale, _, _, _, boxes = split(latent)
    assert scale[0, 0].tolist() == pytest.approx([s, s], rel=1e-12)
    ones = torch.ones(1, 1, 1, 1, g, dtype=torch.float64)         # 1 px tall: a 1-D profile
    out = SpatialTransformer([1, w])(ones, position, scale)[0, 0, 0, 0]
    cx = pixel_centres(w)
    x0, x1 = boxes[0, 0, 0].item(), boxes[0, 0, 2].item()
    inside = (cx > x0) & (cx < x1)
    assert torch.equal(out > 0.5, inside)
    assert (x1 - x0) == pytest.approx(2 / s)                      # 2/s of the range
    if -1 <= x0 and x1 <= 1:
        assert abs(inside.sum().item() - w / s) <= 1              # W / s pixels, +- 1
    else:
        assert inside.sum().item() < w / s                        # cut by the frame
    ramp = 1 / (g * s)                                            # half a glimpse pixel
    if x0 - ramp > -1 and x1 + ramp < 1:                          # fully in the frame
        assert out.sum().item() == pytest.approx(w / s, abs=0.5)  # area of the footprint
        centroid = (out * cx).sum() / out.sum()
        assert centroid.item() == pytest.approx(x, abs=1 / w)     # within half a pixel


def test_anisotropic_footprint_and_y_axis():
    """s_x != s_y: the > 1/2 region is the box in both axes (y moves rows, x columns)."""
    h, w, g = 24, 32, 8
    x, y, sx, sy = 0.3, -0.4, 2.5, 4.0
    ones = torch.ones(1, 1, 1, g, g, dtype=torch.float64)
    out = _place(ones, x, y, sx, sy, [h, w])[0, 0, 0]
    rows = (pixel_centres(h) > y - 1 / sy) & (pixel_centres(h) < y + 1 / sy)
    cols = (pixel_centres(w) > x - 1 / sx) & (pixel_centres(w) < x + 1 / sx)
    r = int(rows.nonzero()[rows.sum() // 2])                       # a middle row / column
    c = int(cols.nonzero()[cols.sum() // 2])
    assert torch.equal(out[r] > 0.5, cols) and torch.equal(out[:, c] > 0.5, rows)
    assert (out[~rows] < 0.5).all() and (out[:, ~cols] < 0.5).all()


def test_spatial_transformer_is_equivariant_over_k():
    g = torch.rand(2, 3, 2, 5, 5)
    pos, scale = torch.rand(2, 3, 2) - 0.5, 1 + torch.rand(2, 3, 2)
    m = SpatialTransformer([6, 7])
    perm = torch.tensor([1, 2, 0])
    torch.testing.assert_close(m(g[:, perm], pos[:, perm], scale[:, perm]),
                               m(g, pos, scale)[:, perm])


def test_spatial_transformer_gradients_reach_position_and_scale():
    g = torch.rand(1, 2, 4, 6, 6)
    pos = torch.tensor([[[0.1, -0.2], [0.4, 0.3]]], requires_grad=True)
    scale = torch.tensor([[[2.0, 2.0], [3.0, 1.5]]], requires_grad=True)
    SpatialTransformer([12, 12])(g, pos, scale).square().sum().backward()
    assert pos.grad.abs().min() > 0 and scale.grad.abs().min() > 0


@pytest.mark.parametrize("shapes, params, match", [
    ({"glimpses": sym("B", 3, 4, 6, 6), "position": sym("B", 4, 2), "scale": sym("B", 3, 2)},
     {"resolution": [8, 8]},
     r"input 'position': expected \(b, k, 2\) = \(B, 3, 2\) \(b, k from glimpses "
     r"\(B, 3, 4, 6, 6\)\), got \(B, 4, 2\)"),
    ({"glimpses": sym("B", 3, 4, 6, 6), "position": sym("B", 3, 2), "scale": sym("B", 3, 1)},
     {"resolution": [8, 8]}, r"input 'scale': expected \(b, k, 2\) = \(B, 3, 2\).*got \(B, 3, 1\)"),
    ({"glimpses": sym("B", 3, 6, 6), "position": sym("B", 3, 2), "scale": sym("B", 3, 2)},
     {"resolution": [8, 8]}, "input 'glimpses': expected 5 axes"),
    ({"glimpses": sym("B", 3, 4, 6, 6), "position": sym("B", 3, 2), "scale": sym("B", 3, 2)},
     {"resolution": [8, 8, 8]}, r"'resolution': expected \[H, W\], got \[8, 8, 8\]"),
])
def test_spatial_transformer_shape_errors(shapes, params, match):
    with pytest.raises(ShapeError, match=match):
        get("spatial_transformer").infer(shapes, params)


def test_declared_symmetries():
    for name, ports in [("glimpse_generator", {"what"}),
                        ("spatial_transformer", {"glimpses", "position", "scale"})]:
        (s,) = get(name).symmetries
        assert s.kind == "permutation_equivariance" and set(s.transform) == ports
        assert set(s.transform.values()) == {"K"}


def test_reconstruction_gradient_pulls_an_overlapping_glimpse_onto_its_object():
    """End to end through spatial_transformer -> occlusion_composite -> l1_squared: a blob
    glimpse overlapping an object is moved toward it and its activation raised; a glimpse
    over empty background only gets told to lower its activation."""
    from ocdsl.losses import functions as fn
    from ocdsl.ops.composite import OcclusionComposite

    h = w = 35
    target = torch.zeros(1, 3, h, w)
    target[..., 20:26, 24:30] = 1.0              # object centre x = +0.54, y = +0.31 (normalized)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    blob = torch.exp(-(xx ** 2 + yy ** 2) / 0.3)
    glimpse = blob.expand(1, 1, 4, 16, 16)       # white blob, blob-shaped mask

    def grads(x, y):
        pos = torch.tensor([[[x, y]]], requires_grad=True)
        log_alpha = torch.tensor([[0.6]], requires_grad=True)
        layers = SpatialTransformer([h, w])(glimpses=glimpse, position=pos,
                                            scale=torch.tensor([[[3.0, 3.0]]]))
        image = OcclusionComposite()(layers=layers, log_alpha=log_alpha,
                                     background=torch.zeros(1, 3, h, w))[0]
        fn.l1_squared(image, target).backward()
        return pos.grad[0, 0], log_alpha.grad.item()

    dpos, dalpha = grads(0.6, 0.0)
    assert dpos[0] > 0 and dpos[1] < 0           # descent: x down toward 0.54, y up toward 0.31
    assert dalpha < 0                            # and more activation
    dpos, dalpha = grads(-0.6, -0.6)             # nothing to explain there
    assert dalpha > 0 and dpos.abs().max() < 1e-9
