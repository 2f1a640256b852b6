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
