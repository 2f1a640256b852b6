"""train/ against the real data, metrics and viz modules (contract drift shows up here),
and the torch.compile path (slow: a cold compile)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ocdsl.train import evaluate_checkpoint, train

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "tetrominoes" / "tetrominoes_emorl_test10.npz"


def test_real_data_metrics_and_figures(spec_factory, model_cls, tmp_path):
    pytest.importorskip("ocdsl.data")
    pytest.importorskip("ocdsl.metrics")
    pytest.importorskip("ocdsl.viz.figures")
    datasets = [{"name": "real", "dataset": "tetrominoes", "path": str(REAL), "optional": True, "size": 4}]
    spec = spec_factory(train={"steps": 2, "batch_size": 2},
                        eval={"metrics": ["ari_fg", "miou_fg", "mse"], "test_size": 4, "datasets": datasets},
                        data={"dataset": "tetrominoes"})
    out = tmp_path / "run"
    summary = train(spec, model_cls(), out_dir=out, progress=False)
    names = {"test"} | ({"real"} if REAL.exists() else set())
    assert set(summary["eval"]) == names
    for r in summary["eval"].values():
        assert set(r["metrics"]) >= {"ari_fg", "miou_fg", "mse"} and r["count"] == 4
    figs = {p.name for p in (out / "figures").iterdir()}
    assert {"step_000002_test.png", "loss.png", "metrics.png", "test_masks_over_time.png",
            "test_masks_over_time.npz"} <= figs
    assert all((out / "figures" / f).read_bytes()[:4] == b"\x89PNG" for f in figs if f.endswith(".png"))
    assert {f for f in figs if not f.endswith(".png")} <= {f"{n}_masks_over_time.npz" for n in names}
    report = evaluate_checkpoint(spec, model_cls(), out, out_dir=tmp_path / "ev", quiet=True)
    assert report["step"] == 2
    assert report["eval"]["test"]["metrics"] == summary["eval"]["test"]["metrics"]  # eval is seeded
    assert json.loads((tmp_path / "ev" / "eval.json").read_text())["step"] == 2


@pytest.mark.slow
def test_torch_compile_keeps_checkpoints_uncompiled(fakes, spec_factory, tmp_path):
    class Plain(torch.nn.Module):  # no python side effects in forward
        SPEC_NAME, SPEC_HASH, INPUTS, LOSS = "tiny", "hash-tiny", ("image",), "total"

        def __init__(self):
            super().__init__()
            self.enc = torch.nn.Conv2d(3, 8, 1)

        def forward(self, image):
            x = self.enc(image).view(image.shape[0], 2, 4, *image.shape[2:])
            masks = x[:, :, 3].softmax(1)
            return {"decoder.rgb": x[:, :, :3], "composite.masks": masks,
                    "composite.image": (x[:, :, :3] * masks[:, :, None]).sum(1)}

        def schedules(self, step):
            return {"lr": 1e-2, "w": 0.0}

        def losses(self, inputs, outputs, sched, step):
            rec = ((outputs["composite.image"] - inputs["image"]) ** 2).mean()
            return {"reconstruction": rec, "total": rec}

    spec = spec_factory(train={"steps": 2})
    for name, model, flag in (("flag", Plain(), True), ("precompiled", torch.compile(Plain()), False)):
        out = tmp_path / name
        summary = train(spec, model, out_dir=out, torch_compile=flag, progress=False)
        assert summary["torch_compile"] is True
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        assert state["model"] and not any(k.startswith("_orig_mod.") for k in state["model"])
