"""Random streams of a run: one seed per purpose, derived from the run's seed.

A run has one seed (``train.seed``, default 0). Each thing that draws random numbers gets
its own seed, derived from it, so that no stream replays another (before, the slot noise
of the first training steps replayed the uniform draws that made the initial weights)::

    derive_seed(seed, purpose) = SeedSequence([seed mod 2**64, crc32(purpose)]).generate_state(1)[0]

(``numpy.random.SeedSequence``; ``crc32`` of the purpose's UTF-8 bytes, ``zlib.crc32``), a
number in ``[0, 2**32)`` that every generator accepts. The purposes:

``"init"`` (:data:`INIT`)
    parameter initialisation: ``ocdsl run`` seeds the global generators (torch, numpy,
    python ``random``) with ``derive_seed(train.seed, "init")`` before building the model,
    so every run of a spec with the same seed starts from the same weights.
``"noise"`` (:data:`NOISE`)
    training noise: the global generators are seeded with ``derive_seed(train.seed,
    "noise")`` before step 0 (slot-attention sampling noise, random masking, dropout ... all
    draw from the global torch generator). Checkpoints store the state of the global
    generators after each step, so a resume continues this stream bit-identically.
``"data"`` (:data:`DATA`)
    the training data stream: the shuffling order of a dataset file and, for a procedural
    dataset, the generator's stream seed. ``data.seed``, where the spec sets it, is that
    seed as written (the stream is then the same whatever ``train.seed``); otherwise it is
    ``derive_seed(train.seed, "data")``, so two seeds train on different images. The
    evaluation splits (``test``/``val``, ``[[eval.datasets]]``) never depend on
    ``train.seed``: they use ``data.seed`` as written (default 0), so runs of different
    seeds are evaluated on the same images. A checkpoint records the data seed, and a
    resume keeps it.
``"eval"`` (:data:`EVAL`)
    evaluation: every evaluation runs with the global generators saved, seeded with
    ``derive_seed(eval.seed, "eval")`` (``eval.seed`` default 0, independent of
    ``train.seed``) and restored afterwards (:func:`preserved_rng`), so its results do not
    depend on when it runs, are comparable across training seeds, and never perturb the
    training stream.

The state of the global generators travels as plain tensors and numbers
(:func:`capture_rng` / :func:`restore_rng`), which ``torch.load(weights_only=True)`` accepts.
"""

from __future__ import annotations

import contextlib
import random
import zlib
from typing import Iterator

import numpy as np
import torch

__all__ = ["INIT", "NOISE", "DATA", "EVAL", "PURPOSES", "derive_seed", "seed_everything", "seed_for",
           "data_seeds", "capture_rng", "restore_rng", "preserved_rng", "start_noise"]

INIT = "init"
NOISE = "noise"
DATA = "data"
EVAL = "eval"
PURPOSES = (INIT, NOISE, DATA, EVAL)


def derive_seed(seed: int, purpose: str) -> int:
    """The seed of ``purpose``'s stream in a run seeded with ``seed``: the first 32-bit word
    of ``numpy.random.SeedSequence([seed mod 2**64, zlib.crc32(purpose)])``.

    A pure function of ``(seed, purpose)``; different purposes (and different seeds) give
    statistically independent streams. ``purpose`` is any string; the trainer uses
    :data:`PURPOSES`."""
    ss = np.random.SeedSequence([int(seed) % 2**64, zlib.crc32(str(purpose).encode("utf-8"))])
    return int(ss.generate_state(1, np.uint32)[0])


def seed_everything(seed: int) -> None:
    """Seed the global generators with ``seed`` as given: torch (CPU and every CUDA device),
    numpy's legacy global generator and python's ``random``. Use :func:`seed_for` to seed
    them for one purpose of a run."""
    seed = int(seed)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def seed_for(seed: int, purpose: str) -> int:
    """Seed the global generators with ``derive_seed(seed, purpose)``; returns that seed."""
    derived = derive_seed(seed, purpose)
    seed_everything(derived)
    return derived


def data_seeds(train_seed: int, data_cfg: dict) -> tuple[int, bool]:
    """``(seed of the training data stream, whether the spec wrote it)``: ``data.seed`` where
    the ``[data]`` table sets it, else ``derive_seed(train_seed, "data")``."""
    written = data_cfg.get("seed")
    if written is not None:
        return int(written), True
    return derive_seed(train_seed, DATA), False


# ---------------------------------------------------------------------------- global state

def capture_rng() -> dict:
    """torch / CUDA / numpy / python global RNG states as types ``weights_only`` loads accept."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state_all()
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": [int(version), list(internal), gauss_next],
    }


def restore_rng(state: dict) -> None:
    """Put back the global RNG states :func:`capture_rng` returned."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda = list(state["cuda"])[: torch.cuda.device_count()]
        for i, s in enumerate(cuda):
            torch.cuda.set_rng_state(s, i)
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


@contextlib.contextmanager
def preserved_rng(seed: int | None = None, purpose: str | None = None) -> Iterator[None]:
    """Save the global RNG states, seed them (with ``seed`` as given, or with
    ``derive_seed(seed, purpose)`` when ``purpose`` is given; not at all when ``seed`` is
    None), and restore the saved states on exit."""
    state = capture_rng()
    try:
        if seed is not None:
            if purpose is None:
                seed_everything(seed)
            else:
                seed_for(seed, purpose)
        yield
    finally:
        restore_rng(state)


def start_noise(seed: int, state: dict | None = None, rank: int = 0) -> None:
    """Put the global generators where training step 0 (or a resumed step) starts: the
    ``"noise"`` stream of ``seed`` (never a replay of the initialisation's draws); process
    ``rank`` > 0 of several draws ``"noise/rank<r>"``. A resume (``state``, a checkpoint)
    restores the state saved for this rank (``rng``; ``rng_ranks[rank - 1]``) and seeds a
    rank the checkpoint does not have afresh."""
    saved = None
    if state is not None:
        saved = state["rng"] if rank == 0 else (list(state.get("rng_ranks") or [])[rank - 1:rank] or [None])[0]
    if saved is not None:
        restore_rng(saved)
    else:
        seed_for(seed, NOISE if rank == 0 else f"{NOISE}/rank{rank}")
