"""Generated ``schedules(step, phase_step, phase_steps, total_steps)``: the run's length is
an argument (the trainer passes it, ``--steps`` included), not a baked constant."""

from __future__ import annotations

import math

import pytest

from ocdsl.pipeline import build
from ocdsl.train.model_io import schedules_at

from tests.graph.test_graph import TINY, write

SPEC = TINY.replace("[train]", """
[schedules]
lr = "1e-3 * step / total_steps"
late = "phase_step / phase_steps"
w = "0.5 if step < total_steps / 2 else 1"

[train]""").replace("steps = 2", "steps = 7500")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    c = build(write(tmp_path_factory.mktemp("spec"), SPEC))
    assert "total_steps: int | None = None" in c.source
    return c.spec, c.instantiate(torch_compile=False)


@pytest.mark.parametrize("step, total", [(0, None), (3, None), (3, 4), (3, 10), (6000, None)])
def test_total_steps_defaults_to_the_spec_and_equals_the_interpreter(model, step, total):
    spec, m = model
    got = m.schedules(step) if total is None else m.schedules(step, total_steps=total)
    want = spec.schedule_values(step, total_steps=total)
    assert set(got) == set(want)
    for k in want:
        assert math.isclose(got[k], want[k], rel_tol=0, abs_tol=1e-15), k
    n = 7500 if total is None else total
    assert got["lr"] == pytest.approx(1e-3 * step / n) and got["late"] == pytest.approx(step / n)


def test_schedules_at_passes_the_runs_length_and_clock(model):
    _, m = model
    assert schedules_at(m, 3, None, 4)["lr"] == pytest.approx(0.75e-3)
    v = schedules_at(m, 3, (1, 2), 4)
    assert v["late"] == pytest.approx(0.5) and v["w"] == 1

    class HandWritten:  # a module whose schedules takes step only still works
        def schedules(self, step):
            return {"lr": step}

    assert schedules_at(HandWritten(), 3, (1, 2), 4) == {"lr": 3}
