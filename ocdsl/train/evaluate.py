"""Evaluation: the test split and every ``[[eval.datasets]]`` entry, metrics and figures.

``[eval]`` keys read here, from the typed ``spec.eval_cfg`` (ocdsl/spec/config.py, where the
defaults are; validation judged every value)::

    every          int >= 1, evaluate every N steps (and always at the end); absent: end only
    masks          output key of the soft masks, (B, K, H, W) or (B, K, 1, H, W)
    reconstruction output key of the reconstruction, in data.range (optional)
    attention      output key of per-slot attention, (B, K, H, W) or over a patch grid
                   (B, K, N), drawn in the figures (optional)
    input_mask     output key of what the model did not see, (B, H, W) or (B, N), 1 = hidden;
                   the figures draw the masked input (optional)
    schedules      {name = value}: schedule values evaluation runs with instead of their value
                   at the current step (e.g. mask_ratio = 0); they reach the model through its
                   ``set_schedules``. With overrides, the first dataset also gets a figure
                   drawn at the training-time values (``..._train_schedules.png``).
    metrics        names from the catalogue ocdsl/catalog.py (validation checks that the
                   outputs each needs are named)
    test_size      size of the procedural test split
    batch_size     examples per evaluation batch
    seed           RNG seed of evaluation (slot sampling ...), default 0; the global generators
                   are seeded with ocdsl.train.rng.derive_seed(seed, "eval"), whatever train.seed
    figure_images  images per figure, default 8 (0: no figures)
    success        "<metric> <op> <number>" (e.g. "ari_fg >= 0.9"), read by ``ocdsl run --seeds``
    [[datasets]]   {name, dataset, path, optional, size, ...}: a data config, split "test"

Figures (with a ``figures_dir``), per evaluated dataset: ``figures/step_<step>_<name>.png``
(the first ``figure_images`` images decomposed), and ``figures/<name>_masks_over_time.png``,
the predicted segmentation of the first ``STRIP_IMAGES`` (4) images at every evaluation so
far, one row per evaluation, redrawn at each one from ``figures/<name>_masks_over_time.npz``
(which grows by one entry per evaluation).

Evaluation runs the uncompiled module in eval mode under ``no_grad``, with the global RNGs
saved, seeded with ``derive_seed(eval.seed, "eval")`` (ocdsl/train/rng.py) and restored
afterwards: its results do not depend on when it runs nor on ``train.seed`` (the test split
is made from ``data.seed`` as written, default 0, never from ``train.seed``), and it never
changes the training run's random stream. A model with
``set_schedules`` gets ``schedules(step)`` updated by ``eval.schedules`` before evaluating,
and ``schedules(step)`` again afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

from ocdsl.errors import SpecError, UserError, did_you_mean
from ocdsl.spec.config import EVAL_OUTPUTS
from ocdsl.train import _deps
from ocdsl.train.checkpoint import atomic_write_json, load_checkpoint, load_model_state
from ocdsl.train.report import fmt_duration, fmt_value, summary_table
from ocdsl.train.rng import EVAL, preserved_rng  # preserved_rng re-exported: it lived here
from ocdsl.train.model_io import base_module, from_range, model_inputs, node_names, schedules_at
from ocdsl.train.stream import EvalSet, check_data_fits, collate, dataset_cfg, eval_sets  # noqa: F401 (re-exported)

__all__ = ["EvalSet", "eval_sets", "check_eval_outputs", "evaluate_model", "evaluate_checkpoint",
           "preserved_rng", "figure_path", "strip_path", "eval_schedule_values", "pixel_maps"]

STRIP_IMAGES = 4  # images in figures/<dataset>_masks_over_time.png


def check_eval_outputs(spec, outputs: dict) -> None:
    """The [eval] output keys (``EVAL_OUTPUTS``: eval.masks, eval.reconstruction, ...) name
    outputs the model has (checked on the first training step, so a model that does not
    match its spec fails at once rather than at the first evaluation)."""
    diags = []
    for key in EVAL_OUTPUTS:
        name = spec.eval_cfg.outputs.get(key)
        if name and name not in outputs:
            diags.append(spec.diag(("eval", key), f"'{name}' is not an output of the model",
                                   hint=did_you_mean(name, outputs) or f"outputs: {', '.join(outputs)}"))
    if diags:
        raise SpecError(diags)


def _masks(spec, outputs: dict, image: torch.Tensor):
    """The soft masks named by ``eval.masks`` at the image's resolution, ``b k h w``: a
    ``b k 1 h w`` output loses its channel axis, and a ``b k n`` output over a patch grid
    (e.g. OC-MAE's object-function attention) has each patch's value repeated over its
    pixels, so that the attention can be scored like the decoder's masks. Raises UserError
    naming ``eval.masks`` for any other shape."""
    name = spec.eval_cfg.outputs.get("masks")
    if not name:
        return None
    m = outputs[name]
    if m.dim() == 5 and m.shape[2] == 1:  # (B, K, 1, H, W)
        m = m[:, :, 0]
    h, w = image.shape[-2:]
    if m.dim() == 3 or (m.dim() == 4 and tuple(m.shape[-2:]) != (h, w)):
        m = pixel_maps(m, h, w) if m.dim() == 3 else None
    if m is None or m.dim() != 4:
        shape = ", ".join(map(str, outputs[name].shape))
        raise UserError(spec.diag(("eval", "masks"), f"expected masks (B, K, H, W) or (B, K, N) over a "
                                  f"patch grid of the {h}x{w} image, '{name}' has shape ({shape})"))
    return m


def _slot_images(outputs: dict, masks, rng) -> torch.Tensor | None:
    """The per-slot RGB: the (first, preferring a key ending in "rgb") output of shape
    (B, K, C, H, W) with C in (1, 3) and K, H, W those of the masks; mapped to [0, 1]."""
    if masks is None:
        return None
    b, k, h, w = masks.shape
    cands = [key for key, v in outputs.items()
             if isinstance(v, torch.Tensor) and v.dim() == 5 and v.shape[0] == b and v.shape[1] == k
             and v.shape[2] in (1, 3) and tuple(v.shape[3:]) == (h, w)]
    if not cands:
        return None
    cands.sort(key=lambda key: (not key.endswith("rgb"), key))
    return from_range(outputs[cands[0]].float(), rng).clamp(0, 1)


def eval_schedule_values(spec, model, step: int, clock: tuple[int, int] | None = None,
                         total_steps: int | None = None) -> dict | None:
    """The schedule values evaluation runs with: ``model.schedules(step)`` (with the phase
    ``clock`` and the run's ``total_steps`` where given) updated by ``eval.schedules``; None
    when the model has no ``set_schedules``."""
    if getattr(model, "set_schedules", None) is None:
        return None
    values = dict(schedules_at(model, step, clock, total_steps))
    values.update(spec.eval_cfg.schedules)
    return values


def pixel_maps(x: torch.Tensor, height: int, width: int) -> torch.Tensor | None:
    """Per-slot maps at image resolution: ``b k h w`` as is (resized when it differs), or
    ``b k n`` over a patch grid (``n = gh * gw`` with the image's aspect ratio) with each
    patch's value repeated over its pixels (nearest). None when ``n`` fits no such grid."""
    x = x.detach().float()
    if x.dim() == 3:
        b, k, n = x.shape
        gh = max(1, round((n * height / width) ** 0.5))
        if n % gh:
            return None
        x = x.reshape(b, k, gh, n // gh)
    if x.dim() != 4:
        return None
    if tuple(x.shape[-2:]) != (height, width):
        x = torch.nn.functional.interpolate(x, size=(height, width), mode="nearest")
    return x


def _figure_extras(spec, out: dict, image: torch.Tensor, rng=(0.0, 1.0)) -> dict:
    """Optional figure panels: per-slot ``attention`` (b k h w), the ``masked_input``
    (b c h w, hidden parts grey), object ``layers`` (b k c h w) and their ``boxes`` (b k 4),
    from eval.attention / eval.input_mask / eval.layers / eval.boxes."""
    h, w = image.shape[-2:]
    extras = {}
    key = spec.eval_cfg.outputs.get("layers")
    if key and key in out:
        lay = out[key].detach().float()
        if lay.dim() == 5 and lay.shape[2] in (3, 4) and tuple(lay.shape[3:]) == (h, w):
            rgb = from_range(lay[:, :, :3], rng).clamp(0, 1)
            extras["layers"] = torch.cat([rgb, lay[:, :, 3:].clamp(0, 1)], dim=2).cpu()
    key = spec.eval_cfg.outputs.get("boxes")
    if key and key in out and out[key].dim() == 3 and out[key].shape[-1] == 4:
        extras["boxes"] = out[key].detach().float().cpu()
    key = spec.eval_cfg.outputs.get("attention")
    if key and key in out:
        a = pixel_maps(out[key], h, w)
        if a is not None:
            extras["attention"] = a.clamp(0, 1).cpu()
    key = spec.eval_cfg.outputs.get("input_mask")
    if key and key in out:
        m = out[key].detach().float()
        m = pixel_maps(m[:, None], h, w)
        if m is not None:
            m = m.clamp(0, 1).cpu()                                  # (b, 1, h, w)
            extras["masked_input"] = image.cpu() * (1 - m) + 0.5 * m
    return extras


def figure_path(out_dir: Path, step: int, split: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in split)
    return Path(out_dir) / "figures" / f"step_{step:06d}_{safe}.png"


def strip_path(out_dir: Path, split: str) -> Path:
    """``figures/<split>_masks_over_time.png``; its data is the ``.npz`` of the same name."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in split)
    return Path(out_dir) / "figures" / f"{safe}_masks_over_time.png"


def _record_mask_strip(out_dir: Path, split: str, step: int, image: torch.Tensor, seg: torch.Tensor,
                       labels: torch.Tensor | None, message) -> Path | None:
    """Add this evaluation's predicted segmentation (argmax slot) of the first images to
    ``figures/<split>_masks_over_time.npz`` and redraw ``..._masks_over_time.png`` from it.

    The ``.npz`` holds ``images`` (n c h w, uint8), ``labels`` (n h w, where the data has
    them), ``steps`` (t,) and ``segs`` (t n h w): one entry per evaluation, sorted by step. An
    evaluation at a step already there replaces it, and entries past ``step`` (from a stretch
    of training a resume went back over) are dropped. When the images differ from those
    stored (another test set), the strip starts over. Never raises: a problem is a warning."""
    import os

    import numpy as np

    png = strip_path(out_dir, split)
    data = png.with_suffix(".npz")
    try:
        images = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        seg_np = seg.detach().cpu().numpy().astype(np.uint8 if int(seg.max()) < 256 else np.int32)
        lab = None if labels is None else labels.detach().cpu().numpy().astype(np.int32)
        steps, segs = [], []
        if data.exists():
            try:
                with np.load(data) as old:
                    same = (old["images"].shape == images.shape and np.array_equal(old["images"], images)
                            and old["segs"].shape[1:] == seg_np.shape)
                    if same:
                        steps = [int(s) for s in old["steps"]]
                        segs = list(old["segs"])
                    else:
                        message(f"note: the images of {png.name} changed; it starts over")
            except Exception as e:  # unreadable: start over
                message(f"warning: could not read {data} ({type(e).__name__}: {e}); the strip starts over")
        kept = [(s, m) for s, m in zip(steps, segs) if s < step]
        kept.append((int(step), seg_np))
        steps = [s for s, _ in kept]
        stack = np.stack([m.astype(seg_np.dtype) for _, m in kept])
        arrays = {"images": images, "steps": np.asarray(steps, dtype=np.int64), "segs": stack}
        if lab is not None:
            arrays["labels"] = lab
        data.parent.mkdir(parents=True, exist_ok=True)
        tmp = data.with_name(data.stem + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, data)
        _deps.save_mask_strip(png, images, steps, stack, lab,
                              title=f"{split}: predicted segmentation (argmax slot) at each evaluation")
        return png
    except Exception as e:  # a figure is never worth losing a run over
        message(f"warning: could not update {png}: {type(e).__name__}: {e}")
        return None


def _save_figure(path: Path, message, *panels, **extras) -> Path | None:
    try:
        _deps.save_reconstruction_figure(path, *panels, **extras)
        return path
    except Exception as e:  # a figure is never worth losing a run over
        message(f"warning: could not write figure {path}: {type(e).__name__}: {e}")
        return None


def _mean(v) -> float:
    if isinstance(v, dict):
        v = v.get("mean")
    return float(v)


@torch.no_grad()
def evaluate_model(spec, model: torch.nn.Module, sets: list[EvalSet], *, device="cpu", step: int = 0,
                   figures_dir: Path | None = None, message: Callable[[str], None] = print,
                   clock: tuple[int, int] | None = None, total_steps: int | None = None) -> dict[str, dict]:
    """Evaluate ``model`` (uncompiled) on each set -> ``{name: {"step", "count", "metrics",
    "seconds", "figure", "strip"}}``; figures go to ``figures_dir/figures/step_<6-digit step>_<name>.png``
    and ``figures_dir/figures/<name>_masks_over_time.png`` (``strip``, see the module docstring).
    ``clock``: the training phase's ``(phase_step, phase_steps)`` and ``total_steps``: the
    run's length, for the schedules."""
    ev = spec.eval_cfg
    was_training = model.training
    model.eval()
    results: dict[str, dict] = {}
    eval_values = eval_schedule_values(spec, model, step, clock, total_steps)
    if eval_values is not None:
        model.set_schedules(eval_values)
    run = _EvalRun(spec, model, device, step, figures_dir, message, clock, total_steps, eval_values,
                   train_figure=eval_values is not None and bool(ev.schedules))
    try:
        with preserved_rng(ev.seed, EVAL):
            for es in sets:
                results[es.name] = _evaluate_set(run, es)
    finally:
        model.train(was_training)
        if eval_values is not None:
            model.set_schedules(schedules_at(model, step, clock, total_steps))
    return results


@dataclass
class _EvalRun:
    """What :func:`evaluate_model` passes to the evaluation of each set; ``train_figure``:
    the training-schedule figure is still to be drawn (once, on the first dataset)."""

    spec: Any
    model: torch.nn.Module
    device: Any
    step: int
    figures_dir: Path | None
    message: Callable[[str], None]
    clock: tuple[int, int] | None
    total_steps: int | None
    eval_values: dict | None
    train_figure: bool


def _evaluate_set(run: _EvalRun, es: EvalSet) -> dict:
    """One evaluation set: metrics over every batch, figures from the first."""
    spec, model, device = run.spec, run.model, run.device
    ev = spec.eval_cfg
    rng = spec.data_cfg.range
    names = list(ev.metrics)
    inputs_names = tuple(model.INPUTS)
    keys = tuple(dict.fromkeys((*inputs_names, "image", "mask")))
    t0 = time.perf_counter()
    loader = DataLoader(es.dataset, batch_size=ev.batch_size, shuffle=False, collate_fn=collate(keys))
    per_batch, count, fig, fig_done, strip = [], 0, None, False, None
    pooled, predicted = [], []
    skipped: set[str] = set()
    for batch in loader:
        arg, _ = model_inputs(batch, inputs_names, rng, device)
        # .forward: eager even when the module was compiled in place for training
        # (calling it would recompile for eval mode and no_grad, ~20 s here)
        out = model.forward(arg)
        image = batch["image"].to(device)
        masks = _masks(spec, out, image)
        recon_key = ev.outputs.get("reconstruction")
        recon = from_range(out[recon_key].float(), rng) if recon_key else None
        labels = batch.get("mask")
        labels = labels.to(device) if labels is not None else None
        usable = names if labels is not None else _without_masks(names, es.name, skipped, run.message)
        if usable:
            per_batch.append(_deps.metrics_evaluate(usable, masks, labels, recon, image))
        if ev.outputs.get("features"):  # dataset-level metrics: max-pooled slot features
            pooled.append(out[ev.outputs["features"]].detach().float().amax(dim=1).cpu())
        if ev.outputs.get("predictions"):  # and per-slot property predictions
            predicted.append(out[ev.outputs["predictions"]].detach().float().cpu())
        count += image.shape[0]
        if run.figures_dir is not None and not fig_done and masks is not None:
            fig_done = True
            fig, strip = _first_batch_figures(run, es, arg, out, image, masks, recon, labels)
    summary = _deps.metrics_summarize(_deps.metrics_concat(per_batch)) if per_batch else {}
    metrics = {n: _mean(summary[n]) for n in names if n in summary}
    metrics.update(_dataset_level(names, pooled, predicted, es.dataset, count))
    for n in names:  # images where a metric is undefined (e.g. no foreground)
        nan = summary.get(f"{n}_nan")
        if nan:
            metrics[f"{n}_nan"] = int(nan)
    return {"step": run.step, "count": count, "metrics": metrics,
            "seconds": time.perf_counter() - t0,
            "figure": None if fig is None else str(fig),
            "strip": None if strip is None else str(strip)}


def _first_batch_figures(run: _EvalRun, es: EvalSet, arg, out: dict, image: torch.Tensor,
                         masks: torch.Tensor, recon, labels) -> tuple[Path | None, Path | None]:
    """The reconstruction figure and the masks-over-time strip of a set's first batch (and,
    once, the figure under the training schedules) -> (figure, strip) paths."""
    spec, step, figures_dir, message = run.spec, run.step, run.figures_dir, run.message
    rng = spec.data_cfg.range
    n_fig = spec.eval_cfg.figure_images
    sl = slice(0, n_fig)
    slots = _slot_images(out, masks, rng)
    fig = _save_figure(figure_path(figures_dir, step, es.name), message,
                       image[sl].cpu(),
                       None if recon is None else recon[sl].clamp(0, 1).cpu(),
                       masks[sl].float().cpu(),
                       None if slots is None else slots[sl].cpu(),
                       None if labels is None else labels[sl].cpu(),
                       **_figure_extras(spec, {k: v[sl] for k, v in out.items()},
                                        image[sl], rng))
    strip = None
    n_strip = min(STRIP_IMAGES, n_fig, image.shape[0])
    if n_strip:
        strip = _record_mask_strip(figures_dir, es.name, step, image[:n_strip],
                                   masks[:n_strip].argmax(dim=1),
                                   None if labels is None else labels[:n_strip], message)
    if run.train_figure:
        run.train_figure = False  # once: the first dataset
        _train_schedules_figure(spec, run.model, arg, image, labels, sl, rng, step,
                                figures_dir, es.name, message, run.clock, run.total_steps)
        run.model.set_schedules(run.eval_values)
    return fig, strip


def _without_masks(names: list[str], dataset: str, skipped: set[str], message) -> list[str]:
    """``names`` less the metrics that need ground-truth masks (the dataset has none, e.g.
    an image folder); says once per dataset which were skipped."""
    from ocdsl.catalog import needing

    need = needing(names, "labels")
    if need and not skipped:
        skipped.update(need)
        message(f"eval {dataset}: no ground-truth masks in this dataset: {', '.join(need)} skipped")
    return [n for n in names if n not in need]


def _dataset_level(names, pooled: list, predicted: list, dataset, count: int) -> dict:
    """The dataset-level metrics among ``names`` (``probe_ap``, ``ap_*``) from the pooled
    features and the per-slot predictions of the ``count`` images evaluated, the dataset's
    per-object factors (read again in one batch: the evaluation batches do not carry them)
    and its property layout (``info.properties``, ocdsl/data/properties.py)."""
    if not (pooled or predicted) or not hasattr(dataset, "batch"):
        return {}
    import numpy as np

    factors = {k: v.numpy() for k, v in dataset.batch(np.arange(count))["factors"].items()}
    layout = getattr(getattr(dataset, "info", None), "properties", None)
    inputs = {"features": torch.cat(pooled).numpy() if pooled else None,
              "predictions": torch.cat(predicted).numpy() if predicted else None,
              "factors": factors, "layout": None if layout is None else layout.metric_args()}
    return _deps.dataset_metrics(names, inputs)


def _train_schedules_figure(spec, model, arg, image, labels, sl, rng, step, figures_dir, name,
                            message, clock=None, total_steps=None) -> None:
    """The figure of the first images with the schedules at their training-time values
    (e.g. the masked input at the current mask ratio), next to the evaluation figure."""
    model.set_schedules(schedules_at(model, step, clock, total_steps))
    arg = arg[sl] if torch.is_tensor(arg) else {k: v[sl] for k, v in arg.items()}
    out = model.forward(arg)  # eager, as in evaluate_model
    masks = _masks(spec, out, image)
    recon_key = spec.eval_cfg.outputs.get("reconstruction")
    recon = from_range(out[recon_key].float(), rng) if recon_key else None
    slots = _slot_images(out, masks, rng)
    _save_figure(figure_path(figures_dir, step, f"{name}_train_schedules"), message,
                 image[sl].cpu(), None if recon is None else recon.clamp(0, 1).cpu(),
                 masks.float().cpu(), None if slots is None else slots.cpu(),
                 None if labels is None else labels[sl].cpu(),
                 **_figure_extras(spec, out, image[sl], rng))


def eval_rows(results: dict[str, dict]) -> list[dict]:
    """Flat metrics.jsonl rows: ``{"step", "split", <metric means>, "count"}``."""
    return [{"step": r["step"], "split": name, **r["metrics"], "count": r["count"]}
            for name, r in results.items()]


def eval_message(results: dict[str, dict]) -> str:
    lines = []
    for name, r in results.items():
        ms = "  ".join(f"{k} {fmt_value(v)}" for k, v in r["metrics"].items() if not k.endswith("_nan"))
        lines.append(f"eval step {r['step']}: {name}: {ms}  ({r['count']} images, {fmt_duration(r['seconds'])})")
    return "\n".join(lines)


def _clock_at(spec, model, step: int, total: int | None) -> tuple[int, int] | None:
    """The phase clock of the update that led to ``step`` in a run of ``total`` steps
    (as the trainer's evaluation sees it); None where the plan cannot be made."""
    from ocdsl.train.phases import plan_phases

    try:
        plan = plan_phases(spec, node_names(model), total)
    except UserError:
        return None
    return plan.at(step - 1 if step else 0).clock(step)


def evaluate_checkpoint(spec, model: torch.nn.Module, checkpoint_dir: Path, *, device="cpu",
                        out_dir: Path | None = None, allow_spec_mismatch: bool = False,
                        figures: bool = True, quiet: bool = False) -> dict:
    """``ocdsl eval``: load ``checkpoint_dir`` (a run directory or a checkpoint file) into
    ``model``, evaluate on every eval set, write ``eval.json`` (and figures) into ``out_dir``
    (default: the run directory), print the table and return::

        {"spec", "spec_hash", "checkpoint", "step", "eval": {name: {"count", "metrics", ...}},
         "out_dir"}

    Raises UserError for a missing, unreadable or mismatched checkpoint."""
    say = (lambda m: None) if quiet else print
    base = base_module(model)
    state, ckpt = load_checkpoint(checkpoint_dir, spec=spec, allow_spec_mismatch=allow_spec_mismatch)
    load_model_state(base, state["model"], ckpt)
    base.to(device)
    out_dir = Path(out_dir) if out_dir is not None else ckpt.parent
    sets = eval_sets(spec)
    step = int(state["step"])
    total = state.get("steps")  # the run's length (absent in older checkpoints: the spec's)
    total = int(total) if total is not None else None
    results = evaluate_model(spec, base, sets, device=device, step=step,
                             figures_dir=out_dir if figures else None, message=say,
                             clock=_clock_at(spec, base, step, total), total_steps=total)
    report = {"spec": spec.name, "spec_hash": spec.source_hash, "checkpoint": str(ckpt), "step": step,
              "eval": results, "out_dir": str(out_dir)}
    atomic_write_json(out_dir / "eval.json", report)
    say(f"{spec.name}: checkpoint {ckpt} (step {step})")
    say(summary_table(results, list(spec.eval_cfg.metrics)))
    say(f"results: {out_dir / 'eval.json'}")
    return report
