"""occlusion_composite (AST-Seg Eq. 17-18): the log-space weights equal the direct formula
(values and gradients), masks of 0 give weights of exactly 0 with finite gradients, large
activation logits do not overflow, and the learned background logit starts at 11."""

import pytest
import torch

from ocdsl.ops import get
from ocdsl.ops.composite import OcclusionComposite, occlusion_weights
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym


def naive(layers, log_alpha, background, background_logit, shift=0.0):
    """Eq. 17-18 written directly: alpha = exp, w_k = alpha_k M_k / sum_j alpha_j M_j.
    ``shift`` divides every alpha by exp(shift) (the formula does not change)."""
    b, k, _, h, w = layers.shape
    alpha = torch.exp(torch.cat([background_logit.reshape(1, 1).expand(b, 1), log_alpha], 1)
                      - shift)                                             # (B, K+1)
    masks = torch.cat([torch.ones(b, 1, h, w, dtype=layers.dtype), layers[:, :, 3]], 1)
    num = alpha[:, :, None, None] * masks
    weights = num / num.sum(1, keepdim=True)
    colours = torch.cat([background[:, None], layers[:, :, :3]], 1)       # (B, K+1, 3, H, W)
    return (weights[:, :, None] * colours).sum(1), weights


def make_inputs(b=2, k=3, h=4, w=5, dtype=torch.float64, zero_fraction=0.3, spread=3.0):
    g = torch.Generator().manual_seed(0)
    layers = torch.rand(b, k, 4, h, w, generator=g, dtype=dtype)
    masks = layers[:, :, 3]
    masks[masks < zero_fraction] = 0.0                                    # exact zeros
    log_alpha = 11.0 + spread * torch.randn(b, k, generator=g, dtype=dtype)
    background = torch.rand(b, 3, h, w, generator=g, dtype=dtype)
    return layers, log_alpha, background


def test_shape_rule_matches_module():
    layers, log_alpha, background = make_inputs(dtype=torch.float32)
    inferred, out, _ = run_op(
        "occlusion_composite",
        {"layers": sym("B", 3, 4, 4, 5), "log_alpha": sym("B", 3), "background": sym("B", 3, 4, 5)},
        {}, inputs={"layers": layers, "log_alpha": log_alpha, "background": background})
    assert inferred == {"image": sym("B", 3, 4, 5), "weights": sym("B", 4, 4, 5),
                        "segmentation": sym("B", 4, 5)}
    assert out["segmentation"].dtype == torch.int64


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_equals_the_direct_formula_in_float64(dtype, tol):
    layers, log_alpha, background = make_inputs()
    m = OcclusionComposite(background_logit=11.5)
    image, weights, seg = m.to(dtype)(layers.to(dtype), log_alpha.to(dtype), background.to(dtype))
    ref_image, ref_weights = naive(layers, log_alpha, background,
                                   torch.tensor(11.5, dtype=torch.float64))
    torch.testing.assert_close(image.double(), ref_image, atol=tol, rtol=tol)
    torch.testing.assert_close(weights.double(), ref_weights, atol=tol, rtol=tol)
    torch.testing.assert_close(weights.sum(1), torch.ones_like(weights[:, 0]), atol=tol, rtol=0)
    assert torch.equal(seg, ref_weights.argmax(1))


def test_gradients_equal_the_direct_formula_including_masks_of_zero():
    """Every gradient (log alpha, RGB, masks -- also where M = 0 --, background, background
    logit) is the gradient of Eq. 17-18."""
    layers, log_alpha, background = make_inputs()
    assert (layers[:, :, 3] == 0).any()
    g = torch.Generator().manual_seed(1)
    up_image = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    up_weights = torch.randn(2, 4, 4, 5, generator=g, dtype=torch.float64)

    def grads(fn):
        leaves = [t.clone().requires_grad_(True) for t in (layers, log_alpha, background)]
        image, weights, logit = fn(*leaves)
        ((image * up_image).sum() + (weights * up_weights).sum()).backward()
        return [t.grad for t in leaves] + [logit.grad]

    def ours(layers, log_alpha, background):
        m = OcclusionComposite().double()
        image, weights, _ = m(layers, log_alpha, background)
        return image, weights, m.background_logit

    def direct(layers, log_alpha, background):
        logit = torch.tensor(11.0, dtype=torch.float64, requires_grad=True)
        return *naive(layers, log_alpha, background, logit), logit

    mine, ref = grads(ours), grads(direct)
    for a, b, name in zip(mine, ref, ["layers", "log_alpha", "background", "background_logit"]):
        assert torch.isfinite(a).all(), name
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10, msg=name)
    mask_grad = mine[0][:, :, 3]
    zero = layers[:, :, 3] == 0
    assert (mask_grad[zero] != 0).all()          # dw/dM = alpha / S at M = 0, not dropped


