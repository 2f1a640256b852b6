"""Fakes for the training tests: a tiny generated-module look-alike on 8x8 images, an
in-memory dataset, and stand-ins for ocdsl.data / ocdsl.metrics / ocdsl.viz put in place
through ``ocdsl.train._deps`` (so these tests depend on nothing but train/)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ocdsl.spec.model import Locations, Spec
from ocdsl.train import _deps

K = 2
HW = 8


class TinyDataset(torch.utils.data.Dataset):
    """Item i is a pure function of (seed, i): an 8x8 RGB image and its label map."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 100_003 + int(i))
        mask = torch.zeros(HW, HW, dtype=torch.int64)
        r, c = torch.randint(0, HW - 3, (2,), generator=g).tolist()
        mask[r:r + 3, c:c + 3] = 1
        image = torch.rand(3, 1, 1, generator=g) * (mask > 0).float()[None]
        return {"image": image.expand(3, HW, HW).contiguous(), "mask": mask,
                "factors": {"ragged": list(range(int(i) % 3))}}


class TinyModel(nn.Module):
    """Follows the generated-module interface (docs/internals.md). Uses the global RNG in
    forward (like slot initialisation) so that resumes must restore it.

    ``on_train_forward``: {n: action} run at the n-th training-mode forward (1-based):
    "interrupt" raises KeyboardInterrupt, "sigint" sends SIGINT to this process, "nan"
    makes the outputs NaN, "sleep:<s>" sleeps."""

    SPEC_NAME = "tiny"
    SPEC_HASH = "hash-tiny"
    INPUTS = ("image",)
    LOSS = "total"

    noise = 0.01  # the scale of the noise drawn in forward (0: a deterministic model)

    def __init__(self, on_train_forward: dict | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Conv2d(3, K * 4, 1)
        self.gain = nn.Parameter(torch.ones(K))  # 1-D: no weight decay under AdamW
        self.on_train_forward = dict(on_train_forward or {})
        self.train_forwards = 0

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        nan = False
        if self.training:
            self.train_forwards += 1
            action = self.on_train_forward.get(self.train_forwards)
            if action == "interrupt":
                raise KeyboardInterrupt
            if action == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
            if action == "nan":
                nan = True
            if action and action.startswith("sleep:"):
                import time
                time.sleep(float(action.split(":")[1]))
        b, c, h, w = image.shape                                            # (B, 3, 8, 8)
        noise = self.noise * torch.randn(b, K * 4, 1, 1)                     # the RNG matters
        x = (self.enc(image) + noise).view(b, K, 4, h, w)                    # (B, K, 4, H, W)
        rgb = x[:, :, :3]                                                    # (B, K, 3, H, W)
        masks = (x[:, :, 3] * self.gain.view(1, K, 1, 1)).softmax(dim=1)     # (B, K, H, W)
        recon = (rgb * masks[:, :, None]).sum(dim=1)                         # (B, 3, H, W)
        if nan:
            recon = recon * float("nan")
        return {"decoder.rgb": rgb, "composite.masks": masks, "composite.image": recon}

    def schedules(self, step: int) -> dict[str, float]:
        return {"lr": 0.05 * min(1.0, (step + 1) / 3), "w": 0.1}

    def losses(self, inputs, outputs, sched, step):
        rec = ((outputs["composite.image"] - inputs["image"]) ** 2).mean()
        reg = (outputs["composite.masks"] ** 2).mean()
        return {"reconstruction": rec, "reg": reg, "total": rec + sched["w"] * reg}


def make_spec(tmp_path: Path, *, train: dict | None = None, eval: dict | None = None,
              data: dict | None = None, source_hash: str = "hash-tiny") -> Spec:
    path = tmp_path / "tiny.toml"
    path.write_text("# fake\n")
    t = {"loss": "total", "optimizer": {"name": "adam", "lr": "lr"}, "batch_size": 4,
         "steps": 6, "log_every": 1, "seed": 0}
    t.update(train or {})
    e = {"masks": "composite.masks", "reconstruction": "composite.image",
         "metrics": ["fake_ari", "fake_mse"], "test_size": 6, "batch_size": 4}
    e.update(eval or {})
    d = {"dataset": "tiny", "range": [-1.0, 1.0], "seed": 0}
    d.update(data or {})
    return Spec(path=path, name="tiny", data={"meta": {"name": "tiny"}, "train": t, "eval": e, "data": d},
                locations=Locations(str(path)), dims={}, inputs={}, nodes={}, losses={}, schedules={},
                source_hash=source_hash)


class Recorder:
    def __init__(self):
        self.datasets: list[tuple] = []
        self.figures: list[Path] = []
        self.curves: list[Path] = []
        self.strips: list[tuple[Path, list[int]]] = []  # (path, steps drawn) per mask-strip update
        self.eval_batches = 0
        self.pngs_read: list[Path] = []


@pytest.fixture
def fakes(monkeypatch) -> Recorder:
    return install_fakes(monkeypatch.setattr)


def install_fakes(setattr) -> Recorder:
    """Put the fakes in place with ``setattr(module, name, value)`` (a monkeypatch's, or
    plain ``setattr`` in a child process); returns what they record."""
    rec = Recorder()

    def make_dataset(cfg, split, base_dir, size=None, *, spec_file="<spec>", keypath=("data",)):
        rec.datasets.append((cfg.get("name", cfg.get("dataset")), split, size))
        n = 40 if split == "train" else (size or 5)
        return TinyDataset(n, seed=0 if split == "train" else 1)

    def evaluate(names, masks, labels, recon, image):
        rec.eval_batches += 1
        assert masks.dim() == 4 and labels.dim() == 3
        assert float(recon.min()) >= -0.5  # mapped back towards [0, 1]
        b = masks.shape[0]
        out = {}
        for n in names:
            if n == "fake_ari":
                out[n] = (masks.argmax(1) == labels).float().flatten(1).mean(1).double()
            else:
                out[n] = ((recon - image) ** 2).flatten(1).mean(1).double()
        return out

    def concat(per_batch):
        return {k: torch.cat([d[k] for d in per_batch]) for k in per_batch[0]}

    def summarize(per_image):
        return {k: float(v.mean()) for k, v in per_image.items()}

    def save_fig(path, image, recon, masks, slot_rgb, true_labels=None, max_images=8):
        assert image.shape[1:] == (3, HW, HW) and slot_rgb.shape[1:] == (K, 3, HW, HW)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"\x89PNG fake")
        rec.figures.append(Path(path))

    def save_curve(path, records, keys, *, logy=()):
        assert keys
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"\x89PNG fake")
        rec.curves.append(Path(path))

    def save_metric_curves(path, rows, metrics=None, *, colour="split", style=None, title=None):
        assert rows and all("split" in r for r in rows)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"\x89PNG fake")
        rec.curves.append(Path(path))

    def save_mask_strip(path, images, steps, segs, true_labels=None, *, title=None):
        assert segs.shape[0] == len(steps) and segs.shape[1:] == (images.shape[0], HW, HW)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"\x89PNG fake")
        rec.strips.append((Path(path), list(steps)))

    def read_png(path):  # the fake figures are not PNGs: a 4x4 RGB picture stands in
        rec.pngs_read.append(Path(path))
        return np.full((4, 4, 3), 0.5, dtype=np.float32)

    setattr(_deps, "make_dataset", make_dataset)
    setattr(_deps, "metrics_evaluate", evaluate)
    setattr(_deps, "metrics_concat", concat)
    setattr(_deps, "metrics_summarize", summarize)
    setattr(_deps, "save_reconstruction_figure", save_fig)
    setattr(_deps, "save_curve", save_curve)
    setattr(_deps, "save_metric_curves", save_metric_curves)
    setattr(_deps, "save_mask_strip", save_mask_strip)
    setattr(_deps, "read_png", read_png)
    return rec


@pytest.fixture
def spec_factory(tmp_path):
    return lambda **kw: make_spec(tmp_path, **kw)


@pytest.fixture
def model_cls():
    return TinyModel


class Mix(nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(K))


class PhasedModel(TinyModel):
    """TinyModel with every parameter inside a node (as in generated modules) and
    schedules that read the phase clock."""

    NODES = ("enc", "mix")

    def __init__(self, on_train_forward=None):
        super().__init__(on_train_forward)
        del self.gain
        self.mix = Mix()

    @property
    def gain(self):
        return self.mix.gain

    def schedules(self, step, phase_step=None, phase_steps=None):
        phase_step = step if phase_step is None else phase_step
        phase_steps = 1 if phase_steps is None else phase_steps
        # lr encodes the clock so the rows show what the schedules saw
        return {"lr": 0.01 + 0.001 * phase_step + 1e-6 * phase_steps, "w": 0.1}



@pytest.fixture
def phased():
    return PhasedModel
