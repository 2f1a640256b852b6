"""Multi-dSprites generator: contract, determinism, painter-order occlusion, geometry,
variants through make_dataset (docs/formats.md, Multi-dSprites)."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from ocdsl.data import make_dataset
from ocdsl.data import multi_dsprites as M
from ocdsl.data.masks import labels_to_masks
from ocdsl.data.registry import get_info
from ocdsl.data.tfrecord_reader import write_tfrecord
from ocdsl.errors import UserError

FACTORS = ("x", "y", "shape", "scale", "orientation", "visibility")


@pytest.mark.parametrize("variant", list(M.VARIANTS))
def test_contract_and_determinism(variant):
    lo, hi, c, k = M.VARIANTS[variant]
    d = M.generate(64, seed=3, start=10, variant=variant)
    assert d["image"].shape == (64, 64, 64, c) and d["image"].dtype == np.uint8
    assert d["mask"].shape == (64, 64, 64) and d["mask"].dtype == np.uint8
    for f in FACTORS:
        assert d[f].shape == (64, k) and d[f].dtype == np.float32
    assert d["color"].shape == (64, k, c)
    present = d["shape"][:, 1:] > 0
    n = present.sum(1)
    assert n.min() == lo and n.max() == hi  # 64 images cover the range
    assert (present == (np.arange(hi) < n[:, None])).all()  # sprites fill slots 1..n
    assert (d["visibility"][:, 0] == 1).all() and (d["visibility"][:, 1:][~present] == 0).all()
    assert (d["mask"].reshape(64, -1).max(1) <= n).all()
    # factors on the dSprites grid
    assert np.isin(d["scale"][:, 1:][present], M.SCALES.astype(np.float32)).all()
    assert np.isin(d["x"][:, 1:][present], M.POSITIONS.astype(np.float32)).all()
    assert np.isin(d["shape"][:, 1:][present], [1, 2, 3]).all()
    # pure function of (seed, index): any cut of the stream, any order
    again = M.generate_at([15, 10, 15], seed=3, variant=variant)
    for key in d:
        np.testing.assert_array_equal(again[key][0], d[key][5])
        np.testing.assert_array_equal(again[key][1], d[key][0])
        np.testing.assert_array_equal(again[key][2], d[key][5])
    assert not np.array_equal(M.generate(4, seed=4, variant=variant)["image"], d["image"][:4])
    empty = M.generate(0, variant=variant)
    assert empty["image"].shape == (0, 64, 64, c) and empty["color"].shape == (0, k, c)


@pytest.mark.parametrize("variant", list(M.VARIANTS))
def test_painter_order_and_colours(variant):
    d = M.generate(32, seed=1, variant=variant)
    f = M._layout(1, np.arange(32), variant)
    inside, row, col = M._inside(f, slice(0, 32))
    pal = np.rint(d["color"] * 255).astype(np.uint8)
    for i in range(32):
        lab, img = d["mask"][i], d["image"][i]
        n = int((d["shape"][i] > 0).sum())
        for k in range(d["shape"].shape[1]):
            # every pixel has its front sprite's (or the background's) colour
            assert (img[lab == k] == pal[i, k]).all()
            assert d["visibility"][i, k] == float((lab == k).any())
        for k in range(1, n + 1):
            full = np.zeros((64, 64), bool)
            full[row[i, k - 1][inside[i, k - 1]], col[i, k - 1][inside[i, k - 1]]] = True
            assert full.any()
            assert not (lab == k)[~full].any()  # a label lies within its sprite's shape
            in_front = np.isin(lab, np.arange(k + 1, n + 1))
            np.testing.assert_array_equal(full & ~in_front, lab == k)  # hidden only by later sprites
    if variant == "binarized":
        assert set(np.unique(d["image"])) == {0, 255} and (pal[:, 0] == 0).all()
    elif variant == "colored_on_grayscale":
        bg = pal[:, 0]
        assert (bg == bg[:, :1]).all() and bg.std() > 20  # random gray levels
        fg = pal[:, 1:][d["shape"][:, 1:] > 0].astype(int)
        assert (fg.max(-1) >= 127).all() and ((fg.max(-1) - fg.min(-1)) >= 0.5 * fg.max(-1) - 1).all()
    else:
        assert pal[:, 0].std(axis=0).min() > 20  # random RGB backgrounds


def _single(shape, scale, orient, px=15, py=15):
    f = {"shape": np.array([[shape]]), "scale": np.array([[scale]]), "orient": np.array([[orient]]),
         "px": np.array([[px]]), "py": np.array([[py]]), "present": np.array([[True]])}
    inside, row, col = M._inside(f, slice(0, 1))
    img = np.zeros((64, 64), bool)
    img[row[0, 0][inside[0, 0]], col[0, 0][inside[0, 0]]] = True
    return img


def test_shape_geometry():
    s = 2 * M.UNIT
    sq = _single(0, 5, 0)
    assert sq.sum() == s * s  # 16 x 16 px square at scale 1
    assert abs(_single(0, 0, 0).sum() - (s / 2) ** 2) <= s  # scale 0.5
    assert abs(_single(0, 5, 5).sum() - s * s) < 0.06 * s * s  # rotated: same area
    ell = _single(1, 5, 0)
    assert abs(ell.sum() - np.pi * 1.25 * 0.65 * M.UNIT ** 2) < 0.06 * ell.sum()
    rows, cols = np.nonzero(ell)
    assert np.ptp(cols) > np.ptp(rows)  # long axis horizontal at orientation 0
    quarter = _single(1, 5, 10)  # orientation index 10 = 10/39 * 2 pi, about 92 degrees
    rows, cols = np.nonzero(quarter)
    assert np.ptp(rows) > np.ptp(cols)
    heart = _single(2, 5, 0)
    assert abs(heart.sum() - 3.657 / (1.138 * 1.118) * M.UNIT ** 2) < 0.06 * heart.sum()
    rows, cols = np.nonzero(heart)
    top, bottom = heart[rows.min() + 1], heart[rows.max() - 1]
    assert top.sum() > bottom.sum()  # lobes up, tip down
    left = _single(2, 5, 0, px=0)  # centre x = 12 px exactly: the pixel grid is symmetric about it
    assert not left[:, 24:].any() and (left[:, :24] == left[:, 23::-1]).all()  # left-right symmetric
    # corners of the position grid keep the largest sprite inside the image
    for orient in (5, 15):  # 45 and 135 degrees: the square's corners point outwards
        lo, hi = _single(0, 5, orient, 0, 0), _single(0, 5, orient, 31, 31)
        assert lo.any() and not (lo[0].any() or lo[:, 0].any())
        assert hi.any() and not (hi[63].any() or hi[:, 63].any())


@pytest.mark.timeout(120)   # a hang guard (speed belongs to benchmarks, not tests)
def test_a_large_batch_is_generated_in_one_call():
    out = M.generate(1000, seed=0)
    assert out["image"].shape[0] == 1000 and out["mask"].shape[0] == 1000


def test_make_dataset_variants(tmp_path):
    ds = make_dataset({"dataset": "multi_dsprites", "variant": "colored_on_grayscale"}, "train", tmp_path)
    assert ds.info.name == "multi_dsprites_colored_on_grayscale" and "variant=colored_on_grayscale" in ds.origin
    b = ds.batch([0, 5])
    ref = M.generate(6, seed=0)
    np.testing.assert_array_equal(b["mask"].numpy(), ref["mask"][[0, 5]])
    assert b["image"].shape == (2, 3, 64, 64) and b["factors"]["color"].shape == (2, 6, 3)
    assert torch.equal(make_dataset({"dataset": "multi_dsprites"}, "train", tmp_path).batch([0, 5])["image"],
                       b["image"])  # the family's default variant
    binar = make_dataset({"dataset": "multi_dsprites", "variant": "binarized", "seed": 2}, "test", tmp_path, 4)
    assert binar.info.channels == 1 and binar[0]["image"].shape == (1, 64, 64) and len(binar) == 4
    same = make_dataset({"dataset": "multi_dsprites_binarized", "variant": "binarized", "seed": 2}, "test",
                        tmp_path, 4)
    assert torch.equal(same[3]["mask"], binar[3]["mask"])
    small = make_dataset({"dataset": "multi_dsprites", "variant": "colored_on_colored", "resolution": 32},
                         "val", tmp_path, 3)
    assert small[0]["image"].shape == (3, 32, 32) and small[0]["mask"].shape == (32, 32)
    assert small.info.resolution == (32, 32) and small.info.max_objects == 5


def test_variant_errors(tmp_path):
    with pytest.raises(UserError, match="unknown variant 'colored_on_grey'") as e:
        make_dataset({"dataset": "multi_dsprites", "variant": "colored_on_grey"}, "train", tmp_path,
                     spec_file="s.toml")
    (d,) = e.value.diagnostics
    assert d.keypath == ("data", "variant") and d.hint == "did you mean 'colored_on_grayscale'?"
    with pytest.raises(UserError, match="disagree") as e:
        make_dataset({"dataset": "multi_dsprites_binarized", "variant": "colored_on_colored"}, "train", tmp_path)
    with pytest.raises(UserError, match="has no variants") as e:
        make_dataset({"dataset": "tetrominoes", "variant": "binarized"}, "train", tmp_path)
    assert e.value.diagnostics[0].keypath == ("data", "variant")
    with pytest.raises(UserError, match="unknown dataset 'multi_dsprite'") as e:
        make_dataset({"dataset": "multi_dsprite"}, "train", tmp_path)
    assert e.value.diagnostics[0].hint == "did you mean 'multi_dsprites'?"
    with pytest.raises(UserError, match="max_objects") as e:
        make_dataset({"dataset": "multi_dsprites", "max_objects": 3}, "train", tmp_path)
    with pytest.raises(UserError, match="resolution"):
        make_dataset({"dataset": "multi_dsprites", "resolution": [64]}, "train", tmp_path)
    assert get_info("objects_room", "six_objects").name == "objects_room_six_objects"


def test_generated_images_through_tfrecord(tmp_path):
    """Generator output written in DeepMind's layout ([64,64,K,1] masks) reads back equal."""
    info = get_info("multi_dsprites", "colored_on_colored")
    d = M.generate(3, seed=9, variant="colored_on_colored")
    recs = [{"image": d["image"][i], "mask": labels_to_masks(d["mask"][i], 5),
             **{f: d[f][i] for f in (*FACTORS, "color")}} for i in range(3)]
    write_tfrecord(tmp_path / "multi_dsprites_colored_on_colored.tfrecords", recs, info)
    ds = make_dataset({"dataset": "multi_dsprites", "variant": "colored_on_colored",
                       "path": "multi_dsprites_colored_on_colored.tfrecords"}, "test", tmp_path)
    b = ds.batch(range(3))
    np.testing.assert_array_equal(b["mask"].numpy(), d["mask"])
    np.testing.assert_array_equal((b["image"] * 255).round().byte().permute(0, 2, 3, 1).numpy(), d["image"])
    np.testing.assert_array_equal(b["factors"]["color"].numpy(), d["color"])
