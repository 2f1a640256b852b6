"""Procedural Tetrominoes, pixel-faithful to DeepMind's ``multi_object_datasets`` images.

Recipe (DeepMind README) and the pixel facts measured on real test images, both in
docs/formats.md, Tetrominoes:

- 35x35 RGB, pure black background, exactly 3 pieces per image;
- a piece is 4 blocks of 5x5 px; every block carries the same bevel shading
  (:data:`BEVEL`) in each active colour channel, inactive channels are 0;
- 6 colours: red, green, blue, yellow (R+G), magenta (R+B), cyan (G+B), drawn
  independently per piece (repeats within an image happen in the real data);
- the piece's shape is one of the 19 fixed tetromino orientations (:data:`SHAPES`),
  drawn uniformly;
- its bbox top-left (x, y) is a uniform integer pixel with the piece fully inside
  the image; positions (not shapes or colours) are rejection-sampled so pieces never
  overlap (no overlaps occur in the real images).

Determinism: image ``i`` of ``generate(n, seed, start=s)`` is a pure function of
``(seed, s + i)`` -- it draws from ``np.random.default_rng([seed, s + i])`` only -- so an
infinite training stream can be cut into chunks anywhere and resumed exactly.

Note: DeepMind's README speaks of "17 unique shapes/orientations"; which two of the 19
fixed tetrominoes it leaves out is not documented, so we draw from all 19 (the 30 real
pieces we have show 14 of them, all among our 19).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BEVEL",
    "COLORS",
    "COLOR_NAMES",
    "SHAPES",
    "SHAPE_NAMES",
    "SHAPE_GRIDS",
    "SIZE",
    "NUM_PIECES",
    "BLOCK",
    "generate",
    "generate_at",
]

SIZE = 35  #: image height = width, px
NUM_PIECES = 3  #: pieces per image
BLOCK = 5  #: block edge, px

#: Per-channel intensity of one 5x5 block (docs/formats.md, Tetrominoes), uint8.
BEVEL = np.array(
    [
        [191, 255, 255, 255, 223],
        [127, 159, 159, 159, 191],
        [127, 159, 159, 159, 191],
        [127, 159, 159, 159, 191],
        [95, 63, 63, 63, 127],
    ],
    dtype=np.uint8,
)

COLOR_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan")
#: Active channels per colour index, uint8 [6, 3] of 0/1.
COLORS = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.uint8
)

# The 19 fixed tetrominoes, rows separated by "/", 1 = block. Order: I x2, O, T x4, S x2,
# Z x2, J x4, L x4 (each family listed in clockwise rotation order).
_SHAPE_TABLE = (
    ("I0", "1111"),
    ("I1", "1/1/1/1"),
    ("O", "11/11"),
    ("T0", "111/010"),
    ("T1", "01/11/01"),
    ("T2", "010/111"),
    ("T3", "10/11/10"),
    ("S0", "011/110"),
    ("S1", "10/11/01"),
    ("Z0", "110/011"),
    ("Z1", "01/11/10"),
    ("J0", "01/01/11"),
    ("J1", "100/111"),
    ("J2", "11/10/10"),
    ("J3", "111/001"),
    ("L0", "10/10/11"),
    ("L1", "111/100"),
    ("L2", "11/01/01"),
    ("L3", "001/111"),
)
SHAPE_NAMES = tuple(name for name, _ in _SHAPE_TABLE)
#: Block-occupancy grid of each orientation, bool arrays [h_blocks, w_blocks].
SHAPE_GRIDS = tuple(
    np.array([[c == "1" for c in row] for row in text.split("/")], dtype=bool)
    for _, text in _SHAPE_TABLE
)
SHAPES = SHAPE_GRIDS

_NS = len(SHAPE_GRIDS)
# Block offsets (row, col) in blocks, int64 [19, 4]; bbox size in px, int64 [19].
_BLOCK_R = np.stack([np.nonzero(g)[0] for g in SHAPE_GRIDS])
_BLOCK_C = np.stack([np.nonzero(g)[1] for g in SHAPE_GRIDS])
_H_PX = np.array([g.shape[0] * BLOCK for g in SHAPE_GRIDS])
_W_PX = np.array([g.shape[1] * BLOCK for g in SHAPE_GRIDS])
# Pixel offsets inside a block, [25].
_DY, _DX = (a.ravel() for a in np.mgrid[0:BLOCK, 0:BLOCK])
_BEVEL_FLAT = BEVEL.ravel()

_TRIES = 8  # placements drawn per image at once; more are drawn only if all 8 overlap
_PAIRS = ((0, 1), (0, 2), (1, 2))
_CHUNK = 4096  # images laid out per vectorised pass (bounds temporary memory)


def _positions(shape: np.ndarray, u: np.ndarray):
    """Uniform floats [..., 3, 2] -> top-left (y, x) int64 [..., 3] of pieces ``shape``."""
    ny = SIZE - _H_PX[shape] + 1  # number of valid top-left rows
    nx = SIZE - _W_PX[shape] + 1
    y = np.minimum((u[..., 0] * ny).astype(np.int64), ny - 1)
    x = np.minimum((u[..., 1] * nx).astype(np.int64), nx - 1)
    return y, x


def _valid(shape: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """True where no two of the 3 pieces overlap. Inputs [..., 3]; output bool [...]."""
    by = y[..., None] + BLOCK * _BLOCK_R[shape]  # [..., 3, 4] block top rows, px
    bx = x[..., None] + BLOCK * _BLOCK_C[shape]
    ok = np.ones(y.shape[:-1], dtype=bool)
    for a, b in _PAIRS:
        # Two 5x5 blocks overlap iff both offsets are below 5 px.
        dy = np.abs(by[..., a, :, None] - by[..., b, None, :])  # [..., 4, 4]
        dx = np.abs(bx[..., a, :, None] - bx[..., b, None, :])
        ok &= ~((dy < BLOCK) & (dx < BLOCK)).any(axis=(-1, -2))
    return ok


def _layout(seed: int, indices: np.ndarray):
    """Per-image factors: (shape, color, y, x) int64 [n, 3] each.

    Shapes and colours are drawn once (uniform, independent per piece); only the
    positions are rejection-sampled, so the shape/colour marginals stay uniform.
    """
    n = len(indices)
    rngs = [np.random.default_rng([seed, int(i)]) for i in indices]
    draws = [r.random(NUM_PIECES * 2 + _TRIES * NUM_PIECES * 2) for r in rngs]
    u = np.stack(draws)  # [n, 6 + T*6]
    shape = np.minimum((u[:, 0:3] * _NS).astype(np.int64), _NS - 1)  # [n, 3]
    color = np.minimum((u[:, 3:6] * len(COLORS)).astype(np.int64), len(COLORS) - 1)
    pos_u = u[:, 6:].reshape(n, _TRIES, NUM_PIECES, 2)
    y = np.zeros((n, NUM_PIECES), dtype=np.int64)
    x = np.zeros((n, NUM_PIECES), dtype=np.int64)
    todo = np.arange(n)  # images still without a valid placement
    while True:
        shape_t = np.broadcast_to(shape[todo, None, :], (len(todo), _TRIES, NUM_PIECES))
        yy, xx = _positions(shape_t, pos_u)  # [m, T, 3]
        ok = _valid(shape_t, yy, xx)  # [m, T]
        hit = ok.any(axis=1)
        first = ok.argmax(axis=1)[hit]
        y[todo[hit]] = yy[hit, first]
        x[todo[hit]] = xx[hit, first]
        todo = todo[~hit]
        if not len(todo):
            break
        # All T tries overlapped (~30% of images): T more from each image's own stream.
        pos_u = np.stack([rngs[i].random((_TRIES, NUM_PIECES, 2)) for i in todo])
    return shape, color, y, x


def _render(shape, color, y, x):
    """Stamp the pieces: image uint8 [n, 35, 35, 3], mask uint8 [n, 35, 35]."""
    n = shape.shape[0]
    image = np.zeros((n * SIZE * SIZE, 3), dtype=np.uint8)
    mask = np.zeros(n * SIZE * SIZE, dtype=np.uint8)
    by = y[..., None] + BLOCK * _BLOCK_R[shape]  # [n, 3, 4]
    bx = x[..., None] + BLOCK * _BLOCK_C[shape]
    rows = (
        np.arange(n)[:, None, None, None] * (SIZE * SIZE)
        + (by[..., None] + _DY) * SIZE
        + (bx[..., None] + _DX)
    )  # [n, 3, 4, 25] flat pixel index
    values = _BEVEL_FLAT[:, None] * COLORS[color][:, :, None, None, :]  # [n, 3, 1, 25, 3]
    values = np.broadcast_to(values, rows.shape + (3,))
    image[rows.ravel()] = values.reshape(-1, 3)
    labels = np.broadcast_to(np.arange(1, NUM_PIECES + 1, dtype=np.uint8)[:, None, None], rows.shape[1:])
    mask[rows.ravel()] = np.broadcast_to(labels, rows.shape).ravel()
    return image.reshape(n, SIZE, SIZE, 3), mask.reshape(n, SIZE, SIZE)


def generate(n: int, seed: int = 0, *, start: int = 0) -> dict[str, np.ndarray]:
    """Generate ``n`` Tetrominoes images ``start .. start + n - 1`` of stream ``seed``.

    Returns a dict of numpy arrays:

    - ``image`` uint8 [n, 35, 35, 3], values in {0, 63, 95, 127, 159, 191, 223, 255};
    - ``mask`` uint8 [n, 35, 35] instance labels: 0 = background, 1..3 = the pieces in
      the order of the factor arrays;
    - ``x``, ``y`` int64 [n, 3]: column / row (px) of the top-left corner of each
      piece's bounding box (piece fully inside the image);
    - ``shape`` int64 [n, 3]: index into :data:`SHAPE_NAMES` (19 fixed orientations);
    - ``color`` int64 [n, 3]: index into :data:`COLOR_NAMES`.

    Image ``i`` depends only on ``(seed, start + i)``.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return generate_at(np.arange(start, start + n, dtype=np.int64), seed)


def generate_at(indices, seed: int = 0) -> dict[str, np.ndarray]:
    """Like :func:`generate` for arbitrary (unordered, repeated) stream indices.

    ``generate_at([5, 2], seed)["image"][0]`` equals ``generate(1, seed, start=5)["image"][0]``.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if seed < 0 or (idx.size and idx.min() < 0):
        raise ValueError(f"seed and indices must be >= 0, got seed={seed}, min index={idx.min()}")
    keys = ("image", "mask", "x", "y", "shape", "color")
    parts: dict[str, list] = {k: [] for k in keys}
    for lo in range(0, len(idx), _CHUNK):
        shape, color, y, x = _layout(seed, idx[lo:lo + _CHUNK])
        img, msk = _render(shape, color, y, x)
        for k, v in zip(keys, (img, msk, x, y, shape, color)):
            parts[k].append(v)
    if not len(idx):
        z = np.zeros((0, NUM_PIECES), dtype=np.int64)
        return {"image": np.zeros((0, SIZE, SIZE, 3), np.uint8),
                "mask": np.zeros((0, SIZE, SIZE), np.uint8),
                "x": z, "y": z.copy(), "shape": z.copy(), "color": z.copy()}
    return {k: np.concatenate(v) for k, v in parts.items()}
