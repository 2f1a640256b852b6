"""One-off conversion of a DeepMind TFRecord file to EMORL-layout HDF5.

TFRecords are GZIP streams (no random access) and slow to parse (docs/formats.md,
DeepMind multi-object TFRecords), so a full dataset is converted once and trained from the HDF5 file, which
:class:`ocdsl.data.emorl.EmorlFile` reads lazily.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .registry import DatasetInfo, get_info
from .tfrecord_reader import iter_tfrecord

__all__ = ["tfrecord_to_hdf5"]


def tfrecord_to_hdf5(src: str | Path, dst: str | Path, dataset: str | DatasetInfo,
                     *, split: str = "train", limit: int | None = None, chunk: int = 1024) -> int:
    """Stream ``src`` into group ``split`` of ``dst``: ``imgs`` uint8 [N,H,W,C], ``masks``
    uint8 [N,K,H,W,1] (0/255, slot 0 = background), ``factors/<name>`` for the other
    features. Returns N. Memory stays at ``chunk`` records."""
    import h5py

    info = dataset if isinstance(dataset, DatasetInfo) else get_info(dataset)
    n = 0
    with h5py.File(dst, "a") as f:
        g = f.require_group(split)
        buf: dict[str, list] = {}

        def flush():
            nonlocal n
            if not buf:
                return
            m = len(buf["image"])
            for key, vals in buf.items():
                arr = np.stack(vals)
                name = {"image": "imgs", "mask": "masks"}.get(key, f"factors/{key}")
                if name not in g:
                    g.create_dataset(name, shape=(0,) + arr.shape[1:], maxshape=(None,) + arr.shape[1:],
                                     dtype=arr.dtype, chunks=(1,) + arr.shape[1:] if arr.ndim > 2 else True,
                                     compression="gzip" if arr.ndim > 2 else None)
                ds = g[name]
                ds.resize(n + m, axis=0)
                ds[n:n + m] = arr
            n += m
            buf.clear()

        for rec in iter_tfrecord(src, info, limit=limit):
            for k, v in rec.items():
                buf.setdefault(k, []).append(v)
            if len(buf["image"]) >= chunk:
                flush()
        flush()
    return n
