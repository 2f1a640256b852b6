"""A folder of natural images, without masks (the COCO setting of the attentive sequential
auto-encoder, Çetin & Cinbiş 2022 Sec. 4: 64 x 64 centre crops), read lazily with Pillow.

Layout (docs/formats.md, Image folders): every ``.png``, ``.jpg`` and ``.jpeg`` file (any
case) in the folder and its subfolders, in the order of their paths relative to the folder.
Each image is converted to RGB (grey and palette images are expanded, an alpha channel is
dropped), centre-cropped to the largest square and resized to ``size`` x ``size`` with
Pillow's bicubic filter (antialiased when shrinking).

Splits by position in that order: ``test`` and ``val`` are every 10th image (positions 9,
19, 29, ...), ``train`` the others; a folder of fewer than 10 images gives all of them to
every split. ``split = "all"`` in [data] takes the whole folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ocdsl.errors import Diagnostic, UserError

__all__ = ["ImageFolder", "SPLITS", "EXTENSIONS", "load_image", "HOLD_OUT"]

EXTENSIONS = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "val", "test", "all")
#: every HOLD_OUT-th image is held out for val / test
HOLD_OUT = 10


def _bad(path: Path, why: str, hint: str | None = None) -> UserError:
    return UserError(Diagnostic(f"cannot read image folder {path}: {why}", file=str(path), hint=hint))


def load_image(path: str | Path, size: int) -> np.ndarray:
    """One image file -> uint8 [size, size, 3]: RGB, centre crop to a square, bicubic resize.

    Raises UserError naming the file when Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise UserError(Diagnostic(f"cannot read image {path}: {type(err).__name__}: {err}",
                                   file=str(path), hint="remove the file or convert it to PNG/JPEG")) from err
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side))
    if side != size:
        im = im.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8)


def _files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS),
                  key=lambda p: p.relative_to(root).as_posix())


class ImageFolder:
    """The images of one split of a folder (see the module docstring), as ``size`` x ``size``
    RGB.

    ``get(indices)`` returns ``image`` uint8 [n, size, size, 3], ``label`` None (no masks)
    and ``factors`` ``{"index": int64 [n]}`` (the position of each image in the folder).
    Raises UserError for a missing folder, an unknown split or a folder without images.
    """

    def __init__(self, root: str | Path, split: str = "train", size: int = 64):
        self.root = Path(root)
        if split not in SPLITS:
            raise _bad(self.root, f"unknown split '{split}' (known: {', '.join(SPLITS)})")
        if not self.root.is_dir():
            raise _bad(self.root, "not a folder")
        files = _files(self.root)
        if not files:
            raise _bad(self.root, f"no {', '.join(EXTENSIONS)} files in it or its subfolders")
        held = len(files) >= HOLD_OUT
        keep = [i for i in range(len(files)) if split == "all" or not held
                or ((i % HOLD_OUT == HOLD_OUT - 1) == (split != "train"))]
        self.files = [files[i] for i in keep]
        self.positions = np.asarray(keep, dtype=np.int64)
        self.size = int(size)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)

    def get(self, indices) -> dict:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        images = np.stack([load_image(self.files[i], self.size) for i in idx]) if len(idx) else \
            np.zeros((0, *self.image_shape), np.uint8)
        return {"image": images, "label": None, "factors": {"index": self.positions[idx]}}
