"""Random streams of a run (ocdsl/train/rng.py): one seed per purpose, derived from
train.seed; the data stream follows train.seed unless data.seed is set; evaluation data
and noise never depend on train.seed."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest
import torch

from ocdsl.train import rng, train
from ocdsl.train.checkpoint import load_checkpoint

from tests.train.conftest import K, TinyDataset, TinyModel


def test_derive_seed_is_the_documented_function_and_separates_purposes():
    for seed in (0, 1, 12345):
        for purpose in rng.PURPOSES:
            want = np.random.SeedSequence([seed, zlib.crc32(purpose.encode())]).generate_state(1, np.uint32)[0]
            assert rng.derive_seed(seed, purpose) == int(want)
            assert 0 <= rng.derive_seed(seed, purpose) < 2**32
    seeds = {(s, p): rng.derive_seed(s, p) for s in range(4) for p in rng.PURPOSES}
    assert len(set(seeds.values())) == len(seeds)  # no two streams share a seed
    assert rng.derive_seed(0, rng.NOISE) != 0 and rng.derive_seed(0, rng.INIT) != 0


def test_preserved_rng_seeds_for_a_purpose_and_restores():
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    before = (torch.rand(3), np.random.rand(), random.random())
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    with rng.preserved_rng(3, rng.EVAL):
        inside = torch.rand(3)
    after = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(before[0], after[0]) and before[1:] == after[1:]  # the outer stream is untouched
    torch.manual_seed(rng.derive_seed(3, rng.EVAL))
    assert torch.equal(inside, torch.rand(3))


class Recording(TinyModel):
    """TinyModel that keeps the global torch RNG state at its first training forward, the
    images of every training forward and those of every evaluation forward."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.first_state = None
        self.train_images: list[torch.Tensor] = []
        self.eval_images: list[torch.Tensor] = []

    def forward(self, image):
        if self.training:
            if self.first_state is None:
                self.first_state = torch.get_rng_state().clone()
            self.train_images.append(image.clone())
        else:
            self.eval_images.append(image.clone())
        return super().forward(image)


def _noise_at(state: torch.Tensor, b: int = 4) -> torch.Tensor:
    """The noise TinyModel draws first from the global generator in ``state``."""
    g = torch.Generator()
    g.set_state(state)
    return torch.randn(b, K * 4, 1, 1, generator=g)


def _seeded_state(seed: int) -> torch.Tensor:
    return torch.Generator().manual_seed(seed).get_state()


def test_training_noise_is_not_a_replay_of_the_initialisation(fakes, spec_factory, tmp_path):
    spec = spec_factory(train={"steps": 1, "seed": 3})
    rng.seed_for(3, rng.INIT)  # as `ocdsl run` builds the model
    model = Recording()
    train(spec, model, out_dir=tmp_path / "run", progress=False)
    first = _noise_at(model.first_state)
    assert torch.equal(first, _noise_at(_seeded_state(rng.derive_seed(3, rng.NOISE))))  # the noise stream
    assert not torch.equal(first, _noise_at(_seeded_state(rng.derive_seed(3, rng.INIT))))  # not init's draws
    assert not torch.equal(first, _noise_at(_seeded_state(3)))  # nor the raw seed's (the old behaviour)


@pytest.fixture
def seeded_data(fakes, monkeypatch):
    """make_dataset whose items depend on the config's ``seed`` (as the generators' do) and
    which records the seed each split was made with."""
    from ocdsl.train import _deps

    made: list[tuple[str, object]] = []

    def make_dataset(cfg, split, base_dir, size=None, *, spec_file="<spec>", keypath=("data",)):
        made.append((split, cfg.get("seed")))
        n = 40 if split == "train" else (size or 5)
        return TinyDataset(n, seed=int(cfg.get("seed") or 0) % 100_000 + (0 if split == "train" else 7))

    monkeypatch.setattr(_deps, "make_dataset", make_dataset)
    return made


