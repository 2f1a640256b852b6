"""Per-object property vectors (set-prediction targets): the Multi-dSprites generator's, with
its images unchanged, and the CLEVR scene-file reader's, on a tiny CLEVR_v1.0 folder written
here."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ocdsl.attributes import SCALE_SPLIT, object_attributes
from ocdsl.data import make_dataset
from ocdsl.data.clevr_scenes import LAYOUT, write_clevr_scenes
from ocdsl.data.multi_dsprites import generate, property_layout
from ocdsl.data.properties import PropertyLayout
from ocdsl.errors import UserError
from ocdsl.train.stream import collate

# sha256 (first 16 hex digits) of image + mask bytes of generate(16, 3, start=100, variant=v),
# computed with the generator before it returned properties (commit 8e5d641): the image
# stream must not change.
IMAGES = {"binarized": "1961391d2d16aa46", "colored_on_grayscale": "08b5cd77a2e51796",
          "colored_on_colored": "5609057d3eebbf7c"}


@pytest.mark.parametrize("variant", sorted(IMAGES))
def test_the_image_stream_is_unchanged(variant):
    d = generate(16, 3, start=100, variant=variant)
    assert hashlib.sha256(d["image"].tobytes() + d["mask"].tobytes()).hexdigest()[:16] == IMAGES[variant]


@pytest.mark.parametrize("variant,objects,size", [("colored_on_grayscale", 5, 14), ("colored_on_colored", 4, 14),
                                                  ("binarized", 3, 8)])
def test_properties_follow_the_factors(variant, objects, size):
    d = generate(64, 1, variant=variant)
    layout = property_layout(variant)
    assert (layout.objects, layout.size) == (objects, size)
    props = d["properties"]
    assert props.shape == (64, objects, size) and props.dtype == np.float32
    visible = (d["visibility"][:, 1:] > 0) & (d["shape"][:, 1:] > 0)
    np.testing.assert_array_equal(props[..., -1], visible)                     # the real-object flag
    assert not props[~visible].any()                                             # absent / hidden: zeros
    v = props[visible]
    np.testing.assert_allclose(v[:, 0], d["x"][:, 1:][visible])
    np.testing.assert_allclose(v[:, 1], d["y"][:, 1:][visible])
    np.testing.assert_array_equal(v[:, 2:4].argmax(1), d["scale"][:, 1:][visible] > SCALE_SPLIT)
    np.testing.assert_array_equal(v[:, -4:-1].argmax(1), d["shape"][:, 1:][visible] - 1)
    if variant != "binarized":                                                   # the probe's colour classes
        _, attrs = object_attributes({k: d[k][:, 1:] for k in ("shape", "color", "visibility")})
        np.testing.assert_array_equal(v[:, 4:10].argmax(1), attrs["colour"][visible])
    assert np.isin(v[:, 2:-1], [0.0, 1.0]).all() and (v[:, 2:-1].sum(1) == len(layout.classes)).all()


def test_layout_encode_errors():
    layout = PropertyLayout(coords=("x",), classes=(("c", ("a", "b")),), coord_scale=1.0, objects=2)
    assert layout.size == 4 and layout.metric_args() == {"coords": 1, "classes": (2,), "coord_scale": 1.0}
    with pytest.raises(ValueError, match="3 objects"):
        layout.encode(np.zeros((1, 3, 1)), {"c": np.zeros((1, 3))}, np.ones((1, 3), bool))
    with pytest.raises(ValueError, match="outside 0..1"):
        layout.encode(np.zeros((1, 1, 1)), {"c": np.array([[2]])}, np.ones((1, 1), bool))
    with pytest.raises(ValueError, match="no 'c' class"):
        layout.encode(np.zeros((1, 1, 1)), {}, np.ones((1, 1), bool))


def _object(x, y, z, size, material, shape, color):
    return {"3d_coords": [x, y, z], "pixel_coords": [0, 0, 0], "rotation": 0.0, "size": size,
            "material": material, "shape": shape, "color": color}


def _clevr(tmp_path, n_objects=(2, 1, 3)):
    rng = np.random.default_rng(0)
    scenes = [{"objects": [_object(-3.0 + i, 1.5, 0.35, "large", "metal", "cylinder", "cyan")
                           for i in range(n)]} for n in n_objects]
    images = [rng.integers(0, 256, (24, 36, 3), dtype=np.uint8) for _ in n_objects]
    write_clevr_scenes(tmp_path / "CLEVR_v1.0", "train", scenes, images)
    val = write_clevr_scenes(tmp_path / "CLEVR_v1.0", "val", scenes[:1], images[:1])
    return tmp_path / "CLEVR_v1.0", images, val


def test_clevr_scene_files(tmp_path):
    root, images, val = _clevr(tmp_path)
    ds = make_dataset({"dataset": "clevr_scenes", "path": str(root)}, "train", tmp_path)
    assert len(ds) == 3 and ds.info.properties is LAYOUT and LAYOUT.size == 19
    item = ds[0]
    np.testing.assert_array_equal((item["image"].numpy().transpose(1, 2, 0) * 255).round(), images[0])
    assert item["mask"].shape == (24, 36) and not item["mask"].any()          # no masks in CLEVR v1.0
    props = item["factors"]["properties"].numpy()
    assert props.shape == (10, 19)
    # object 1: 3d_coords (-2, 1.5, 0.35) -> ((c + 3) / 6); large (1), metal (1), cylinder (2), cyan (7)
    expected = np.zeros(19, np.float32)
    expected[:3] = [1 / 6, 4.5 / 6, 3.35 / 6]
    expected[[3 + 1, 5 + 1, 7 + 2, 10 + 7, 18]] = 1.0
    np.testing.assert_allclose(props[1], expected, rtol=1e-6)
    assert props[2:].sum() == 0                                                  # padding
    assert make_dataset({"dataset": "clevr_scenes", "path": str(root)}, "test", tmp_path).__len__() == 1
    assert len(make_dataset({"dataset": "clevr_scenes", "path": str(val)}, "train", tmp_path)) == 1
    small = make_dataset({"dataset": "clevr_scenes", "path": str(root), "resolution": 16, "max_objects": 2},
                         "train", tmp_path)
    assert len(small) == 2 and small[0]["image"].shape == (3, 16, 16)
    batch = collate(("image", "properties"))([ds[0], ds[2]])                    # a model input from the factors
    assert batch["properties"].shape == (2, 10, 19) and batch["properties"][1, :, -1].sum() == 3


def test_clevr_scene_file_errors(tmp_path):
    root, _, _ = _clevr(tmp_path)
    scenes = root / "scenes" / "CLEVR_train_scenes.json"
    text = scenes.read_text()
    scenes.write_text(text.replace('"cyan"', '"pink"', 1))
    with pytest.raises(UserError, match="scene 0, object 0: ValueError"):
        make_dataset({"dataset": "clevr_scenes", "path": str(root)}, "train", tmp_path)
    scenes.write_text(text)
    (root / "images" / "train" / "CLEVR_train_000000.png").unlink()
    with pytest.raises(UserError, match="image of scene 0"):
        make_dataset({"dataset": "clevr_scenes", "path": str(root)}, "train", tmp_path)
    many, _, _ = _clevr(tmp_path / "many", (11,))
    with pytest.raises(UserError, match="11 objects, more than 10"):
        make_dataset({"dataset": "clevr_scenes", "path": str(many)}, "train", tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(UserError, match="not a CLEVR scenes file"):
        make_dataset({"dataset": "clevr_scenes", "path": str(bad)}, "train", tmp_path)
    with pytest.raises(UserError, match="read by the dataset 'clevr_scenes' only"):
        make_dataset({"dataset": "tetrominoes", "path": str(bad)}, "train", tmp_path)
