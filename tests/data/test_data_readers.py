"""Readers of the published formats, checked against the real samples in ../shared/data."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from ocdsl.data.emorl import EmorlFile, write_emorl
from ocdsl.data.masks import labels_to_masks, masks_to_labels
from ocdsl.data.npz import read_npz, write_npz
from ocdsl.data.registry import DATASETS, get_info
from ocdsl.data.tfrecord_reader import iter_tfrecord, read_tfrecord, write_tfrecord
from ocdsl.errors import UserError

TFR = "tetrominoes_emorl_test10_dm_layout.tfrecords"
H5 = "tetrominoes_emorl_test10_emorl_layout.h5"
NPZ = "tetrominoes_emorl_test10.npz"


def test_masks_to_labels():
    lab = np.array([[[0, 1], [2, 0]]], dtype=np.uint8)  # [1, 2, 2]
    masks = labels_to_masks(lab, 3)
    assert masks.shape == (1, 3, 2, 2, 1) and set(np.unique(masks)) == {0, 255}
    np.testing.assert_array_equal(masks_to_labels(masks), lab)
    np.testing.assert_array_equal(masks_to_labels(masks[..., 0].astype(np.float32), slot_axis=-3), lab)
    # no slot on -> background; soft masks -> strongest slot
    soft = np.zeros((3, 1, 2), np.float32)
    soft[2, 0, 1] = 0.7
    soft[1, 0, 1] = 0.3
    np.testing.assert_array_equal(masks_to_labels(soft, slot_axis=-3), [[0, 2]])


def test_tfrecord_equals_npz(tetro_dir, tetro_npz):
    recs = list(iter_tfrecord(tetro_dir / TFR, get_info("tetrominoes")))
    assert len(recs) == 10
    np.testing.assert_array_equal(np.stack([r["image"] for r in recs]), tetro_npz["image"])
    np.testing.assert_array_equal(np.stack([r["mask"] for r in recs]), tetro_npz["mask"])
    np.testing.assert_array_equal(np.stack([r["visibility"] for r in recs]), tetro_npz["visibility"])
    arr = read_tfrecord(tetro_dir / TFR, get_info("tetrominoes"), limit=4)
    assert arr["image"].shape == (4, 35, 35, 3) and arr["label"].shape == (4, 35, 35)
    np.testing.assert_array_equal(arr["label"], masks_to_labels(tetro_npz["mask"][:4]))


def test_tfrecord_multi_dsprites_layout_and_zero_bytes(tmp_path):
    """Masks stored [H,W,K,1] come back [K,H,W,1]; all-zero bytes keep their length."""
    info = get_info("multi_dsprites")  # colored_on_grayscale, K = 6
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 6, (64, 64))
    rec = {
        "image": np.zeros((64, 64, 3), np.uint8),  # b"\x00" items only
        "mask": labels_to_masks(lab, 6),
        "x": rng.random(6, dtype=np.float32),
        "color": rng.random((6, 3), dtype=np.float32),
    }
    path = tmp_path / "md.tfrecords"
    write_tfrecord(path, [rec, rec], info)
    out = list(iter_tfrecord(path, info))
    assert len(out) == 2
    for key in rec:
        np.testing.assert_array_equal(out[0][key], rec[key])
    assert out[0]["mask"].shape == (6, 64, 64, 1) and out[0]["color"].shape == (6, 3)


def test_tfrecord_corrupt_or_wrong(tmp_path, tetro_dir):
    info = get_info("tetrominoes")
    data = gzip.decompress((tetro_dir / TFR).read_bytes())
    cut = tmp_path / "cut.tfrecords"
    cut.write_bytes(gzip.compress(data[: len(data) // 2 + 7]))  # mid-record
    with pytest.raises(UserError, match="cut.tfrecords"):
        read_tfrecord(cut, info)
    junk = tmp_path / "junk.tfrecords"
    junk.write_bytes(b"\x1f\x8bnot really gzip" * 10)
    with pytest.raises(UserError, match="junk.tfrecords"):
        read_tfrecord(junk, info)
    with pytest.raises(UserError, match="expected 12288"):  # wrong dataset named
        read_tfrecord(tetro_dir / TFR, get_info("multi_dsprites"))


@pytest.mark.parametrize("dtype", [None, np.float32])
def test_emorl_uint8_and_float32(tmp_path, tetro_dir, tetro_npz, dtype):
    if dtype is None:
        path = tetro_dir / H5
    else:  # EMORL's stored dtype is undocumented: test a float32 copy too
        path = tmp_path / "f32.h5"
        write_emorl(path, "test", tetro_npz["image"], tetro_npz["mask"], dtype=dtype)
    f = EmorlFile(path, "test")
    assert len(f) == 10 and f.image_shape == (35, 35, 3) and f.num_slots == 4
    idx = [7, 0, 3, 3]
    got = f.get(idx)
    np.testing.assert_array_equal(got["image"], tetro_npz["image"][idx].astype(np.float32))
    np.testing.assert_array_equal(got["label"], masks_to_labels(tetro_npz["mask"])[idx])


def test_emorl_errors(tmp_path, tetro_dir):
    with pytest.raises(UserError, match="no group 'tset'.*\n.*did you mean 'test'"):
        EmorlFile(tetro_dir / H5, "tset")
    with pytest.raises(UserError, match="not a readable HDF5"):
        EmorlFile(tetro_dir / NPZ, "test")


def test_npz(tmp_path, tetro_dir, tetro_npz):
    arr = read_npz(tetro_dir / NPZ)
    np.testing.assert_array_equal(arr["image"], tetro_npz["image"])
    np.testing.assert_array_equal(arr["label"], masks_to_labels(tetro_npz["mask"]))
    assert arr["visibility"].shape == (10, 4)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(UserError, match="bad.npz"):
        read_npz(bad)


def test_npz_label_map_roundtrip(tmp_path):
    from ocdsl.data.tetrominoes import generate

    d = generate(4, seed=2)
    write_npz(tmp_path / "g.npz", **d)
    arr = read_npz(tmp_path / "g.npz")
    np.testing.assert_array_equal(arr["label"], d["mask"])
    np.testing.assert_array_equal(arr["shape"], d["shape"])


def test_convert_tfrecord_to_hdf5(tmp_path, tetro_dir, tetro_npz):
    from ocdsl.data.convert import tfrecord_to_hdf5

    n = tfrecord_to_hdf5(tetro_dir / TFR, tmp_path / "c.h5", "tetrominoes", split="test", chunk=3)
    assert n == 10
    got = EmorlFile(tmp_path / "c.h5", "test").get(range(10))
    np.testing.assert_array_equal(got["image"], tetro_npz["image"].astype(np.float32))
    np.testing.assert_array_equal(got["label"], masks_to_labels(tetro_npz["mask"]))
    assert got["factors"]["visibility"].shape == (10, 4)


def test_registry_consistent():
    import importlib

    from ocdsl.data.registry import FAMILIES

    for name, info in DATASETS.items():
        assert info.name == name
        if info.generator:
            assert hasattr(importlib.import_module(f"ocdsl.data.{info.generator}"), "generate_at")
        if info.reader != "tfrecord":
            continue
        assert info.tf_shapes["image"] == (info.height, info.width, info.channels)
        k_axis = 0 if info.mask_layout == "KHW1" else 2
        assert info.tf_shapes["mask"][k_axis] == info.max_objects
    for family, members in FAMILIES.items():
        for variant, name in members.items():
            assert get_info(family, variant).name == name
            assert get_info(family, variant).variant == variant
