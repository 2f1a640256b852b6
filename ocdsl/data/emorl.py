"""EMORL's preprocessed HDF5 files (zenodo 4895643), read lazily with h5py.

Layout (docs/formats.md, EMORL HDF5; github.com/pemami4911/EfficientMORL
``lib/datasets.py`` @ 67939f0): one group per split, ``{train|val|test}``, holding

- ``imgs``  [N, H, W, C], values 0..255 (any dtype; EMORL's loader casts to float32);
- ``masks`` [N, K, H, W, C] (C = 1), values 0/255, slot 0 = background;
  (CLEVR6 files, ``clevr6_with_masks_train.h5`` / ``clevr6_with_masks_and_factors_test.h5``:
  already cropped (64, 29, 256, 221) and resized by EMORL, so no crop is applied to them);
- optional ``factors`` [N, ...] (a dataset, or a group of datasets).

The file is opened on first access in each process (so a DataLoader with workers works)
and only the requested images are read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ocdsl.errors import Diagnostic, UserError, did_you_mean

from .masks import masks_to_labels

__all__ = ["EmorlFile", "write_emorl"]


def _bad(path: Path, why: str, hint: str | None = None) -> UserError:
    return UserError(Diagnostic(f"cannot read HDF5 file {path}: {why}", file=str(path), hint=hint))


def _read_rows(ds, idx: np.ndarray) -> np.ndarray:
    """``ds[idx]`` for any int index array (h5py wants increasing unique indices)."""
    if len(idx) == 0:
        return np.zeros((0,) + ds.shape[1:], dtype=ds.dtype)
    lo, hi = int(idx.min()), int(idx.max()) + 1
    if hi - lo <= 4 * len(idx):  # near-contiguous: one slab read is cheapest
        return ds[lo:hi][idx - lo]
    uniq, inv = np.unique(idx, return_inverse=True)
    return ds[uniq][inv]


class EmorlFile:
    """Lazy reader of one split of an EMORL HDF5 file.

    ``get(indices)`` returns ``image`` float32 [n, H, W, C] in 0..255 as stored (cast
    only), ``label`` int64 [n, H, W] (argmax over the K masks, slot 0 = background ->
    label 0) and ``factors`` {name: array [n, ...]}. Raises :class:`UserError` for a file
    that is not HDF5, lacks the split group (did-you-mean over the groups present) or the
    ``imgs``/``masks`` datasets, or whose shapes disagree.
    """

    def __init__(self, path: str | Path, split: str):
        self.path = Path(path)
        self.split = split
        self._file = None
        self._pid = None
        g = self._group()
        self.length = int(g["imgs"].shape[0])
        self.image_shape = tuple(g["imgs"].shape[1:])  # (H, W, C)
        self.num_slots = int(g["masks"].shape[1])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        state["_pid"] = None
        return state

    def _group(self):
        import h5py

        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as err:
                raise _bad(self.path, f"not a readable HDF5 file ({err})") from err
            self._pid = os.getpid()
        f = self._file
        if self.split not in f:
            groups = sorted(k for k in f.keys())
            hint = did_you_mean(self.split, groups)
            if hint is None and groups:
                hint = f"set `data.split` to one of {', '.join(groups)}"
            raise _bad(self.path, f"no group '{self.split}' (groups: {', '.join(groups) or 'none'})",
                       hint)
        g = f[self.split]
        for key in ("imgs", "masks"):
            if key not in g:
                raise _bad(self.path, f"group '{self.split}' has no '{key}' dataset "
                                      f"(has: {', '.join(sorted(g.keys()))})")
        imgs, masks = g["imgs"], g["masks"]
        if imgs.ndim != 4 or masks.ndim != 5 or masks.shape[0] != imgs.shape[0] \
                or masks.shape[2:4] != imgs.shape[1:3]:
            raise _bad(self.path, f"shapes imgs {imgs.shape} / masks {masks.shape}; expected "
                                  "imgs [N,H,W,C] and masks [N,K,H,W,1]")
        return g

    def __len__(self) -> int:
        return self.length

    def get(self, indices) -> dict:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        try:
            g = self._group()
            imgs = _read_rows(g["imgs"], idx).astype(np.float32, copy=False)
            masks = _read_rows(g["masks"], idx)[..., 0]  # [n, K, H, W]
            factors = {}
            if "factors" in g:
                fac = g["factors"]
                items = fac.items() if hasattr(fac, "items") else [("factors", fac)]
                for name, ds in items:
                    if hasattr(ds, "shape") and ds.shape[:1] == (self.length,):
                        factors[name] = _read_rows(ds, idx)
        except UserError:
            raise
        except (OSError, KeyError, ValueError) as err:
            raise _bad(self.path, f"{type(err).__name__}: {err}") from err
        label = masks_to_labels(masks, slot_axis=-3).astype(np.int64)
        return {"image": imgs, "label": label, "factors": factors}


    def object_counts(self, chunk: int = 256) -> np.ndarray:
        """Visible objects per image: non-empty foreground mask slots, int64 [N].

        Reads every mask of the split once, ``chunk`` images at a time (for a full
        CLEVR6 file that is minutes; EMORL's CLEVR6 files are already CLEVR6).
        """
        g = self._group()
        ds = g["masks"]
        out = np.zeros(self.length, dtype=np.int64)
        try:
            for lo in range(0, self.length, chunk):
                m = ds[lo:lo + chunk]  # [c, K, H, W, C]
                on = (m.reshape(m.shape[0], m.shape[1], -1) > 0).any(axis=-1)  # [c, K]
                out[lo:lo + chunk] = on[:, 1:].sum(axis=1)
        except (OSError, KeyError, ValueError) as err:
            raise _bad(self.path, f"{type(err).__name__}: {err}") from err
        return out


def write_emorl(path: str | Path, split: str, images: np.ndarray, masks: np.ndarray,
                factors: dict | None = None, *, dtype=None, mode: str = "a") -> None:
    """Write ``images`` [N,H,W,C] and K-masks [N,K,H,W,1] as group ``split`` of ``path``.

    ``dtype`` casts both (EMORL's own dtype is undocumented; uint8 and float32 both read).
    """
    import h5py

    with h5py.File(path, mode) as f:
        g = f.require_group(split)
        for key, arr in (("imgs", images), ("masks", masks)):
            arr = np.asarray(arr) if dtype is None else np.asarray(arr).astype(dtype)
            g.create_dataset(key, data=arr, chunks=(1,) + arr.shape[1:], compression="gzip")
        for name, arr in (factors or {}).items():
            g.create_dataset(f"factors/{name}", data=np.asarray(arr))
