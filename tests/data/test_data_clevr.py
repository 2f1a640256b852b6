"""CLEVR with masks (TFRecord / npz, standard crop + resize, max_objects), EMORL CLEVR6
HDF5, ClevrTex folders (docs/formats.md; docs/papers.md, Slot Attention)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ocdsl.data import make_dataset
from ocdsl.data.clevrtex import ClevrTexFolder, write_clevrtex_scene
from ocdsl.data.emorl import write_emorl
from ocdsl.data.masks import labels_to_masks, masks_to_labels
from ocdsl.data.preprocess import count_objects, resize_images, resize_labels
from ocdsl.data.registry import get_info
from ocdsl.data.tfrecord_reader import write_tfrecord
from ocdsl.errors import UserError

CLEVR = {"dataset": "clevr_with_masks"}


@pytest.fixture(scope="session")
def clevr_dir(shared_data):
    d = shared_data / "clevr_with_masks"
    if not (d / "clevr_with_masks_2.npz").exists():
        pytest.skip(f"{d / 'clevr_with_masks_2.npz'} is missing")
    return d


@pytest.fixture(scope="session")
def clevr_npz(clevr_dir):
    with np.load(clevr_dir / "clevr_with_masks_2.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def clevr_tfrecord(clevr_npz, tmp_path_factory):
    """The 2 real scenes written in DeepMind's TFRecord layout (uint8 bytes_lists, GZIP)."""
    path = tmp_path_factory.mktemp("clevr") / "clevr_with_masks_train.tfrecords"
    recs = [{"image": clevr_npz["image"][i], "mask": clevr_npz["mask"][i],
             "visibility": clevr_npz["visibility"][i]} for i in range(2)]
    write_tfrecord(path, recs, get_info("clevr_with_masks"))
    return path


def _items(ds):
    b = ds.batch(range(len(ds)))
    return (b["image"] * 255).round().byte().permute(0, 2, 3, 1).numpy(), b["mask"].numpy(), b


def test_png_samples_are_bgr(clevr_dir, clevr_npz):
    """docs/formats.md, The real samples beside the checkout: the PNG dump is BGR and its
    masks are the npz's slots."""
    from PIL import Image

    for i in range(2):
        png = np.asarray(Image.open(clevr_dir / "png" / f"CLEVR_image_{i}.png"))
        np.testing.assert_array_equal(png[..., ::-1], clevr_npz["image"][i])
        m3 = np.asarray(Image.open(clevr_dir / "png" / f"CLEVR_mask_{i}_3.png"))
        np.testing.assert_array_equal(m3, clevr_npz["mask"][i, 3, ..., 0])


def test_clevr_crop_resize_from_npz(clevr_dir, clevr_npz):
    ds = make_dataset(dict(CLEVR, path="clevr_with_masks_2.npz"), "test", clevr_dir)
    assert len(ds) == 2 and ds.info.resolution == (128, 128) and ds.info.max_objects == 11
    img, lab, b = _items(ds)
    assert img.shape == (2, 128, 128, 3) and lab.shape == (2, 128, 128)
    # independent reference: rows 29:221, cols 64:256, TF-style bilinear (no antialias)
    crop = torch.from_numpy(clevr_npz["image"][:, 29:221, 64:256]).permute(0, 3, 1, 2).float()
    ref = F.interpolate(crop, size=(128, 128), mode="bilinear", align_corners=False)
    assert (b["image"] * 255 - ref).abs().max() <= 0.5 + 1e-3
    full = masks_to_labels(clevr_npz["mask"])
    # nearest with half-pixel centres: output pixel j samples crop pixel floor((j + 0.5) * 1.5)
    src = np.floor((np.arange(128) + 0.5) * 1.5).astype(int)
    np.testing.assert_array_equal(lab, full[:, 29:221, 64:256][:, src][:, :, src])
    assert set(np.unique(lab)) <= set(np.unique(full))
    # the crop drops objects outside it: scene 0 has 7 objects, 5 inside the crop
    assert count_objects(full).tolist() == [7, 8]
    assert count_objects(lab)[0] == 5
    for r in (96, 64):
        small = make_dataset(dict(CLEVR, path="clevr_with_masks_2.npz", resolution=r), "test", clevr_dir)
        assert small[1]["image"].shape == (3, r, r) and small.info.resolution == (r, r)
    wide = make_dataset(dict(CLEVR, path="clevr_with_masks_2.npz", crop=False), "test", clevr_dir)
    np.testing.assert_array_equal(_items(wide)[0], clevr_npz["image"])
    aa = make_dataset(dict(CLEVR, path="clevr_with_masks_2.npz", antialias=True), "test", clevr_dir)
    assert not torch.equal(aa.batch([0])["image"], b["image"][:1])


