"""`ocdsl run`: schedules see the run's length (total_steps, --steps included) and are all
logged; the model is built under the run's "init" seed, not the raw train.seed."""

from __future__ import annotations

import json

import pytest
import torch

from ocdsl.cli import main
from ocdsl.train.checkpoint import load_checkpoint
from tests.graph.test_graph import TINY, write

SIZE = ["--set", "dims.H=35", "--set", "dims.W=35"]  # the generator's resolution
EVAL = ('\n[eval]\ntest_size = 2\nmetrics = ["mse"]\nmasks = "composite.masks"\n'
        'reconstruction = "composite.image"\n')


def _spec(tmp_path):
    text = TINY.replace('optimizer = { name = "adam", lr = 1e-3 }', 'optimizer = { name = "adam", lr = "lr" }\n'
                        'log_every = 1').replace("steps = 2", "steps = 7500")
    text = text.replace("[losses]", '[schedules]\nlr = "1e-3 * step / total_steps"\n'
                                    'w = "0.5 * step / total_steps"\n\n[losses]\nweighted = "w * reconstruction"')
    assert "total_steps" in text and "log_every = 1" in text and "steps = 7500" in text
    return write(tmp_path, text + EVAL)


def test_steps_override_reaches_the_schedules_and_every_schedule_is_logged(tmp_path):
    run = tmp_path / "run"
    assert main(["run", str(_spec(tmp_path)), "--steps", "4", "--no-progress", "--no-compile",
                 "--out", str(run), *SIZE]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logs = [r for r in rows if "loss" in r and "split" not in r and "event" not in r]
    assert [r["step"] for r in logs] == [1, 2, 3, 4]
    # the update from step s sees schedules(s): lr reaches 1e-3 * 3 / 4 (not 3 / 7500)
    assert [r["lr"] for r in logs] == pytest.approx([0.0, 0.25e-3, 0.5e-3, 0.75e-3])
    assert [r["sched/lr"] for r in logs] == pytest.approx([0.0, 0.25e-3, 0.5e-3, 0.75e-3])
    assert [r["sched/w"] for r in logs] == pytest.approx([0.0, 0.125, 0.25, 0.375])  # a loss weight too
    for r in logs:
        assert r["weighted"] == pytest.approx(r["sched/w"] * r["reconstruction"], rel=1e-5, abs=1e-12)
    assert (run / "figures" / "schedules.png").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["data_seed"] is not None
    ckpt, _ = load_checkpoint(run)
    assert ckpt["steps"] == 4  # what `ocdsl eval` hands the schedules as total_steps


def test_the_model_is_built_under_the_init_seed(tmp_path, monkeypatch):
    import ocdsl.train
    from ocdsl.pipeline import build
    from ocdsl.train.rng import INIT, derive_seed

    seen = {}

    def fake_train(spec, model, **kw):
        seen["weights"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return {"status": "completed"}

    monkeypatch.setattr(ocdsl.train, "train", fake_train)
    p = write(tmp_path, TINY)
    overrides = ["train.seed=4", "dims.H=35", "dims.W=35"]
    assert main(["run", str(p), "--no-progress", "--no-compile", "--out", str(tmp_path / "r"),
                 *[a for o in overrides for a in ("--set", o)]]) == 0

    def weights(seed):
        torch.manual_seed(seed)
        m = build(p, overrides=overrides).instantiate(torch_compile=False)
        return m.state_dict()

    want, raw = weights(derive_seed(4, INIT)), weights(4)
    assert all(torch.equal(seen["weights"][k], want[k]) for k in want)
    assert not all(torch.equal(seen["weights"][k], raw[k]) for k in raw)
