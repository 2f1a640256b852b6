"""Dataset descriptions, as data: one :class:`DatasetInfo` per dataset.

Adding a dataset (or a generator for one) means adding one entry here. Sources:
DeepMind multi_object_datasets @ 9c670cd (``tetrominoes.py``, ``multi_dsprites.py``,
``objects_room.py``, ``clevr_with_masks.py``) and the EMORL HDF5 layout, summarised in
docs/formats.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ocdsl.errors import Diagnostic, UserError, did_you_mean

from .clevr_scenes import LAYOUT as CLEVR_LAYOUT
from .multi_dsprites import property_layout as dsprites_layout
from .properties import PropertyLayout

__all__ = ["DatasetInfo", "DATASETS", "ALIASES", "FAMILIES", "CLEVRTEX_VARIANTS", "get_info", "names", "READERS",
           "CONFIG_KEYS"]

#: The keys of a spec's [data] table (and of an [[eval.datasets]] entry, which adds name,
#: optional and size) that make_dataset and the trainer read; the spec schema accepts exactly
#: these (tests/data keep the two in step), so a misspelt key is an error, not ignored.
CONFIG_KEYS = ("dataset", "path", "range", "seed", "variant", "split", "resolution", "crop", "antialias",
               "max_objects", "digits", "views", "augment")
EVAL_CONFIG_KEYS = CONFIG_KEYS + ("name", "optional", "size")

#: file extension -> reader name
READERS: Mapping[str, str] = MappingProxyType(
    {".tfrecords": "tfrecord", ".tfrecord": "tfrecord", ".h5": "hdf5", ".hdf5": "hdf5", ".npz": "npz",
     ".json": "clevr_scenes"}
)


@dataclass(frozen=True)
class DatasetInfo:
    """What ocdsl knows about one dataset.

    - ``height``, ``width``, ``channels``: image size of the published files.
    - ``max_objects``: K, the number of mask slots stored per image (slot 0 = background).
    - ``reader``: the published format ("tfrecord" | "hdf5" | "npz" | "clevrtex" for
      ClevrTex folders | "clevr_scenes" for CLEVR v1.0 scene files or folders | "image_folder"
      for a folder of PNG/JPEG images); a file's reader is picked by its extension, a folder's by this.
    - ``generator``: module under ``ocdsl.data`` with ``generate(n, seed, *, start, **args)``
      and ``generate_at(indices, seed, **args)``, or None when no built-in generator exists.
    - ``tf_shapes``: TFRecord feature -> shape stored in the file (row-major).
    - ``mask_layout``: "KHW1" or "HWK1" (Multi-dSprites stores [H, W, K, 1]).
    - ``eval_size``: default number of images of a generated val/test split.
    - ``generator_args``: keyword arguments for the generator (``{"variant": ...}``).
    - ``variant``: the variant of its family this entry is (``binarized`` for
      ``multi_dsprites_binarized``; for ClevrTex the file-name variant asked for), or None.
    - ``masks``: False for a dataset without ground-truth masks (an image folder): its
      items have no ``mask`` and evaluation skips the metrics that need one.
    - ``crop``: standard crop box (y0, y1, x0, x1) applied to images of the published size
      ``height`` x ``width``; ``crop_resolution``: standard output side after that crop
      (:mod:`ocdsl.data.preprocess`).
    - ``properties``: the layout of the per-object property vectors (set-prediction
      targets, factor ``properties``) its generator or reader gives, or None
      (:mod:`ocdsl.data.properties`).
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
    generator_args: Mapping[str, Any] = field(default_factory=dict)
    variant: str | None = None
    crop: tuple[int, int, int, int] | None = None
    crop_resolution: int | None = None
    properties: PropertyLayout | None = None
    masks: bool = True

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
        generator="multi_dsprites", generator_args={"variant": variant}, variant=variant,
        source=f"{_DM} multi_dsprites.py", properties=dsprites_layout(variant),
    )


