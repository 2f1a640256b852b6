"""[[train.phases]]: the plan (clocks, --steps scaling), freezing, fresh optimizers, phase
rows, and resume in the middle of a phase or at a boundary."""

from __future__ import annotations

import json

import pytest
import torch

from ocdsl.errors import SpecError, UserError
from ocdsl.train.checkpoint import load_checkpoint
from ocdsl.train.phases import plan_phases, scale_steps
from ocdsl.train.run import TrainingInterrupted, train



PHASES = [
    {"name": "first", "steps": 3, "trainable": ["enc"], "loss": "reconstruction"},
    {"name": "second", "steps": 2, "frozen": ["enc"], "clock": "late"},
    {"name": "third", "steps": 3, "clock": "late"},
]


def _spec(spec_factory, phases=PHASES, **train):
    return spec_factory(train={"phases": phases, **train})


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_scale_steps_keeps_proportions_and_totals():
    assert scale_steps([2500, 30000, 95000], 600) == [12, 141, 447]
    assert sum(scale_steps([1, 1, 1], 10)) == 10
    assert scale_steps([100, 1], 2) == [1, 1]  # every phase keeps a step
    with pytest.raises(ValueError, match="fewer than the 3 phases"):
        scale_steps([1, 2, 3], 2)


def test_plan_has_ranges_clocks_and_frozen_sets(spec_factory):
    plan = plan_phases(_spec(spec_factory), ("enc", "mix"))
    first, second, third = plan.phases
    assert [(p.start, p.end) for p in plan.phases] == [(0, 3), (3, 5), (5, 8)]
    assert first.frozen == {"mix"} and second.frozen == {"enc"} and third.frozen == frozenset()
    assert first.loss == "reconstruction" and second.loss == "total"   # default train.loss
    assert first.clock(2) == (2, 3)
    assert second.clock(4) == (1, 5) and third.clock(6) == (3, 5)      # one clock over both
    assert plan.at(0) is first and plan.at(3) is second and plan.at(99) is third
    scaled = plan_phases(_spec(spec_factory), ("enc", "mix"), steps=16)
    assert [p.steps for p in scaled.phases] == [6, 4, 6] and scaled.scaled_from == (3, 2, 3)
    with pytest.raises(UserError, match="fewer than the 3 phases"):
        plan_phases(_spec(spec_factory), ("enc", "mix"), steps=2)


def test_phases_freeze_nodes_log_rows_and_use_the_phase_clock(fakes, spec_factory, phased, tmp_path):
    model = phased()
    seen = []  # (step, enc weight, gain, requires_grad) at each training forward
    orig = model.forward

    def spy(image):
        if model.training:
            seen.append((model.enc.weight.detach().clone(), model.mix.gain.detach().clone(),
                         model.enc.weight.requires_grad, model.mix.gain.requires_grad, model.enc.training))
        return orig(image)

    model.forward = spy
    out = tmp_path / "run"
    s = train(_spec(spec_factory), model, out_dir=out, progress=False)
    assert s["status"] == "completed" and s["step"] == 8
    assert [p["name"] for p in s["phases"]] == ["first", "second", "third"]
    # phase 1 trains enc only, phase 2 mix only (enc frozen and in eval mode), phase 3 both
    assert [x[2:] for x in seen] == [(True, False, True)] * 3 + [(False, True, False)] * 2 + [(True, True, True)] * 3
    assert torch.equal(seen[0][1], seen[3][1]) and not torch.equal(seen[0][0], seen[3][0])
    assert torch.equal(seen[3][0], seen[5][0]) and not torch.equal(seen[3][1], seen[5][1])
    rows = [r for r in _rows(out) if "loss" in r and "split" not in r]
    assert [r["phase"] for r in rows] == ["first"] * 3 + ["second"] * 2 + ["third"] * 3
    # lr = 0.01 + 0.001 phase_step + 1e-6 phase_steps: "late" counts on across phases 2-3
    assert [round(r["lr"], 7) for r in rows] == [0.010003, 0.011003, 0.012003,
                                                 0.010005, 0.011005, 0.012005, 0.013005, 0.014005]
    # the logged loss is each phase's own loss
    assert all(r["loss"] == r["reconstruction"] for r in rows[:3])
    assert all(r["loss"] == r["total"] for r in rows[3:])
    events = [r for r in _rows(out) if r.get("event") == "phase"]
    assert [(e["step"], e["phase"]) for e in events] == [(3, "second"), (5, "third")]


def test_each_phase_starts_a_fresh_optimizer_unless_told_otherwise(fakes, spec_factory, phased, tmp_path):
    state, _ = _train_and_load(fakes, spec_factory, phased, tmp_path / "a", PHASES)
    adam_steps = {int(v["step"]) for v in state["optimizer"]["state"].values()}
    assert adam_steps == {3} and state["phase"] == 2       # 3 steps of phase "third" only
    keep = [dict(PHASES[1], frozen=[]), dict(PHASES[2], fresh_optimizer=False)]
    state, _ = _train_and_load(fakes, spec_factory, phased, tmp_path / "b", keep)
    assert {int(v["step"]) for v in state["optimizer"]["state"].values()} == {5}


def _train_and_load(fakes, spec_factory, phased, out, phases):
    train(_spec(spec_factory, phases), phased(), out_dir=out, progress=False)
    return load_checkpoint(out)


def test_keeping_the_optimizer_with_other_trainable_nodes_is_a_spec_error(fakes, spec_factory, phased, tmp_path):
    bad = [PHASES[0], dict(PHASES[1], fresh_optimizer=False)]
    with pytest.raises(SpecError, match="phase 'second' keeps the previous phase's optimizer but the model trains "
                                        "other parameters"):
        train(_spec(spec_factory, bad), phased(), out_dir=tmp_path / "r", progress=False)


@pytest.mark.parametrize("stop_at", [2, 3, 4, 6])  # inside phase 1, at the 1->2 boundary, inside 2, inside 3
def test_resume_anywhere_matches_an_uninterrupted_run(fakes, spec_factory, phased, tmp_path, stop_at):
    spec = _spec(spec_factory)
    ref = phased()
    train(spec, ref, out_dir=tmp_path / "ref", progress=False)

    model = phased(on_train_forward={stop_at + 1: "interrupt"})
    with pytest.raises(TrainingInterrupted):
        train(spec, model, out_dir=tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run")[0]["step"] == stop_at
    resumed = phased()
    s = train(spec, resumed, out_dir=tmp_path / "run", resume=tmp_path / "run", progress=False)
    assert s["step"] == 8
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
