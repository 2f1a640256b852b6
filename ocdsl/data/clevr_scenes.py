"""CLEVR v1.0 images with their scene files (docs/formats.md, CLEVR scene files), read lazily
with Pillow: the images and per-object property vectors of Slot Attention's set prediction.

Layout of the unpacked ``CLEVR_v1.0/`` folder (Johnson et al., CVPR 2017; its README):

- ``scenes/CLEVR_<split>_scenes.json`` (split ``train``, ``val``; the test scenes are not
  published): ``{"info": {...}, "scenes": [scene, ...]}``, a scene being ``{"split",
  "image_index", "image_filename", "objects": [object, ...], "relationships", ...}`` and an
  object ``{"3d_coords": [x, y, z], "pixel_coords", "rotation", "size", "color",
  "material", "shape"}`` with the categorical values as words;
- ``images/<split>/CLEVR_<split>_<6-digit index>.png``: 480x320 RGBA renders (we use RGB).

``path`` names the ``CLEVR_v1.0`` folder (the ``train`` split reads the train scenes, ``val``
and ``test`` the val scenes) or one scenes file (every split reads it); a scene's image is
``images/<scene split>/<image_filename>`` under the folder above the file's ``scenes/``.

Targets (``factors["properties"]``, :data:`LAYOUT`): as the official set-prediction code
(google-research/google-research slot_attention/data.py @ 0c1bbe5, ``preprocess_clevr``):
``3d_coords`` mapped from [-3, 3] to [0, 1] by ``(c + 3) / 6``, then one-hot size (2),
material (2), shape (3) and colour (8) in the class order of TensorFlow Datasets' ``clevr``
3.1.0 builder, then 1; padded to 10 objects. There are no masks: every label map is 0.
The official code resizes the whole 480x320 frame to 128x128 (``apply_crop=False``):
``resolution = 128`` in [data].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ocdsl.errors import Diagnostic, UserError

from .properties import PropertyLayout

__all__ = ["ClevrScenes", "LAYOUT", "SIZES", "MATERIALS", "SHAPES", "COLOURS", "SCENE_FILES", "write_clevr_scenes"]

SIZES = ("small", "large")
MATERIALS = ("rubber", "metal")
SHAPES = ("cube", "sphere", "cylinder")
COLOURS = ("gray", "blue", "brown", "yellow", "red", "green", "purple", "cyan")
#: CLEVR's set-prediction targets: P = 3 + 2 + 2 + 3 + 8 + 1 = 19, 10 objects, distances in
#: scene units (6 per coordinate unit: the [-3, 3] scene)
LAYOUT = PropertyLayout(coords=("x", "y", "z"),
                        classes=(("size", SIZES), ("material", MATERIALS), ("shape", SHAPES), ("color", COLOURS)),
                        coord_scale=6.0, objects=10)
#: our split -> the scenes file of a CLEVR_v1.0 folder that serves it
SCENE_FILES = {"train": "CLEVR_train_scenes.json", "val": "CLEVR_val_scenes.json",
               "test": "CLEVR_val_scenes.json"}


def _bad(path: Path, why: str, hint: str | None = None) -> UserError:
    return UserError(Diagnostic(f"cannot read CLEVR scenes {path}: {why}", file=str(path), hint=hint))


class ClevrScenes:
    """The scenes of one CLEVR scenes file and their images.

    ``get(indices)`` returns ``image`` uint8 [n, 320, 480, 3], ``label`` uint8 [n, 320, 480]
    (all 0: CLEVR v1.0 has no masks) and ``factors``: ``properties`` float32 [n, 10, 19]
    (:data:`LAYOUT`) and ``index`` int64 [n] (the scene's ``image_index``). Raises
    UserError for a missing or malformed file, an unknown attribute word, a scene with more
    than 10 objects or a missing image.
    """

    def __init__(self, root: str | Path, split: str = "train"):
        root = Path(root)
        if root.is_dir():
            if split not in SCENE_FILES:
                raise _bad(root, f"unknown split '{split}' (known: {', '.join(SCENE_FILES)})")
            self.file = root / "scenes" / SCENE_FILES[split]
        else:
            self.file = root
        try:
            data = json.loads(self.file.read_text())
            scenes = data["scenes"]
            if not isinstance(scenes, list):
                raise TypeError("'scenes' is not a list")
        except FileNotFoundError:
            raise _bad(self.file, "no such file", hint="point `data.path` at the CLEVR_v1.0 folder "
                                                       "or a scenes/CLEVR_<split>_scenes.json file") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise _bad(self.file, f"not a CLEVR scenes file ({type(err).__name__}: {err})") from None
        self.images_dir = self.file.parent.parent / "images"
        self.scenes = scenes
        self.properties = np.stack([self._vector(i, s) for i, s in enumerate(scenes)]) if scenes else \
            np.zeros((0, LAYOUT.objects, LAYOUT.size), np.float32)
        self.index = np.array([int(s.get("image_index", i)) for i, s in enumerate(scenes)], dtype=np.int64)
        self.image_shape = self._image(0).shape if scenes else (320, 480, 3)

    def __len__(self) -> int:
        return len(self.scenes)

    def _vector(self, i: int, scene: dict) -> np.ndarray:
        objects = scene.get("objects")
        if not isinstance(objects, list):
            raise _bad(self.file, f"scene {i} has no 'objects' list")
        if len(objects) > LAYOUT.objects:
            raise _bad(self.file, f"scene {i} has {len(objects)} objects, more than {LAYOUT.objects}")
        o = len(objects)
        coords = np.zeros((1, o, 3), np.float32)
        classes = {name: np.zeros((1, o), np.int64) for name, _ in LAYOUT.classes}
        for j, obj in enumerate(objects):
            try:
                coords[0, j] = (np.asarray(obj["3d_coords"], dtype=np.float32).reshape(3) + 3.0) / 6.0
                for name, values in LAYOUT.classes:
                    classes[name][0, j] = values.index(obj[name])
            except (KeyError, ValueError, TypeError) as err:
                raise _bad(self.file, f"scene {i}, object {j}: {type(err).__name__}: {err}",
                           hint="each object needs 3d_coords [x, y, z] and size, material, shape and "
                                "color words as in CLEVR v1.0") from None
        return LAYOUT.encode(coords, classes, np.ones((1, o), bool))[0]

    def _image(self, i: int) -> np.ndarray:
        from PIL import Image

        scene = self.scenes[i]
        p = self.images_dir / str(scene.get("split", "")) / str(scene.get("image_filename", ""))
        try:
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as err:
            raise _bad(self.file, f"image of scene {i}: {p}: {err}",
                       hint="the images are read from images/<split>/ next to scenes/") from None

    def get(self, indices) -> dict:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        h, w = self.image_shape[:2]
        images = [self._image(int(i)) for i in idx]
        if any(im.shape[:2] != (h, w) for im in images):
            raise _bad(self.file, f"images of different sizes (expected {h}x{w})")
        return {"image": np.stack(images) if images else np.zeros((0, h, w, 3), np.uint8),
                "label": np.zeros((len(idx), h, w), np.uint8),
                "factors": {"properties": self.properties[idx], "index": self.index[idx]}}

    def object_counts(self) -> np.ndarray:
        """Objects per scene (the scene file's count; all are counted, visible or not), int64 [n]."""
        return self.properties[:, :, -1].sum(axis=1).astype(np.int64)


def write_clevr_scenes(root: str | Path, split: str, scenes: list[dict], images: list[np.ndarray]) -> Path:
    """Write a CLEVR_v1.0-layout folder (for tests and fixtures): ``scenes/CLEVR_<split>_scenes.json``
    holding ``scenes`` (``split`` and ``image_filename`` filled in) and each image as an RGBA
    PNG ``images/<split>/CLEVR_<split>_<index:06d>.png``. Returns the scenes file."""
    from PIL import Image

    root = Path(root)
    (root / "scenes").mkdir(parents=True, exist_ok=True)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    out = []
    for i, (scene, image) in enumerate(zip(scenes, images)):
        name = f"CLEVR_{split}_{i:06d}.png"
        rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=-1)
        Image.fromarray(rgba).save(root / "images" / split / name)
        out.append({"split": split, "image_index": i, "image_filename": name, **scene})
    path = root / "scenes" / f"CLEVR_{split}_scenes.json"
    path.write_text(json.dumps({"info": {"split": split, "version": "1.0"}, "scenes": out}))
    return path
