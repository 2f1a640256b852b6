"""The Tetrominoes generator: contract, determinism, and pixel faithfulness to real images."""

from __future__ import annotations

import numpy as np
import pytest

from ocdsl.data import tetrominoes as T
from ocdsl.data.masks import masks_to_labels



def _key(grid: np.ndarray) -> bytes:
    return grid.astype(bool).tobytes() + bytes(grid.shape)


def piece_facts(image: np.ndarray, piece: np.ndarray) -> tuple[int, int, int, int]:
    """Check one piece (image uint8 [35,35,3], piece bool [35,35]); return (shape, color, y, x).

    Asserts: area 100 px; bbox made of 5x5 blocks, each fully on or off; every block equals
    BEVEL in the active channels and 0 in the others; the block grid is one of the 19.
    """
    assert piece.sum() == 100
    ys, xs = np.nonzero(piece)
    y0, x0, y1, x1 = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
    assert (y1 - y0) % 5 == 0 and (x1 - x0) % 5 == 0
    crop_m = piece[y0:y1, x0:x1]
    crop_i = image[y0:y1, x0:x1]
    h, w = (y1 - y0) // 5, (x1 - x0) // 5
    blocks_m = crop_m.reshape(h, 5, w, 5).transpose(0, 2, 1, 3)  # [h, w, 5, 5]
    blocks_i = crop_i.reshape(h, 5, w, 5, 3).transpose(0, 2, 1, 3, 4)  # [h, w, 5, 5, 3]
    grid = blocks_m.all(axis=(2, 3))
    assert (blocks_m.any(axis=(2, 3)) == grid).all(), "a block is partly covered"
    assert grid.sum() == 4
    active = image[piece].max(axis=0) > 0  # [3]
    color = [tuple(c) for c in T.COLORS.astype(bool)].index(tuple(active))
    for r, c in zip(*np.nonzero(grid)):
        for ch in range(3):
            want = T.BEVEL if active[ch] else np.zeros_like(T.BEVEL)
            np.testing.assert_array_equal(blocks_i[r, c, :, :, ch], want)
    keys = [_key(g) for g in T.SHAPE_GRIDS]
    assert _key(grid) in keys, f"unknown orientation {grid.astype(int).tolist()}"
    return keys.index(_key(grid)), color, int(y0), int(x0)


def test_orientation_table():
    assert len(T.SHAPE_GRIDS) == 19 and len(set(map(_key, T.SHAPE_GRIDS))) == 19
    assert all(g.sum() == 4 for g in T.SHAPE_GRIDS)
    # Closed under rotation (fixed tetrominoes: no reflections needed), 7 free pieces.
    keys = set(map(_key, T.SHAPE_GRIDS))
    assert all(_key(np.rot90(g)) in keys for g in T.SHAPE_GRIDS)
    fams = [n.rstrip("0123") for n in T.SHAPE_NAMES]
    assert {f: fams.count(f) for f in set(fams)} == dict(I=2, O=1, T=4, S=2, Z=2, J=4, L=4)


def test_contract_and_determinism():
    d = T.generate(12, seed=3)
    assert d["image"].shape == (12, 35, 35, 3) and d["image"].dtype == np.uint8
    assert d["mask"].shape == (12, 35, 35) and d["mask"].dtype == np.uint8
    for k in ("x", "y", "shape", "color"):
        assert d[k].shape == (12, 3) and np.issubdtype(d[k].dtype, np.integer)
    # image i is a pure function of (seed, start + i): any chunking gives the same stream
    again = T.generate(5, seed=3, start=4)
    for k in d:
        np.testing.assert_array_equal(again[k], d[k][4:9])
    other = T.generate(12, seed=4)
    assert not np.array_equal(other["image"], d["image"])
    assert T.generate(0)["image"].shape == (0, 35, 35, 3)


def test_generated_pieces_are_faithful():
    d = T.generate(200, seed=1)
    for i in range(len(d["image"])):
        img, lab = d["image"][i], d["mask"][i]
        assert set(np.unique(lab)) == {0, 1, 2, 3}
        assert (img[lab == 0] == 0).all(), "background must be pure black"
        for p in range(3):
            shape, color, y, x = piece_facts(img, lab == p + 1)
            assert (shape, color, y, x) == (
                d["shape"][i, p], d["color"][i, p], d["y"][i, p], d["x"][i, p])


def test_distribution():
    d = T.generate(3000, seed=0)
    assert set(np.unique(d["shape"])) == set(range(19))
    assert set(np.unique(d["color"])) == set(range(6))
    h = np.array([g.shape[0] * 5 for g in T.SHAPE_GRIDS])[d["shape"]]
    w = np.array([g.shape[1] * 5 for g in T.SHAPE_GRIDS])[d["shape"]]
    # positions reach every border (as in the real images) and stay inside
    assert d["x"].min() == 0 and d["y"].min() == 0
    assert (d["x"] + w).max() == 35 and (d["y"] + h).max() == 35
    assert set(np.unique(d["x"] % 5)) == set(range(5))  # not on a 5-px grid
    # shapes uniform: each of 19 within +-25% of 9000/19
    counts = np.bincount(d["shape"].ravel(), minlength=19)
    assert (abs(counts - 9000 / 19) < 0.25 * 9000 / 19).all()


def test_real_images_match_generator(tetro_npz):
    img, masks = tetro_npz["image"], tetro_npz["mask"]
    assert img.shape == (10, 35, 35, 3) and masks.shape == (10, 4, 35, 35, 1)
    labels = masks_to_labels(masks)
    gen = T.generate(50, seed=0)
    for c in range(3):  # same set of pixel values per channel
        assert set(np.unique(img[..., c])) == set(np.unique(gen["image"][..., c]))
    seen = set()
    for i in range(10):
        assert (img[i][labels[i] == 0] == 0).all()
        assert set(np.unique(labels[i])) == {0, 1, 2, 3}
        for k in (1, 2, 3):
            shape, _, _, _ = piece_facts(img[i], labels[i] == k)  # area, bevel, orientation
            seen.add(shape)
    assert len(seen) >= 14


@pytest.mark.timeout(120)   # a hang guard (speed belongs to benchmarks, not tests)
def test_a_large_batch_is_generated_in_one_call():
    out = T.generate(2000, seed=0)
    assert out["image"].shape == (2000, 35, 35, 3) and out["mask"].shape == (2000, 35, 35)
    assert (out["mask"].reshape(2000, -1).max(axis=1) == 3).all()   # every image has its 3 pieces
