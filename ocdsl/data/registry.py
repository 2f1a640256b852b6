"""Dataset descriptions, as data: one :class:`DatasetInfo` per dataset.

Adding a dataset (or a generator for one) means adding one entry here. Sources:
DeepMind multi_object_datasets @ 9c670cd (``tetrominoes.py``, ``multi_dsprites.py``,
``objects_room.py``, ``clevr_with_masks.py``), summarised in ../shared/data/FORMATS.md §1;
EMORL HDF5 layout §2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from ocdsl.errors import Diagnostic, UserError, did_you_mean

__all__ = ["DatasetInfo", "DATASETS", "ALIASES", "get_info", "names", "READERS"]

#: file extension -> reader name
READERS: Mapping[str, str] = MappingProxyType(
    {".tfrecords": "tfrecord", ".tfrecord": "tfrecord", ".h5": "hdf5", ".hdf5": "hdf5", ".npz": "npz"}
)


@dataclass(frozen=True)
class DatasetInfo:
    """What ocdsl knows about one dataset.

    - ``height``, ``width``, ``channels``: image size of the published files.
    - ``max_objects``: K, the number of mask slots stored per image (slot 0 = background).
    - ``reader``: the published format ("tfrecord" | "hdf5" | "npz"); the actual reader
      is picked by the file's extension.
    - ``generator``: module under ``ocdsl.data`` with ``generate(n, seed, *, start)`` and
      ``generate_at(indices, seed)``, or None when no built-in generator exists.
    - ``tf_shapes``: TFRecord feature -> shape stored in the file (row-major).
    - ``mask_layout``: "KHW1" or "HWK1" (Multi-dSprites stores [H, W, K, 1]).
    - ``eval_size``: default number of images of a generated val/test split.
    """

    name: str
    height: int
    width: int
    channels: int
    max_objects: int
    reader: str = "tfrecord"
    generator: str | None = None
    tf_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    mask_layout: str = "KHW1"
    eval_size: int = 1000
    source: str = ""

    @property
    def resolution(self) -> tuple[int, int]:
        return (self.height, self.width)


_DM = "github.com/google-deepmind/multi_object_datasets @ 9c670cd"


def _dsprites(variant: str, c: int, k: int) -> DatasetInfo:
    return DatasetInfo(
        name=f"multi_dsprites_{variant}",
        height=64, width=64, channels=c, max_objects=k,
        tf_shapes={
            "image": (64, 64, c), "mask": (64, 64, k, 1),
            **{f: (k,) for f in ("x", "y", "shape", "orientation", "scale", "visibility")},
            "color": (k, c),
        },
        mask_layout="HWK1",
        source=f"{_DM} multi_dsprites.py",
    )


def _objects_room(variant: str, k: int) -> DatasetInfo:
    name = "objects_room" if variant == "train" else f"objects_room_{variant}"
    return DatasetInfo(
        name=name, height=64, width=64, channels=3, max_objects=k,
        tf_shapes={"image": (64, 64, 3), "mask": (k, 64, 64, 1)},
        source=f"{_DM} objects_room.py (slots 0-3: sky, floor, walls)",
    )


_ALL = [
    DatasetInfo(
        name="tetrominoes", height=35, width=35, channels=3, max_objects=4,
        generator="tetrominoes",
        tf_shapes={
            "image": (35, 35, 3), "mask": (4, 35, 35, 1),
            "x": (4,), "y": (4,), "shape": (4,), "visibility": (4,), "color": (4, 3),
        },
        source=f"{_DM} tetrominoes.py",
    ),
    _dsprites("binarized", 1, 4),
    _dsprites("colored_on_grayscale", 3, 6),
    _dsprites("colored_on_colored", 3, 5),
    _objects_room("train", 7),
    _objects_room("six_objects", 10),
    _objects_room("empty_room", 4),
    _objects_room("identical_color", 10),
    DatasetInfo(
        name="clevr_with_masks", height=240, width=320, channels=3, max_objects=11,
        tf_shapes={
            "image": (240, 320, 3), "mask": (11, 240, 320, 1),
            **{f: (11,) for f in ("x", "y", "z", "rotation", "visibility")},
            "pixel_coords": (11, 3),
            # bytes features holding one uint8 code per object
            **{f: (11,) for f in ("size", "material", "shape", "color")},
        },
        source=f"{_DM} clevr_with_masks.py",
    ),
]

DATASETS: Mapping[str, DatasetInfo] = MappingProxyType({d.name: d for d in _ALL})
#: other accepted names -> canonical name
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "multi_dsprites": "multi_dsprites_colored_on_grayscale",
        "objects_room_train": "objects_room",
        "clevr": "clevr_with_masks",
    }
)


def names() -> list[str]:
    """All accepted dataset names (canonical and aliases), sorted."""
    return sorted({*DATASETS, *ALIASES})


def get_info(name: str, *, file: str = "<spec>", keypath: tuple = ("data", "dataset")) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name``; unknown names raise UserError with did-you-mean."""
    key = str(name).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key in DATASETS:
        return DATASETS[key]
    hint = did_you_mean(str(name), names())
    known = ", ".join(sorted(DATASETS))
    raise UserError(
        Diagnostic(
            f"unknown dataset '{name}' (known: {known})",
            file=file, keypath=tuple(keypath), hint=hint,
        )
    )
