"""The mask strip: how the segmentation of a few fixed images changed over training
(``save_mask_strip``), drawn as one pasted picture so redrawing it at every evaluation
stays cheap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from ocdsl.viz._common import FigureLayout, colorize, save_png

__all__ = ["save_mask_strip", "strip_rows"]


def strip_rows(n: int, max_rows: int) -> list[int]:
    """Which of ``n`` evaluations a mask strip draws: all of them when ``n <= max_rows``,
    else ``max_rows`` evenly spaced ones, the first and the last always among them."""
    if n <= max_rows:
        return list(range(n))
    if max_rows <= 1:
        return [n - 1]
    return sorted({round(i * (n - 1) / (max_rows - 1)) for i in range(max_rows)})


def save_mask_strip(path: str | Path, images: Tensor | np.ndarray, steps: Sequence[int],
                    segs: Tensor | np.ndarray, true_labels: Tensor | np.ndarray | None = None, *,
                    max_rows: int = 24, title: str | None = None) -> FigureLayout:
    """How the segmentation of a few fixed images changed over training.

    One column per image. The first row is the input, the second the true segmentation
    (only if ``true_labels`` is given), then one row per evaluation, labelled
    ``step N`` on the left, with the predicted segmentation (argmax slot, coloured with
    :data:`PALETTE` like the other figures) of each image at that evaluation. With more
    than ``max_rows`` evaluations, ``max_rows`` evenly spaced ones are drawn (first and
    last included; :func:`strip_rows`). The panels are pasted into one picture (pixels
    repeated to at least 120 px per panel, nearest neighbour) drawn with a single
    ``imshow``, so redrawing it at every evaluation stays cheap.

    Args:
        path: PNG file to write (parent folders are created).
        images: ``n c h w`` in [0, 1] (c = 1 or 3), or uint8 in [0, 255].
        steps: the step of each evaluation, ``t`` of them.
        segs: ``t n h w`` integer slot indices (the argmax of the masks) per evaluation.
        true_labels: ``n h w`` integer ground truth (0 = background), or None.
        max_rows: the most evaluation rows drawn (>= 1).
        title: figure title.

    Returns:
        :class:`FigureLayout` (rows = every row drawn, the input and truth rows included;
        ``titles`` = the row labels, top to bottom; ``boxes`` = each panel in PNG pixels).

    Raises:
        ValueError: shapes that disagree, or no evaluation to draw.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    imgs, segs, true_labels, steps = _strip_arrays(images, segs, true_labels, steps)
    n, _, h, w = imgs.shape
    keep = strip_rows(len(steps), max(1, int(max_rows)))
    labels = ["input"] + (["true seg"] if true_labels is not None else []) + [f"step {steps[t]}" for t in keep]
    panels = [[np.clip(imgs[c].transpose(1, 2, 0), 0, 1) for c in range(n)]]
    if true_labels is not None:
        panels.append([colorize(true_labels[c]) for c in range(n)])
    panels += [[colorize(segs[t, c]) for c in range(n)] for t in keep]
    rows, cols = len(labels), n

    scale = max(1, math.ceil(120 / max(h, w)))                     # >= 120 px per panel
    ph, pw, gap = h * scale, w * scale, 6
    left, top = 96, 30 if title else 6                             # label band, title band (px)
    width, height = left + cols * pw + (cols - 1) * gap + 6, top + rows * ph + (rows - 1) * gap + 6
    canvas, boxes = _paste(panels, (height, width), (left, top), (ph, pw), gap, scale)
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    for r, label in enumerate(labels):
        fig.text((left - 8) / width, 1 - (top + r * (ph + gap) + ph / 2) / height, label,
                 ha="right", va="center", fontsize=9)
    if title:
        fig.text(0.5, 1 - 15 / height, title, ha="center", va="center", fontsize=9)
    path = save_png(fig, path, dpi)
    return FigureLayout(path=path, rows=rows, cols=cols, titles=tuple(labels), width=width, height=height,
                        dpi=dpi, boxes=boxes)


def _strip_arrays(images, segs, true_labels, steps) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[int]]:
    """:func:`save_mask_strip`'s inputs as numpy (images float in [0, 1]) and its steps as
    ints, checked against each other. Raises ValueError like it."""
    imgs = np.asarray(images.detach().cpu() if isinstance(images, Tensor) else images)
    if imgs.dtype == np.uint8:
        imgs = imgs.astype(np.float32) / 255.0
    segs = np.asarray(segs.detach().cpu() if isinstance(segs, Tensor) else segs)
    steps = [int(s) for s in steps]
    if imgs.ndim != 4 or imgs.shape[1] not in (1, 3):
        raise ValueError(f"images: expected (n c h w) with c in {{1, 3}}, got {tuple(imgs.shape)}")
    n, _, h, w = imgs.shape
    if segs.ndim != 4 or segs.shape[1:] != (n, h, w) or segs.shape[0] != len(steps):
        raise ValueError(f"segs: expected (t n h w) = ({len(steps)}, {n}, {h}, {w}), got {tuple(segs.shape)}")
    if not steps:
        raise ValueError("save_mask_strip: no evaluation to draw")
    if true_labels is not None:
        true_labels = np.asarray(true_labels.detach().cpu() if isinstance(true_labels, Tensor) else true_labels)
        if true_labels.shape != (n, h, w):
            raise ValueError(f"true_labels: expected (n h w) = ({n}, {h}, {w}), got {tuple(true_labels.shape)}")
    return imgs, segs, true_labels, steps


def _paste(panels: list[list[np.ndarray]], size: tuple[int, int], origin: tuple[int, int],
           panel: tuple[int, int], gap: int, scale: int) -> tuple[np.ndarray, dict]:
    """The ``h w c`` panels (rows of them) pasted onto a white ``size`` canvas, each repeated
    ``scale`` times per pixel; and each panel's box (x0, y0, x1, y1) in canvas pixels."""
    (height, width), (left, top), (ph, pw) = size, origin, panel
    canvas = np.ones((height, width, 3))
    boxes: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    for r, row in enumerate(panels):
        for c, arr in enumerate(row):
            if arr.shape[2] == 1:
                arr = np.repeat(arr, 3, axis=2)
            x0, y0 = left + c * (pw + gap), top + r * (ph + gap)
            canvas[y0:y0 + ph, x0:x0 + pw] = arr.repeat(scale, axis=0).repeat(scale, axis=1)
            boxes[(r, c)] = (x0, y0, x0 + pw, y0 + ph)
    return canvas, boxes
