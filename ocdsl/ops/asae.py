"""The networks of the attentive sequential auto-encoder (Çetin & Cinbiş 2022):
``localization_cnn`` (where to look next, Fig. 2 / Table 3), ``region_autoencoder`` (what
is there, Table 1) and ``background_network`` (the first canvas, Table 2).

The paper gives layer sizes but not every kernel, stride or activation; each choice made
here is stated in the op's docstring and is a parameter a spec can change.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ocdsl.ops._common import ACTIVATIONS, expect_rank, size_list
from ocdsl.ops._common import activation as make_activation
from ocdsl.ops.filterbank import WINDOW_SIZE
from ocdsl.ops.registry import OpDef, Port, enum, register, size, sizes
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["LocalizationCNN", "RegionAutoencoder", "BackgroundNetwork", "OUTPUT_ACTIVATIONS"]

OUTPUT_ACTIVATIONS = ("none", "sigmoid")


def _output_activation(name: str) -> nn.Module:
    if name not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"unknown output activation {name!r}, expected one of {OUTPUT_ACTIVATIONS}")
    return make_activation(name)


def _concrete_hw(shape: Shape, port: str) -> tuple[int, int]:
    h, w = Dim.of(shape[-2]), Dim.of(shape[-1])
    if not (h.is_concrete and w.is_concrete):
        raise ShapeError(f"input '{port}': expected a known height and width, got {fmt_shape(shape)}")
    return h.value, w.value


def _halvings(h: int, w: int, n: int, port: str, shape: Shape, why: str) -> None:
    if h % (2 ** n) or w % (2 ** n):
        raise ShapeError(f"input '{port}': expected h and w divisible by 2^{n} = {2 ** n} ({why}), "
                         f"got {fmt_shape(shape)}")


class LocalizationCNN(nn.Module):
    """Where to attend next: a CNN over the image (or the error image x - c_t, Eq. 1-2)
    ending in a linear layer to the 5 window parameters of the Gaussian filterbank.

    Each block is Conv2d(k, 'same') -> [BatchNorm] -> activation -> MaxPool(2); then the
    feature map is flattened, passed through the ``hidden`` fully connected layers (each
    followed by the activation) and a last Linear to 5. The last layer starts at zero, so
    every step's first window is (0, 0, 0, 0, 0): centred, spanning the whole image
    (delta~ = 1), sigma^2 = 1, gamma = 1.

    Args:
        in_channels (`int`): image channels.
        height, width (`int`): the image size (fixes the flattened size).
        channels (`list[int]`): output channels of each conv block.
        kernel (`int`, *optional*, defaults to 5): conv kernel size.
        hidden (`list[int]`, *optional*, defaults to `[]`): fully connected sizes before the
            last layer.
        norm (`str`, *optional*, defaults to `"none"`): `"none"` or `"batch"`.
        activation (`str`, *optional*, defaults to `"relu"`): see ``ACTIVATIONS``.

    Shapes:
        image: b c h w     h and w divisible by 2^len(channels)
        -> window: b 5     (g~x, g~y, log sigma^2, log delta~, log gamma), unconstrained

    Raises:
        ShapeError (shape rule): ``image`` not 4-D, or h, w not divisible by
        2^len(channels) (each block halves them).

    Source:
        Çetin & Cinbiş 2022, Fig. 2 (MNIST-Scenes: conv + max-pool + ReLU blocks, FC to 5;
        channel counts and kernels are not given: a spec states them) and Table 3 (COCO:
        conv / BatchNorm / max-pool blocks of 32, 64 and 128 channels, LeakyReLU, FC 256,
        then 5). The zero-initialised last layer is ocdsl's choice, stated above.
    """

    def __init__(self, in_channels: int, height: int, width: int, channels: Sequence[int],
                 kernel: int = 5, hidden: Sequence[int] = (), norm: str = "none",
                 activation: str = "relu"):
        super().__init__()
        if norm not in ("none", "batch"):
            raise ValueError(f"unknown norm {norm!r}, expected 'none' or 'batch'")
        layers: list[nn.Module] = []
        c_in = in_channels
        for c in channels:
            layers.append(nn.Conv2d(c_in, c, kernel, padding="same", bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(c))
            layers += [make_activation(activation), nn.MaxPool2d(2)]
            c_in = c
        n_flat = c_in * (height >> len(channels)) * (width >> len(channels))
        layers.append(nn.Flatten())
        for f in hidden:
            layers += [nn.Linear(n_flat, f), make_activation(activation)]
            n_flat = f
        self.features = nn.Sequential(*layers)
        self.to_window = nn.Linear(n_flat, WINDOW_SIZE)
        nn.init.zeros_(self.to_window.weight)
        nn.init.zeros_(self.to_window.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.to_window(self.features(image))                  # Eq. 2 (b, 5)


class RegionAutoencoder(nn.Module):
    """What is in the window: a bottleneck autoencoder of the N x N glimpse (Eq. 4-5).

    Encoder: Conv2d(4, stride 2, padding 1) + activation per entry of ``channels`` (each
    halves the side: Table 1's 32 -> 16 -> 8 -> 4 with 16, 32, 64 channels), flatten, Linear
    to ``latent``. Decoder: Linear(latent -> the last feature map) + activation, then
    ConvTranspose2d(4, stride 2, padding 1) back through the channels in reverse (each
    doubles the side), the last to the image's channels, then ``out_activation`` (none by default:
    the write adds the patch to the canvas, Eq. 6, so a step may also subtract).

    Args:
        in_channels (`int`): glimpse channels (1 for MNIST-Scenes).
        size (`int`): the glimpse side N.
        channels (`list[int]`, *optional*, defaults to `[16, 32, 64]`): encoder channels.
        latent (`int`): the bottleneck size z.
        activation (`str`, *optional*, defaults to `"relu"`).
        out_activation (`str`, *optional*, defaults to `"none"`): `"none"` or `"sigmoid"`.

    Shapes:
        glimpse: b c N N      N divisible by 2^len(channels)
        -> patch:  b c N N
        -> latent: b z

    Raises:
        ShapeError (shape rule): ``glimpse`` not 4-D or not square, or N not divisible by
        2^len(channels).

    Source:
        Çetin & Cinbiş 2022, Table 1 (conv to 16x16x16, 32x8x8, 64x4x4; FC; "bottleneck
        1024"; transposed convs to 32x8x8, 16x16x16, 1x32x32). Kernel sizes, strides and
        activations are not stated: 4 / 2 / 1 and ReLU are ocdsl's choice, and the
        bottleneck size is a parameter (a spec states its reading of Table 1).
    """

    def __init__(self, in_channels: int, size: int, latent: int,
                 channels: Sequence[int] = (16, 32, 64), activation: str = "relu",
                 out_activation: str = "none"):
        super().__init__()
        channels = list(channels)
        enc: list[nn.Module] = []
        c_in = in_channels
        for c in channels:
            enc += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), make_activation(activation)]
            c_in = c
        self.side = size >> len(channels)
        n_flat = c_in * self.side * self.side
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(n_flat, latent))
        self.from_latent = nn.Sequential(nn.Linear(latent, n_flat), make_activation(activation))
        dec: list[nn.Module] = []
        outs = channels[-2::-1] + [in_channels]
        for i, c in enumerate(outs):
            dec.append(nn.ConvTranspose2d(c_in, c, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                dec.append(make_activation(activation))
            c_in = c
        dec.append(_output_activation(out_activation))
        self.decoder = nn.Sequential(*dec)
        self.last_channels = channels[-1]

    def forward(self, glimpse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(glimpse)                                     # Eq. 4 (b, z)
        h = self.from_latent(z).view(-1, self.last_channels, self.side, self.side)
        return self.decoder(h), z                                     # Eq. 5 (b, c, N, N), (b, z)


class BackgroundNetwork(nn.Module):
    """The first canvas c_0: a small autoencoder of the whole image whose narrow bottleneck
    keeps the background and not the objects.

    Conv2d(4, stride 2, padding 1) to ``channels`` maps + activation, flatten, Linear to
    ``latent`` (no activation), Linear back + activation, ConvTranspose2d(4, stride 2,
    padding 1) to the image's channels, then ``out_activation`` (sigmoid by default: images in
    [0, 1]).

    Args:
        in_channels (`int`): image channels.
        height, width (`int`): the image size (even).
        channels (`int`, *optional*, defaults to 4): maps after the conv.
        latent (`int`, *optional*, defaults to 16): the bottleneck size.
        activation (`str`, *optional*, defaults to `"relu"`).
        out_activation (`str`, *optional*, defaults to `"sigmoid"`): `"none"` or `"sigmoid"`.

    Shapes:
        image: b c h w     h, w even
        -> background: b c h w
        -> latent: b z

    Raises:
        ShapeError (shape rule): ``image`` not 4-D, or h or w odd.

    Source:
        Çetin & Cinbiş 2022, Table 2 (conv to 4x32x32, FC 16, FC 4096, transposed conv to
        1x64x64 on 64 x 64 images). Kernel, stride and activations are ocdsl's choice.
    """

    def __init__(self, in_channels: int, height: int, width: int, channels: int = 4,
                 latent: int = 16, activation: str = "relu", out_activation: str = "sigmoid"):
        super().__init__()
        self.grid = (channels, height // 2, width // 2)
        n_flat = channels * (height // 2) * (width // 2)
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, channels, 4, stride=2, padding=1),
                                     make_activation(activation), nn.Flatten(), nn.Linear(n_flat, latent))
        self.from_latent = nn.Sequential(nn.Linear(latent, n_flat), make_activation(activation))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(channels, in_channels, 4, stride=2, padding=1),
                                     _output_activation(out_activation))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(image)                                       # (b, z)
        h = self.from_latent(z).view(-1, *self.grid)                  # (b, channels, h/2, w/2)
        return self.decoder(h), z                                     # (b, c, h, w), (b, z)


# ---- shape rules ------------------------------------------------------------------------------

def _loc_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x = in_shapes["image"]
    expect_rank("image", x, "B C H W")
    h, w = _concrete_hw(x, "image")
    n = len(params["channels"])
    _halvings(h, w, n, "image", x, f"{n} conv + max-pool blocks")
    return {"window": (x[0], Dim.of(WINDOW_SIZE))}


def _loc_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _loc_infer(in_shapes, params)
    x = in_shapes["image"]
    h, w = _concrete_hw(x, "image")
    return {"in_channels": Dim.of(x[1]).value, "height": h, "width": w,
            "channels": size_list(params["channels"], "channels"),
            "kernel": int(params["kernel"]),
            "hidden": size_list(params["hidden"], "hidden"),
            "norm": params["norm"], "activation": params["activation"]}


def _region_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x = in_shapes["glimpse"]
    expect_rank("glimpse", x, "B C N N")
    h, w = _concrete_hw(x, "glimpse")
    if h != w:
        raise ShapeError(f"input 'glimpse': expected a square N x N glimpse, got {fmt_shape(x)}")
    n = len(params["channels"])
    _halvings(h, w, n, "glimpse", x, f"{n} stride-2 convs")
    return {"patch": tuple(x), "latent": (x[0], Dim.of(int(params["latent"])))}


def _region_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _region_infer(in_shapes, params)
    x = in_shapes["glimpse"]
    return {"in_channels": Dim.of(x[1]).value, "size": _concrete_hw(x, "glimpse")[0],
            "latent": int(params["latent"]),
            "channels": size_list(params["channels"], "channels"),
            "activation": params["activation"],
            "out_activation": params["out_activation"]}


def _bg_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x = in_shapes["image"]
    expect_rank("image", x, "B C H W")
    h, w = _concrete_hw(x, "image")
    _halvings(h, w, 1, "image", x, "one stride-2 conv")
    return {"background": tuple(x), "latent": (x[0], Dim.of(int(params["latent"])))}


def _bg_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _bg_infer(in_shapes, params)
    x = in_shapes["image"]
    h, w = _concrete_hw(x, "image")
    return {"in_channels": Dim.of(x[1]).value, "height": h, "width": w,
            "channels": int(params["channels"]), "latent": int(params["latent"]),
            "activation": params["activation"],
            "out_activation": params["out_activation"]}


_ACT = enum("activation after each hidden layer", ACTIVATIONS, default="relu")
_OUT = "activation of the output: 'none' or 'sigmoid' (images in [0, 1])"

register(OpDef(
    name="localization_cnn",
    module=LocalizationCNN,
    inputs=(Port("image", "B C H W", doc="the image, or the error image x - c_t (Eq. 1)"),),
    outputs=("window",),
    params={
        "channels": sizes("output channels of each conv + max-pool block (COCO: [32, 64, 128])"),
        "kernel": size("conv kernel size", default=5),
        "hidden": {"type": "array", "items": size("a size"), "default": [],
                   "description": "fully connected sizes before the last layer to 5 (COCO: [256])"},
        "norm": enum("'none' or 'batch' (BatchNorm after each conv; COCO)", ["none", "batch"],
                     default="none"),
        "activation": _ACT,
    },
    infer=_loc_infer,
    init_args=_loc_init,
    required=("channels",),
    summary="ASAE localization CNN: image -> the 5 Gaussian window parameters (Fig. 2, Table 3)",
))

register(OpDef(
    name="region_autoencoder",
    module=RegionAutoencoder,
    inputs=(Port("glimpse", "B C N N", doc="the N x N read"),),
    outputs=("patch", "latent"),
    params={
        "latent": size("bottleneck size z"),
        "channels": sizes("encoder channels, each conv halving the side (Table 1: [16, 32, 64])",
                          default=[16, 32, 64]),
        "activation": _ACT,
        "out_activation": enum(_OUT, OUTPUT_ACTIVATIONS, default="none"),
    },
    infer=_region_infer,
    init_args=_region_init,
    required=("latent",),
    summary="ASAE bottleneck region autoencoder: glimpse -> patch to write (Table 1)",
))

register(OpDef(
    name="background_network",
    module=BackgroundNetwork,
    inputs=(Port("image", "B C H W", doc="the image (h, w even)"),),
    outputs=("background", "latent"),
    params={
        "channels": size("maps after the stride-2 conv (Table 2: 4)", default=4),
        "latent": size("bottleneck size (Table 2: 16)", default=16),
        "activation": _ACT,
        "out_activation": enum(_OUT, OUTPUT_ACTIVATIONS, default="sigmoid"),
    },
    infer=_bg_infer,
    init_args=_bg_init,
    summary="ASAE background network: image -> the first canvas c_0 (Table 2)",
))
