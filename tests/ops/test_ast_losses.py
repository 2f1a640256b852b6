"""AST-Seg's losses (ocdsl/losses/functions.py): l1_squared (Eq. 19-20),
pixel_entropy_squared (Eq. 21) and background_loss (the background model's robust loss),
each against a direct float64 computation written out pixel by pixel; and that spec
expressions and generated code reach them."""

import math

import pytest
import torch

from ocdsl.losses import functions as fn


def _rand64(*shape):
    return torch.rand(*shape, dtype=torch.float64)


# ---- l1_squared ------------------------------------------------------------------------------

def test_l1_squared_is_the_mean_of_the_squared_per_pixel_l1():
    pred, target = _rand64(2, 3, 4, 5), _rand64(2, 3, 4, 5)
    total, count = 0.0, 0
    for n in range(2):
        for i in range(4):
            for j in range(5):
                e = sum(abs(pred[n, c, i, j].item() - target[n, c, i, j].item()) for c in range(3))
                total, count = total + e * e, count + 1
    assert math.isclose(fn.l1_squared(pred, target).item(), total / count, rel_tol=1e-12)
    # not the mean of the squared channel errors (that would be an MSE-like loss)
    assert not math.isclose(fn.l1_squared(pred, target).item(),
                            ((pred - target) ** 2).sum(1).mean().item(), rel_tol=1e-3)


@pytest.mark.parametrize("a, b, match", [
    ((2, 3, 4, 5), (2, 3, 4, 4), r"expected \(2, 3, 4, 4\) \(target\), got \(2, 3, 4, 5\) \(pred\)"),
    ((2, 3, 4), (2, 3, 4), r"expected pred \(b, c, h, w\), got \(2, 3, 4\)"),
])
def test_l1_squared_shape_errors(a, b, match):
    with pytest.raises(ValueError, match=match):
        fn.l1_squared(torch.zeros(a), torch.zeros(b))


# ---- pixel_entropy_squared ---------------------------------------------------------------------

def test_pixel_entropy_squared_matches_eq_21():
    w = torch.softmax(torch.randn(2, 4, 3, 5, dtype=torch.float64), dim=1)
    w[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)  # an exact zero
    total = 0.0
    for n in range(2):
        for i in range(3):
            for j in range(5):
                s = sum(w[n, k, i, j].item() * math.log(w[n, k, i, j].item() + 1e-20)
                        for k in range(4))
                total += s * s
    got = fn.pixel_entropy_squared(w)
    assert math.isclose(got.item(), total / 30, rel_tol=1e-12)
    # b k 1 h w is accepted like pixel_entropy's masks
    assert math.isclose(fn.pixel_entropy_squared(w[:, :, None]).item(), got.item(), rel_tol=1e-15)
    # a uniform distribution gives log(k)^2, a one-hot 0 (finite: 0 * log(1e-20) = 0)
    uniform = torch.full((1, 4, 2, 2), 0.25)
    assert math.isclose(fn.pixel_entropy_squared(uniform).item(), math.log(4) ** 2, rel_tol=1e-6)
    onehot = torch.zeros(1, 4, 2, 2)
    onehot[:, 2] = 1
    assert fn.pixel_entropy_squared(onehot).item() == 0.0


def test_pixel_entropy_is_unchanged_by_the_shared_helper():
    m = torch.softmax(torch.randn(2, 5, 3, 4), dim=1)
    m[0, :, 0, 0] = 0.0
    old = -(m * torch.log(m + 1e-8)).sum(dim=1).mean()        # the previous implementation
    assert torch.equal(fn.pixel_entropy(m), old)


def test_pixel_entropy_squared_shape_error():
    with pytest.raises(ValueError, match=r"pixel_entropy_squared: expected masks \(b, k, h, w\), "
                                         r"got \(2, 3\)"):
        fn.pixel_entropy_squared(torch.zeros(2, 3))


# ---- background_loss ---------------------------------------------------------------------------

def _smooth_l1(u: float, v: float, beta: float) -> float:
    d = abs(u - v)
    return 0.5 * d * d / beta if d < beta else d - 0.5 * beta


