"""Several augmented views of each training image (``[data] views`` and ``[data.augment]``).

Self-supervised objectives such as contrastive slot attention (Baldassarre & Azizpour 2022,
Sec. 4) compare two random views of the same image. In a spec::

    [data]
    dataset = "multi_dsprites"
    views = 2                       # each training image is seen as 2 views

    [data.augment]                  # applied to every view independently (kornia.augmentation)
    flip = 0.5                      # probability of a horizontal flip
    crop_scale = [0.3, 1.0]         # random resized crop: area fraction of the image
    crop_ratio = [0.75, 1.3333]     #                      aspect ratio (w / h) of the crop
    brightness = 0.2                # colour jitter: factor U[1 - 0.2, 1 + 0.2]
    saturation = [0.9, 1.0]         #                factor U[0.9, 1.0]
    hue = 0.05                      #                shift U[-0.05, 0.05] of the colour wheel
    mean = [0.485, 0.456, 0.406]    # normalisation (x - mean) / std, per channel
    std = [0.229, 0.224, 0.225]

The views are stacked along the batch axis: a training batch of B images holds ``views * B``
images, view 1 of every image first, then view 2, ... (``image`` ``(V b) c h w``, ``mask``
``(V b) h w``). The model runs once over all of them; a loss reads view ``i`` with
``view(x, i)`` (ocdsl/losses/functions.py), e.g. ``nt_xent(view(z, 1), view(z, 2), 0.1)``.
The masks go through the same geometric transforms as their image (nearest resampling), so
each view keeps its ground truth. Evaluation splits get no random transform, only the
normalisation (the model is scored on the inputs it was trained on).

The transforms are kornia's (``kornia.augmentation``: ``RandomHorizontalFlip``,
``RandomResizedCrop``, ``ColorJitter`` with torchvision's semantics, ``Normalize``), in that
order; the crop is resized back to the image's size. Randomness: the views of a batch are a
pure function of ``(seed, the batch's image indices)``: the transforms draw from torch's
generator seeded with ``SeedSequence([seed, crc32("augment"), *indices])`` inside
``torch.random.fork_rng``, so the global generators (training noise) are never touched and a
resumed run (which reads the same batches) sees the same views. ``seed`` is the training
data stream's seed, itself derived from ``train.seed`` (ocdsl/train/rng.py), so two seeds see
different views.
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping

import numpy as np
import torch

from ocdsl.errors import Diagnostic, UserError, format_keypath

__all__ = ["AUGMENT_KEYS", "ViewsDataset", "with_views", "augment_seed"]

#: The keys of ``[data.augment]`` (the schema accepts exactly these; tests keep them in step).
AUGMENT_KEYS = ("flip", "crop_scale", "crop_ratio", "brightness", "saturation", "hue", "mean", "std")


def augment_seed(seed: int, indices) -> int:
    """The seed of one batch's transforms: the first 32-bit word of
    ``SeedSequence([seed, crc32("augment"), *indices])``."""
    ss = np.random.SeedSequence([int(seed) % 2**64, zlib.crc32(b"augment"),
                                 *(int(i) for i in np.asarray(indices).reshape(-1))])
    return int(ss.generate_state(1, np.uint32)[0])


def _pipeline(aug: Mapping[str, Any], size: tuple[int, int], channels: int, train: bool):
    """kornia ``AugmentationSequential`` of the configured transforms (images and masks), or
    None when there is nothing to apply."""
    import kornia.augmentation as K

    ops = []
    if train:
        if float(aug.get("flip", 0.0)) > 0:
            ops.append(K.RandomHorizontalFlip(p=float(aug["flip"])))
        if "crop_scale" in aug or "crop_ratio" in aug:
            ops.append(K.RandomResizedCrop(size, scale=tuple(aug.get("crop_scale", (0.08, 1.0))),
                                           ratio=tuple(aug.get("crop_ratio", (3 / 4, 4 / 3)))))
        jitter = {k: aug[k] for k in ("brightness", "saturation", "hue") if k in aug}
        if jitter and channels == 3:
            jitter = {k: tuple(v) if isinstance(v, (list, tuple)) else float(v) for k, v in jitter.items()}
            ops.append(K.ColorJitter(**jitter, p=1.0))
    if "mean" in aug or "std" in aug:
        ops.append(K.Normalize(mean=torch.tensor(aug.get("mean", [0.0] * channels), dtype=torch.float32),
                               std=torch.tensor(aug.get("std", [1.0] * channels), dtype=torch.float32)))
    if not ops:
        return None
    return K.AugmentationSequential(*ops, data_keys=["input", "mask"])


class ViewsDataset(torch.utils.data.Dataset):
    """``views`` augmented views of every image of ``base`` (an ObjectDataset), stacked along
    the batch (module docstring).

    Args:
        base: the dataset (``batch(indices)`` -> ``image`` b c h w in [0, 1], ``mask`` b h w).
        augment: the ``[data.augment]`` table (keys :data:`AUGMENT_KEYS`).
        views: V, the number of views per image (>= 1).
        seed: the stream seed the transforms derive theirs from (:func:`augment_seed`).
        train: False for evaluation splits: one view, only the normalisation.

    ``batch(indices)`` -> ``image`` (V b) c h w, ``mask`` (V b) h w int64, ``factors`` each
    repeated V times; ``__getitems__`` returns the V * b items in that order (the DataLoader
    stacks them into one batch); ``dataset[i]`` is view 1 of image i.
    """

    def __init__(self, base, augment: Mapping[str, Any], views: int, seed: int, train: bool = True):
        self.base = base
        self.info = base.info
        self.origin = base.origin
        self.views = int(views) if train else 1
        self.seed = int(seed)
        self.train = train
        self.augment = dict(augment)
        self._aug = None

    def __len__(self) -> int:
        return len(self.base)

    def __repr__(self) -> str:
        what = f"{self.views} views" if self.train else "normalised"
        return f"ViewsDataset({self.base!r}, {what})"

    def _transform(self):
        if self._aug is None:
            self._aug = _pipeline(self.augment, (self.info.height, self.info.width), self.info.channels,
                                  self.train) or (lambda x, m: (x, m))
        return self._aug

    def batch(self, indices) -> dict:
        b = self.base.batch(indices)
        aug = self._transform()
        images, masks = [], []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(augment_seed(self.seed, indices))
            for _ in range(self.views):
                x, m = aug(b["image"], b["mask"][:, None].float())
                images.append(x.float())
                masks.append(m[:, 0].round().long())
        v = self.views
        return {"image": torch.cat(images), "mask": torch.cat(masks),
                "factors": {k: t.repeat(v, *([1] * (t.dim() - 1))) for k, t in b["factors"].items()}}

    def __getitems__(self, indices) -> list[dict]:
        b = self.batch(indices)
        return [{"image": b["image"][j], "mask": b["mask"][j],
                 "factors": {k: t[j] for k, t in b["factors"].items()}}
                for j in range(b["image"].shape[0])]

    def __getitem__(self, i) -> dict:
        return self.__getitems__([i])[0]


def with_views(ds, cfg: Mapping[str, Any], split: str, *, spec_file: str = "<spec>",
               keypath: tuple = ("data",)):
    """``ds`` as a :class:`ViewsDataset` when ``cfg`` (a [data] table) sets ``views`` or
    ``augment``; ``ds`` itself otherwise (and for None). The training split gets the views and
    random transforms, other splits only the normalisation. Raises UserError (located at the
    key) for ``mean`` / ``std`` whose length is not the image's channel count."""
    views, augment = cfg.get("views"), cfg.get("augment")
    if ds is None or (views is None and not augment):
        return ds
    augment = dict(augment or {})
    for key in ("mean", "std"):
        if key in augment and len(augment[key]) != ds.info.channels:
            kp = tuple(keypath) + ("augment", key)
            raise UserError(Diagnostic(
                f"`{format_keypath(kp)}` has {len(augment[key])} values, but {ds.info.name} images have "
                f"{ds.info.channels} channels", file=spec_file, keypath=kp,
                hint=f"give one value per channel ({ds.info.channels})"))
    train = split == "train"
    if not train and not ({"mean", "std"} & set(augment)):
        return ds
    return ViewsDataset(ds, augment, int(views or 1), int(cfg.get("seed", 0)), train=train)
