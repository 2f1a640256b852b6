"""Model I/O: what the trainer, evaluation and bench hand a generated module and read back.

The generated-module interface (docs/internals.md): ``INPUTS`` (input names), ``NODES``,
``forward(x | {name: x}) -> {output: tensor}``, ``schedules(step, ...) -> {name: value}``,
``losses(inputs, outputs, sched, step) -> {term: scalar}`` and, where a spec has
schedulable op parameters, ``set_schedules``. This module maps a batch to those inputs
(:func:`model_inputs`, the data range), runs the forward in the spec's precision
(:func:`forward`), asks for the schedules with the phase clock (:func:`schedules_at`) and
tells a compiled module from its eager original (:func:`base_module`, :func:`is_compiled`).
"""

from __future__ import annotations

import functools

import torch

from ocdsl.errors import UserError

__all__ = ["base_module", "node_names", "is_compiled", "to_range", "from_range", "model_inputs",
           "resolve_precision", "forward", "schedules_at"]


def base_module(model: torch.nn.Module) -> torch.nn.Module:
    """The eager module under ``model``: a ``torch.compile`` wrapper's ``_orig_mod``, a
    DistributedDataParallel's ``module``, else ``model`` itself (what is optimised, saved
    and evaluated)."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            inner = model.module
        if inner is None:
            return model
        model = inner


def node_names(base: torch.nn.Module) -> tuple[str, ...]:
    """The module's ``NODES`` (generated modules), else its direct children's names."""
    return tuple(getattr(base, "NODES", ()) or (n for n, _ in base.named_children()))


def is_compiled(model) -> bool:
    """Whether calling ``model`` runs through ``torch.compile``: a wrapper returned by
    ``torch.compile(module)`` (it has ``_orig_mod``), or a module compiled in place by
    ``nn.Module.compile()`` (what ``Compiled.instantiate`` does); looks through a
    DistributedDataParallel wrapper."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    return hasattr(model, "_orig_mod") or getattr(model, "_compiled_call_impl", None) is not None


def to_range(x: torch.Tensor, rng: tuple[float, float]) -> torch.Tensor:
    """[0, 1] -> [lo, hi] (identity for the default range, bit for bit)."""
    lo, hi = rng
    if (lo, hi) == (0.0, 1.0):
        return x
    return x * (hi - lo) + lo


def from_range(x: torch.Tensor, rng: tuple[float, float]) -> torch.Tensor:
    """[lo, hi] -> [0, 1]."""
    lo, hi = rng
    if (lo, hi) == (0.0, 1.0):
        return x
    return (x - lo) / (hi - lo)


def model_inputs(batch: dict, names, rng, device) -> tuple[object, dict]:
    """(argument for ``forward``, inputs dict for ``losses``) from a batch.

    Input ``image`` is the batch's image (``b c h w`` in [0, 1]) mapped to the data range
    ``rng``; any other input is the batch entry of the same name. One input -> the tensor
    itself, several -> a dict. Raises UserError for an input the batches do not hold."""
    inputs = {}
    for name in names:
        if name not in batch:
            raise UserError(f"model input '{name}' is not in the data (the batches hold: "
                            f"{', '.join(sorted(batch))})")
        x = batch[name].to(device, non_blocking=True)
        if name == "image":
            x = to_range(x, rng)
        inputs[name] = x
    arg = inputs[names[0]] if len(names) == 1 else inputs
    return arg, inputs


@functools.lru_cache(maxsize=None)
def resolve_precision(precision: str, device: str) -> str:
    """The arithmetic ``train.precision`` means on ``device``: ``"fp32"`` or ``"bf16"``.

    ``"auto"`` is bf16 where the hardware computes in bfloat16 natively (a CUDA device with
    ``torch.cuda.is_bf16_supported()``; a CPU for which oneDNN reports bf16 support, i.e.
    AVX512-BF16 / AMX), else fp32. Emulated bf16 is no bargain: measured on a 2-core AVX2
    EPYC, a Slot Attention step under bf16 autocast took 10x as long as in fp32
    (docs/results.md)."""
    if precision != "auto":
        return precision
    kind = str(device).split(":")[0]
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if kind == "cpu":
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    return "fp32"


def forward(model, arg, device, precision: str = "fp32") -> dict:
    """``model(arg)`` under the spec's ``train.precision`` (resolved by
    :func:`resolve_precision`): with bf16 the forward runs under bfloat16 autocast (matmuls
    and convolutions in bf16) and floating outputs come back as fp32, so the losses are
    computed in fp32."""
    bf16 = resolve_precision(precision, str(device)) == "bf16"
    with torch.autocast(device_type=str(device).split(":")[0], dtype=torch.bfloat16, enabled=bf16):
        outputs = model(arg)
    if bf16:
        outputs = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in outputs.items()}
    return outputs


def schedules_at(model, step: int, clock: tuple[int, int] | None = None,
                 total_steps: int | None = None) -> dict:
    """``model.schedules(step, phase_step=, phase_steps=, total_steps=)`` with the training
    phase's clock ``(phase_step, phase_steps)`` and the run's length ``total_steps`` (after
    ``--steps``), each passed where given and where ``schedules`` has a parameter of that
    name (generated modules have both); a hand-written module whose ``schedules`` takes only
    ``step`` gets ``step`` alone."""
    takes = _schedule_params(type(model))
    kw: dict[str, int] = {}
    if clock is not None and "phase_step" in takes:
        kw["phase_step"], kw["phase_steps"] = clock
    if total_steps is not None and "total_steps" in takes:
        kw["total_steps"] = int(total_steps)
    return model.schedules(step, **kw)


@functools.lru_cache(maxsize=None)
def _schedule_params(cls: type) -> frozenset[str]:
    """The parameter names of ``cls.schedules`` (inspected once per class: the trainer asks
    at every step)."""
    import inspect

    try:
        return frozenset(inspect.signature(cls.schedules).parameters)
    except (TypeError, ValueError, AttributeError):
        return frozenset()
