"""What the figures share: the palette, the layout record, label colouring, tensor ->
image conversion, the shape check and the PNG writer.

matplotlib is imported inside the functions that draw (ocdsl/viz/figures.py, curves.py,
strip.py), only through its object-oriented API (``Figure`` + ``FigureCanvasAgg``, never
pyplot), so ``import ocdsl`` stays fast and a notebook's or GUI's backend is left alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["PALETTE", "FigureLayout", "colorize", "hwc", "expect_shape", "finite_number", "save_png"]

#: Fixed qualitative palette (matplotlib tab10, then the light tab20 shades), RGB in [0, 1].
#: Predicted slot k and ground-truth label l get ``PALETTE[k % 20]`` / ``PALETTE[l % 20]``.
PALETTE: np.ndarray = np.array([
    (0x1f, 0x77, 0xb4), (0xff, 0x7f, 0x0e), (0x2c, 0xa0, 0x2c), (0xd6, 0x27, 0x28),
    (0x94, 0x67, 0xbd), (0x8c, 0x56, 0x4b), (0xe3, 0x77, 0xc2), (0x7f, 0x7f, 0x7f),
    (0xbc, 0xbd, 0x22), (0x17, 0xbe, 0xcf), (0xae, 0xc7, 0xe8), (0xff, 0xbb, 0x78),
    (0x98, 0xdf, 0x8a), (0xff, 0x98, 0x96), (0xc5, 0xb0, 0xd5), (0xc4, 0x9c, 0x94),
    (0xf7, 0xb6, 0xd2), (0xc7, 0xc7, 0xc7), (0xdb, 0xdb, 0x8d), (0x9e, 0xda, 0xe5),
], dtype=np.float64) / 255.0

@dataclass(frozen=True)
class FigureLayout:
    """Where things are in a saved grid figure.

    ``boxes[(row, col)] = (x0, y0, x1, y1)`` in PNG pixels, origin top-left, x1/y1 exclusive.
    """

    path: Path
    rows: int
    cols: int
    titles: tuple[str, ...]
    width: int
    height: int
    dpi: int
    boxes: dict[tuple[int, int], tuple[int, int, int, int]] = field(repr=False)


def colorize(labels: Tensor | np.ndarray) -> np.ndarray:
    """Integer labels ``h w`` (>= 0) -> RGB ``h w 3`` in [0, 1] with :data:`PALETTE`."""
    lab = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels).astype(np.int64)
    if lab.size and lab.min() < 0:
        raise ValueError(f"colorize: labels must be >= 0, got min {lab.min()}")
    return PALETTE[lab % len(PALETTE)]


def hwc(x: Tensor) -> np.ndarray:
    """``c h w`` in [0, 1] (c = 1 or 3) -> ``h w 3`` float numpy, clipped to [0, 1]."""
    x = x.detach().to("cpu", torch.float32).clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, *x.shape[1:])
    return x.permute(1, 2, 0).numpy()


def expect_shape(name: str, t: Tensor | None, axes: str, shape: tuple) -> None:
    """Raise ValueError ``expected name (axes) = shape, got actual`` on a mismatch (None = any)."""
    if t is None:
        return
    ok = t.dim() == len(shape) and all(s is None or s == a for s, a in zip(shape, t.shape))
    if not ok:
        want = ", ".join("?" if s is None else str(s) for s in shape)
        raise ValueError(f"{name}: expected ({axes}) = ({want}), got {tuple(t.shape)}")


def finite_number(v) -> float | None:
    """``v`` as a float when it is one finite number (a 1-element tensor included), else None
    (booleans, None, strings, nan, inf)."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, Tensor) and v.numel() == 1:
        v = v.item()
    if isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v)):
        return float(v)
    return None


def save_png(fig, path: str | Path, dpi: int) -> Path:
    """Write ``fig`` to ``path`` as PNG at ``dpi``, creating the parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path
