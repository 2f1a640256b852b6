"""Crop, resize and object-count filtering shared by the readers (spec keys in [data]).

Keys of a ``[data]`` table (or an ``[[eval.datasets]]`` entry) read here:

- ``resolution``: output size, an int (square) or ``[H, W]``. Default: the dataset's
  standard size after its crop (128 for CLEVR and ClevrTex) when the crop applies, else
  the stored size (e.g. EMORL's CLEVR6 files, already cropped and resized, stay as
  stored; generators stay at their native size).
- ``crop``: true (default) applies the dataset's standard crop box to images of the
  published size (CLEVR 240x320 -> rows 29:221, cols 64:256, docs/papers.md, Slot
  Attention / docs/formats.md, EMORL HDF5; ClevrTex 240x320 -> rows 24:216, cols 64:256,
  the 0.8 * min(H, W) = 192 px centre crop of docs/formats.md, ClevrTex folders); false
  keeps the full frame. Images of any other size (already preprocessed files) are never
  cropped.
- ``antialias``: false (default) resizes images with plain bilinear interpolation
  (half-pixel centres, ``torch.nn.functional.interpolate(..., align_corners=False)``),
  which is what TF2's ``tf.image.resize(..., "bilinear")`` -- the Slot Attention
  preprocessing -- computes; true low-pass filters when shrinking (PIL-style).
  Label maps are always resized nearest-neighbour (half-pixel centres, TF/``nearest-exact``),
  so every output label is an input label.
- ``max_objects``: keep only scenes with at most this many visible objects, counted as the
  non-empty foreground slots of the stored masks (before the crop), e.g. 6 for CLEVR6.
  Not to be confused with ``DatasetInfo.max_objects``, the number of mask slots K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ocdsl.errors import Diagnostic, UserError, format_keypath

__all__ = ["Preprocess", "resize_images", "resize_labels", "count_objects", "parse_options"]


def resize_images(images: np.ndarray, size: tuple[int, int], *, antialias: bool = False,
                  chunk: int = 256) -> np.ndarray:
    """Bilinear resize of ``images`` [n, H, W, C] to ``size`` (h, w).

    uint8 input -> uint8 output (rounded, clipped to 0..255); any other dtype -> float32.
    """
    import torch
    import torch.nn.functional as F

    images = np.asarray(images)
    n, _, _, c = images.shape
    h, w = size
    out_dtype = np.uint8 if images.dtype == np.uint8 else np.float32
    out = np.empty((n, h, w, c), out_dtype)
    for lo in range(0, n, chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[lo:lo + chunk], dtype=np.float32))
        y = F.interpolate(x.permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                          align_corners=False, antialias=antialias).permute(0, 2, 3, 1)
        if out_dtype == np.uint8:
            y = y.round_().clamp_(0, 255)
        out[lo:lo + chunk] = y.numpy()
    return out


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of label maps [..., H, W] (half-pixel centres)."""
    labels = np.asarray(labels)
    hh, ww = labels.shape[-2:]
    h, w = size
    rows = np.minimum(((np.arange(h) + 0.5) * hh / h).astype(np.int64), hh - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * ww / w).astype(np.int64), ww - 1)
    return labels[..., rows[:, None], cols[None, :]]


def count_objects(labels: np.ndarray) -> np.ndarray:
    """Visible objects per label map [n, H, W]: distinct non-zero labels. int64 [n]."""
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0:
        return np.zeros(0, np.int64)
    top = int(labels.max()) + 1
    flat = (np.arange(n)[:, None] * top + labels.reshape(n, -1).astype(np.int64)).ravel()
    hist = np.bincount(flat, minlength=n * top).reshape(n, top)
    return (hist[:, 1:] > 0).sum(axis=1)


@dataclass(frozen=True)
class Preprocess:
    """What to do to each image / label map of one dataset (see the module docstring).

    ``native`` (H, W) is the published image size; ``box`` (y0, y1, x0, x1) the crop
    applied to images of that size (None: no crop); ``size`` the output (h, w), or None
    for "as stored"; ``default_size`` the output after a crop when ``size`` is None.
    """

    native: tuple[int, int]
    box: tuple[int, int, int, int] | None = None
    size: tuple[int, int] | None = None
    default_size: tuple[int, int] | None = None
    antialias: bool = False

    def plan(self, hw: tuple[int, int]) -> tuple[tuple[int, int, int, int] | None, tuple[int, int] | None]:
        """(crop box or None, resize target or None) for stored images of size ``hw``."""
        box = self.box if self.box is not None and tuple(hw) == tuple(self.native) else None
        cur = (box[1] - box[0], box[3] - box[2]) if box else tuple(hw)
        target = self.size if self.size is not None else (self.default_size if box else None)
        if target is not None and tuple(target) == tuple(cur):
            target = None
        return box, target

    def output_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        box, target = self.plan(hw)
        if target is not None:
            return tuple(target)
        return (box[1] - box[0], box[3] - box[2]) if box else tuple(hw)

    def is_identity(self, hw: tuple[int, int]) -> bool:
        return self.plan(hw) == (None, None)

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """image [n, H, W, C], label [n, H, W] -> cropped and resized copies."""
        box, target = self.plan(image.shape[1:3])
        if box is not None:
            y0, y1, x0, x1 = box
            image, label = image[:, y0:y1, x0:x1], label[:, y0:y1, x0:x1]
        if target is not None:
            image = resize_images(image, target, antialias=self.antialias)
            label = resize_labels(label, target)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)


def _size(value, where: str, spec_file: str, keypath: tuple) -> tuple[int, int]:
    vals = [value] * 2 if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(vals, (list, tuple)) or len(vals) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in vals)):
        raise UserError(Diagnostic(
            f"`{where}` must be a positive integer or [height, width], got {value!r}",
            file=spec_file, keypath=keypath, hint=f"e.g. {where} = 128"))
    return int(vals[0]), int(vals[1])


def parse_options(cfg: Mapping[str, Any], info, *, spec_file: str = "<spec>",
                  keypath: tuple = ("data",)) -> tuple[Preprocess, int | None]:
    """Read ``resolution`` / ``crop`` / ``antialias`` / ``max_objects`` from ``cfg``.

    Returns (:class:`Preprocess`, max_objects or None). Bad values raise UserError
    pointing at the key.
    """
    keypath = tuple(keypath)
    size = None
    if cfg.get("resolution") is not None:
        size = _size(cfg["resolution"], format_keypath(keypath + ("resolution",)), spec_file,
                     keypath + ("resolution",))
    for key in ("crop", "antialias"):
        if key in cfg and not isinstance(cfg[key], bool):
            raise UserError(Diagnostic(f"`{format_keypath(keypath + (key,))}` must be true or false, "
                                       f"got {cfg[key]!r}", file=spec_file, keypath=keypath + (key,)))
    box = info.crop if cfg.get("crop", True) else None
    default = (info.crop_resolution,) * 2 if info.crop_resolution else None
    prep = Preprocess(native=(info.height, info.width), box=box, size=size, default_size=default,
                      antialias=bool(cfg.get("antialias", False)))
    max_obj = cfg.get("max_objects")
    if max_obj is not None and (not isinstance(max_obj, int) or isinstance(max_obj, bool) or max_obj < 0):
        raise UserError(Diagnostic(
            f"`{format_keypath(keypath + ('max_objects',))}` must be an integer >= 0 (the most "
            f"visible objects a kept scene may have), got {max_obj!r}",
            file=spec_file, keypath=keypath + ("max_objects",), hint="e.g. max_objects = 6 for CLEVR6"))
    return prep, max_obj
