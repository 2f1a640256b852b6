"""gaussian_read / gaussian_write (DRAW Eq. 19-29, ASAE Eq. 7-12): the filterbank against a
per-pixel evaluation of the equations, normalisation, geometry of the grid, translation
equivariance of the read, and the write as the read's adjoint."""

import math

import pytest
import torch

from ocdsl.ops import get
from ocdsl.ops.filterbank import GaussianRead, GaussianWrite, gaussian_filterbank
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym

F64 = torch.float64


def _window(gx=0.0, gy=0.0, log_sigma2=0.0, log_delta=0.0, log_gamma=0.0, dtype=F64):
    return torch.tensor([[gx, gy, log_sigma2, log_delta, log_gamma]], dtype=dtype)


def _filter_by_hand(g_, log_sigma2, log_delta, n_pixels, other, n, origin):
    """DRAW Eq. 19-26 written out one entry at a time, in plain Python floats."""
    g = (n_pixels + 1) / 2 * (g_ + 1)
    delta = (max(n_pixels, other) - 1) / (n - 1) * math.exp(log_delta)
    sigma2 = math.exp(log_sigma2)
    rows = []
    for i in range(origin, origin + n):
        mu = g + (i - n / 2 - 0.5) * delta
        row = [math.exp(-(a - mu) ** 2 / (2 * sigma2)) for a in range(origin, origin + n_pixels)]
        z = max(sum(row), 1e-8)
        rows.append([v / z for v in row])
    return torch.tensor(rows, dtype=F64)


@pytest.mark.parametrize("origin", [1, 0])
def test_filterbank_matches_the_equations_entry_by_entry(origin):
    w = _window(0.3, -0.2, 0.4, -0.5, 0.7)
    fx, fy, gamma = gaussian_filterbank(w, height=9, width=12, size=5, index_origin=origin)
    assert fx.shape == (1, 5, 12) and fy.shape == (1, 5, 9)
    assert torch.allclose(fx[0], _filter_by_hand(0.3, 0.4, -0.5, 12, 9, 5, origin), atol=1e-14)
    assert torch.allclose(fy[0], _filter_by_hand(-0.2, 0.4, -0.5, 9, 12, 5, origin), atol=1e-14)
    assert gamma.item() == pytest.approx(math.exp(0.7), rel=1e-14)


def test_every_filter_sums_to_one_and_a_far_filter_is_zero_not_nan():
    fx, fy, _ = gaussian_filterbank(_window(0.1, 0.2, 0.5, 0.0), 16, 16, 4)
    assert torch.allclose(fx.sum(-1), torch.ones(1, 4, dtype=F64), atol=1e-12)
    assert torch.allclose(fy.sum(-1), torch.ones(1, 4, dtype=F64), atol=1e-12)
    far, _, _ = gaussian_filterbank(_window(gx=400.0, log_sigma2=-2.0), 16, 16, 4)
    assert torch.isfinite(far).all() and far.abs().max() == 0


def test_centred_window_is_symmetric_with_the_papers_indexing_and_not_with_draw_code():
    """g~ = 0 is the image centre for any stride with indices from 1; ericjang/draw's
    0-based indices put the grid's mean delta - 1 pixels off it."""
    for log_delta in (-1.0, 0.0, 0.5):
        fx, _, _ = gaussian_filterbank(_window(log_delta=log_delta), 11, 11, 4, index_origin=1)
        assert torch.allclose(fx[0], fx[0].flip(0).flip(1), atol=1e-12)
    fx0, _, _ = gaussian_filterbank(_window(log_delta=0.5), 11, 11, 4, index_origin=0)
    assert not torch.allclose(fx0[0], fx0[0].flip(0).flip(1), atol=1e-3)


def test_unit_stride_window_reads_the_image_itself():
    """delta = 1 px, a tiny variance, gamma = 1, N = image size: the read is the image."""
    n = 6
    log_delta = math.log((n - 1) / (n - 1))        # delta = (max - 1) / (N - 1) * 1 = 1 px
    w = _window(log_sigma2=math.log(1e-3), log_delta=log_delta)
    image = torch.randn(1, 3, n, n, dtype=F64)
    glimpse = GaussianRead(n)(image, w)
    assert torch.allclose(glimpse, image, atol=1e-12)
    assert torch.allclose(GaussianWrite([n, n])(glimpse, w), image, atol=1e-12)


