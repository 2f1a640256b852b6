"""Curves of training and evaluation: ``save_curve`` (losses / metrics against the step,
one panel per key) and ``save_metric_curves`` (evaluation metrics, one line per dataset or
seed). matplotlib is imported only when one is drawn (ocdsl/viz/_common.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ocdsl.viz._common import PALETTE, finite_number, save_png

__all__ = ["save_curve", "save_metric_curves"]


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
            y = finite_number(rec.get(key))
            if y is None:
                continue
            xv = finite_number(rec.get(x))
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
    return save_png(fig, path, 100)


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

    rows = [r for r in rows if "event" not in r]
    metrics = _metric_names(rows, metrics, {colour} | ({style} if style else set()))
    colours, styles, series = _group_series(rows, colour, style)
    ncol = 2 if len(metrics) > 1 else 1
    nrow = -(-len(metrics) // ncol)
    fig = Figure(figsize=(5.0 * ncol, 2.6 * nrow + (0.4 if title else 0) + 0.35), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        drawn = False
        for (cv, sv), by_step in series.items():
            pts = [(s, finite_number(r.get(metric))) for s, r in sorted(by_step.items())]
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
    handles = _legend_handles(colour, colours, style, styles)
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1))
    return save_png(fig, path, 100)


def _metric_names(rows: list[Mapping], metrics: Sequence[str] | None, group_keys: set) -> list[str]:
    """``metrics``, or by default every numeric key of ``rows`` that is not bookkeeping, a
    grouping key or a ``*_nan`` count, first seen first. Raises ValueError for none."""
    if metrics is None:
        metrics = []
        for r in rows:
            for k, v in r.items():
                if (k not in _NOT_CURVES and k not in group_keys and not k.endswith("_nan")
                        and k not in metrics and finite_number(v) is not None):
                    metrics.append(k)
    metrics = list(metrics)
    if not metrics:
        raise ValueError("save_metric_curves: expected at least one metric to plot, got none")
    return metrics


def _group_series(rows: list[Mapping], colour: str, style: str | None) -> tuple[dict, dict, dict]:
    """(colour value -> index, style value -> index, (colour value, style value) -> step ->
    row): each group's rows by step, the last row of a repeated step kept."""
    colours: dict = {}
    styles: dict = {}
    series: dict[tuple, dict[float, Mapping]] = {}
    for r in rows:
        cv, sv = r.get(colour), (r.get(style) if style else None)
        colours.setdefault(cv, len(colours))
        if style:
            styles.setdefault(sv, len(styles))
        step = finite_number(r.get("step"))
        if step is None:
            continue
        series.setdefault((cv, sv), {})[step] = r
    return colours, styles, series


def _legend_handles(colour: str, colours: dict, style: str | None, styles: dict) -> list:
    """One legend entry per colour value, then one per style value (black lines)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=PALETTE[i % len(PALETTE)], lw=2, label=f"{colour} {v}" if colour == "seed" else str(v))
               for v, i in colours.items()]
    if style:
        handles += [Line2D([], [], color="black", lw=1.2, linestyle=_LINE_STYLES[i % len(_LINE_STYLES)],
                           label=str(v)) for v, i in styles.items()]
    return handles
