"""ClevrTex folders (docs/formats.md, ClevrTex folders), read lazily with Pillow.

Layout (github.com/karazijal/clevrtex-generation @ ae8afcb, ``clevrtex_eval.py``): the
unpacked ``clevrtex_<variant>/`` folder (variants full, pbg, vbg, grassbg, camo, outd)
holds subfolders ``<index // 1000>/`` with, per scene,

- ``CLEVRTEX_<variant>_<6-digit index>.png``: RGB(A) 320x240 image; we use ``[..., :3]``;
- ``CLEVRTEX_<variant>_<6-digit index>_flat.png``: palette ('P') PNG whose pixel values
  are object indices, 0 = background, k = the object with ``index == k`` in the json
  (the palette itself is cosmetic);
- ``CLEVRTEX_<variant>_<6-digit index>.json``: metadata (not read here).

Splits by position in the index-sorted list of scenes: test [0, 0.1), val [0.1, 0.2),
train [0.2, 1.0) (N scenes: boundaries ``int(0.1 N)`` and ``int(0.2 N)``); ``outd`` has
no split (every split is the whole folder); ``split = "all"`` in [data] takes the whole
folder too. Files lying directly in the folder (no subfolders) are found as well.

Benchmark preprocessing (done by :class:`ocdsl.data.preprocess.Preprocess`, not here):
centre crop 0.8 * min(H, W) = 192 px (rows 24:216, cols 64:256), resize to 128, bilinear
image, nearest mask.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ocdsl.errors import Diagnostic, UserError

__all__ = ["ClevrTexFolder", "SPLITS", "write_clevrtex_scene"]

#: split -> [lo, hi) fraction of the index-sorted scenes
SPLITS = {"test": (0.0, 0.1), "val": (0.1, 0.2), "train": (0.2, 1.0), "all": (0.0, 1.0)}
_NAME = re.compile(r"^CLEVRTEX_(?P<variant>[A-Za-z0-9]+)_(?P<index>\d{6})\.png$")


def _bad(path: Path, why: str, hint: str | None = None) -> UserError:
    return UserError(Diagnostic(f"cannot read ClevrTex folder {path}: {why}", file=str(path), hint=hint))


class ClevrTexFolder:
    """The scenes of one split of a ``clevrtex_<variant>`` folder.

    ``variant`` None: taken from the file names (an error if the folder mixes variants).
    ``get(indices)`` returns ``image`` uint8 [n, H, W, 3] and ``label`` uint8 [n, H, W]
    (the ``_flat.png`` object indices) as stored (uncropped), ``factors`` {} -- and
    ``index`` int64 [n], the scene number of each image, as a factor.
    """

    def __init__(self, root: str | Path, split: str = "train", variant: str | None = None):
        self.root = Path(root)
        if split not in SPLITS:
            raise _bad(self.root, f"unknown split '{split}' (known: {', '.join(SPLITS)})")
        found: dict[str, list[tuple[int, Path]]] = {}
        for p in [*self.root.glob("CLEVRTEX_*.png"), *self.root.glob("*/CLEVRTEX_*.png")]:
            m = _NAME.match(p.name)
            if m:
                found.setdefault(m["variant"].lower(), []).append((int(m["index"]), p))
        if variant is not None:
            found = {variant: found.get(variant, [])}
        elif len(found) > 1:
            raise _bad(self.root, f"it mixes the variants {', '.join(sorted(found))}",
                       hint="set `data.variant` to the one to read")
        scenes = sorted(next(iter(found.values()), []))
        if not scenes:
            want = f"CLEVRTEX_{variant or '<variant>'}_<6-digit index>.png"
            raise _bad(self.root, f"no scene images {want} in it or its subfolders",
                       hint="point `data.path` at the unpacked clevrtex_<variant> folder")
        self.variant = variant or next(iter(found))
        n = len(scenes)
        lo, hi = (0.0, 1.0) if self.variant == "outd" else SPLITS[split]
        scenes = scenes[int(lo * n):int(hi * n)]
        self.split = split
        self.indices = np.array([i for i, _ in scenes], dtype=np.int64)
        self.images = [p for _, p in scenes]
        self.image_shape = self._image(0).shape if scenes else (0, 0, 3)

    def __len__(self) -> int:
        return len(self.images)

    def _image(self, i: int) -> np.ndarray:
        from PIL import Image

        p = self.images[i]
        try:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB") if im.mode not in ("RGB", "RGBA") else im)
        except OSError as err:
            raise _bad(self.root, f"{p.name}: {err}") from err
        return arr[..., :3]

    def _mask(self, i: int) -> np.ndarray:
        from PIL import Image

        p = self.images[i]
        flat = p.with_name(p.stem + "_flat.png")
        try:
            with Image.open(flat) as im:
                if im.mode not in ("P", "L"):
                    raise _bad(self.root, f"{flat.name} is a '{im.mode}' PNG, expected a palette ('P') "
                                          "PNG of object indices")
                arr = np.asarray(im)
        except FileNotFoundError as err:
            raise _bad(self.root, f"mask {flat.name} is missing (next to {p.name})") from err
        except OSError as err:
            raise _bad(self.root, f"{flat.name}: {err}") from err
        return arr

    def get(self, indices) -> dict:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        images = [self._image(int(i)) for i in idx]
        labels = [self._mask(int(i)) for i in idx]
        for i, im, lab in zip(idx, images, labels):
            if im.shape[:2] != lab.shape:
                raise _bad(self.root, f"{self.images[int(i)].name}: image {im.shape[:2]} and mask "
                                      f"{lab.shape} differ in size")
        h, w = self.image_shape[:2]
        if any(im.shape[:2] != (h, w) for im in images):
            raise _bad(self.root, f"images of different sizes (expected {h}x{w})")
        return {"image": np.stack(images) if images else np.zeros((0, h, w, 3), np.uint8),
                "label": np.stack(labels) if labels else np.zeros((0, h, w), np.uint8),
                "factors": {"index": self.indices[idx]}}

    def object_counts(self) -> np.ndarray:
        """Visible objects per scene (distinct non-zero mask values), int64 [n]. Reads every mask."""
        from .preprocess import count_objects

        return np.concatenate([count_objects(self._mask(i)[None]) for i in range(len(self))]) \
            if len(self) else np.zeros(0, np.int64)


def write_clevrtex_scene(root: str | Path, variant: str, index: int, image: np.ndarray,
                         label: np.ndarray, metadata: dict | None = None) -> Path:
    """Write one scene in the ClevrTex layout (for tests and fixtures): RGBA image PNG,
    palette ``_flat.png`` of ``label`` (uint8 [H, W]), json. Returns the image path."""
    import json

    from PIL import Image

    folder = Path(root) / str(index // 1000)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"CLEVRTEX_{variant}_{index:06d}"
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(folder / f"{stem}.png")
    label = np.ascontiguousarray(label, dtype=np.uint8)
    flat = Image.frombytes("P", (label.shape[1], label.shape[0]), label.tobytes())
    pal = np.random.default_rng(0).integers(0, 256, (256, 3), dtype=np.uint8)  # cosmetic
    flat.putpalette(pal.ravel().tolist())
    flat.save(folder / f"{stem}_flat.png")
    meta = metadata or {"objects": [{"index": int(k)} for k in np.unique(label) if k > 0]}
    (folder / f"{stem}.json").write_text(json.dumps(meta))
    return folder / f"{stem}.png"