def test_clevr_max_objects(clevr_dir):
    cfg = dict(CLEVR, path="clevr_with_masks_2.npz")
    assert len(make_dataset(dict(cfg, max_objects=8), "test", clevr_dir)) == 2
    only = make_dataset(dict(cfg, max_objects=7), "test", clevr_dir)
    assert len(only) == 1 and torch.equal(only[0]["image"], make_dataset(cfg, "test", clevr_dir)[0]["image"])
    with pytest.raises(UserError, match="at most 6 visible objects"):
        make_dataset(dict(cfg, max_objects=6), "test", clevr_dir)
    with pytest.raises(UserError, match="max_objects") as e:
        make_dataset(dict(cfg, max_objects="6"), "test", clevr_dir, spec_file="s.toml")
    assert e.value.diagnostics[0].keypath == ("data", "max_objects")


def test_clevr_tfrecord_equals_npz(clevr_dir, clevr_tfrecord):
    want = _items(make_dataset(dict(CLEVR, path="clevr_with_masks_2.npz"), "test", clevr_dir))
    cfg = {"dataset": "clevr", "path": clevr_tfrecord.name}  # alias
    ds = make_dataset(cfg, "train", clevr_tfrecord.parent)
    img, lab, b = _items(ds)
    np.testing.assert_array_equal(img, want[0])
    np.testing.assert_array_equal(lab, want[1])
    assert b["factors"]["visibility"].shape == (2, 11)
    kept = make_dataset(dict(cfg, max_objects=7), "train", clevr_tfrecord.parent)
    assert len(kept) == 1 and np.array_equal(_items(kept)[1], want[1][:1])
    assert len(make_dataset(cfg, "train", clevr_tfrecord.parent, size=1)) == 1


def test_emorl_clevr6(tmp_path, clevr_npz):
    """EMORL's CLEVR6 file: already cropped + resized (here 128 and 96), no crop applied again."""
    crop_img = resize_images(clevr_npz["image"][:, 29:221, 64:256], (128, 128))
    crop_lab = resize_labels(masks_to_labels(clevr_npz["mask"])[:, 29:221, 64:256], (128, 128))
    masks = labels_to_masks(crop_lab, 11)  # [2, 11, 128, 128, 1]
    path = tmp_path / "clevr6_with_masks_train.h5"
    write_emorl(path, "train", crop_img, masks)
    ds = make_dataset(dict(CLEVR, path=path.name), "train", tmp_path)
    img, lab, _ = _items(ds)
    assert ds.info.resolution == (128, 128)
    np.testing.assert_array_equal(img, crop_img)
    np.testing.assert_array_equal(lab, crop_lab)
    # object counts from the stored (already cropped) masks: 5 and 8 in this copy
    assert len(make_dataset(dict(CLEVR, path=path.name, max_objects=6), "train", tmp_path)) == 1
    small = make_dataset(dict(CLEVR, path=path.name, resolution=64, max_objects=8), "train", tmp_path)
    assert len(small) == 2 and small[0]["image"].shape == (3, 64, 64)
    np.testing.assert_array_equal(small.batch([1])["mask"].numpy()[0], resize_labels(crop_lab[1], (64, 64)))
    test = tmp_path / "clevr6_with_masks_and_factors_test.h5"
    write_emorl(test, "test", resize_images(crop_img, (96, 96)).astype(np.float32),
                labels_to_masks(resize_labels(crop_lab, (96, 96)), 11).astype(np.float32),
                {"visibility": np.ones((2, 11), np.float32)})
    t = make_dataset(dict(CLEVR, path=test.name), "test", tmp_path)
    assert t.info.resolution == (96, 96) and t[0]["image"].shape == (3, 96, 96)
    assert t.batch([0, 1])["factors"]["visibility"].shape == (2, 11)


def _scene(rng, k_in_box=2):
    """A 240x320 scene: objects 1, 2 fill the left / right half of the ClevrTex crop box
    (rows 24:216, cols 64:256), object 3 lies outside it."""
    lab = np.zeros((240, 320), np.uint8)
    lab[24:216, 64:160] = 1
    lab[24:216, 160:256] = 2
    lab[0:20, 0:40] = 3
    colors = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    return colors[lab], lab