def _objects_room(variant: str, k: int) -> DatasetInfo:
    name = "objects_room" if variant == "train" else f"objects_room_{variant}"
    return DatasetInfo(
        name=name, height=64, width=64, channels=3, max_objects=k, variant=variant,
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
        crop=(29, 221, 64, 256), crop_resolution=128,
        source=f"{_DM} clevr_with_masks.py; crop rows 29:221, cols 64:256 -> 128 (docs/papers.md, Slot Attention)",
    ),
    DatasetInfo(
        name="mnist_scenes", height=64, width=64, channels=1, max_objects=4, reader="npz",
        generator="mnist_scenes", eval_size=2000,
        source="Cetin & Cinbis 2022 Sec. 4 (64 x 64 scenes of real MNIST digits); ocdsl's generator "
               "(ocdsl/data/mnist_scenes.py, docs/formats.md): 1-3 digits, sklearn's digits by default",
    ),
    DatasetInfo(
        name="clevr_scenes", height=320, width=480, channels=3, max_objects=11, reader="clevr_scenes",
        properties=CLEVR_LAYOUT,
        source="CLEVR v1.0 (Johnson et al., CVPR 2017): scenes/CLEVR_<split>_scenes.json + images/<split>/*.png "
               "(docs/formats.md, CLEVR scene files); set-prediction targets as google-research/google-research "
               "slot_attention/data.py @ 0c1bbe5; no masks",
    ),
    DatasetInfo(
        name="image_folder", height=64, width=64, channels=3, max_objects=0, reader="image_folder",
        masks=False,
        source="any folder of PNG/JPEG images (ocdsl/data/image_folder.py, docs/formats.md): centre "
               "crop, resize to 64 (data.resolution); no masks. The COCO setting of Cetin & Cinbis "
               "2022 Sec. 4",
    ),
    DatasetInfo(
        name="clevrtex", height=240, width=320, channels=3, max_objects=11, reader="clevrtex",
        crop=(24, 216, 64, 256), crop_resolution=128,
        source="github.com/karazijal/clevrtex-generation @ ae8afcb clevrtex_eval.py (docs/formats.md, ClevrTex folders): "
               "clevrtex_<variant>/<index//1000>/CLEVRTEX_<variant>_<index:06d>.png + _flat.png; "
               "centre crop 192 px -> 128",
    ),
]

#: family name -> {variant: canonical dataset name}; ``variant = "..."`` in [data] picks one.
#: ClevrTex variants only name the files (``CLEVRTEX_<variant>_...``): all share one entry.
CLEVRTEX_VARIANTS = ("full", "pbg", "vbg", "grassbg", "camo", "outd")
FAMILIES: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "multi_dsprites": MappingProxyType({v: f"multi_dsprites_{v}" for v in
                                        ("binarized", "colored_on_grayscale", "colored_on_colored")}),
    "objects_room": MappingProxyType({v: "objects_room" if v == "train" else f"objects_room_{v}"
                                      for v in ("train", "six_objects", "empty_room", "identical_color")}),
    "clevrtex": MappingProxyType({v: "clevrtex" for v in CLEVRTEX_VARIANTS}),
})

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
    """All accepted dataset names (canonical, aliases and families), sorted."""
    return sorted({*DATASETS, *ALIASES, *FAMILIES})


def _norm(name) -> str:
    return str(name).strip().lower().replace("-", "_")


def get_info(name: str, variant: str | None = None, *, file: str = "<spec>",
             keypath: tuple = ("data", "dataset")) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name`` (and ``variant``, the [data] key).

    ``name`` is a canonical name, an alias or a family (``multi_dsprites``,
    ``objects_room``, ``clevrtex``); ``variant`` picks a member of the family
    (``multi_dsprites`` + ``binarized`` -> ``multi_dsprites_binarized``); a family without
    a variant is its default member (the alias). A variant that contradicts a full name
    (``multi_dsprites_binarized`` + ``colored_on_colored``), a variant for a dataset
    without variants, an unknown name or an unknown variant raise UserError with
    did-you-mean. ``keypath`` locates ``dataset``; variant errors point at its sibling
    ``variant``.
    """
    key = _norm(name)
    canonical = ALIASES.get(key, key)
    if canonical not in DATASETS and key not in FAMILIES:
        hint = did_you_mean(str(name), names())
        known = ", ".join(sorted(DATASETS))
        raise UserError(
            Diagnostic(
                f"unknown dataset '{name}' (known: {known})",
                file=file, keypath=tuple(keypath), hint=hint,
            )
        )
    if variant is None:
        return DATASETS[canonical]
    vkey = tuple(keypath)[:-1] + ("variant",)
    family = key if key in FAMILIES else next(
        (f for f, members in FAMILIES.items() if canonical in members.values()), None)
    if family is None:
        raise UserError(Diagnostic(
            f"dataset '{name}' has no variants (variant = \"{variant}\")", file=file, keypath=vkey,
            hint="remove `variant`; datasets with variants: " + ", ".join(sorted(FAMILIES))))
    members = FAMILIES[family]
    v = _norm(variant)
    if v not in members:
        raise UserError(Diagnostic(
            f"unknown variant '{variant}' of dataset '{family}' (known: {', '.join(sorted(members))})",
            file=file, keypath=vkey, hint=did_you_mean(str(variant), members)))
    if key not in FAMILIES and members[v] != canonical:
        raise UserError(Diagnostic(
            f"dataset '{name}' and variant '{variant}' disagree (that variant is '{members[v]}')",
            file=file, keypath=vkey,
            hint=f"write dataset = \"{family}\" with variant = \"{v}\", or drop `variant`"))
    info = DATASETS[members[v]]
    if info.variant != v:  # ClevrTex: one entry, the variant names the files
        from dataclasses import replace

        info = replace(info, variant=v)
    return info
