"""The leaves train/ uses (data/, metrics/, viz/), imported lazily.

Every call from train/ into another stage goes through a function here, so the training
loop imports nothing heavy at start-up (matplotlib only when a figure is drawn) and the
tests can put small fakes in place with ``monkeypatch.setattr(_deps, "make_dataset", ...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_dataset(cfg: dict, split: str, base_dir: Path, size: int | None = None, *,
                 spec_file: str = "<spec>", keypath: tuple = ("data",)):
    """``ocdsl.data.make_dataset`` (docs/internals.md, "Data"); None for an optional entry
    whose file is absent."""
    from ocdsl.data import make_dataset as _make

    return _make(cfg, split, base_dir, size, spec_file=spec_file, keypath=keypath)


def metrics_evaluate(names: list[str], masks, labels, recon, image) -> Any:
    """``ocdsl.metrics.evaluate``: per-image values of each metric for one batch."""
    from ocdsl.metrics import evaluate as _evaluate

    return _evaluate(names, masks, labels, recon, image)


def metrics_concat(per_batch: list) -> Any:
    """``ocdsl.metrics.concat``: ``[{name: (b_i,)}] -> {name: (sum b_i,)}``."""
    from ocdsl.metrics import concat as _concat

    return _concat(per_batch)


def dataset_metrics(names: list[str], inputs: dict) -> dict:
    """``ocdsl.metrics.DATASET_METRICS``: each named dataset-level metric (e.g. ``probe_ap``,
    ``ap_1``) computed on a whole evaluated set from ``inputs`` (``features``,
    ``predictions``, ``factors``, ``layout``); ``{}`` when none is named."""
    from ocdsl.metrics import DATASET_METRICS

    out: dict = {}
    for n in names:
        if n in DATASET_METRICS:
            out.update(DATASET_METRICS[n](inputs))
    return out


def metrics_summarize(results: Any) -> Any:
    """``ocdsl.metrics.summarize``: per-image values -> mean (and friends) per metric."""
    from ocdsl.metrics import summarize as _summarize

    return _summarize(results)


def save_reconstruction_figure(path: Path, image, recon, masks, slot_rgb, true_labels=None,
                               max_images: int = 8, **extras) -> None:
    """``ocdsl.viz.figures.save_reconstruction_figure``: image/recon ``b c h w`` in [0, 1],
    masks ``b k h w``, slot_rgb ``b k c h w`` in [0, 1] or None, true_labels ``b h w``;
    ``extras``: ``attention`` (b k h w) and ``masked_input`` (b c h w), when given."""
    from ocdsl.viz.figures import save_reconstruction_figure as _save

    _save(path, image, recon, masks, slot_rgb, true_labels, max_images=max_images, **extras)


def save_curve(path: Path, records: list, keys: list, *, logy=()) -> None:
    """``ocdsl.viz.figures.save_curve``: one panel per key against ``step``."""
    from ocdsl.viz.figures import save_curve as _save

    _save(path, records, keys, logy=logy)


def save_mask_strip(path: Path, images, steps, segs, true_labels=None, *, title=None) -> None:
    """``ocdsl.viz.figures.save_mask_strip``: images ``n c h w`` (uint8 or [0, 1]), one row
    of predicted segmentations ``segs[t]`` (``n h w`` slot indices) per evaluation step."""
    from ocdsl.viz.figures import save_mask_strip as _save

    _save(path, images, steps, segs, true_labels, title=title)


def save_metric_curves(path: Path, rows: list, metrics=None, *, colour: str = "split", style=None,
                       title=None) -> None:
    """``ocdsl.viz.figures.save_metric_curves``: one panel per metric, a line per ``colour``
    (and ``style``) group of evaluation rows."""
    from ocdsl.viz.figures import save_metric_curves as _save

    _save(path, rows, metrics, colour=colour, style=style, title=title)


def read_png(path: Path):
    """A PNG file as a ``h w c`` float array in [0, 1] (``matplotlib.image.imread``)."""
    from matplotlib.image import imread

    return imread(str(path))
