"""Datasets: procedural generators and readers of the published formats.

Entry point: :func:`make_dataset` (the data contract of docs/internals.md). Pieces:

- :mod:`.registry` -- one :class:`DatasetInfo` per dataset (resolution, channels, K,
  format, generator, TFRecord feature shapes);
- :mod:`.tetrominoes` -- the Tetrominoes generator (``generate``, ``generate_at``);
- :mod:`.tfrecord_reader` -- DeepMind multi-object TFRecords (FORMATS.md §1);
- :mod:`.emorl` -- EMORL HDF5 (FORMATS.md §2); :mod:`.npz` -- the canonical npz layout;
- :mod:`.masks` -- K-mask stack <-> label map (slot 0 = background = label 0);
- :mod:`.convert` -- TFRecord -> HDF5, for training on a full dataset.

torch is imported only when a Dataset is built, so ``from ocdsl.data.tetrominoes import
generate`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ocdsl.errors import Diagnostic, UserError, format_keypath

from .masks import labels_to_masks, masks_to_labels
from .registry import DATASETS, READERS, DatasetInfo, get_info

__all__ = [
    "make_dataset",
    "DatasetInfo",
    "DATASETS",
    "get_info",
    "masks_to_labels",
    "labels_to_masks",
    "SPLIT_START",
    "TRAIN_LENGTH",
]

#: First stream index of each generated split; the ranges never overlap, so a generated
#: test set is disjoint from any training stream of the same seed.
SPLIT_START: Mapping[str, int] = {"train": 0, "val": 1 << 40, "test": 1 << 41}
#: Length of a generated training stream when no size is given ("effectively infinite";
#: the largest int32, so any sampler's indices fit).
TRAIN_LENGTH = 2**31 - 1


def make_dataset(
    cfg: Mapping[str, Any],
    split: str,
    base_dir: str | Path,
    size: int | None = None,
    *,
    spec_file: str = "<spec>",
    keypath: tuple = ("data",),
):
    """Build the torch Dataset described by a spec's ``[data]`` table (or an eval entry).

    ``cfg`` keys: ``dataset`` (a name in :data:`DATASETS` or an alias), optional ``path``
    (relative to ``base_dir``, the spec's folder), ``seed`` (generator stream, default 0),
    ``split`` (HDF5 group to read, overriding ``split``), ``name`` and ``optional`` (eval
    entries). ``split`` is "train", "val" or "test". ``size`` caps the number of images
    (first ``size`` of a file; length of a generated split). ``spec_file`` / ``keypath``
    only locate error messages.

    - No ``path``: the dataset's generator. "train" is the stream indices
      ``0 .. size-1`` (default :data:`TRAIN_LENGTH`); "val"/"test" are ``size``
      (default ``info.eval_size``) images from a disjoint index range
      (:data:`SPLIT_START`). Item ``i`` is a pure function of (seed, index), so the data
      are identical across runs, workers and resumes; shuffling adds nothing.
    - ``path`` ending in .tfrecords/.tfrecord: decoded into memory (first ``size``
      records); .h5/.hdf5: EMORL layout, group ``split``, read lazily; .npz: canonical
      npz layout, in memory.

    Returns an :class:`ocdsl.data.datasets.ObjectDataset` (map-style; items ``image``
    float32 [C,H,W] in [0,1], ``mask`` int64 [H,W], ``factors`` dict), or None when the
    entry is ``optional`` and its file is absent. Raises :class:`UserError` for an
    unknown dataset (with did-you-mean), a missing file, an unsupported extension or a
    corrupt file.
    """
    from .datasets import ArraySource, EmorlSource, GeneratorSource, ObjectDataset

    keypath = tuple(keypath)
    if "dataset" not in cfg:
        raise UserError(Diagnostic("missing key `dataset` (e.g. dataset = \"tetrominoes\")",
                                   file=spec_file, keypath=keypath))
    info = get_info(cfg["dataset"], file=spec_file, keypath=keypath + ("dataset",))
    if split not in SPLIT_START:
        raise ValueError(f"split must be one of {sorted(SPLIT_START)}, got {split!r}")
    if size is not None and int(size) < 1:
        raise ValueError(f"size must be >= 1, got {size}")

    path = cfg.get("path")
    if path is None:
        if info.generator is None:
            raise UserError(Diagnostic(
                f"dataset '{info.name}' has no built-in generator; it must be read from a file",
                file=spec_file, keypath=keypath + ("dataset",),
                hint=f"set `{format_keypath(keypath + ('path',))}` to your copy of {info.name} "
                     "(.tfrecords, EMORL .h5 or .npz)"))
        seed = int(cfg.get("seed", 0))
        start = SPLIT_START[split]
        length = int(size) if size is not None else (
            TRAIN_LENGTH if split == "train" else info.eval_size)
        src = GeneratorSource(info.generator, seed, start, length)
        return ObjectDataset(src, info, f"generator:{info.generator} seed={seed} start={start}")

    full = (Path(base_dir) / Path(str(path)).expanduser()).resolve()
    where = format_keypath(keypath + ("path",))
    if not full.is_file():
        if cfg.get("optional", False):
            return None
        what = "is a directory" if full.is_dir() else "not found"
        raise UserError(Diagnostic(
            f"dataset file {what}: {full} (`{where}` = \"{path}\", relative to {base_dir}); "
            f"expected the {info.name} dataset as a DeepMind .tfrecords, EMORL .h5 or .npz file",
            file=spec_file, keypath=keypath + ("path",),
            hint=f"point `{where}` at your copy of the dataset"))
    reader = READERS.get(full.suffix.lower())
    if reader is None:
        raise UserError(Diagnostic(
            f"cannot tell the format of {full} from its extension '{full.suffix}' "
            f"(supported: {', '.join(sorted(READERS))})",
            file=spec_file, keypath=keypath + ("path",)))
    limit = None if size is None else int(size)
    if reader == "tfrecord":
        from .tfrecord_reader import read_tfrecord

        src = ArraySource(read_tfrecord(full, info, limit=limit))
    elif reader == "npz":
        from .npz import read_npz

        src = ArraySource(read_npz(full, limit=limit))
    else:
        from .emorl import EmorlFile

        src = EmorlSource(EmorlFile(full, str(cfg.get("split", split))), limit)
    _check_shape(src, info, full)
    return ObjectDataset(src, info, str(full))


def _check_shape(src, info: DatasetInfo, path: Path) -> None:
    """A file whose images are not HxWxC of the dataset named is probably the wrong file."""
    shape = src.file.image_shape if hasattr(src, "file") else tuple(src.image.shape[1:])
    if shape[-1] != info.channels:
        raise UserError(Diagnostic(
            f"{path} holds {shape[-1]}-channel images but dataset '{info.name}' has "
            f"{info.channels} channels", file=str(path),
            hint="is `data.dataset` the dataset in this file?"))
