"""TensorBoard event files beside metrics.jsonl: read back with tensorboard's own
EventAccumulator, the scalars are the rows of metrics.jsonl and the figures are images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ocdsl.train import train
from ocdsl.train.report import EventLog

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _load(folder):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_event_file_holds_the_metrics_rows_and_the_mask_figures(fakes, spec_factory, model_cls, tmp_path):
    out = tmp_path / "run"
    train(spec_factory(train={"steps": 4}, eval={"every": 2}), model_cls(), out_dir=out, progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    acc = _load(out)
    tags = acc.Tags()
    assert {"train/loss", "train/reconstruction", "train/reg", "train/lr", "sched/lr", "sched/w",
            "eval/test/fake_ari", "eval/test/fake_mse"} <= set(tags["scalars"])
    logged = [r for r in rows if "loss" in r and "split" not in r and "event" not in r]
    got = acc.Scalars("train/loss")
    assert [e.step for e in got] == [r["step"] for r in logged] == [1, 2, 3, 4]
    assert [e.value for e in got] == pytest.approx([r["loss"] for r in logged], rel=1e-6)
    evals = [r for r in rows if r.get("split") == "test"]
    ari = acc.Scalars("eval/test/fake_ari")
    assert [e.step for e in ari] == [r["step"] for r in evals] == [2, 4]
    assert [e.value for e in ari] == pytest.approx([r["fake_ari"] for r in evals], rel=1e-6)
    # each evaluation's figure, as an image at its step
    assert "masks/test" in tags["images"]
    assert [e.step for e in acc.Images("masks/test")] == [2, 4]
    assert [p.name for p in fakes.pngs_read] == ["step_000002_test.png", "step_000004_test.png"]


def test_a_real_png_figure_becomes_an_image_of_its_size(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    png = tmp_path / "fig.png"
    plt.imsave(png, np.random.default_rng(0).random((6, 10, 3)))
    log = EventLog(tmp_path / "tb")
    log.figures({"test": {"figure": str(png), "step": 3}})
    log.write({"step": 3, "event": "resume"})  # events are not scalars
    log.close()
    acc = _load(tmp_path / "tb")
    (img,) = acc.Images("masks/test")
    assert (img.step, img.width, img.height) == (3, 10, 6)
    assert acc.Tags()["scalars"] == []
