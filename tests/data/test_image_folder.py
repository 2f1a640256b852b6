"""A folder of natural images (ocdsl/data/image_folder.py): centre crop, resize, RGB, the
hold-out split, no masks; the COCO-style ASAE variant trains on one and evaluates without
masks (mask metrics skipped, said once)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocdsl.data import make_dataset
from ocdsl.data.image_folder import ImageFolder, load_image
from ocdsl.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
COCO = ROOT / "specs" / "variants" / "asae_coco.toml"


def _write(folder: Path, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` PNGs of different sizes (and one grey JPEG in a subfolder)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        a = (rng.random((40 + 3 * i, 70, 3)) * 255).astype(np.uint8)
        Image.fromarray(a).save(folder / f"img_{i:02d}.png")
        out.append(a)
    (folder / "sub").mkdir(exist_ok=True)
    Image.fromarray((rng.random((30, 20)) * 255).astype(np.uint8)).save(folder / "sub" / "grey.JPG")
    (folder / "notes.txt").write_text("not an image")
    return out


def test_load_image_crops_the_centre_square_and_resizes(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, 10:30] = 200                  # the centre 20 x 20 square is bright, the sides dark
    Image.fromarray(a).save(tmp_path / "x.png")
    same = load_image(tmp_path / "x.png", 20)
    assert same.shape == (20, 20, 3) and (same == 200).all()
    small = load_image(tmp_path / "x.png", 8)
    assert small.shape == (8, 8, 3) and small.dtype == np.uint8 and (abs(small.astype(int) - 200) <= 1).all()


def test_folder_splits_hold_out_every_tenth_image(tmp_path):
    _write(tmp_path / "f", 20)          # 21 images: 20 PNGs + the grey JPEG in sub/
    train, test = ImageFolder(tmp_path / "f", "train", 16), ImageFolder(tmp_path / "f", "test", 16)
    assert len(train) == 19 and len(test) == 2 and len(ImageFolder(tmp_path / "f", "all")) == 21
    assert list(test.positions) == [9, 19]
    assert not set(train.positions) & set(test.positions)
    got = test.get([0, 1])
    assert got["image"].shape == (2, 16, 16, 3) and got["label"] is None
    assert list(got["factors"]["index"]) == [9, 19]
    grey = ImageFolder(tmp_path / "f", "all", 8)
    assert [p.name for p in grey.files][-1] == "grey.JPG"       # subfolders, any case of .jpg
    g = grey.get([20])["image"][0]
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()   # grey -> RGB


def test_small_folder_gives_every_image_to_every_split(tmp_path):
    _write(tmp_path / "f", 3)
    assert len(ImageFolder(tmp_path / "f", "train")) == len(ImageFolder(tmp_path / "f", "test")) == 4


def test_make_dataset_items_have_no_mask(tmp_path):
    _write(tmp_path / "f", 4)
    ds = make_dataset({"dataset": "image_folder", "path": "f", "resolution": 32}, "train", tmp_path)
    assert len(ds) == 5 and ds.info.height == ds.info.width == 32 and not ds.info.masks
    item = ds[0]
    assert set(item) == {"image", "factors"} and tuple(item["image"].shape) == (3, 32, 32)
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert "mask" not in ds.batch([0, 1])


@pytest.mark.parametrize("cfg, message", [
    ({"path": "missing"}, "not found"),
    ({"path": "empty"}, "no .png, .jpg, .jpeg files"),
    ({"path": "f", "split": "tst"}, "unknown image-folder split 'tst'"),
    ({"path": "f", "resolution": [32, 48]}, "square images"),
])
def test_bad_folder_is_a_user_error(tmp_path, cfg, message):
    _write(tmp_path / "f", 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=message):
        make_dataset({"dataset": "image_folder", **cfg}, "train", tmp_path)


@pytest.mark.timeout(300)
def test_asae_coco_variant_trains_on_a_folder_and_skips_mask_metrics(tmp_path, capsys):
    from ocdsl.cli import main

    _write(tmp_path / "images", 4)
    run = tmp_path / "run"
    sets = ["--set", f"data.path={tmp_path / 'images'}", "--set", "train.batch_size=2",
            "--set", "eval.every=2", "--set", "eval.figure_images=2", "--set", "eval.batch_size=5",
            "--set", 'schedules.t_steps="min(T, 1 + step)"',       # 1, 2, 3 steps
            "--set", 'eval.metrics=["ari_fg", "mse"]']            # the variant's own: mse only
    assert main(["run", str(COCO), *sets, "--steps", "3", "--no-progress", "--no-compile",
                 "--out", str(run)]) == 0
    out = capsys.readouterr()
    assert out.out.count("no ground-truth masks in this dataset: ari_fg skipped") == 2   # once per evaluation
    # said before training too, at the override that asked for it
    assert "--set eval.metrics=" in out.err and "ari_fg in eval.metrics will be skipped" in out.err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r.get("split") == "test"]
    assert [r["step"] for r in evals] == [2, 3]
    assert all("mse" in r and "ari_fg" not in r and r["count"] == 5 for r in evals)
    assert (run / "figures" / "step_000003_test.png").exists()


def test_asae_coco_variant_has_the_coco_networks_and_grows_t():
    import torch

    from ocdsl.pipeline import build

    c = build(COCO, overrides=["data.path=."])      # the folder is not read to build the model
    model = c.instantiate(torch_compile=False)
    assert type(model.blank).__name__ == "BackgroundNetwork"
    convs = [m for m in model.draw.where.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs] == [32, 64, 128]                 # Table 3
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.draw.where.modules())
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    for step, t in ((0, 1), (750, 2), (2250, 4), (2999, 4)):
        model.set_schedules(model.schedules(step))
        assert model(x)["draw.canvas"].shape == (2, t, 3, 64, 64)
