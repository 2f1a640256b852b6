"""The training data stream and the batch -> model-input mapping.

The stream is a function of (seed, position): sample ``i`` of the stream is item
``perm_e[i % n]`` of the dataset, ``e = i // n``, where ``perm_e`` is a permutation drawn
from ``numpy.random.default_rng([seed, e])``. Batches may straddle epochs. A checkpoint
stores the position (samples consumed), so a resumed run reads exactly the batches the
uninterrupted run would have read, and the global RNGs are never touched (the DataLoader
gets its own generator).
"""

from __future__ import annotations

import functools
from itertools import islice
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

from ocdsl.errors import UserError

__all__ = ["schedules_at", "StreamSampler", "make_train_loader", "collate", "to_range", "from_range",
           "model_inputs", "resolve_precision", "is_compiled"]

# Above this size the permutation is not drawn: the items are read in order (such a
# dataset is a procedural stream whose items are independent draws anyway).
_MAX_SHUFFLE = 50_000_000


class StreamSampler(Sampler):
    """Infinite index stream starting at ``start`` (samples already consumed)."""

    def __init__(self, n: int, seed: int, start: int = 0, shuffle: bool = True):
        if n <= 0:
            raise UserError("the training set is empty")
        self.n, self.seed, self.start = int(n), int(seed), int(start)
        self.shuffle = shuffle and n <= _MAX_SHUFFLE

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[int]:
        i = self.start
        epoch, perm = -1, None
        while True:
            e, j = divmod(i, self.n)
            if not self.shuffle:
                yield j
            else:
                if e != epoch:
                    epoch, perm = e, self._perm(e)
                yield int(perm[j])
            i += 1


def collate(keys):
    """Stack only ``keys`` of each item (others, e.g. ragged ``factors``, are dropped)."""

    def _collate(items: list[dict]) -> dict:
        out = {}
        for k in keys:
            if k not in items[0]:
                continue
            vals = [it[k] for it in items]
            vals = [torch.as_tensor(v) for v in vals]
            out[k] = torch.stack(vals)
        return out

    return _collate


def make_train_loader(dataset, *, batch_size: int, seed: int, start: int, keys,
                      num_workers: int = 0, shuffle: bool = True, pin_memory: bool = False):
    """An endless iterator of batches from sample ``start`` of the stream."""
    gen = torch.Generator()  # the workers' base seeds; the global generators stay untouched
    gen.manual_seed(int(seed))
    if isinstance(dataset, IterableDataset):
        # No random access: read in order and skip what was consumed.
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate(keys),
                            num_workers=num_workers, generator=gen, pin_memory=pin_memory)

        def endless():
            skip = start
            while True:
                it = iter(loader)
                if skip:
                    it = islice(it, skip // batch_size, None)
                    skip = 0
                yield from it

        return endless()
    sampler = StreamSampler(len(dataset), seed, start, shuffle)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate(keys),
                        num_workers=num_workers, generator=gen, pin_memory=pin_memory,
                        persistent_workers=num_workers > 0)
    return iter(loader)


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

    Input ``image`` is the batch's image mapped to the data range; any other input is the
    batch entry of the same name. One input -> the tensor itself, several -> a dict."""
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


def is_compiled(model) -> bool:
    """Whether calling ``model`` runs through ``torch.compile``: a wrapper returned by
    ``torch.compile(module)`` (it has ``_orig_mod``), or a module compiled in place by
    ``nn.Module.compile()`` (what ``Compiled.instantiate`` does)."""
    return hasattr(model, "_orig_mod") or getattr(model, "_compiled_call_impl", None) is not None


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