def test_masks_of_zero_give_weights_of_exactly_zero():
    layers, log_alpha, background = make_inputs(dtype=torch.float32, zero_fraction=0.5)
    log_alpha = log_alpha + 500.0                                   # far above the background
    layers.requires_grad_(True)
    log_alpha.requires_grad_(True)
    image, weights, seg = OcclusionComposite()(layers, log_alpha, background)
    zero = layers[:, :, 3] == 0
    assert zero.any() and (weights[:, 1:][zero] == 0).all()         # exactly 0
    uncovered = zero.all(1)                                         # no object at the pixel
    assert (weights[:, 0][uncovered] == 1).all() and (seg[uncovered] == 0).all()
    (image.sum() + weights[:, 1:].square().sum()).backward()
    assert torch.isfinite(layers.grad).all() and torch.isfinite(log_alpha.grad).all()


@pytest.mark.parametrize("big", [90.0, 400.0, 1000.0])
def test_large_activation_logits_do_not_overflow(big):
    """exp(latent) overflows float32 above ~88.7 (and float64 above ~709.8): the direct
    formula gives nan; the op gives the formula's value (the direct formula with every alpha
    divided by the same constant, in float64), and finite gradients."""
    layers, log_alpha, background = make_inputs(dtype=torch.float64)
    log_alpha = (log_alpha - 11.0 + big).float().double()       # representable in float32
    ref_image, ref_weights = naive(layers, log_alpha, background,
                                   torch.tensor(11.0, dtype=torch.float64), shift=big)
    f32 = [t.float() for t in (layers, log_alpha, background)]
    with torch.no_grad():
        direct = naive(*f32, torch.tensor(11.0))[1]
    assert torch.isnan(direct).any()                                 # the naive float32 form
    f32[0].requires_grad_(True)
    f32[1].requires_grad_(True)
    image, weights, _ = OcclusionComposite()(*f32)
    torch.testing.assert_close(weights.double(), ref_weights, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(image.double(), ref_image, atol=1e-5, rtol=1e-5)
    (image.sum() + weights.square().sum()).backward()
    assert torch.isfinite(f32[0].grad).all() and torch.isfinite(f32[1].grad).all()


def test_mask_gradient_at_zero_is_clamped_when_alpha_over_s_overflows():
    """alpha_k / S above float32's range (an object e^200 stronger than the background at a
    pixel it does not cover): the mask gradient is capped, finite and positive."""
    layers = torch.zeros(1, 1, 4, 1, 1, requires_grad=True)
    _, weights, _ = OcclusionComposite()(layers, torch.tensor([[211.0]]), torch.zeros(1, 3, 1, 1))
    weights[:, 1].sum().backward()
    g = layers.grad[0, 0, 3, 0, 0]
    assert torch.isfinite(g) and g > 1e30


def test_background_logit_is_a_parameter_initialised_to_11():
    m = OcclusionComposite()
    assert isinstance(m.background_logit, torch.nn.Parameter) and m.background_logit.requires_grad
    assert m.background_logit.item() == 11.0
    assert set(m.state_dict()) == {"background_logit"}
    op = get("occlusion_composite")
    shapes = {"layers": sym("B", 2, 4, 3, 3), "log_alpha": sym("B", 2),
              "background": sym("B", 3, 3, 3)}
    assert op.init_args(shapes, {}) == {"background_logit": 11.0}
    assert op.init_args(shapes, {"background_logit": 5}) == {"background_logit": 5.0}
    assert op.params["background_logit"]["default"] == 11.0


def test_background_activation_e11_against_objects():
    """M_0 = 1, alpha_0 = e^11: an object with a full mask and log alpha = 11 + log 3 takes
    3/4 of the pixel; no mask -> the background alone."""
    h = w = 2
    layers = torch.zeros(1, 1, 4, h, w, dtype=torch.float64)
    layers[0, 0, :3] = 1.0                                           # white object
    layers[0, 0, 3, 0] = 1.0                                         # covers the top row
    background = torch.zeros(1, 3, h, w, dtype=torch.float64)
    log_alpha = torch.tensor([[11.0 + torch.log(torch.tensor(3.0)).item()]], dtype=torch.float64)
    image, weights, seg = OcclusionComposite().double()(layers, log_alpha, background)
    torch.testing.assert_close(weights[0, :, 0], torch.tensor([[0.25] * 2, [0.75] * 2],
                                                               dtype=torch.float64))
    torch.testing.assert_close(weights[0, :, 1], torch.tensor([[1.0] * 2, [0.0] * 2],
                                                               dtype=torch.float64))
    torch.testing.assert_close(image[0, :, 0], torch.full((3, 2), 0.75, dtype=torch.float64))
    assert seg.tolist() == [[[1, 1], [0, 0]]]


def test_segmentation_labels_objects_from_one():
    h = w = 3
    layers = torch.zeros(1, 3, 4, h, w)
    layers[0, 0, 3, 0, 0] = 1.0
    layers[0, 2, 3, 2, 2] = 1.0
    layers[0, 1, 3, 2, 2] = 0.5                                      # occluded by object 3
    image, weights, seg = OcclusionComposite()(layers, torch.full((1, 3), 20.0),
                                               torch.zeros(1, 3, h, w))
    assert seg.dtype == torch.int64
    assert seg[0, 0, 0] == 1 and seg[0, 2, 2] == 3 and seg[0, 1, 1] == 0


def test_image_is_invariant_to_the_order_of_the_objects():
    layers, log_alpha, background = make_inputs(k=4, dtype=torch.float32)
    m = OcclusionComposite()
    perm = torch.tensor([2, 0, 3, 1])
    image, weights, _ = m(layers, log_alpha, background)
    image_p, weights_p, _ = m(layers[:, perm], log_alpha[:, perm], background)
    torch.testing.assert_close(image_p, image)
    torch.testing.assert_close(weights_p[:, 1:], weights[:, 1:][:, perm])
    torch.testing.assert_close(weights_p[:, 0], weights[:, 0])
    (s,) = get("occlusion_composite").symmetries
    assert s.kind == "permutation_invariance" and dict(s.transform) == {"layers": "K",
                                                                         "log_alpha": "K"}
    assert dict(s.output) == {"image": None}


def test_weights_function_directly():
    """occlusion_weights is the softmax of log alpha + log M (-inf where M = 0)."""
    la = torch.tensor([[0.0, 2.0, -1.0]], dtype=torch.float64)
    m = torch.tensor([[[[1.0]], [[0.5]], [[0.0]]]], dtype=torch.float64)
    w = occlusion_weights(la, m)
    e = torch.tensor([1.0, 0.5 * torch.e ** 2, 0.0], dtype=torch.float64)
    torch.testing.assert_close(w.flatten(), e / e.sum())


@pytest.mark.parametrize("shapes, match", [
    ({"layers": sym("B", 3, 3, 4, 5), "log_alpha": sym("B", 3), "background": sym("B", 3, 4, 5)},
     r"input 'layers': expected 4 channels \(RGB \+ mask\) on axis 2, got 3 in \(B, 3, 3, 4, 5\)"),
    ({"layers": sym("B", 3, 4, 4, 5), "log_alpha": sym("B", 4), "background": sym("B", 3, 4, 5)},
     r"input 'log_alpha': expected \(b, k\) = \(B, 3\) \(from layers \(B, 3, 4, 4, 5\)\), "
     r"got \(B, 4\)"),
    ({"layers": sym("B", 3, 4, 4, 5), "log_alpha": sym("B", 3), "background": sym("B", 3, 5, 5)},
     r"input 'background': expected \(b, 3, h, w\) = \(B, 3, 4, 5\).*got \(B, 3, 5, 5\)"),
    ({"layers": sym("B", 3, 4, 4, 5), "log_alpha": sym("B", 3), "background": sym("B", 1, 4, 5)},
     r"input 'background': expected \(b, 3, h, w\) = \(B, 3, 4, 5\).*got \(B, 1, 4, 5\)"),
    ({"layers": sym("B", 4, 4, 5), "log_alpha": sym("B", 3), "background": sym("B", 3, 4, 5)},
     "input 'layers': expected 5 axes"),
])
def test_shape_errors_say_expected_and_got(shapes, match):
    with pytest.raises(ShapeError, match=match):
        get("occlusion_composite").infer(shapes, {})
