"""Procedural Multi-dSprites (DeepMind ``multi_object_datasets``), three variants.

What is known (DeepMind README and the dSprites README; docs/formats.md, Multi-dSprites):

- 64x64 images; sprites are dSprites shapes (square, ellipse, heart) drawn "with some
  occlusions" on a uniformly coloured background;
- dSprites factor grid: shape in {square, ellipse, heart}, scale 6 values
  ``linspace(0.5, 1)``, orientation 40 values in [0, 2 pi], position x, y 32 values in
  [0, 1];
- ``binarized``: 2-3 white sprites on black, K = 4 mask slots, 1-channel images;
  ``colored_on_grayscale``: 2-5 sprites with random HSV colours on a random grayscale
  background, K = 6; ``colored_on_colored``: 1-4 sprites, all colours random RGB, K = 5;
- per object: x, y, shape, color, orientation, scale, visibility; slot 0 = background.

What is our choice (not published; the dSprites npz and the MONet/IODINE appendices are
not available here, and no code is copied from anywhere):

- rasterisation: we draw the shapes ourselves, binary (no anti-aliasing, like dSprites),
  a pixel belongs to a sprite when its centre is inside the shape. At scale 1 the square
  has a 16 px side (half-side :data:`UNIT` = 8 px), the ellipse semi-axes are 1.25 x 0.65
  units (10 x 5.2 px, long axis horizontal at orientation 0), the heart is the curve
  (x^2 + y^2 - 1)^3 = x^2 y^3 fitted into the same 2x2-unit box (lobes up at
  orientation 0). Orientation turns the sprite counter-clockwise on screen.
- position: the sprite centre is at ``MARGIN + p * (64 - 2 * MARGIN)`` px (``MARGIN`` =
  12, so every sprite stays inside the image), p from the 32-value grid, x = column,
  y = row (0 = top);
- sizes and margin are our estimate of dSprites' proportions (its npz is not here);
- every factor is drawn uniformly and independently from its grid (the orientation grid
  ``linspace(0, 2 pi, 40)`` holds 0 and 2 pi, as dSprites'); the number of sprites is
  uniform over the variant's range; sprites may overlap freely (no rejection), so a
  sprite can end up fully hidden (its ``visibility`` is then 0);
- colours: ``colored_on_grayscale`` background gray level U[0, 1], sprite colours HSV
  with h ~ U[0, 1), s ~ U[0.5, 1], v ~ U[0.5, 1] (so sprites are never gray);
  ``colored_on_colored`` background and sprites U[0, 1]^3 RGB; ``binarized`` 0 / 1.
  Colours are quantised to uint8 by ``round(255 * c)``.
- occlusion: sprites are painted in order, later sprites overwrite earlier ones; the
  instance label of a pixel is the painter index of the front sprite (0 = background),
  as in GENESIS's own Multi-dSprites script (docs/formats.md, Multi-dSprites).

Determinism: image ``i`` of ``generate(n, seed, start=s, variant=v)`` is a pure function of
``(seed, s + i, v)``: it draws from ``np.random.default_rng([seed, s + i, VARIANT_ID[v]])``
only, so a stream can be cut anywhere and resumed exactly, and the variants are
independent streams.
"""

from __future__ import annotations


import numpy as np

from ocdsl.attributes import HUE_NAMES, object_attributes

from .properties import PropertyLayout

__all__ = [
    "SIZE",
    "UNIT",
    "MARGIN",
    "SHAPE_NAMES",
    "SCALES",
    "ORIENTATIONS",
    "POSITIONS",
    "VARIANTS",
    "VARIANT_ID",
    "DEFAULT_VARIANT",
    "generate",
    "generate_at",
    "property_layout",
    "COORD_SCALE",
]

SIZE = 64  #: image height = width, px
UNIT = 8.0  #: half-side of the square at scale 1, px
MARGIN = 12.0  #: sprite centres lie in [MARGIN, SIZE - MARGIN] px

SHAPE_NAMES = ("square", "ellipse", "heart")  #: factor ``shape`` = index + 1 (dSprites' 1, 2, 3)
SCALES = np.linspace(0.5, 1.0, 6)  #: dSprites scale grid
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40)  #: dSprites orientation grid (radians)
POSITIONS = np.linspace(0.0, 1.0, 32)  #: dSprites position grid

