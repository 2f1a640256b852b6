"""Background model: ``background_autoencoder`` (AST-Seg's background, adapted from AE-NE).

The background of a scene is modelled by a small convolutional autoencoder with a 16-number
bottleneck: it is too narrow to carry the objects, so it learns the scene without them
(Sauvalle & de La Fortelle, AE-NE / AST-Seg). Its loss is
:func:`ocdsl.losses.functions.background_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from ocdsl.ops._common import expect_rank, size_list
from ocdsl.ops.registry import OpDef, Port, enum, register, sizes
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["BackgroundAutoencoder", "CoordConvBlock", "Step", "background_schedule",
           "coordinate_channels", "default_channels", "group_count", "PRESETS",
           "INPUT_SCALE", "SMALL_IMAGE_LIMIT"]

#: Images are fed to the encoder on a 0-255 scale ([AST] MF_train.py, object_train:
#: ``(1/255) * BG(BE(255 * input_images))``; background/train.py: "images ... range 0-255").
INPUT_SCALE = 255.0

#: Images with max(h, w) below this use the "small image" schedule (stride 2), others
#: stride 3 ([AST] background/models.py, ``small_image = max_dim < 200``).
SMALL_IMAGE_LIMIT = 200

PRESETS = ("complex", "simple")

# Channel schedules of [AST] background/models.py, keyed by (preset, number of blocks).
# Encoder lists run from the image (3) to the latent (16); generator lists are indexed the
# same way (entry i = channels at the resolution of encoder level i), so the generator runs
# them backwards, from the latent to the 4 outputs (RGB + error map).
# "complex" = ``complexity=True`` (background/config.py default, used for ClevrTex,
# ShapeStacks, ObjectsRoom); "simple" = ``complexity=False`` (CLEVR's config entry).
_ENCODER_CHANNELS = {
    ("simple", 5): [3, 64, 160, 160, 32, 16],
    ("complex", 5): [3, 64, 160, 160, 16, 16],
    ("simple", 6): [3, 64, 160, 320, 160, 32, 16],
    ("complex", 6): [3, 64, 160, 320, 160, 16, 16],
    ("simple", 7): [3, 64, 160, 320, 160, 160, 32, 16],
    ("complex", 7): [3, 64, 320, 640, 640, 320, 16, 16],
}
_GENERATOR_CHANNELS = {
    ("simple", 5): [4, 144, 256, 256, 32, 16],
    ("complex", 5): [4, 144, 640, 640, 16, 16],
    ("simple", 6): [4, 144, 256, 512, 256, 32, 16],
    ("complex", 6): [4, 144, 640, 1280, 640, 16, 16],
    ("simple", 7): [4, 144, 256, 512, 256, 256, 32, 16],
    ("complex", 7): [4, 144, 640, 1280, 640, 320, 16, 16],
}


def default_channels(preset: str, n_blocks: int) -> tuple[list[int], list[int]] | None:
    """The code's (encoder, generator) channel lists for ``n_blocks`` blocks, or None where
    it has none (it supports 5, 6 and 7 blocks)."""
    enc = _ENCODER_CHANNELS.get((preset, n_blocks))
    gen = _GENERATOR_CHANNELS.get((preset, n_blocks))
    return None if enc is None else (list(enc), list(gen))


def group_count(channels: int) -> int:
    """GroupNorm groups of a block with ``channels`` outputs: ``max(1, channels // 16)``."""
    return max(1, channels // 16)


@dataclass(frozen=True)
class Step:
    """One encoder block (and, run backwards, the matching generator block).

    ``size_in`` (h, w) -> ``size_out``: the conv maps ``size_in`` to ``size_out``; the
    transposed conv with the same kernel, stride and padding plus ``output_padding`` maps
    ``size_out`` back to exactly ``size_in``. All pairs are (along h, along w).
    """

    size_in: tuple[int, int]
    size_out: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]


def _axis_step(n: int, small: bool) -> tuple[int, int, int]:
    """(kernel, stride, padding) that shrinks an axis of ``n`` pixels."""
    if n > 5:
        return (5, 2, 2) if small else (5, 3, 2)
    if n > 3 and small:
        return (4, 2, 1)
    return (n, 1, 0)        # the whole remaining axis -> 1 (a size-1 axis stays 1)


def background_schedule(height: int, width: int) -> list[Step]:
    """The blocks that take an ``height x width`` image down to 1 x 1.

    While an axis is longer than 5 pixels: kernel 5, stride 2, padding 2 (stride 3 when
    max(h, w) >= 200); then 4 or 5 pixels: kernel 4, stride 2, padding 1 (small images
    only); then the rest of the axis in one kernel (stride 1). One block per step until both
    axes are 1. 128 px: 128, 64, 32, 16, 8, 4, 2, 1 (7 blocks); 64 px: 6 blocks.
    """
    if height < 1 or width < 1:
        raise ShapeError(f"background_autoencoder: expected a positive image size, got "
                         f"{height}x{width}")
    small = max(height, width) < SMALL_IMAGE_LIMIT
    steps: list[Step] = []
    h, w = height, width
    while h > 1 or w > 1:
        kh, sh, ph = _axis_step(h, small)
        kw, sw, pw = _axis_step(w, small)
        nh, nw = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        steps.append(Step(size_in=(h, w), size_out=(nh, nw), kernel=(kh, kw),
                          stride=(sh, sw), padding=(ph, pw),
                          output_padding=((h + 2 * ph - kh) % sh, (w + 2 * pw - kw) % sw)))
        h, w = nh, nw
    return steps


def coordinate_channels(height: int, width: int, *, device=None, dtype=None) -> torch.Tensor:
    """The 2 coordinate channels concatenated to every block's input.

    Channel 0 is the row ``i / (h - 1) - 0.5``, channel 1 the column ``j / (w - 1) - 0.5``
    (both on [-0.5, 0.5]); an axis of one pixel gets the constant 1 instead.

    Shapes:
        out: 1 2 h w
    """
    def axis(n: int) -> torch.Tensor:
        if n == 1:
            return torch.ones(1, device=device, dtype=dtype)
        return torch.arange(n, device=device, dtype=dtype) / (n - 1) - 0.5

    rows, cols = axis(height), axis(width)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"))   # (2, H, W)
    return grid.unsqueeze(0)                                         # (1, 2, H, W)


class CoordConvBlock(nn.Module):
    """``[x ; coordinates]`` -> bias-free Conv2d (or ConvTranspose2d) -> GroupNorm -> CELU.

    The last generator block (``final=True``) has no norm and no activation.

    Shapes:
        x:   b cin h w          h w = ``size`` (the resolution of the block's input)
        out: b cout h' w'
    """

    def __init__(self, c_in: int, c_out: int, size: Sequence[int], kernel, stride, padding,
                 output_padding=None, final: bool = False):
        super().__init__()
        if output_padding is None:
            self.conv: nn.Module = nn.Conv2d(c_in + 2, c_out, kernel, stride, padding,
                                             bias=False)
        else:
            self.conv = nn.ConvTranspose2d(c_in + 2, c_out, kernel, stride, padding,
                                           output_padding=output_padding, bias=False)
        self.norm = nn.Identity() if final else nn.GroupNorm(group_count(c_out), c_out)
        self.act = nn.Identity() if final else nn.CELU()
        self.register_buffer("coords", coordinate_channels(int(size[0]), int(size[1])),
                             persistent=False)                       # (1, 2, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coords = self.coords.to(x.dtype).expand(x.shape[0], -1, -1, -1)  # (B, 2, H, W)
        x = torch.cat([x, coords], dim=1)                                # (B, Cin+2, H, W)
        return self.act(self.norm(self.conv(x)))                         # (B, Cout, H', W')


class BackgroundAutoencoder(nn.Module):
    """AST-Seg's background model: a convolutional autoencoder with a 16-number latent that
    reconstructs the background of an image and predicts its own per-pixel error.

    Encoder: one block per step of :func:`background_schedule` (the number of blocks follows
    from the resolution), each ``[x ; coords] -> Conv2d (no bias) -> GroupNorm(max(1, c/16))
    -> CELU`` (the last encoder block too), from 3 channels to the latent at 1 x 1. Generator:
    the same steps backwards with transposed convolutions (output padding restores the exact
    size), GroupNorm + CELU after every block but the last, 4 output channels (RGB + error
    map), sigmoid. Every block concatenates 2 coordinate channels (:func:`coordinate_channels`,
    row then column, on [-0.5, 0.5]) to its input, so the model knows where it is::

        x     = 255 * image                       b 3 h w       the code works on 0-255 images
        z     = encoder(x)                        b nz 1 1      nz = encoder_channels[-1] = 16
        out   = sigmoid(generator(z))             b 4 h w       = the code's sigmoid*255 / 255
        image = out[:, :3], error = out[:, 3:]

    Small images (max side < 200): kernel 5 / stride 2 / padding 2 while a side is above 5
    pixels, kernel 4 / stride 2 / padding 1 at 4-5 pixels, then one kernel over the rest:
    128 px -> 7 blocks (128, 64, 32, 16, 8, 4, 2, 1), 64 px -> 6, 32 px -> 5. Larger images
    use stride 3 while a side is above 5 pixels.

    Args:
        height (`int`), width (`int`):
            Image resolution; fixes the block schedule and the coordinate channels.
        encoder_channels (`list[int]`):
            Channels at each encoder level, from 3 (the image) to the latent; one more entry
            than blocks.
        generator_channels (`list[int]`):
            Channels of the generator at each level, indexed like ``encoder_channels`` (entry
            0 = 4 outputs at full resolution, last = the latent); run backwards.

    Spec params (the registry entry):
        preset (`"complex"` or `"simple"`, defaults to `"complex"`): picks the code's channel
            lists for the resolution. 128 px: complex = encoder [3, 64, 320, 640, 640, 320,
            16, 16], generator [4, 144, 640, 1280, 640, 320, 16, 16] (ClevrTex); simple =
            [3, 64, 160, 320, 160, 160, 32, 16] / [4, 144, 256, 512, 256, 256, 32, 16]
            (CLEVR). 64 px (6 blocks): complex = [3, 64, 160, 320, 160, 16, 16] /
            [4, 144, 640, 1280, 640, 16, 16] (ShapeStacks, ObjectsRoom); simple =
            [3, 64, 160, 320, 160, 32, 16] / [4, 144, 256, 512, 256, 32, 16]. 32 px (5
            blocks): [3, 64, 160, 160, 16|32, 16] / [4, 144, 640|256, 640|256, 16|32, 16].
        encoder_channels, generator_channels (`list[int]`, optional): replace the preset's
            lists (both or one); needed for resolutions whose schedule has other than 5-7
            blocks.

    Shapes:
        image: b 3 h w          in [0, 1]
        -> image: b 3 h w       reconstructed background, in (0, 1)
        -> error: b 1 h w       predicted per-pixel error of the background, in (0, 1);
                                trained to e / 3 where e = sum_c SmoothL1 / 255 (see
                                ``background_loss``), so 1 means e = 3 (the largest error)

    Units:
        Input and outputs are on [0, 1]. Internally the encoder sees ``255 * image`` (with
        coordinates on [-0.5, 0.5]), as in the authors' code; GroupNorm after the first conv
        removes the overall scale, but the relative weight of the coordinate channels in the
        first block depends on it, so the scaling is kept.

    Symmetries:
        None: the coordinate channels make every block position-aware, so the model is not
        translation-equivariant (on purpose: a background depends on where it is).

    Raises:
        ShapeError (shape rule): ``image`` not 4-D, not 3 channels, or a symbolic h / w; no
        preset lists for the resolution's number of blocks (expected 5-7 blocks, e.g. 32, 64,
        128 px) when the channel lists are not given; a list of the wrong length (expected
        blocks + 1), not starting with 3 / 4, or with different latents; a width not
        divisible by its GroupNorm group count ``max(1, c // 16)``.

    Source:
        Sauvalle & de La Fortelle, "Unsupervised Multi-Object Segmentation Using Attention and
        Soft-Argmax", WACV 2023 (background model from their AE-NE, "Autoencoder-based
        background reconstruction and foreground segmentation with background noise
        estimation", WACV 2023). Facts from [AST] background/models.py
        (``get_positional_encoding``: coordinates; ``*_convolutional_block``: block order
        conv -> GroupNorm -> CELU on ``[x ; coords]``, bias False; ``Background_Encoder`` /
        ``Background_Generator``: schedule, channel lists per number of blocks, groups
        ``max(1, c // 16)``, final generator block without norm, ``sigmoid(x) * 255``);
        the 0-255 input from MF_train.py ``object_train`` (``(1/255) * BG(BE(255 *
        input_images))``); presets from background/config.py (``background_complexity``
        True by default, False for CLEVR).
        ⚠ The code's generator computes the *width* step with ``elif current_h > 3`` (a typo
        for ``current_w``); here the generator mirrors the encoder exactly. Identical for
        square images (all AST datasets); differs only for some non-square sizes.
        ⚠ The code stores the coordinates as frozen ``nn.Parameter`` s (in the state dict);
        here they are non-persistent buffers (not in the state dict, not parameters).
    """

    def __init__(self, height: int, width: int, encoder_channels: Sequence[int],
                 generator_channels: Sequence[int]):
        super().__init__()
        steps = background_schedule(int(height), int(width))
        enc, gen = [int(c) for c in encoder_channels], [int(c) for c in generator_channels]
        _check_channels(steps, enc, gen, (int(height), int(width)))
        n = len(steps)
        self.latent = enc[-1]
        self.encoder = nn.Sequential(*[
            CoordConvBlock(enc[i], enc[i + 1], s.size_in, s.kernel, s.stride, s.padding)
            for i, s in enumerate(steps)])
        self.generator = nn.Sequential(*[
            CoordConvBlock(gen[i + 1], gen[i], steps[i].size_out, steps[i].kernel,
                           steps[i].stride, steps[i].padding,
                           output_padding=steps[i].output_padding, final=i == 0)
            for i in reversed(range(n))])

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(INPUT_SCALE * image)        # (B, nz, 1, 1) on the code's 0-255 scale
        out = torch.sigmoid(self.generator(z))       # (B, 4, H, W) = sigmoid * 255 / 255
        return out[:, :3], out[:, 3:]                # (B, 3, H, W) RGB, (B, 1, H, W) error


# ---- shape rule --------------------------------------------------------------------------

def _check_channels(steps: list[Step], enc: list[int], gen: list[int],
                    hw: tuple[int, int]) -> None:
    n = len(steps)
    where = f"{hw[0]}x{hw[1]} images take {n} blocks"
    for name, lst, first, what in (("encoder_channels", enc, 3, "RGB input"),
                                   ("generator_channels", gen, 4, "RGB + error outputs")):
        if len(lst) != n + 1:
            raise ShapeError(f"'{name}': expected {n + 1} values (blocks + 1; {where}), "
                             f"got {len(lst)}: {lst}")
        if lst[0] != first:
            raise ShapeError(f"'{name}': expected {first} as the first value ({what}), "
                             f"got {lst[0]}")
    if enc[-1] != gen[-1]:
        raise ShapeError(f"'generator_channels': expected the latent size {enc[-1]} (last "
                         f"value of encoder_channels) as the last value, got {gen[-1]}")
    # GroupNorm follows every encoder block and every generator block but the last.
    normed = ([("encoder_channels", c) for c in enc[1:]]
              + [("generator_channels", c) for c in gen[1:-1]])
    for name, c in normed:
        g = group_count(c)
        if c % g:
            raise ShapeError(f"'{name}': expected widths divisible by their GroupNorm group "
                             f"count max(1, c // 16), got {c} ({g} groups)")


def _resolve(in_shapes: dict[str, Shape], params: dict[str, Any]
             ) -> tuple[Shape, int, int, list[int], list[int]]:
    image = tuple(Dim.of(d) for d in in_shapes["image"])
    expect_rank("image", image, "B C H W")
    _, c, h, w = image
    if c != Dim.of(3):
        raise ShapeError(f"input 'image': expected 3 channels (RGB), got {fmt_shape(image)}")
    if not (h.is_concrete and w.is_concrete):
        raise ShapeError(f"input 'image': expected a fixed h and w (the block schedule and "
                         f"coordinate channels depend on them), got {fmt_shape(image)}")
    steps = background_schedule(h.value, w.value)
    preset = params["preset"]
    defaults = default_channels(preset, len(steps))
    enc, gen = params.get("encoder_channels"), params.get("generator_channels")
    if defaults is None and (enc is None or gen is None):
        raise ShapeError(f"input 'image': expected a resolution whose schedule has 5, 6 or 7 "
                         f"blocks (e.g. 32, 64, 128 px) for the preset channel lists, got "
                         f"{fmt_shape(image)} ({len(steps)} blocks); give encoder_channels "
                         f"and generator_channels with {len(steps) + 1} values each")
    enc = size_list(enc, "encoder_channels") if enc is not None else defaults[0]
    gen = size_list(gen, "generator_channels") if gen is not None else defaults[1]
    _check_channels(steps, enc, gen, (h.value, w.value))
    return image, h.value, w.value, enc, gen


def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    (b, _, h, w), *_ = _resolve(in_shapes, params)
    return {"image": (b, Dim.of(3), h, w), "error": (b, Dim.of(1), h, w)}


def _init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _, h, w, enc, gen = _resolve(in_shapes, params)
    return {"height": h, "width": w, "encoder_channels": enc, "generator_channels": gen}


register(OpDef(
    name="background_autoencoder",
    module=BackgroundAutoencoder,
    inputs=(Port("image", "B 3 H W", doc="RGB image in [0, 1]"),),
    outputs=("image", "error"),
    params={
        "preset": enum("channel lists of the authors' code for the resolution: 'complex' "
                       "(ClevrTex, ShapeStacks, ObjectsRoom; 128 px encoder [3, 64, 320, 640, "
                       "640, 320, 16, 16]) or 'simple' (CLEVR; [3, 64, 160, 320, 160, 160, 32, "
                       "16])", PRESETS, default="complex"),
        "encoder_channels": sizes("channels at each encoder level, 3 (image) first, the latent "
                                  "last; blocks + 1 values (128 px: 8, 64 px: 7). Replaces "
                                  "the preset's list"),
        "generator_channels": sizes("generator channels at each level, indexed like "
                                    "encoder_channels: 4 (RGB + error) first, the latent last. "
                                    "Replaces the preset's list"),
    },
    infer=_infer,
    init_args=_init_args,
    summary="AST-Seg background autoencoder (coordinate-conv blocks, latent 16): image -> "
            "background image and predicted error map",
))
