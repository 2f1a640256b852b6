"""Figures of a model's decomposition and of training curves (PNG, matplotlib Agg).

matplotlib is imported inside the functions, and only its object-oriented API is used
(``Figure`` + ``FigureCanvasAgg``, never pyplot), so ``import ocdsl`` stays fast and the
global matplotlib backend of a notebook or a GUI is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["PALETTE", "FigureLayout", "colorize", "save_reconstruction_figure", "save_curve", "save_mask_strip",
           "save_metric_curves", "strip_rows"]

#: Fixed qualitative palette (matplotlib tab10, then the light tab20 shades), RGB in [0, 1].
#: Predicted slot k and ground-truth label l get ``PALETTE[k % 20]`` / ``PALETTE[l % 20]``.
PALETTE: np.ndarray = np.array([
    (0x1f, 0x77, 0xb4), (0xff, 0x7f, 0x0e), (0x2c, 0xa0, 0x2c), (0xd6, 0x27, 0x28),
    (0x94, 0x67, 0xbd), (0x8c, 0x56, 0x4b), (0xe3, 0x77, 0xc2), (0x7f, 0x7f, 0x7f),
    (0xbc, 0xbd, 0x22), (0x17, 0xbe, 0xcf), (0xae, 0xc7, 0xe8), (0xff, 0xbb, 0x78),
    (0x98, 0xdf, 0x8a), (0xff, 0x98, 0x96), (0xc5, 0xb0, 0xd5), (0xc4, 0x9c, 0x94),
    (0xf7, 0xb6, 0xd2), (0xc7, 0xc7, 0xc7), (0xdb, 0xdb, 0x8d), (0x9e, 0xda, 0xe5),
], dtype=np.float64) / 255.0

_PANEL_IN = 1.2      # panel height, inches
_GAP_IN = 0.06       # gap between panels, inches
_TITLE_IN = 0.26     # band above the first row for the column titles, inches
_MIN_DPI = 100       # 35x35 Tetrominoes -> 120 px per panel (3.4x, nearest neighbour)


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


def _hwc(x: Tensor) -> np.ndarray:
    """``c h w`` in [0, 1] (c = 1 or 3) -> ``h w 3`` float numpy, clipped to [0, 1]."""
    x = x.detach().to("cpu", torch.float32).clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, *x.shape[1:])
    return x.permute(1, 2, 0).numpy()


def _expect(name: str, t: Tensor | None, axes: str, shape: tuple) -> None:
    """Raise ValueError ``expected name (axes) = shape, got actual`` on a mismatch (None = any)."""
    if t is None:
        return
    ok = t.dim() == len(shape) and all(s is None or s == a for s, a in zip(shape, t.shape))
    if not ok:
        want = ", ".join("?" if s is None else str(s) for s in shape)
        raise ValueError(f"{name}: expected ({axes}) = ({want}), got {tuple(t.shape)}")


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
    from matplotlib.patches import Rectangle

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

    titles = (["input"] + (["masked"] if masked_input is not None else [])
              + (["recon"] if recon is not None else []) + ["pred seg"])
    if true_labels is not None:
        titles.append("true seg")
    for j in range(k):
        titles += (([f"slot {j}"] if slot_rgb is not None else []) + [f"mask {j}"]
                   + ([f"attn {j}"] if attention is not None else []))
    titles += [f"layer {j}" for j in range(n_layers)]
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
    def outline(j: int, box) -> dict:
        """A rectangle in pixel coordinates (imshow puts pixel centres on integers)."""
        x0, y0, x1, y1 = (float(v) for v in box)
        px0, px1 = (x0 + 1) * w / 2 - 0.5, (x1 + 1) * w / 2 - 0.5
        py0, py1 = (y0 + 1) * h / 2 - 0.5, (y1 + 1) * h / 2 - 0.5
        return {"xy": (px0, py0), "width": px1 - px0, "height": py1 - py0,
                "color": PALETTE[(j + 1) % len(PALETTE)] / 255.0}

    for r in range(rows):
        all_boxes = [] if boxes is None else [outline(j, boxes[r, j]) for j in range(boxes.shape[1])]
        panels: list[tuple[np.ndarray, dict]] = [(_hwc(image[r]), {"boxes": all_boxes})]
        if masked_input is not None:
            panels.append((_hwc(masked_input[r]), {}))
        if recon is not None:
            panels.append((_hwc(recon[r]), {}))
        panels.append((colorize(seg[r]), {}))
        if true_labels is not None:
            panels.append((colorize(true_labels[r]), {}))
        for j in range(k):
            m = masks_c[r, j].clamp(0, 1)                          # (h, w)
            if slot_rgb is not None:
                rgb = slot_rgb[r, j].detach().to("cpu", torch.float32).clamp(0, 1)
                panels.append((_hwc(rgb * m + (1 - m)), {}))       # white where the slot is absent
            panels.append((m.numpy(), {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}))
            if attention is not None:
                a = attention[r, j].detach().to("cpu", torch.float32).clamp(0, 1)
                panels.append((a.numpy(), {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}))
        for j in range(n_layers):
            lay = layers[r, j].detach().to("cpu", torch.float32).clamp(0, 1)
            rgb = lay[:3] * lay[3:] + (1 - lay[3:]) if lay.shape[0] == 4 else lay
            panels.append((_hwc(rgb), {"boxes": all_boxes[j:j + 1]}))
        for col, (arr, kw) in enumerate(panels):
            kw = dict(kw)
            rects = kw.pop("boxes", [])
            x0 = col * (pw + _GAP_IN)
            y_top = _TITLE_IN + r * (ph + _GAP_IN)                 # from the top, inches
            ax = fig.add_axes((x0 / fig_w, 1 - (y_top + ph) / fig_h, pw / fig_w, ph / fig_h))
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
            if r == 0:
                ax.set_title(titles[col], fontsize=7, pad=2)
            panel_boxes[(r, col)] = (round(x0 * dpi), round(y_top * dpi),
                               round((x0 + pw) * dpi), round((y_top + ph) * dpi))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return FigureLayout(path=path, rows=rows, cols=cols, titles=tuple(titles), width=width,
                        height=height, dpi=dpi, boxes=panel_boxes)


def _number(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, Tensor) and v.numel() == 1:
        v = v.item()
    if isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v)):
        return float(v)
    return None


def save_curve(path: str | Path, records: Iterable[Mapping], keys: Sequence[str], *,
               x: str = "step", logy: Iterable[str] = ()) -> Path:
    """Plot metrics / losses against the step, one panel per key, from ``metrics.jsonl`` rows.

    Args:
        path: PNG file to write (parent folders are created).
        records: dicts such as ``{"step": 100, "loss": 0.02, "ari_fg": 0.8}``; a row without a
            key, or with a non-finite / non-numeric value for it, is skipped for that key. Rows
            without ``x`` use their index in ``records``.
        keys: names to plot, one panel each (sharing the x axis).
        x: the x-axis key (default ``"step"``).
        logy: keys drawn with a logarithmic y axis (e.g. ``["loss"]``).

    Returns:
        The path written.

    Raises:
        ValueError: ``keys`` is empty.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = list(keys)
    if not keys:
        raise ValueError("save_curve: expected at least one key to plot, got none")
    logy = set(logy)
    records = list(records)
    fig = Figure(figsize=(6.0, 1.8 * len(keys) + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for ax, key in zip(axes, keys):
        xs, ys = [], []
        for i, rec in enumerate(records):
            y = _number(rec.get(key))
            if y is None:
                continue
            xv = _number(rec.get(x))
            xs.append(i if xv is None else xv)
            ys.append(y)
        if xs:
            ax.plot(xs, ys, lw=1.0, marker="." if len(xs) < 50 else None, ms=3)
            if key in logy and min(ys) > 0:
                ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylabel(key, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
    axes[-1].set_xlabel(x, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    return path


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
    canvas = np.ones((height, width, 3))
    boxes: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    for r, row in enumerate(panels):
        for c, arr in enumerate(row):
            if arr.shape[2] == 1:
                arr = np.repeat(arr, 3, axis=2)
            x0, y0 = left + c * (pw + gap), top + r * (ph + gap)
            canvas[y0:y0 + ph, x0:x0 + pw] = arr.repeat(scale, axis=0).repeat(scale, axis=1)
            boxes[(r, c)] = (x0, y0, x0 + pw, y0 + ph)
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return FigureLayout(path=path, rows=rows, cols=cols, titles=tuple(labels), width=width, height=height,
                        dpi=dpi, boxes=boxes)


_LINE_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
_NOT_CURVES = frozenset({"step", "split", "count", "event", "seed", "elapsed_s", "seconds", "phase"})


def save_metric_curves(path: str | Path, rows: Iterable[Mapping], metrics: Sequence[str] | None = None, *,
                       colour: str = "split", style: str | None = None, title: str | None = None) -> Path:
    """Evaluation curves: one panel per metric, one line per group of rows.

    ``rows`` are evaluation rows of ``metrics.jsonl`` (``{"step", "split", <metric>: value,
    ...}``), possibly with more keys to group by (``seed``). Rows are grouped by the values
    of ``colour`` (and ``style``): each group is one line in every panel, its colour chosen
    by its ``colour`` value (:data:`PALETTE` order), its line style by its ``style`` value
    (solid, dashed, dotted, ...). For one run: ``colour="split"`` (a line per dataset); for
    several seeds: ``colour="seed", style="split"``. The legend names each colour and each
    style once. Non-finite or missing values are skipped; a repeated (group, step) keeps its
    last row.

    Args:
        path: PNG file to write (parent folders are created).
        rows: the evaluation rows.
        metrics: metric names, one panel each, in order (default: every numeric key of the
            rows except ``step``, ``count``, ``*_nan`` and the grouping keys, first seen first).
        colour: the row key whose values get a colour each.
        style: the row key whose values get a line style each, or None.
        title: figure title.

    Returns:
        The path written.

    Raises:
        ValueError: no metric to plot.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    rows = [r for r in rows if "event" not in r]
    group_keys = {colour} | ({style} if style else set())
    if metrics is None:
        metrics = []
        for r in rows:
            for k, v in r.items():
                if (k not in _NOT_CURVES and k not in group_keys and not k.endswith("_nan")
                        and k not in metrics and _number(v) is not None):
                    metrics.append(k)
    metrics = list(metrics)
    if not metrics:
        raise ValueError("save_metric_curves: expected at least one metric to plot, got none")
    colours: dict = {}
    styles: dict = {}
    series: dict[tuple, dict[float, Mapping]] = {}
    for r in rows:
        cv, sv = r.get(colour), (r.get(style) if style else None)
        colours.setdefault(cv, len(colours))
        if style:
            styles.setdefault(sv, len(styles))
        step = _number(r.get("step"))
        if step is None:
            continue
        series.setdefault((cv, sv), {})[step] = r
    ncol = 2 if len(metrics) > 1 else 1
    nrow = -(-len(metrics) // ncol)
    fig = Figure(figsize=(5.0 * ncol, 2.6 * nrow + (0.4 if title else 0) + 0.35), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        drawn = False
        for (cv, sv), by_step in series.items():
            pts = [(s, _number(r.get(metric))) for s, r in sorted(by_step.items())]
            pts = [(s, y) for s, y in pts if y is not None]
            if not pts:
                continue
            xs, ys = zip(*pts)
            ax.plot(xs, ys, color=PALETTE[colours[cv] % len(PALETTE)],
                    linestyle=_LINE_STYLES[styles[sv] % len(_LINE_STYLES)] if style else "-",
                    lw=1.2, marker="." if len(xs) < 50 else None, ms=4)
            drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
    for ax in axes[len(metrics):]:
        ax.set_axis_off()
    handles = [Line2D([], [], color=PALETTE[i % len(PALETTE)], lw=2, label=f"{colour} {v}" if colour == "seed" else str(v))
               for v, i in colours.items()]
    if style:
        handles += [Line2D([], [], color="black", lw=1.2, linestyle=_LINE_STYLES[i % len(_LINE_STYLES)],
                           label=str(v)) for v, i in styles.items()]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    return path