#: variant -> (min sprites, max sprites, channels, K mask slots)
VARIANTS = {
    "binarized": (2, 3, 1, 4),
    "colored_on_grayscale": (2, 5, 3, 6),
    "colored_on_colored": (1, 4, 3, 5),
}
VARIANT_ID = {"binarized": 0, "colored_on_grayscale": 1, "colored_on_colored": 2}
DEFAULT_VARIANT = "colored_on_grayscale"
#: distance units per unit of the [0, 1] position grid in the set-prediction AP metrics: the
#: range the sprite centres span is given CLEVR's 6 units (its [-3, 3] scene), so an AP
#: threshold is the same fraction of that range on both datasets (our choice)
COORD_SCALE = 6.0

_ELLIPSE = (1.25, 0.65)  # semi-axes in units
# Heart curve (x^2+y^2-1)^3 <= x^2 y^3 spans x in [-1.138, 1.138], y in [-1, 1.236]:
# map the unit box [-1, 1]^2 onto it.
_HEART_SX, _HEART_SY, _HEART_Y0 = 1.138, 1.118, 0.118
_R = 12  # window half-size, px: covers the largest sprite (radius sqrt(2) * 8 = 11.3 px)
_WY, _WX = (a.ravel() for a in np.mgrid[-_R:_R + 1, -_R:_R + 1])  # [625] window offsets
_CHUNK = 1024  # images rasterised per vectorised pass (bounds temporary memory)


def _check_variant(variant: str) -> tuple[int, int, int, int]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown Multi-dSprites variant {variant!r} (known: {', '.join(VARIANTS)})")
    return VARIANTS[variant]


