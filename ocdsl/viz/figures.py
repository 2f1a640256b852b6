"""Figures of a model's decomposition (``save_reconstruction_figure``) and of a dataset
(``save_data_figure``), PNG through matplotlib's Agg canvas. The curves are in
ocdsl/viz/curves.py and the mask strip in ocdsl/viz/strip.py (both re-exported here); what
the figures share (palette, layout record, colouring) in ocdsl/viz/_common.py.

matplotlib is imported inside the functions, and only its object-oriented API is used
(``Figure`` + ``FigureCanvasAgg``, never pyplot), so ``import ocdsl`` stays fast and the
global matplotlib backend of a notebook or a GUI is left alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ocdsl.viz._common import PALETTE, FigureLayout, colorize, save_png
from ocdsl.viz._common import expect_shape as _expect
from ocdsl.viz._common import hwc as _hwc
from ocdsl.viz.curves import save_curve, save_metric_curves
from ocdsl.viz.strip import save_mask_strip, strip_rows

__all__ = ["PALETTE", "FigureLayout", "colorize", "save_reconstruction_figure", "save_curve", "save_mask_strip",
           "save_metric_curves", "strip_rows", "save_data_figure"]

_PANEL_IN = 1.2      # panel height, inches
_GAP_IN = 0.06       # gap between panels, inches
_TITLE_IN = 0.26     # band above the first row for the column titles, inches
_MIN_DPI = 100       # 35x35 Tetrominoes -> 120 px per panel (3.4x, nearest neighbour)


def save_reconstruction_figure(path: str | Path, image: Tensor, recon: Tensor | None, masks: Tensor,
                               slot_rgb: Tensor | None, true_labels: Tensor | None = None,
                               max_images: int = 8, *, attention: Tensor | None = None,
                               masked_input: Tensor | None = None, layers: Tensor | None = None,
                               boxes: Tensor | None = None) -> FigureLayout:
    """One row per image: input, reconstruction, predicted and true segmentation, then each slot.

    Columns, left to right: ``input``, ``masked`` (only if ``masked_input`` is given),
    ``recon``, ``pred seg`` (argmax of ``masks`` over k, coloured with :data:`PALETTE`),
    ``true seg`` (only if ``true_labels`` is given), then for each slot k: ``slot k``
    (``slot_rgb * mask + white * (1 - mask)``), ``mask k`` (grey, black = 0, white = 1) and
    ``attn k`` (only if ``attention`` is given; grey like the masks). That is ``3 + 2K``
    columns, or ``4 + 2K`` with the ground truth; a ``recon`` of None drops its column and a
    ``slot_rgb`` of None drops the ``slot k`` columns (models without a decoder). With
    ``layers`` (K' object layers, e.g. AST-Seg's glimpses placed by the spatial transformer),
    ``layer j`` columns follow, each object over white; ``boxes`` outlines each object's box
    on its layer and all of them on the input (colour j+1 of the palette, as in the
    segmentations where index 0 is the background). Pixels are drawn with ``interpolation="nearest"`` and the dpi
    is chosen so that a panel has at least 120 px (at least the image's own size).

    Args:
        path: PNG file to write (parent folders are created).
        image: input ``b c h w`` in [0, 1], c = 1 or 3 (values outside are clipped for display).
        recon: reconstruction ``b c h w`` in [0, 1], or None.
        masks: ``b k h w`` soft masks in [0, 1] (at the image's resolution).
        slot_rgb: per-slot appearance ``b k c h w`` in [0, 1], or None.
        true_labels: ``b h w`` int ground truth (0 = background), or None.
        max_images: draw the first ``min(b, max_images)`` images (>= 1).
        attention: ``b k h w`` per-slot attention in [0, 1] (e.g. an encoder's attention over
            patches, repeated over each patch's pixels), or None.
        masked_input: ``b c h w`` the input as the model saw it, in [0, 1], or None.
        layers: ``b k' c h w`` object layers in [0, 1], c = 3 (RGB) or 4 (RGB + mask: drawn
            over white by the mask), or None.
        boxes: ``b k' 4`` boxes (x0, y0, x1, y1) in normalized image coordinates, -1 / +1 =
            the image's outer edges (``align_corners=False``), or None; needs ``layers`` or
            draws on the input only.

    Returns:
        :class:`FigureLayout` with the path, grid size, titles, PNG size and panel boxes.

    Raises:
        ValueError: shapes that disagree (``expected (b k h w) = (2, 4, 35, 35), got ...``), c not in
        {1, 3}, or ``max_images < 1``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    b, c, h, w = _check_inputs(image, recon, masks, slot_rgb, true_labels, max_images, attention,
                               masked_input, layers, boxes)
    titles = _column_titles(recon, masks, slot_rgb, true_labels, attention, masked_input, layers)
    rows, cols = min(b, max_images), len(titles)

    pw, ph = _PANEL_IN * w / h, _PANEL_IN                          # panel size, inches
    fig_w = cols * pw + (cols - 1) * _GAP_IN
    fig_h = _TITLE_IN + rows * ph + (rows - 1) * _GAP_IN
    dpi = max(_MIN_DPI, math.ceil(h / _PANEL_IN))
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    FigureCanvasAgg(fig)
    width, height = round(fig_w * dpi), round(fig_h * dpi)

    masks_c = masks.detach().to("cpu", torch.float32)
    seg = masks_c.argmax(dim=1)                                    # (b, h, w)
    panel_boxes: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    for r in range(rows):
        panels = _row_panels(r, image, recon, masks_c, seg, slot_rgb, true_labels, attention, masked_input,
                             layers, boxes)
        for col, (arr, kw) in enumerate(panels):
            x0 = col * (pw + _GAP_IN)
            y_top = _TITLE_IN + r * (ph + _GAP_IN)                 # from the top, inches
            ax = fig.add_axes((x0 / fig_w, 1 - (y_top + ph) / fig_h, pw / fig_w, ph / fig_h))
            _draw_panel(ax, arr, kw, (h, w), titles[col] if r == 0 else None)
            panel_boxes[(r, col)] = (round(x0 * dpi), round(y_top * dpi),
                                     round((x0 + pw) * dpi), round((y_top + ph) * dpi))
    path = save_png(fig, path, dpi)
    return FigureLayout(path=path, rows=rows, cols=cols, titles=tuple(titles), width=width,
                        height=height, dpi=dpi, boxes=panel_boxes)


def _column_titles(recon, masks, slot_rgb, true_labels, attention, masked_input, layers) -> list[str]:
    """The column titles of :func:`save_reconstruction_figure`, left to right."""
    k, n_layers = masks.shape[1], 0 if layers is None else layers.shape[1]
    titles = (["input"] + (["masked"] if masked_input is not None else [])
              + (["recon"] if recon is not None else []) + ["pred seg"])
    if true_labels is not None:
        titles.append("true seg")
    for j in range(k):
        titles += (([f"slot {j}"] if slot_rgb is not None else []) + [f"mask {j}"]
                   + ([f"attn {j}"] if attention is not None else []))
    titles += [f"layer {j}" for j in range(n_layers)]
    return titles


def _check_inputs(image, recon, masks, slot_rgb, true_labels, max_images, attention, masked_input, layers,
                  boxes) -> tuple[int, int, int, int]:
    """``(b, c, h, w)`` of the image, after checking every input of
    :func:`save_reconstruction_figure` against it. Raises ValueError as it documents."""
    if max_images < 1:
        raise ValueError(f"max_images: expected >= 1, got {max_images}")
    if image.dim() != 4 or image.shape[1] not in (1, 3):
        raise ValueError(f"image: expected (b c h w) with c in {{1, 3}}, got {tuple(image.shape)}")
    b, c, h, w = image.shape
    if masks.dim() != 4:
        raise ValueError(f"masks: expected (b k h w) = ({b}, K, {h}, {w}), got {tuple(masks.shape)}")
    k = masks.shape[1]
    _expect("recon", recon, "b c h w", (b, c, h, w))
    _expect("masks", masks, "b k h w", (b, k, h, w))
    _expect("slot_rgb", slot_rgb, "b k c h w", (b, k, c, h, w))
    _expect("true_labels", true_labels, "b h w", (b, h, w))
    _expect("attention", attention, "b k h w", (b, k, h, w))
    _expect("masked_input", masked_input, "b c h w", (b, c, h, w))
    n_layers = 0
    if layers is not None:
        if layers.dim() != 5 or layers.shape[2] not in (3, 4):
            raise ValueError(f"layers: expected (b k c h w) with c in {{3, 4}}, got {tuple(layers.shape)}")
        n_layers = layers.shape[1]
        _expect("layers", layers, "b k c h w", (b, n_layers, layers.shape[2], h, w))
    if boxes is not None:
        if boxes.dim() != 3 or boxes.shape[-1] != 4 or boxes.shape[0] != b or (
                layers is not None and boxes.shape[1] != n_layers):
            raise ValueError(f"boxes: expected (b k 4) = ({b}, {n_layers or 'K'}, 4), got {tuple(boxes.shape)}")
    return b, c, h, w


def _outline(j: int, box, h: int, w: int) -> dict:
    """Box ``j`` (x0, y0, x1, y1 in [-1, 1]) as a rectangle in pixel coordinates of an
    ``h x w`` panel (imshow puts pixel centres on integers)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    px0, px1 = (x0 + 1) * w / 2 - 0.5, (x1 + 1) * w / 2 - 0.5
    py0, py1 = (y0 + 1) * h / 2 - 0.5, (y1 + 1) * h / 2 - 0.5
    return {"xy": (px0, py0), "width": px1 - px0, "height": py1 - py0,
            "color": PALETTE[(j + 1) % len(PALETTE)]}


def _row_panels(r: int, image, recon, masks_c, seg, slot_rgb, true_labels, attention, masked_input, layers,
                boxes) -> list[tuple[np.ndarray, dict]]:
    """The panels of image ``r``, left to right, each (array, imshow keywords plus
    ``boxes``: the outlines drawn on it)."""
    h, w = image.shape[-2:]
    all_boxes = [] if boxes is None else [_outline(j, boxes[r, j], h, w) for j in range(boxes.shape[1])]
    panels: list[tuple[np.ndarray, dict]] = [(_hwc(image[r]), {"boxes": all_boxes})]
    if masked_input is not None:
        panels.append((_hwc(masked_input[r]), {}))
    if recon is not None:
        panels.append((_hwc(recon[r]), {}))
    panels.append((colorize(seg[r]), {}))
    if true_labels is not None:
        panels.append((colorize(true_labels[r]), {}))
    for j in range(masks_c.shape[1]):
        m = masks_c[r, j].clamp(0, 1)                              # (h, w)
        if slot_rgb is not None:
            rgb = slot_rgb[r, j].detach().to("cpu", torch.float32).clamp(0, 1)
            panels.append((_hwc(rgb * m + (1 - m)), {}))           # white where the slot is absent
        panels.append((m.numpy(), {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}))
        if attention is not None:
            a = attention[r, j].detach().to("cpu", torch.float32).clamp(0, 1)
            panels.append((a.numpy(), {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}))
    for j in range(0 if layers is None else layers.shape[1]):
        lay = layers[r, j].detach().to("cpu", torch.float32).clamp(0, 1)
        rgb = lay[:3] * lay[3:] + (1 - lay[3:]) if lay.shape[0] == 4 else lay
        panels.append((_hwc(rgb), {"boxes": all_boxes[j:j + 1]}))
    return panels


def _draw_panel(ax, arr: np.ndarray, kw: dict, size: tuple[int, int], title: str | None) -> None:
    """One panel on ``ax``: the picture (nearest neighbour), its outlines, thin spines, no
    ticks, and ``title`` above it where given."""
    from matplotlib.patches import Rectangle

    h, w = size
    kw = dict(kw)
    rects = kw.pop("boxes", [])
    ax.imshow(arr, interpolation="nearest", aspect="auto", **kw)
    for rect in rects:
        ax.add_patch(Rectangle(fill=False, linewidth=1.0, **rect))
    if rects:  # a box reaching outside the image must not widen the panel
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_linewidth(0.4)
    if title is not None:
        ax.set_title(title, fontsize=7, pad=2)


def save_data_figure(path: str | Path, image: Tensor, labels: Tensor, max_images: int = 16,
                     title: str | None = None) -> Path:
    """A preview of a dataset: pairs of panels (input, ground-truth segmentation).

    Args:
        path: PNG file to write (parent folders are created).
        image: ``b c h w`` in [0, 1], c = 1 or 3.
        labels: ``b h w`` int instance labels (0 = background), coloured with :data:`PALETTE`.
        max_images: draw the first ``min(b, max_images)`` images, 4 pairs per row.
        title: figure title.

    Raises:
        ValueError: when image and labels disagree in batch size or resolution.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if image.shape[0] != labels.shape[0] or tuple(image.shape[-2:]) != tuple(labels.shape[-2:]):
        raise ValueError(f"save_data_figure: expected labels (b h w) = ({image.shape[0]}, "
                         f"{image.shape[-2]}, {image.shape[-1]}), got {tuple(labels.shape)}")
    n = max(1, min(int(image.shape[0]), max_images))
    per_row = min(4, n)
    rows = -(-n // per_row)
    fig = Figure(figsize=(2 * 2 * per_row, 2 * rows + (0.4 if title else 0)))
    FigureCanvasAgg(fig)
    for i in range(n):
        r, c = divmod(i, per_row)
        for j, panel in enumerate((_hwc(image[i]), colorize(labels[i]))):
            ax = fig.add_subplot(rows, 2 * per_row, r * 2 * per_row + 2 * c + j + 1)
            ax.imshow(panel, interpolation="nearest")
            ax.set_axis_off()
            if r == 0:
                ax.set_title("input" if j == 0 else "true seg", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
