"""Figures of a sequential read/write model (the attentive sequential auto-encoder,
Çetin & Cinbiş 2022): the canvas after every step with the step's attention window drawn
on it, and the reconstruction error after every step.

matplotlib is imported inside the functions (object-oriented API only), as in figures.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["window_box", "write_segmentation", "save_canvas_steps", "save_step_errors"]


def window_box(window: Tensor, height: int, width: int, size: int) -> Tensor:
    """The box a Gaussian window reads and writes: ``(x0, y0, x1, y1)`` in pixels (pixel i
    covers [i - 0.5, i + 0.5]), centred on the grid centre g (Eq. 7) and ``N * delta`` wide
    (Eq. 8: the N filter centres are delta apart; the box reaches half a stride beyond the
    outer ones).

    Shapes:
        window: ... 5   (g~x, g~y, log sigma^2, log delta~, log gamma)
        -> ... 4

    Source: Çetin & Cinbiş 2022, Eq. 7-8 (DRAW, Gregor et al. 2015, Eq. 22-24), with the
    filterbank's default index origin 1 (ocdsl/ops/filterbank.py).
    """
    gx = (width + 1) / 2 * (window[..., 0] + 1) - 1          # 0-based pixel coordinates
    gy = (height + 1) / 2 * (window[..., 1] + 1) - 1
    delta = (max(height, width) - 1) / (size - 1) * window[..., 3].exp()
    half = size * delta / 2
    return torch.stack([gx - half, gy - half, gx + half, gy + half], dim=-1)


def write_segmentation(writes: Tensor) -> Tensor:
    """Each pixel to the step whose write added the most to it.

    Shapes:
        writes: b t c h w (a repeat node's stacked writes)  -> b h w, int64 in 0 .. t-1
    """
    return writes.amax(dim=2).argmax(dim=1)


def save_canvas_steps(path: str | Path, images: Tensor, canvases: Tensor, boxes: Tensor,
                      segmentation: Tensor, truth: Tensor | None = None) -> Path:
    """One row per image: the input, the canvas after each step with that step's window
    (red box), each pixel's step (colours, write segmentation) and the true digits.

    Shapes: images ``b c h w`` and canvases ``b t c h w`` in [0, 1] (clipped), boxes
    ``b t 4`` (:func:`window_box`), segmentation / truth ``b h w`` ints.
    """
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.patches import Rectangle

    from ocdsl.viz.figures import PALETTE, colorize

    b, t = canvases.shape[:2]
    cols = 2 + t + (truth is not None)
    fig = Figure(figsize=(1.6 * cols, 1.6 * b + 0.3))
    FigureCanvasAgg(fig)
    titles = ["input"] + [f"canvas {i + 1}" for i in range(t)] + ["step of each pixel"] + (["digits"] if truth is not None else [])

    def grey(x: Tensor) -> np.ndarray:
        x = x.detach().float().clamp(0, 1).cpu()
        return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()

    for r in range(b):
        panels = [grey(images[r])] + [grey(canvases[r, i]) for i in range(t)]
        ink = (images[r].detach().float().amax(dim=0) > 0.25).cpu().numpy()[..., None]
        panels.append(colorize(segmentation[r].cpu() + 1) * ink)      # colour = step, on the ink only
        if truth is not None:
            panels.append(colorize(truth[r].cpu()))
        for c, img in enumerate(panels):
            ax = fig.add_subplot(b, cols, r * cols + c + 1)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if 1 <= c <= t:
                x0, y0, x1, y1 = boxes[r, c - 1].tolist()
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.2,
                                       edgecolor=PALETTE[c % len(PALETTE)]))
                ax.set_xlim(-0.5, img.shape[1] - 0.5), ax.set_ylim(img.shape[0] - 0.5, -0.5)
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
    fig.tight_layout(pad=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def save_step_errors(path: str | Path, errors: Sequence[float]) -> Path:
    """The mean squared error per pixel of the canvas after each step (a line plot)."""
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(3.6, 2.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    steps = list(range(0, len(errors)))
    ax.plot(steps, list(errors), marker="o")
    ax.set_xlabel("step (0 = the first canvas)")
    ax.set_ylabel("MSE per pixel")
    ax.set_xticks(steps)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
