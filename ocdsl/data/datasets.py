"""torch Datasets over the generators and readers (the data contract of docs/internals.md).

Every dataset here is map-style and yields dicts:

- ``image`` float32 [C, H, W] in [0, 1];
- ``mask`` int64 [H, W] instance labels, 0 = background, 1..K-1 objects (absent for a
  dataset without masks: an image folder);
- ``factors`` dict name -> tensor (Tetrominoes generator: ``x``, ``y``, ``shape``,
  ``color`` int64 [3]; Multi-dSprites generator: float32 [K] / [K, C] in DeepMind's
  layout, slot 0 = background; TFRecord: the float32 features of the file, [K] / [K, 3] with slot 0 =
  background; npz/HDF5: whatever per-image arrays the file holds; ClevrTex: ``index``, the scene
  number). May be empty.

Batches are fetched in one vectorised call: ``__getitems__`` (used by
``torch.utils.data.DataLoader`` since torch 2.1) and :meth:`ObjectDataset.batch`, which
returns an already collated dict of tensors and skips the DataLoader entirely.
"""

from __future__ import annotations

import numpy as np
import torch

from .emorl import EmorlFile

__all__ = ["ObjectDataset", "ArraySource", "EmorlSource", "GeneratorSource", "ViewSource"]


class ArraySource:
    """In-memory arrays: ``image`` [N,H,W,C] (0..255), ``label`` [N,H,W], factors [N,...]."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        arrays = dict(arrays)
        self.image = arrays.pop("image")
        self.label = arrays.pop("label")
        self.factors = arrays
        self.length = len(self.image)

    def fetch(self, idx: np.ndarray) -> dict:
        return {"image": self.image[idx], "label": self.label[idx],
                "factors": {k: v[idx] for k, v in self.factors.items()}}


class EmorlSource:
    """A lazily read file: an EMORL HDF5 split or a ClevrTex folder (anything with
    ``__len__`` and ``get(indices) -> {"image", "label", "factors"}``); images
    ``0 .. length - 1``."""

    def __init__(self, file: EmorlFile, length: int | None = None):
        self.file = file
        self.length = len(file) if length is None else min(length, len(file))

    def fetch(self, idx: np.ndarray) -> dict:
        return self.file.get(idx)


class ViewSource:
    """Another source seen through a subset and a preprocessing step.

    Item ``i`` is item ``keep[i]`` of ``source`` (all items when ``keep`` is None), cut to
    the first ``limit`` items, with ``prep(image, label)`` applied on fetch
    (:class:`ocdsl.data.preprocess.Preprocess`; None = as stored).
    """

    def __init__(self, source, keep=None, prep=None, limit: int | None = None):
        self.source = source
        self.keep = None if keep is None else np.asarray(keep, dtype=np.int64)
        n = source.length if self.keep is None else len(self.keep)
        self.length = n if limit is None else min(n, int(limit))
        self.prep = prep

    def fetch(self, idx: np.ndarray) -> dict:
        raw = self.source.fetch(idx if self.keep is None else self.keep[idx])
        if self.prep is not None:
            raw["image"], raw["label"] = self.prep(np.asarray(raw["image"]), np.asarray(raw["label"]))
        return raw


class GeneratorSource:
    """Images ``start + i`` of a procedural generator's stream ``seed``; ``kwargs`` go to
    the generator (``{"variant": ...}``)."""

    def __init__(self, module: str, seed: int, start: int, length: int, kwargs=None):
        import importlib

        self.module_name = module
        self._gen = importlib.import_module(f"ocdsl.data.{module}").generate_at
        self.seed, self.start, self.length = int(seed), int(start), int(length)
        self.kwargs = dict(kwargs or {})

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_gen")
        return state

    def __setstate__(self, state):
        import importlib

        self.__dict__.update(state)
        self._gen = importlib.import_module(f"ocdsl.data.{self.module_name}").generate_at

    def fetch(self, idx: np.ndarray) -> dict:
        out = self._gen(idx + self.start, self.seed, **self.kwargs)
        image, label = out.pop("image"), out.pop("mask")
        return {"image": image, "label": label, "factors": out}


class ObjectDataset(torch.utils.data.Dataset):
    """Map-style dataset of ``{"image", "mask", "factors"}`` items over a source.

    ``info`` is the :class:`ocdsl.data.registry.DatasetInfo`; ``origin`` says where the
    data comes from (a path or ``"generator:<name> seed=S start=I"``).
    """

    def __init__(self, source, info, origin: str):
        self.source = source
        self.info = info
        self.origin = origin

    def __len__(self) -> int:
        return self.source.length

    def __repr__(self) -> str:
        return f"ObjectDataset({self.info.name}, {len(self)} images, {self.origin})"

    def _index(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        idx = np.where(idx < 0, idx + n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = indices if np.ndim(indices) == 0 else list(indices)
            raise IndexError(f"index {bad} out of range for {n} images")
        return idx

    def batch(self, indices) -> dict:
        """Collated batch: ``image`` float32 [B,C,H,W], ``mask`` int64 [B,H,W] (absent when
        the source has no masks), ``factors``."""
        raw = self.source.fetch(self._index(indices))
        # in numpy: small torch ops are slow when the 2 cores are contended (thread spin)
        image = np.asarray(raw["image"]).transpose(0, 3, 1, 2).astype(np.float32, order="C")
        image = torch.from_numpy(np.divide(image, 255.0, out=image))  # [B, C, H, W]
        factors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in raw["factors"].items()}
        if raw["label"] is None:                      # a dataset without masks
            return {"image": image, "factors": factors}
        mask = torch.from_numpy(np.asarray(raw["label"]).astype(np.int64, copy=False))
        return {"image": image, "mask": mask, "factors": factors}

    def __getitems__(self, indices) -> list[dict]:
        b = self.batch(indices)
        return [
            {**{k: b[k][j] for k in ("image", "mask") if k in b},
             "factors": {k: v[j] for k, v in b["factors"].items()}}
            for j in range(len(b["image"]))
        ]

    def __getitem__(self, i) -> dict:
        return self.__getitems__([int(i)])[0]
