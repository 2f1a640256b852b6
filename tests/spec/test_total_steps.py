"""``total_steps``: the run's length, a built-in name of [schedules] only."""

from __future__ import annotations

import pytest

from ocdsl.errors import SpecError
from ocdsl.spec import load

from spec_toys import TOY_SPEC

PROGRESS = TOY_SPEC.replace('lr = "1e-3 * weight"', 'lr = "1e-3 * weight * (1 - step / total_steps)"\n'
                            'late = "phase_step / phase_steps"')


def test_schedules_see_total_steps_default_the_written_length(write):
    spec = load(write("s.toml", PROGRESS))
    assert spec.total_steps == 10
    assert spec.schedule_values(5)["lr"] == pytest.approx(1e-3 * 0.05 * 0.5)  # total_steps = train.steps
    v = spec.schedule_values(5, total_steps=20)
    assert v["lr"] == pytest.approx(1e-3 * 0.05 * 0.75)
    assert v["late"] == pytest.approx(5 / 20)  # without phases one phase spans the run
    assert spec.schedule_values(5, 1, 4, total_steps=20)["late"] == pytest.approx(1 / 4)


@pytest.mark.parametrize("old, new, words", [
    ('total = "rec * weight"', 'total = "rec * step / total_steps"',
     ["'total_steps' in loss 'total': only [schedules] see the run's length", "define a schedule"]),
    ('[schedules]', '[schedules]\ntotal_steps = 5', ["'total_steps' is reserved"]),
    ('[dims]', '[dims]\ntotal_steps = 5', ["'total_steps' is reserved"]),
])
def test_total_steps_is_reserved_and_only_for_schedules(write, old, new, words):
    assert old in TOY_SPEC
    with pytest.raises(SpecError) as ei:
        load(write("s.toml", TOY_SPEC.replace(old, new, 1)))
    text = ei.value.format()
    for w in words:
        assert w in text, text


@pytest.mark.parametrize("total", [1, 2, 300, 2000, 50_000])
def test_main_job_schedule_follows_any_run_length(total):
    """The shipped main job's lr warms up over 15 % of the run and decays to 0 at its last
    step, for any --steps (a fixed 300-step warm-up divided by zero at --steps 300)."""
    import math
    from pathlib import Path

    spec = load(Path(__file__).resolve().parents[2] / "specs" / "slot_attention.toml")
    lrs = [spec.schedule_values(s, total_steps=total)["lr"] for s in range(0, total + 1, max(1, total // 50))]
    assert all(math.isfinite(v) and 0 <= v <= 6e-4 + 1e-12 for v in lrs)
    assert spec.schedule_values(total, total_steps=total)["lr"] == pytest.approx(0, abs=1e-12)
    peak = spec.schedule_values(math.ceil(0.15 * total), total_steps=total)["lr"]
    assert peak == pytest.approx(6e-4, rel=0.05) or total < 10