def _hsv_to_rgb(h, s, v):
    """Vectorised colorsys.hsv_to_rgb: arrays in [0, 1] -> [..., 3]."""
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.astype(np.int64) % 6
    choices = [np.stack(c, -1) for c in
               ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    out = np.zeros(h.shape + (3,))
    for k, c in enumerate(choices):
        out = np.where((i == k)[..., None], c, out)
    return out


def _layout(seed: int, indices: np.ndarray, variant: str) -> dict[str, np.ndarray]:
    """Draw the factors of each image; arrays [n, S] (S = max sprites), colours [n, S+1, C]."""
    lo, hi, c, _ = VARIANTS[variant]
    vid = VARIANT_ID[variant]
    n, s = len(indices), hi
    u = np.stack([np.random.default_rng([seed, int(i), vid]).random(4 + 8 * s) for i in indices])
    count = lo + np.minimum((u[:, 0] * (hi - lo + 1)).astype(np.int64), hi - lo)
    bg_u, sp = u[:, 1:4], u[:, 4:].reshape(n, s, 8)

    def grid(col, size):
        return np.minimum((sp[..., col] * size).astype(np.int64), size - 1)

    shape, scale, orient = grid(0, 3), grid(1, len(SCALES)), grid(2, len(ORIENTATIONS))
    px, py = grid(3, len(POSITIONS)), grid(4, len(POSITIONS))
    cu = sp[..., 5:8]
    if variant == "binarized":
        bg = np.zeros((n, 1))
        fg = np.ones((n, s, 1))
    elif variant == "colored_on_grayscale":
        bg = np.repeat(bg_u[:, :1], 3, axis=1)
        fg = _hsv_to_rgb(cu[..., 0], 0.5 + 0.5 * cu[..., 1], 0.5 + 0.5 * cu[..., 2])
    else:  # colored_on_colored
        bg, fg = bg_u, cu
    color = np.concatenate([bg[:, None, :], fg], axis=1)  # [n, S+1, C] in [0, 1]
    present = np.arange(s)[None, :] < count[:, None]  # [n, S]
    return {"count": count, "present": present, "shape": shape, "scale": scale,
            "orient": orient, "px": px, "py": py, "color": color}


def _inside(f: dict, chunk: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise: (inside bool [n, S, 625], row int [n, S, 625], col int [n, S, 625])."""
    shape, scale = f["shape"][chunk], SCALES[f["scale"][chunk]]
    theta = ORIENTATIONS[f["orient"][chunk]]
    cx = MARGIN + POSITIONS[f["px"][chunk]] * (SIZE - 2 * MARGIN)  # [n, S] px (continuous)
    cy = MARGIN + POSITIONS[f["py"][chunk]] * (SIZE - 2 * MARGIN)
    row = np.floor(cy).astype(np.int64)[..., None] + _WY  # [n, S, P]
    col = np.floor(cx).astype(np.int64)[..., None] + _WX
    rx = (col + 0.5 - cx[..., None]).astype(np.float32)  # pixel centre relative to sprite
    up = (cy[..., None] - (row + 0.5)).astype(np.float32)  # screen "up" is -row
    cos = np.cos(theta).astype(np.float32)[..., None]
    sin = np.sin(theta).astype(np.float32)[..., None]
    size = (UNIT * scale).astype(np.float32)[..., None]
    u = (cos * rx + sin * up) / size  # sprite frame, units (u right, w up)
    w = (cos * up - sin * rx) / size
    square = np.maximum(np.abs(u), np.abs(w)) <= 1.0
    ellipse = (u / _ELLIPSE[0]) ** 2 + (w / _ELLIPSE[1]) ** 2 <= 1.0
    hx, hy = _HEART_SX * u, _HEART_Y0 + _HEART_SY * w
    r = hx * hx + hy * hy - 1.0
    heart = r * r * r - hx * hx * hy * hy * hy <= 0.0
    sh = shape[..., None]
    inside = np.where(sh == 0, square, np.where(sh == 1, ellipse, heart))
    inside &= f["present"][chunk][..., None]
    inside &= (row >= 0) & (row < SIZE) & (col >= 0) & (col < SIZE)
    return inside, row, col


def _render(f: dict, chunk: slice, channels: int):
    """Paint one chunk: image uint8 [n, 64, 64, C], label uint8 [n, 64, 64], visible [n, S+1]."""
    inside, row, col = _inside(f, chunk)
    n, s = inside.shape[:2]
    flat = np.arange(n)[:, None, None] * (SIZE * SIZE) + row * SIZE + col  # [n, S, P]
    label = np.zeros(n * SIZE * SIZE, dtype=np.uint8)
    for k in range(s):  # painter order: later sprites overwrite earlier ones
        label[flat[:, k][inside[:, k]]] = k + 1
    label = label.reshape(n, SIZE * SIZE)
    palette = np.rint(f["color"][chunk] * 255).astype(np.uint8)  # [n, S+1, C]
    image = np.take_along_axis(palette, label[..., None].astype(np.int64), axis=1)  # [n, P, C]
    pix = np.bincount((np.arange(n)[:, None] * (s + 1) + label).ravel(), minlength=n * (s + 1))
    return (image.reshape(n, SIZE, SIZE, channels), label.reshape(n, SIZE, SIZE),
            pix.reshape(n, s + 1) > 0)


def generate(n: int, seed: int = 0, *, start: int = 0,
             variant: str = DEFAULT_VARIANT) -> dict[str, np.ndarray]:
    """Generate ``n`` Multi-dSprites images ``start .. start + n - 1`` of stream ``seed``.

    Returns a dict of numpy arrays (K = mask slots of the variant: 4 / 6 / 5; C = 1 for
    ``binarized``, else 3). Factors follow DeepMind's layout: K slots, slot 0 = the
    background, slot k = the sprite painted k-th (label k); slots of absent sprites are 0.

    - ``image`` uint8 [n, 64, 64, C], 0..255;
    - ``mask`` uint8 [n, 64, 64] instance labels: 0 = background, k = the front-most
      sprite covering the pixel (painter index, 1 .. number of sprites);
    - ``x``, ``y`` float32 [n, K]: position on the dSprites grid, in [0, 1] (x = column,
      y = row, 0 = left / top); ``shape`` float32 [n, K]: 1 square, 2 ellipse, 3 heart
      (:data:`SHAPE_NAMES`), 0 = none; ``scale`` float32 [n, K] in [0.5, 1];
      ``orientation`` float32 [n, K] in [0, 2 pi] (radians, counter-clockwise);
    - ``color`` float32 [n, K, C] in [0, 1] (slot 0 = the background colour), exactly
      the painted colour ``/ 255``;
    - ``visibility`` float32 [n, K]: 1 for the background and for every sprite with at
      least one visible pixel, 0 for absent or fully occluded sprites.

    Image ``i`` depends only on ``(seed, start + i, variant)``.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return generate_at(np.arange(start, start + n, dtype=np.int64), seed, variant=variant)


def generate_at(indices, seed: int = 0, *, variant: str = DEFAULT_VARIANT) -> dict[str, np.ndarray]:
    """Like :func:`generate` for arbitrary (unordered, repeated) stream indices.

    ``generate_at([5, 2], seed)["image"][0]`` equals ``generate(1, seed, start=5)["image"][0]``.
    """
    _, hi, c, k = _check_variant(variant)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if seed < 0 or (idx.size and idx.min() < 0):
        raise ValueError(f"seed and indices must be >= 0, got seed={seed}, min index={idx.min()}")
    n = len(idx)
    if n == 0:
        z = np.zeros((0, k), np.float32)
        layout = property_layout(variant)
        return {"image": np.zeros((0, SIZE, SIZE, c), np.uint8), "mask": np.zeros((0, SIZE, SIZE), np.uint8),
                **{f: z.copy() for f in ("x", "y", "shape", "scale", "orientation")},
                "color": np.zeros((0, k, c), np.float32), "visibility": z.copy(),
                "properties": np.zeros((0, layout.objects, layout.size), np.float32)}
    f = _layout(seed, idx, variant)
    image = np.zeros((n, SIZE, SIZE, c), np.uint8)
    mask = np.zeros((n, SIZE, SIZE), np.uint8)
    visible = np.zeros((n, k), bool)
    for lo in range(0, n, _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        image[sl], mask[sl], visible[sl] = _render(f, sl, c)
    present = f["present"]

    def slots(values):  # [n, S] object values -> [n, K] with slot 0 = background, 0 if absent
        out = np.zeros((n, k), np.float32)
        out[:, 1:] = np.where(present, values, 0)
        return out

    color = (np.rint(f["color"] * 255) / 255).astype(np.float32)
    color[:, 1:][~present] = 0
    out = {
        "image": image,
        "mask": mask,
        "x": slots(POSITIONS[f["px"]]),
        "y": slots(POSITIONS[f["py"]]),
        "shape": slots(f["shape"] + 1.0),
        "scale": slots(SCALES[f["scale"]]),
        "orientation": slots(ORIENTATIONS[f["orient"]]),
        "color": color,
        "visibility": visible.astype(np.float32),
    }
    out["properties"] = _properties(out, variant)
    return out


def property_layout(variant: str = DEFAULT_VARIANT) -> PropertyLayout:
    """The set-prediction targets of a variant (:mod:`ocdsl.data.properties`): position
    ``x``, ``y`` in [0, 1]; one-hot ``size`` (small: scale <= 0.75, large), ``colour`` (hue
    sector, :func:`ocdsl.attributes.hue_bins`; not in ``binarized``, whose sprites are all
    white) and ``shape`` (:data:`SHAPE_NAMES`); the real-object flag. Padded to the variant's
    most sprites (3 / 5 / 4), :data:`COORD_SCALE` distance units per position unit."""
    _, hi, c, _ = _check_variant(variant)
    colour = () if c == 1 else (("colour", HUE_NAMES),)
    return PropertyLayout(coords=("x", "y"),
                          classes=(("size", ("small", "large")), *colour, ("shape", SHAPE_NAMES)),
                          coord_scale=COORD_SCALE, objects=hi)


def _properties(factors: dict, variant: str) -> np.ndarray:
    """float32 [n, S, P]: the sprites' property vectors in painter order (slot k + 1 of the
    factors is sprite k); a sprite that is absent or fully hidden (visibility 0) is a zero
    vector, as the padding is. The classes are :func:`ocdsl.attributes.object_attributes`,
    the probe's attributes."""
    layout = property_layout(variant)
    sprites = {k: v[:, 1:] for k, v in factors.items() if k not in ("image", "mask")}
    if sprites["color"].shape[-1] == 1:
        sprites.pop("color")
    present, attrs = object_attributes(sprites)
    classes = {"size": attrs["size"], "shape": attrs["shape"] - 1}
    if "colour" in attrs:
        classes["colour"] = attrs["colour"]
    coords = np.stack([sprites["x"], sprites["y"]], axis=-1)
    return layout.encode(coords, classes, present)