def _reference_background_loss(background, error, image):
    """background/train.py L16-37 written out pixel by pixel in float64 Python numbers
    (0-255 scale). Returns (loss, weights[n][i][j])."""
    nb, nc, h, w = image.shape
    x, b = (255 * image).tolist(), (255 * background).tolist()
    err = error[:, 0].tolist()
    e = [[[sum(_smooth_l1(x[n][c][i][j], b[n][c][i][j], 3.0) for c in range(nc)) / 255
           for j in range(w)] for i in range(h)] for n in range(nb)]
    r = w // 75
    total, weights = 0.0, []
    for n in range(nb):
        wn = []
        for i in range(h):
            row = []
            for j in range(w):
                window = [math.tanh(e[n][p][q] / 0.25)
                          for p in range(max(0, i - r), min(h, i + r + 1))
                          for q in range(max(0, j - r), min(w, j + r + 1))]
                wt = math.exp(-6 * sum(window) / len(window))     # padding not counted
                reg = _smooth_l1(err[n][i][j], e[n][i][j] / 3, 3 / 255)
                total += wt * (e[n][i][j] + reg)
                row.append(wt)
            wn.append(row)
        weights.append(wn)
    return total / (nb * h * w), weights


@pytest.mark.parametrize("w", [8, 80])     # pooling radius w // 75 = 0 and 1 (3 x 3 window)
def test_background_loss_matches_the_code_pixel_by_pixel(w):
    h = 5
    image = _rand64(2, 3, h, w)
    # mostly small errors (inside the SmoothL1 quadratic zone on 0-255) and some large ones
    noise = torch.where(_rand64(2, 1, h, w) < 0.8, 0.01 * torch.randn(2, 3, h, w,
                        dtype=torch.float64), 0.5 * torch.randn(2, 3, h, w, dtype=torch.float64))
    background = (image + noise).clamp(0, 1)
    error = _rand64(2, 1, h, w) * 0.3
    want, _ = _reference_background_loss(background, error, image)
    got = fn.background_loss(background, error, image)
    assert math.isclose(got.item(), want, rel_tol=1e-10)


def test_background_loss_gradients_treat_weights_and_target_as_constants():
    """d loss / d error(p) = wt(p) * SmoothL1'(error - e / 3) / (b h w): no gradient through
    the target e / 3, and none through the weights."""
    h, w = 3, 4
    image = _rand64(1, 3, h, w)
    background = (image + 0.02 * torch.randn(1, 3, h, w, dtype=torch.float64)).clamp(0, 1)
    background.requires_grad_(True)
    error = (_rand64(1, 1, h, w) * 0.05).requires_grad_(True)
    fn.background_loss(background, error, image).backward()
    _, weights = _reference_background_loss(background.detach(), error.detach(), image)
    x, b = 255 * image, 255 * background.detach()
    d = x - b                                                       # (1, 3, h, w)
    e = torch.where(d.abs() < 3, 0.5 * d * d / 3, d.abs() - 1.5).sum(1) / 255
    wt = torch.tensor(weights, dtype=torch.float64)                 # (1, h, w)
    u = error.detach()[:, 0] - e / 3
    beta = 3 / 255
    d_err = torch.where(u.abs() < beta, u / beta, u.sign()) * wt / (h * w)
    torch.testing.assert_close(error.grad[:, 0], d_err, rtol=1e-10, atol=1e-15)
    # d e / d b_c = -dSmoothL1/dx * 255 / 255; only e (not r's target) carries it
    d_bg = -torch.where(d.abs() < 3, d / 3, d.sign()) * wt[:, None] / (h * w)
    torch.testing.assert_close(background.grad, d_bg, rtol=1e-10, atol=1e-15)


def test_background_loss_down_weights_an_outlier_pixel():
    """A pixel with a large error (an object) counts e^-6 ~ 0.25% of what it would in the
    plain mean of the same per-pixel terms; clean pixels keep weight ~1."""
    h, w = 6, 6
    image = _rand64(1, 3, h, w)
    background = (image + 1e-3 * torch.randn(1, 3, h, w, dtype=torch.float64)).clamp(0, 1)
    background[0, :, 2, 3] = 1 - image[0, :, 2, 3].round()          # error >= 0.5 per channel
    background.requires_grad_(True)
    error = torch.zeros(1, 1, h, w, dtype=torch.float64)
    fn.background_loss(background, error, image).backward()
    weighted = background.grad.abs().sum(1)[0]                       # (h, w)
    bg2 = background.detach().clone().requires_grad_(True)
    x, b = 255 * image, 255 * bg2
    e = torch.nn.functional.smooth_l1_loss(x, b, reduction="none", beta=3.0).sum(1) / 255
    plain_reg = torch.nn.functional.smooth_l1_loss(error[:, 0], e.detach() / 3,
                                                   reduction="none", beta=3 / 255)
    (e + plain_reg).mean().backward()                                 # unweighted mean
    plain = bg2.grad.abs().sum(1)[0]
    ratio = weighted / plain
    assert ratio[2, 3] < 0.003                                        # the outlier: ~e^-6
    clean = torch.ones(h, w, dtype=torch.bool)
    clean[2, 3] = False
    assert ratio[clean].min() > 0.9                                   # clean pixels: ~1
    # the loss itself: the outlier's share drops from most of the plain mean to a few %
    loss = fn.background_loss(background.detach(), error, image).item()
    assert loss < 0.05 * (e + plain_reg).mean().item()


