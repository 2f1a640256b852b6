"""[data] views + [data.augment]: stacked views, masks that follow their image, own seeds."""

from __future__ import annotations

import pytest
import torch

from ocdsl.data import make_dataset
from ocdsl.errors import UserError

BASE = {"dataset": "multi_dsprites", "seed": 3}


def test_views_are_stacked_along_the_batch_and_masks_follow_the_image():
    plain = make_dataset(BASE, "train", ".")
    ds = make_dataset({**BASE, "views": 2, "augment": {"flip": 1.0}}, "train", ".")
    b = ds.batch([0, 1, 2])
    ref = plain.batch([0, 1, 2])
    assert b["image"].shape == (6, 3, 64, 64) and b["mask"].shape == (6, 64, 64)
    flipped = ref["image"].flip(-1)
    # view 1 of every image first, then view 2; a flip of probability 1 flips image and mask
    torch.testing.assert_close(b["image"][:3], flipped)
    torch.testing.assert_close(b["image"][3:], flipped)
    assert torch.equal(b["mask"][:3], ref["mask"].flip(-1)) and b["mask"].dtype == torch.int64
    assert len(ds.__getitems__([0, 1, 2])) == 6 and ds[0]["image"].shape == (3, 64, 64)
    assert b["factors"]["shape"].shape[0] == 6


def test_crops_are_seeded_per_batch_and_leave_the_global_generator_alone():
    cfg = {**BASE, "views": 2, "augment": {"crop_scale": [0.3, 0.5], "crop_ratio": [0.75, 1.3333]}}
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = make_dataset(cfg, "train", ".").batch([5, 6])
    assert torch.equal(torch.get_rng_state(), before)          # training noise untouched
    again = make_dataset(cfg, "train", ".").batch([5, 6])
    other = make_dataset({**cfg, "seed": 4}, "train", ".").batch([5, 6])
    assert torch.equal(a["image"], again["image"])             # a resume sees the same views
    assert not torch.equal(a["image"][:2], a["image"][2:])      # the two views differ
    assert not torch.equal(a["mask"], other["mask"])            # another stream seed, other crops
    # a crop of the image: mask labels stay labels of the image (nearest), no new values
    assert set(a["mask"].unique().tolist()) <= set(range(6))


def test_evaluation_splits_get_only_the_normalisation():
    aug = {"flip": 1.0, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    test = make_dataset({**BASE, "views": 2, "augment": aug}, "test", ".", size=4)
    ref = make_dataset(BASE, "test", ".", size=4).batch([0, 1])
    b = test.batch([0, 1])
    assert b["image"].shape == (2, 3, 64, 64)                   # one view, not flipped
    torch.testing.assert_close(b["image"], (ref["image"] - 0.5) / 0.25)
    assert torch.equal(b["mask"], ref["mask"])
    no_norm = make_dataset({**BASE, "views": 2, "augment": {"flip": 1.0}}, "test", ".", size=4)
    assert torch.equal(no_norm.batch([0])["image"], ref["image"][:1])


def test_normalisation_of_the_wrong_length_is_a_located_error():
    with pytest.raises(UserError) as ei:
        make_dataset({**BASE, "views": 2, "augment": {"mean": [0.5], "std": [0.2]}}, "train", ".",
                     spec_file="s.toml")
    text = ei.value.format()
    assert "data.augment.mean" in text and "3 channels" in text and "s.toml" in text
