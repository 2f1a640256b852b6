"""Segmentation and reconstruction metrics, per image, and their registry.

Every registered metric has the same signature::

    fn(masks: Tensor,          # (b k h w) soft masks (argmax over k is taken), floating
       labels: Tensor | None,  # (b h w) int ground truth, 0 = background
       recon: Tensor | None,   # (b c h w) reconstruction in [0, 1]
       image: Tensor | None,   # (b c h w) input image in [0, 1]
    ) -> Tensor                # (b,) float64, NaN where the metric is undefined for that image

========  ==========================================================  =======================
name      meaning                                                     NaN for an image when
========  ==========================================================  =======================
ari       sklearn ``adjusted_rand_score`` on all pixels                never
ari_fg    the same on pixels with ``labels > 0`` (ClevrTex, DeepMind)  it has no foreground
miou      Hungarian mIoU, background included (ClevrTex)               never
miou_fg   the same over foreground indices t >= 1 (ClevrTex tables)    no foreground pair
mse       sum over c h w of the squared error (ClevrTex "MSE")         never
mse_mean  mean over c h w of the squared error (per-pixel MSE)         never
otsu_iou  each slot's map > Otsu threshold, Hungarian IoU, objects     it has no foreground
========  ==========================================================  =======================

Dataset-level metrics (:data:`DATASET_METRICS`, ``fn(inputs) -> dict``) are computed once on a
whole evaluated set: ``probe_ap``, the linear probe of :mod:`ocdsl.metrics.probe`, and
``ap_inf``, ``ap_1``, ``ap_0_5``, ``ap_0_25``, ``ap_0_125``, set prediction's average
precision at those distance thresholds (:mod:`ocdsl.metrics.set_ap`).

ARI degenerate cases follow sklearn (1.0 where sklearn says 1.0); ``ari(...,
degenerate="nan")`` gives DeepMind's NaN instead (see :mod:`ocdsl.metrics.ari`).

Typical use (train/ and ``ocdsl eval``)::

    per_batch = [evaluate(names, out["masks"], batch["mask"], out["recon"], batch["image"])
                 for batch in loader]
    summary = summarize(concat(per_batch))   # {"ari_fg": 0.91, "ari_fg_nan": 3.0, ...}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from ocdsl.catalog import METRICS as CATALOG
from ocdsl.errors import did_you_mean
from ocdsl.metrics._inputs import pred_labels
from ocdsl.metrics.ari import ari, ari_fg, contingency
from ocdsl.metrics.miou import _fg, matched_ious, miou, miou_fg
from ocdsl.metrics.mse import mse
from ocdsl.metrics.otsu import otsu_iou
from ocdsl.metrics.probe import probe_ap
from ocdsl.metrics.set_ap import THRESHOLDS, average_precision

__all__ = [
    "METRICS", "DATASET_METRICS", "REQUIRES", "evaluate", "summarize", "concat",
    "ari", "ari_fg", "contingency", "miou", "miou_fg", "matched_ious", "mse", "otsu_iou", "probe_ap",
    "average_precision",
]

MetricFn = Callable[[Tensor, "Tensor | None", "Tensor | None", "Tensor | None"], Tensor]


def _need(name: str, **inputs: Tensor | None) -> None:
    missing = [k for k, v in inputs.items() if v is None]
    if missing:
        raise ValueError(f"metric '{name}' needs {' and '.join(missing)}, got None")


def _ari(masks, labels, recon=None, image=None):
    _need("ari", labels=labels)
    return ari(masks, labels)


def _ari_fg(masks, labels, recon=None, image=None):
    _need("ari_fg", labels=labels)
    return ari_fg(masks, labels)


def _miou(masks, labels, recon=None, image=None):
    _need("miou", labels=labels)
    return miou(masks, labels)


def _miou_fg(masks, labels, recon=None, image=None):
    _need("miou_fg", labels=labels)
    return miou_fg(masks, labels)


def _mse(masks, labels, recon=None, image=None):
    _need("mse", recon=recon, image=image)
    return mse(recon, image, reduction="sum")


def _mse_mean(masks, labels, recon=None, image=None):
    _need("mse_mean", recon=recon, image=image)
    return mse(recon, image, reduction="mean")


def _otsu_iou(masks, labels, recon=None, image=None):
    _need("otsu_iou", labels=labels)
    return otsu_iou(masks.float(), labels)


#: name -> fn(masks, labels, recon, image) -> (b,) float64: one function per per-image entry
#: of the torch-free catalogue ocdsl/catalog.py (the names the spec schema accepts), same order.
METRICS: dict[str, MetricFn] = {
    "ari": _ari,
    "ari_fg": _ari_fg,
    "miou": _miou,
    "miou_fg": _miou_fg,
    "mse": _mse,
    "mse_mean": _mse_mean,
    "otsu_iou": _otsu_iou,
}

def _dataset_inputs(name: str, inputs: Mapping, *keys: str) -> list:
    missing = [k for k in keys if inputs.get(k) is None]
    if missing:
        raise ValueError(f"metric '{name}' needs {' and '.join(missing)}, got None")
    return [inputs[k] for k in keys]


def _probe_ap(inputs: Mapping) -> dict:
    return probe_ap(*_dataset_inputs("probe_ap", inputs, "features", "factors"))


def _set_ap(name: str, threshold: float | None) -> Callable[[Mapping], dict]:
    def fn(inputs: Mapping) -> dict:
        predictions, factors = _dataset_inputs(name, inputs, "predictions", "factors")
        layout = inputs.get("layout")
        if layout is None or "properties" not in factors:
            raise ValueError(f"metric '{name}' needs the data's per-object property vectors (factor "
                             f"'properties' and its layout; datasets: multi_dsprites, clevr_scenes)")
        return {name: average_precision(predictions, factors["properties"], threshold=threshold, **layout)}
    return fn


#: name -> fn(inputs) -> {name: float, ...}: the catalogue's dataset-level entries
#: (``per_image = False``), computed once on a whole evaluated set. ``inputs``: ``features``
#: (n d, the per-slot features max-pooled over the slots), ``predictions`` (n k p, per-slot
#: property vectors), ``factors`` ({name: (n ...)} of the data) and ``layout`` (the data's
#: ``PropertyLayout.metric_args()``, or None), numpy arrays, each None where not evaluated.
DATASET_METRICS: dict[str, Callable[[Mapping], dict]] = {
    "probe_ap": _probe_ap,
    **{name: _set_ap(name, t) for name, t in THRESHOLDS.items()},
}

#: name -> the inputs it needs, among "masks", "labels", "recon", "image": the catalogue's
#: ``needs`` (spec validation checks them before a run, e.g. ``mse`` without a decoder).
REQUIRES: dict[str, frozenset[str]] = {name: info.needs for name, info in CATALOG.items()}


def _check_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    for n in names:
        if n not in METRICS and n not in DATASET_METRICS:
            hint = did_you_mean(n, [*METRICS, *DATASET_METRICS])
            raise ValueError(f"unknown metric '{n}'" + (f"; {hint}" if hint else "")
                             + f" (known: {', '.join(sorted(METRICS))})")
    return names


@torch.no_grad()
def evaluate(names: Sequence[str], masks: Tensor | None, labels: Tensor | None,
             recon: Tensor | None = None, image: Tensor | None = None) -> dict[str, Tensor]:
    """Compute several metrics on one batch.

    Args:
        names: metric names from :data:`METRICS`, e.g. ``["ari_fg", "miou_fg", "mse"]``.
        masks: soft masks ``b k h w`` (argmax over k), at the labels' resolution.
        labels: int ground truth ``b h w``, 0 = background (None if only mse is asked for).
        recon, image: ``b c h w`` in [0, 1] (None if no mse is asked for).

    Returns:
        ``{name: (b,) float64 tensor}`` in the order of ``names``, detached, on the inputs' device.

    Raises:
        ValueError: an unknown name (with a did-you-mean hint), a needed input is None, or the
        shapes disagree (see each metric).
    """
    names = [n for n in _check_names(names) if n in METRICS]   # dataset-level ones: DATASET_METRICS
    out: dict[str, Tensor] = {}
    slots = None
    if masks is not None and labels is not None and any("masks" in REQUIRES[n] for n in names):
        # one argmax for all mask metrics (soft masks -> slot labels); same results as passing masks
        slots = pred_labels(masks.detach(), labels).reshape(labels.shape)       # (b, h, w)
    matched = None
    for n in names:
        if "masks" in REQUIRES[n]:
            _need(n, masks=masks, labels=labels)
        if n in ("ari", "ari_fg"):
            out[n] = ari(slots, labels, ignore_background=(n == "ari_fg"))
        elif n in ("miou", "miou_fg"):                             # one Hungarian pass for both
            if matched is None:
                k = masks.shape[1] if masks.is_floating_point() else None
                matched = matched_ious(slots, labels, num_slots=k)
            ious, visible, _ = matched
            out[n] = ious.sum(dim=1) / visible.sum(dim=1).to(ious.dtype) if n == "miou" else _fg(ious, visible)
        else:
            out[n] = METRICS[n](None if masks is None else masks.detach(), labels, recon, image)
    return out


def concat(per_batch: Iterable[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Concatenate per-image results of several batches: ``[{name: (b_i,)}] -> {name: (sum b_i,)}``.

    Raises ValueError when the batches do not all have the same metric names.
    """
    parts: dict[str, list[Tensor]] = {}
    keys = None
    for d in per_batch:
        if keys is None:
            keys = list(d)
        elif set(d) != set(keys):
            raise ValueError(f"concat: metric names differ between batches: {sorted(keys)} vs {sorted(d)}")
        for k, v in d.items():
            parts.setdefault(k, []).append(torch.as_tensor(v).detach().reshape(-1).to("cpu", torch.float64))
    return {k: torch.cat(v) for k, v in parts.items()}


def summarize(per_image: Mapping[str, Tensor]) -> dict[str, float]:
    """Average per-image values over images, skipping NaN images.

    Args:
        per_image: ``{name: (n,) tensor}`` (from :func:`evaluate` or :func:`concat`).

    Returns:
        ``{name: nanmean, name + "_nan": number of NaN images skipped}`` (floats; the mean is NaN
        when every image is NaN or there is none).
    """
    out: dict[str, float] = {}
    for k, v in per_image.items():
        v = torch.as_tensor(v).detach().reshape(-1).to("cpu", torch.float64)
        nan = torch.isnan(v)
        out[k] = float(v[~nan].mean()) if bool((~nan).any()) else float("nan")
        out[f"{k}_nan"] = float(nan.sum())
    return out
