"""Datasets of a run: the training data stream and the evaluation sets.

The stream is a function of (seed, position): sample ``i`` of the stream is item
``perm_e[i % n]`` of the dataset, ``e = i // n``, where ``perm_e`` is a permutation drawn
from ``numpy.random.default_rng([seed, e])``. Batches may straddle epochs. A checkpoint
stores the position (samples consumed), so a resumed run reads exactly the batches the
uninterrupted run would have read, and the global RNGs are never touched (the DataLoader
gets its own generator).

Several processes (``ocdsl run --devices N``, ocdsl/train/distributed.py) read the same
stream: global batch ``k`` is the samples ``k*B .. (k+1)*B - 1`` (``B`` = ``train.batch_size``),
and process ``r`` of ``N`` takes its ``r``-th slice of ``B/N`` consecutive samples; so the
``N`` processes together see exactly the batches one process would.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

from ocdsl.errors import SpecError, UserError
from ocdsl.train import _deps
from ocdsl.train.rng import data_seeds

__all__ = ["StreamSampler", "make_train_loader", "collate", "dataset_cfg", "check_data_fits", "EvalSet",
           "eval_sets", "TrainData", "training_data"]

# Above this size the permutation is not drawn: the items are read in order (such a
# dataset is a procedural stream whose items are independent draws anyway).
_MAX_SHUFFLE = 50_000_000


class StreamSampler(Sampler):
    """Infinite index stream starting at ``start`` (samples already consumed).

    With ``world > 1`` it yields only this ``rank``'s slice of each global batch of
    ``batch`` samples (``start`` is a multiple of ``batch``)."""

    def __init__(self, n: int, seed: int, start: int = 0, shuffle: bool = True, *,
                 batch: int = 1, rank: int = 0, world: int = 1):
        if n <= 0:
            raise UserError("the training set is empty")
        self.n, self.seed, self.start = int(n), int(seed), int(start)
        self.shuffle = shuffle and n <= _MAX_SHUFFLE
        self.batch, self.rank, self.world = int(batch), int(rank), int(world)

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def _global(self) -> Iterator[int]:
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

    def __iter__(self) -> Iterator[int]:
        if self.world == 1:
            return self._global()
        local = self.batch // self.world
        lo = self.rank * local
        return (idx for k, idx in enumerate(self._global()) if lo <= k % self.batch < lo + local)


def collate(keys):
    """Stack only ``keys`` of each item (others, e.g. ragged ``factors``, are dropped); a key
    that is not an entry of the item but one of its ``factors`` (e.g. the per-object
    ``properties`` a model input of that name reads) is taken from there."""

    def _collate(items: list[dict]) -> dict:
        out = {}
        for k in keys:
            if k in items[0]:
                vals = [it[k] for it in items]
            elif k in (items[0].get("factors") or {}):
                vals = [it["factors"][k] for it in items]
            else:
                continue
            vals = [torch.as_tensor(v) for v in vals]
            out[k] = torch.stack(vals)
        return out

    return _collate


def make_train_loader(dataset, *, batch_size: int, seed: int, start: int, keys,
                      num_workers: int = 0, shuffle: bool = True, pin_memory: bool = False,
                      rank: int = 0, world: int = 1):
    """An endless iterator of batches from sample ``start`` of the stream; with ``world >
    1``, of this ``rank``'s ``batch_size / world`` samples of each global batch."""
    gen = torch.Generator()  # the workers' base seeds; the global generators stay untouched
    gen.manual_seed(int(seed))
    local = batch_size // world
    if isinstance(dataset, IterableDataset):
        # No random access: read the global batches in order, skip what was consumed.
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate(keys),
                            num_workers=num_workers, generator=gen, pin_memory=pin_memory)

        def endless():
            skip = start
            while True:
                it = iter(loader)
                if skip:
                    it = islice(it, skip // batch_size, None)
                    skip = 0
                for b in it:
                    yield b if world == 1 else {k: v[rank * local:(rank + 1) * local] for k, v in b.items()}

        return endless()
    sampler = StreamSampler(len(dataset), seed, start, shuffle, batch=batch_size, rank=rank, world=world)
    loader = DataLoader(dataset, batch_size=local, sampler=sampler, collate_fn=collate(keys),
                        num_workers=num_workers, generator=gen, pin_memory=pin_memory,
                        persistent_workers=num_workers > 0)
    return iter(loader)


# ---------------------------------------------------------------------------- datasets of a spec

def _base_dir(spec) -> Path:
    return Path(spec.path).parent if spec.path else Path(".")


def dataset_cfg(spec, keypath: tuple) -> dict:
    """The [data] table (or an [[eval.datasets]] entry) at ``keypath`` with its ``path``
    made absolute relative to the spec file that wrote it (``Spec.resolve_path``), so a
    base spec's data path still works when a variant in another folder extends it."""
    node = spec.data
    for k in keypath:
        node = node[k]
    cfg = dict(node)
    if cfg.get("path") is not None and hasattr(spec, "resolve_path"):
        cfg["path"] = str(spec.resolve_path(tuple(keypath) + ("path",)))
    return cfg


def check_data_fits(spec, name: str, dataset, keypath: tuple) -> None:
    """The dataset's images must have the shape of the model input ``image`` (minus the
    batch axis), and every other model input (e.g. ``properties``) must be an entry or a
    factor of the data's items with the input's shape; raises SpecError pointing at the
    dataset's key otherwise."""
    if dataset is None or len(dataset) == 0:
        return
    item = dataset[0]
    for inp, sig in spec.inputs.items():
        value = item.get(inp, (item.get("factors") or {}).get(inp))
        if value is None:
            raise SpecError(spec.diag(keypath, f"dataset '{name}' has no '{inp}' for the model input "
                                               f"'{inp}' (its items hold: {', '.join(sorted(item))}; factors: "
                                               f"{', '.join(sorted(item.get('factors') or {})) or 'none'})",
                                      hint="per-object property vectors ('properties') come with multi_dsprites "
                                           "and clevr_scenes"))
        got = tuple(torch.as_tensor(value).shape)
        want = tuple(d.value for d in sig.resolve(spec.dims)[1:])
        if got == want:
            continue
        if inp == "image":
            raise SpecError(spec.diag(keypath, f"dataset '{name}' gives images of shape {got} (C, H, W), but "
                                               f"model.inputs.image is {sig.text!r} = (B, {', '.join(map(str, want))})",
                                      hint="set [dims] to the data's resolution, or point the dataset at "
                                           "files of the model's resolution"))
        raise SpecError(spec.diag(keypath, f"dataset '{name}' gives '{inp}' of shape {got}, but "
                                           f"model.inputs.{inp} is {sig.text!r} = (B, {', '.join(map(str, want))})",
                                  hint="set [dims] to the data's sizes"))


@dataclass
class EvalSet:
    name: str
    dataset: Any
    keypath: tuple


def eval_sets(spec, *, warn: Callable[[str], None] | None = None) -> list[EvalSet]:
    """The datasets to evaluate on: ``test`` (from [data]) then each ``[[eval.datasets]]``.

    An entry with ``optional = true`` whose ``path`` is missing is skipped with a warning;
    a missing non-optional one raises UserError pointing at its ``path`` key."""
    warn = warn or (lambda m: print(m, file=sys.stderr))
    ev, base = spec.eval_cfg, _base_dir(spec)
    spec_file = str(spec.path)
    sets = [EvalSet("test", _deps.make_dataset(dataset_cfg(spec, ("data",)), "test", base, ev.test_size,
                                               spec_file=spec_file, keypath=("data",)), ("data",))]
    for i, entry in enumerate(ev.datasets):  # validation made their names unique (and not "test")
        kp = ("eval", "datasets", i)
        name = str(entry["name"])
        optional = bool(entry.get("optional", False))
        entry = dataset_cfg(spec, kp)
        if entry.get("path") is not None:
            path = Path(entry["path"])
            if not path.exists():            # a file, or a folder (ClevrTex, image folder)
                if optional:
                    warn(spec.diag(kp + ("path",), f"skipping optional evaluation dataset '{name}': "
                                   f"{path} does not exist", severity="warning").format())
                    continue
                raise UserError(spec.diag(kp + ("path",), f"evaluation dataset '{name}': {path} does not exist",
                                          hint="fix the path (it is relative to the spec's folder) "
                                               "or mark the entry `optional = true`"))
        cfg = {k: v for k, v in entry.items() if k != "size"}
        ds = _deps.make_dataset(cfg, "test", base, entry.get("size"), spec_file=spec_file, keypath=kp)
        if ds is None:  # optional and absent (as ocdsl.data judged it)
            warn(spec.diag(kp, f"skipping optional evaluation dataset '{name}'", severity="warning").format())
            continue
        check_data_fits(spec, name, ds, kp)
        sets.append(EvalSet(name, ds, kp))
    check_data_fits(spec, "test", sets[0].dataset, ("data",))
    return sets


@dataclass
class TrainData:
    """The training set and its stream: ``data_seed`` made the dataset (a generator's
    stream seed), ``stream_seed`` draws the shuffling order; ``recorded_seed`` is what a
    checkpoint stores (None for the legacy pair, where the two differ)."""

    dataset: Any
    data_seed: int
    stream_seed: int

    @property
    def recorded_seed(self) -> int | None:
        return self.data_seed if self.data_seed == self.stream_seed else None


def training_data(spec, state: dict | None = None) -> TrainData:
    """The training set of ``spec`` (ocdsl/train/rng.py, ``"data"``): ``data.seed``, else
    derived from ``train.seed``; a resume (``state``, a checkpoint) reads on in the stream
    the run was reading. Raises UserError / SpecError for missing data or images that do
    not fit the model."""
    train_cfg = dataset_cfg(spec, ("data",))
    data_seed, _ = data_seeds(spec.train.seed, train_cfg)
    stream_seed = data_seed
    if state is not None:
        if state.get("data_seed") is not None:
            data_seed = stream_seed = int(state["data_seed"])
        else:  # a checkpoint from before ocdsl/train/rng.py: data.seed (default 0), order by train.seed
            data_seed, stream_seed = int(spec.data_cfg.seed or 0), spec.train.seed
    train_cfg["seed"] = data_seed
    train_set = _deps.make_dataset(train_cfg, "train", _base_dir(spec), None, spec_file=str(spec.path))
    check_data_fits(spec, "train", train_set, ("data",))
    return TrainData(train_set, data_seed, stream_seed)