def test_read_equals_the_double_sum_and_gamma_scales_it():
    image = torch.randn(2, 3, 7, 9, dtype=F64)
    w = torch.tensor([[0.2, -0.1, 0.3, -0.4, 0.5], [-0.3, 0.4, -0.2, 0.1, -0.6]], dtype=F64)
    glimpse = GaussianRead(4)(image, w)
    fx, fy, gamma = gaussian_filterbank(w, 7, 9, 4)
    for b in range(2):
        for c in range(3):
            expected = gamma[b] * fy[b] @ image[b, c] @ fx[b].T
            assert torch.allclose(glimpse[b, c], expected, atol=1e-12)


def test_write_is_the_adjoint_of_the_read_up_to_gamma_squared():
    x = torch.randn(3, 2, 10, 8, dtype=F64)
    p = torch.randn(3, 2, 5, 5, dtype=F64)
    w = torch.randn(3, 5, dtype=F64) * 0.5
    read, write = GaussianRead(5)(x, w), GaussianWrite([10, 8])(p, w)
    gamma2 = w[:, 4].exp() ** 2
    lhs = (read * p).sum(dim=(1, 2, 3))
    rhs = gamma2 * (x * write).sum(dim=(1, 2, 3))
    assert torch.allclose(lhs, rhs, rtol=1e-12)


@pytest.mark.parametrize("u, v", [(3, -2), (-4, 1), (0, 5)])
def test_read_is_translation_equivariant_away_from_the_border(u, v):
    """Shift the image by (u, v) pixels and the centre by the same amount: same glimpse."""
    h, w = 40, 36
    image = torch.zeros(1, 2, h, w, dtype=F64)
    image[:, :, 12:28, 10:26] = torch.randn(1, 2, 16, 16, dtype=F64)
    window = _window(0.0, 0.0, math.log(0.5), math.log(0.2))   # small window near the centre
    shifted = torch.roll(image, shifts=(v, u), dims=(2, 3))
    moved = window.clone()
    moved[0, 0] += 2 * u / (w + 1)
    moved[0, 1] += 2 * v / (h + 1)
    read = GaussianRead(8)
    assert torch.allclose(read(shifted, moved), read(image, window), atol=1e-9)
    # and a wrong (off-by-one) centre is caught by the same comparison
    off = moved.clone()
    off[0, 0] += 2 / (w + 1)
    assert not torch.allclose(read(shifted, off), read(image, window), atol=1e-3)


def test_gradients_reach_every_window_parameter():
    w = _window(0.1, -0.1, 0.2, -0.3, 0.1).requires_grad_(True)
    image = torch.randn(1, 1, 12, 12, dtype=F64)
    GaussianRead(4)(image, w).square().sum().backward()
    assert torch.isfinite(w.grad).all() and (w.grad.abs() > 0).all()
    assert torch.autograd.gradcheck(lambda win: GaussianRead(3)(image, win), (w.detach().requires_grad_(),))


def test_shape_rules_match_the_modules():
    inferred, out, _ = run_op("gaussian_read", {"image": sym("B", 3, 20, 16), "window": sym("B", 5)},
                              {"size": 6})
    assert inferred == {"glimpse": sym("B", 3, 6, 6)}
    inferred, out, _ = run_op("gaussian_write", {"patch": sym("B", 1, 6, 6), "window": sym("B", 5)},
                              {"resolution": [20, 16]})
    assert inferred == {"canvas": sym("B", 1, 20, 16)}


@pytest.mark.parametrize("op, shapes, params, match", [
    ("gaussian_read", {"image": sym("B", 3, 20), "window": sym("B", 5)}, {"size": 6}, "expected 4 axes"),
    ("gaussian_read", {"image": sym("B", 3, 20, 20), "window": sym("B", 4)}, {"size": 6},
     r"expected \(b, 5\)"),
    ("gaussian_read", {"image": sym("B", 3, 20, 20), "window": sym("B", 5)}, {"size": 1}, "N >= 2"),
    ("gaussian_write", {"patch": sym("B", 3, 6, 5), "window": sym("B", 5)}, {"resolution": [8, 8]},
     "square"),
    ("gaussian_write", {"patch": sym("B", 3, 1, 1), "window": sym("B", 5)}, {"resolution": [8, 8]},
     "N >= 2"),
])
def test_shape_errors_say_what_was_expected(op, shapes, params, match):
    with pytest.raises(ShapeError, match=match):
        get(op).infer(shapes, params)


def test_filterbank_rejects_bad_arguments():
    with pytest.raises(ValueError, match="last axis of 5"):
        gaussian_filterbank(torch.zeros(1, 4), 8, 8, 3)
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_filterbank(torch.zeros(1, 5), 8, 8, 1)
    with pytest.raises(ValueError, match="index_origin"):
        gaussian_filterbank(torch.zeros(1, 5), 8, 8, 3, index_origin=2)