def test_clevrtex_folder(tmp_path):
    root = tmp_path / "clevrtex_full"
    rng = np.random.default_rng(0)
    indices = [0, 1, 999, 1000, 1001, 2500, 3000, 3001, 4000, 4999]  # subfolders 0..4
    scenes = {}
    for i in indices:
        scenes[i] = _scene(rng)
        write_clevrtex_scene(root, "full", i, *scenes[i])
    assert (root / "2" / "CLEVRTEX_full_002500_flat.png").exists()
    splits = {s: ClevrTexFolder(root, s).indices.tolist() for s in ("test", "val", "train", "all")}
    assert splits == {"test": [0], "val": [1], "train": indices[2:], "all": indices}
    ds = make_dataset({"dataset": "clevrtex", "path": "clevrtex_full"}, "train", tmp_path)
    assert len(ds) == 8 and ds.info.resolution == (128, 128) and ds.info.max_objects == 11
    img, lab, b = _items(ds)
    assert b["factors"]["index"].tolist() == indices[2:]
    # crop box 24:216 x 64:256 -> 128: left half object 1, right half object 2, object 3 gone
    assert (lab[:, :, :64] == 1).all() and (lab[:, :, 64:] == 2).all()
    for j, i in enumerate(indices[2:]):
        colors = scenes[i][0]
        assert (img[j, :, :63] == colors[24, 64]).all() and (img[j, :, 65:] == colors[24, 255]).all()
    # explicit variant, split override, size, max_objects (2 objects visible in every scene)
    cfg = {"dataset": "clevrtex", "variant": "full", "path": str(root), "split": "test"}
    assert make_dataset(cfg, "train", tmp_path).batch([0])["factors"]["index"].tolist() == [0]
    assert len(make_dataset(dict(cfg, split="all"), "train", tmp_path, size=3)) == 3
    assert len(make_dataset(dict(cfg, max_objects=3), "test", tmp_path)) == 1
    with pytest.raises(UserError, match="at most 2 visible"):
        make_dataset(dict(cfg, max_objects=2), "test", tmp_path)
    assert make_dataset(dict(cfg, resolution=64), "test", tmp_path)[0]["mask"].shape == (64, 64)


def test_clevrtex_errors(tmp_path):
    root = tmp_path / "clevrtex_camo"
    rng = np.random.default_rng(1)
    for i in range(3):
        write_clevrtex_scene(root, "camo", i, *_scene(rng))
    with pytest.raises(UserError, match=r"no scene images CLEVRTEX_full_<6-digit index>\.png"):
        make_dataset({"dataset": "clevrtex", "variant": "full", "path": root.name}, "train", tmp_path)
    with pytest.raises(UserError, match="unknown variant 'ful'") as e:
        make_dataset({"dataset": "clevrtex", "variant": "ful", "path": root.name}, "train", tmp_path)
    assert e.value.diagnostics[0].hint == "did you mean 'full'?"
    with pytest.raises(UserError, match="unknown ClevrTex split 'tran'"):
        make_dataset({"dataset": "clevrtex", "path": root.name, "split": "tran"}, "train", tmp_path)
    with pytest.raises(UserError, match="clevrtex_<variant> folder"):
        make_dataset({"dataset": "clevrtex", "path": "nowhere"}, "train", tmp_path)
    with pytest.raises(UserError, match="no built-in generator"):
        make_dataset({"dataset": "clevrtex"}, "train", tmp_path)
    with pytest.raises(UserError, match="is a directory"):
        make_dataset({"dataset": "clevr_with_masks", "path": root.name}, "train", tmp_path)
    write_clevrtex_scene(root, "pbg", 7, *_scene(rng))
    with pytest.raises(UserError, match="mixes the variants camo, pbg"):
        make_dataset({"dataset": "clevrtex", "path": root.name}, "train", tmp_path)
    assert len(make_dataset({"dataset": "clevrtex", "variant": "pbg", "path": root.name, "split": "all"},
                            "train", tmp_path)) == 1
    (root / "0" / "CLEVRTEX_camo_000002_flat.png").unlink()
    ds = make_dataset({"dataset": "clevrtex", "variant": "camo", "path": root.name}, "train", tmp_path)
    with pytest.raises(UserError, match="mask CLEVRTEX_camo_000002_flat.png is missing"):
        ds[len(ds) - 1]


def test_clevrtex_outd_has_no_split(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(3):
        write_clevrtex_scene(tmp_path / "clevrtex_outd", "outd", i, *_scene(rng))
    for split in ("train", "val", "test"):
        assert len(ClevrTexFolder(tmp_path / "clevrtex_outd", split)) == 3