def test_background_loss_pools_the_soft_mask_over_3x3_from_75_px():
    """From w = 75 the soft mask is averaged over a 3 x 3 window (count_include_pad False):
    a 3 x 3 object gets ~e^-6 at its centre and e^(-6 k / 9) where k of the 9 window pixels
    are the object's; an isolated bad pixel keeps ~e^(-6/9) ~ 0.51; far pixels keep 1."""
    h, w = 7, 80
    image = _rand64(1, 3, h, w)
    background = image.clone()
    background[0, :, 2:5, 39:42] = 1 - image[0, :, 2:5, 39:42].round()   # e >= 1.5: tanh ~ 1
    background[0, :, 0, 10] = 1 - image[0, :, 0, 10].round()             # isolated, on the edge
    error = torch.zeros(1, 1, h, w, dtype=torch.float64)
    _, weights = _reference_background_loss(background, error, image)
    wt = torch.tensor(weights[0])
    k = lambda n, of=9: math.exp(-6 * n / of)                             # noqa: E731
    for (i, j), n in {(3, 40): 9, (2, 40): 6, (2, 39): 4, (1, 40): 3, (1, 38): 1}.items():
        assert math.isclose(wt[i, j].item(), k(n), rel_tol=1e-4), (i, j)
    assert math.isclose(wt[0, 10].item(), k(1, 6), rel_tol=1e-4)         # 2 x 3 window at the edge
    assert wt[6, 70] == 1.0 and wt[3, 43] == 1.0
    # and the function uses those weights
    torch.testing.assert_close(fn.background_loss(background, error, image),
                               torch.tensor(_reference_background_loss(background, error, image)[0],
                                            dtype=torch.float64), rtol=1e-10, atol=0)


@pytest.mark.parametrize("shapes, match", [
    (((2, 3, 4, 4), (2, 1, 4, 4), (2, 3, 4)), r"expected image \(b, c, h, w\), got \(2, 3, 4\)"),
    (((2, 3, 4, 5), (2, 1, 4, 4), (2, 3, 4, 4)),
     r"expected background \(2, 3, 4, 4\) \(the image's shape\), got \(2, 3, 4, 5\)"),
    (((2, 3, 4, 4), (2, 4, 4), (2, 3, 4, 4)), r"expected error \(2, 1, 4, 4\), got \(2, 4, 4\)"),
])
def test_background_loss_shape_errors(shapes, match):
    bg, err, img = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        fn.background_loss(bg, err, img)


# ---- spec expressions and generated code reach the new functions -------------------------------

def test_expressions_and_codegen_know_the_new_functions():
    from ocdsl.codegen.expr import to_python
    from ocdsl.spec.expr import ExprError, evaluate, parse

    text = ("l1_squared(composite.image, image) + 0.01 * pixel_entropy_squared(composite.weights)"
            " + background_loss(background.image, background.error, image)")
    e = parse(text)
    src = to_python(e, lambda name: f'outputs["{name}"]')
    for name in ("l1_squared", "pixel_entropy_squared", "background_loss"):
        assert f"fn.{name}(" in src
    image, recon = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    weights = torch.softmax(torch.randn(1, 3, 4, 4), dim=1)
    bg, err = torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4)
    env = {"image": image, "composite": {"image": recon, "weights": weights},
           "background": {"image": bg, "error": err}}
    want = (fn.l1_squared(recon, image) + 0.01 * fn.pixel_entropy_squared(weights)
            + fn.background_loss(bg, err, image))
    torch.testing.assert_close(evaluate(e, env), want)
    with pytest.raises(ExprError, match="background_loss"):
        parse("background_loss(a, b)")                               # 3 arguments
