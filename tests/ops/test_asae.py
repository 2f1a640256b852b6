"""The attentive sequential auto-encoder's networks (Çetin & Cinbiş 2022): the layer sizes
of Tables 1-3, the zero-initialised window head, and the shape rules' errors."""

import pytest
import torch
from torch import nn

from ocdsl.ops import get
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym


def _feature_sizes(module: nn.Module, x: torch.Tensor, kinds) -> list[tuple]:
    """The output shape of every submodule of the given kinds, in order."""
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
             for m in module.modules() if isinstance(m, kinds)]
    module(x)
    for h in hooks:
        h.remove()
    return sizes


def test_region_autoencoder_has_table_1_sizes():
    _, out, module = run_op("region_autoencoder", {"glimpse": sym("B", 1, 32, 32)}, {"latent": 1024})
    assert out["patch"].shape == (2, 1, 32, 32) and out["latent"].shape == (2, 1024)
    x = torch.randn(2, 1, 32, 32)
    assert _feature_sizes(module.encoder, x, nn.Conv2d) == [(16, 16, 16), (32, 8, 8), (64, 4, 4)]
    assert _feature_sizes(module, x, nn.ConvTranspose2d) == [(32, 8, 8), (16, 16, 16), (1, 32, 32)]
    # the output is unbounded by default (a write may subtract), sigmoid on request
    assert not isinstance(module.decoder[-1], nn.Sigmoid)
    _, _, sig = run_op("region_autoencoder", {"glimpse": sym("B", 1, 32, 32)},
                       {"latent": 8, "out_activation": "sigmoid"})
    assert isinstance(sig.decoder[-1], nn.Sigmoid)


def test_background_network_has_table_2_sizes():
    _, out, module = run_op("background_network", {"image": sym("B", 1, 64, 64)}, {})
    assert out["background"].shape == (2, 1, 64, 64) and out["latent"].shape == (2, 16)
    x = torch.randn(2, 1, 64, 64)
    assert _feature_sizes(module, x, nn.Conv2d) == [(4, 32, 32)]
    assert _feature_sizes(module, x, nn.Linear) == [(16,), (4096,)]
    assert _feature_sizes(module, x, nn.ConvTranspose2d) == [(1, 64, 64)]
    assert out["background"].min() >= 0 and out["background"].max() <= 1


def test_localization_cnn_coco_sizes_and_a_centred_first_window():
    params = {"channels": [32, 64, 128], "kernel": 3, "hidden": [256], "norm": "batch",
              "activation": "leaky_relu"}
    _, out, module = run_op("localization_cnn", {"image": sym("B", 3, 64, 64)}, params)
    assert out["window"].shape == (2, 5)
    assert torch.equal(out["window"], torch.zeros(2, 5))     # zero-initialised last layer
    x = torch.randn(2, 3, 64, 64)
    assert _feature_sizes(module, x, nn.MaxPool2d) == [(32, 32, 32), (64, 16, 16), (128, 8, 8)]
    assert _feature_sizes(module, x, nn.Linear) == [(256,), (5,)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in module.modules()) == 3
    assert sum(isinstance(m, nn.LeakyReLU) for m in module.modules()) == 4


def test_localization_window_learns():
    """The zero init does not block learning: one gradient step moves the window."""
    _, _, module = run_op("localization_cnn", {"image": sym("B", 1, 16, 16)}, {"channels": [4]})
    x = torch.randn(2, 1, 16, 16)
    target = torch.randn(2, 5)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        (module(x) - target).square().mean().backward()
        opt.step()
    assert module(x).abs().sum() > 0


@pytest.mark.parametrize("op, shapes, params, match", [
    ("localization_cnn", {"image": sym("B", 1, 20, 20)}, {"channels": [4, 4, 4]}, "divisible by 2\\^3"),
    ("localization_cnn", {"image": sym("B", 1, 20)}, {"channels": [4]}, "expected 4 axes"),
    ("region_autoencoder", {"glimpse": sym("B", 1, 32, 16)}, {"latent": 8}, "square"),
    ("region_autoencoder", {"glimpse": sym("B", 1, 12, 12)}, {"latent": 8}, "divisible by 2\\^3"),
    ("background_network", {"image": sym("B", 1, 63, 64)}, {}, "divisible by 2\\^1"),
])
def test_shape_errors_say_what_was_expected(op, shapes, params, match):
    with pytest.raises(ShapeError, match=match):
        get(op).infer(shapes, params)