def _run(spec_factory, tmp_path, name, train_seed, data_seed=None):
    spec = spec_factory(train={"steps": 3, "seed": train_seed})
    spec.data["data"].pop("seed", None)
    if data_seed is not None:
        spec.data["data"]["seed"] = data_seed
    model = Recording()
    train(spec, model, out_dir=tmp_path / name, progress=False)
    return model


def test_train_seed_varies_the_data_stream_unless_data_seed_is_set(seeded_data, spec_factory, tmp_path):
    a = _run(spec_factory, tmp_path, "a", 0)
    b = _run(spec_factory, tmp_path, "b", 1)
    assert not all(torch.equal(x, y) for x, y in zip(a.train_images, b.train_images))
    train_seeds = [s for split, s in seeded_data if split == "train"]
    assert train_seeds == [rng.derive_seed(0, rng.DATA), rng.derive_seed(1, rng.DATA)]
    # the test split is made from data.seed as written (absent here), whatever train.seed
    assert [s for split, s in seeded_data if split == "test"] == [None, None]
    assert len(a.eval_images) == len(b.eval_images) > 0
    assert all(torch.equal(x, y) for x, y in zip(a.eval_images, b.eval_images))

    seeded_data.clear()
    c = _run(spec_factory, tmp_path, "c", 0, data_seed=5)
    d = _run(spec_factory, tmp_path, "d", 1, data_seed=5)
    assert len(c.train_images) == len(d.train_images) == 3
    assert all(torch.equal(x, y) for x, y in zip(c.train_images, d.train_images))
    assert [s for split, s in seeded_data if split == "train"] == [5, 5]
    ckpt, _ = load_checkpoint(tmp_path / "d")
    assert ckpt["data_seed"] == 5


def test_real_generator_test_split_ignores_train_seed(tmp_path):
    """With the procedural generator: train streams of two seeds differ, their test split is
    the same images (it is made from data.seed, default 0)."""
    from ocdsl.data import make_dataset

    cfg = {"dataset": "tetrominoes"}
    streams = [make_dataset(dict(cfg, seed=rng.data_seeds(s, cfg)[0]), "train", tmp_path) for s in (0, 1)]
    assert not torch.equal(streams[0][0]["image"], streams[1][0]["image"])
    tests = [make_dataset(cfg, "test", tmp_path, 3) for _ in (0, 1)]
    assert all(torch.equal(tests[0][i]["image"], tests[1][i]["image"]) for i in range(3))
    assert rng.data_seeds(0, dict(cfg, seed=9)) == (9, True)


def test_resume_keeps_the_data_stream_of_the_checkpoint(seeded_data, spec_factory, tmp_path):
    """A resume reads on in the stream the run was reading (data seed from the checkpoint),
    and the noise stream continues from the saved state: bit-identical to one session."""
    full = _run(spec_factory, tmp_path, "full", 2)
    spec = spec_factory(train={"steps": 3, "seed": 2})
    spec.data["data"].pop("seed", None)
    half = Recording()
    train(spec, half, out_dir=tmp_path / "half", steps=1, progress=False)
    torch.manual_seed(99)
    rest = Recording()
    train(spec, rest, out_dir=tmp_path / "half", resume=tmp_path / "half", progress=False)
    got = half.train_images + rest.train_images
    assert len(got) == len(full.train_images) == 3
    assert all(torch.equal(x, y) for x, y in zip(got, full.train_images))
    assert torch.equal(rest.first_state, full_state_after_one_step(spec_factory, tmp_path))


def full_state_after_one_step(spec_factory, tmp_path):
    """The global RNG state at the second training forward of an uninterrupted run."""
    spec = spec_factory(train={"steps": 2, "seed": 2})
    spec.data["data"].pop("seed", None)

    class Second(Recording):
        def forward(self, image):
            if self.training and self.train_forwards == 1:
                self.second = torch.get_rng_state().clone()
            return super().forward(image)

    m = Second()
    train(spec, m, out_dir=tmp_path / "second", progress=False)
    return m.second
