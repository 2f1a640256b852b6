"""make_dataset: the data contract of docs/internals.md, generators and files, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ocdsl.data import SPLIT_START, TRAIN_LENGTH, make_dataset
from ocdsl.data.tetrominoes import generate
from ocdsl.errors import UserError

FILES = ["tetrominoes_emorl_test10_dm_layout.tfrecords",
         "tetrominoes_emorl_test10_emorl_layout.h5",
         "tetrominoes_emorl_test10.npz"]


def _check_item(item, c=3, h=35, w=35):
    assert item["image"].dtype == torch.float32 and item["image"].shape == (c, h, w)
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["mask"].dtype == torch.int64 and item["mask"].shape == (h, w)


def test_generated_train_stream(tmp_path):
    ds = make_dataset({"dataset": "tetrominoes", "seed": 5}, "train", tmp_path)
    assert len(ds) == TRAIN_LENGTH
    item = ds[7]
    _check_item(item)
    ref = generate(8, seed=5)
    np.testing.assert_array_equal(item["mask"].numpy(), ref["mask"][7])
    np.testing.assert_array_equal((item["image"] * 255).round().byte().permute(1, 2, 0).numpy(),
                                  ref["image"][7])
    assert item["factors"]["shape"].tolist() == ref["shape"][7].tolist()
    # batched paths agree with single items; DataLoader uses __getitems__
    b = ds.batch([7, 3])
    assert b["image"].shape == (2, 3, 35, 35) and b["factors"]["x"].shape == (2, 3)
    assert torch.equal(b["image"][0], item["image"])
    dl = torch.utils.data.DataLoader(ds, batch_size=16)
    first = next(iter(dl))
    assert first["image"].shape == (16, 3, 35, 35) and first["mask"].shape == (16, 35, 35)
    assert torch.equal(first["mask"], ds.batch(range(16))["mask"])


def test_generated_test_split_disjoint_and_sized(tmp_path):
    cfg = {"dataset": "tetrominoes"}
    te = make_dataset(cfg, "test", tmp_path, size=20)
    assert len(te) == 20
    again = make_dataset(cfg, "test", tmp_path, size=20)
    assert torch.equal(te.batch(range(20))["image"], again.batch(range(20))["image"])
    ref = generate(20, seed=0, start=SPLIT_START["test"])
    np.testing.assert_array_equal(te.batch(range(20))["mask"].numpy(), ref["mask"])
    tr = make_dataset(cfg, "train", tmp_path)
    assert not torch.equal(tr.batch(range(20))["image"], te.batch(range(20))["image"])
    with pytest.raises(IndexError):
        te[20]
    assert len(make_dataset(cfg, "val", tmp_path)) == 1000  # info.eval_size


def test_all_formats_give_the_same_items(shared_data, tetro_npz):
    base = shared_data / "tetrominoes"
    batches = []
    for name in FILES:
        ds = make_dataset({"dataset": "tetrominoes", "path": name}, "test", base)
        assert len(ds) == 10
        _check_item(ds[0])
        batches.append(ds.batch(range(10)))
    want = torch.from_numpy(tetro_npz["image"]).permute(0, 3, 1, 2).float() / 255
    for b in batches:
        assert torch.equal(b["image"], want)
        assert torch.equal(b["mask"], batches[0]["mask"])
    assert set(batches[0]["mask"].unique().tolist()) == {0, 1, 2, 3}
    # size caps the number of images read
    assert len(make_dataset({"dataset": "tetrominoes", "path": FILES[0]}, "test", base, size=3)) == 3


def test_missing_path(tmp_path):
    cfg = {"dataset": "tetrominoes", "path": "data/tetrominoes_train.tfrecords"}
    with pytest.raises(UserError) as e:
        make_dataset(cfg, "train", tmp_path, spec_file="spec.toml")
    (d,) = e.value.diagnostics
    assert "tetrominoes_train.tfrecords" in d.message and "expected" in d.message
    assert d.file == "spec.toml" and d.keypath == ("data", "path")
    assert d.hint == "point `data.path` at your copy of the dataset"
    opt = dict(cfg, optional=True, name="real")
    assert make_dataset(opt, "test", tmp_path) is None


def test_unknown_dataset_and_bad_files(tmp_path):
    with pytest.raises(UserError, match="unknown dataset 'tetromino'") as e:
        make_dataset({"dataset": "tetromino"}, "train", tmp_path)
    assert e.value.diagnostics[0].hint == "did you mean 'tetrominoes'?"
    with pytest.raises(UserError, match="no built-in generator"):
        make_dataset({"dataset": "clevr_with_masks"}, "train", tmp_path)
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(UserError, match="extension"):
        make_dataset({"dataset": "tetrominoes", "path": "x.png"}, "train", tmp_path)
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    with pytest.raises(UserError, match=str(tmp_path / "x.h5")):
        make_dataset({"dataset": "tetrominoes", "path": "x.h5"}, "train", tmp_path)


def test_hdf5_split_override(shared_data):
    base = shared_data / "tetrominoes"
    cfg = {"dataset": "tetrominoes", "path": FILES[1]}
    with pytest.raises(UserError, match="no group 'train'"):
        make_dataset(cfg, "train", base)
    assert len(make_dataset(dict(cfg, split="test"), "train", base)) == 10
