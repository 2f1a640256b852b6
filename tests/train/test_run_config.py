"""One checker: a spec that ``ocdsl validate`` accepts is never rejected by ``ocdsl run`` for
a configuration reason.

Every shipped spec and variant, and a family of ``[train]`` / ``[eval]`` mutants of two of
them (zero, negative, huge and fractional values, optimizer / option combinations, missing
keys), goes through both: load + validate, and the configuration ``ocdsl run`` builds
before its first step (ocdsl/train/run.py: the phase plan, each phase's optimizer through
``enter_phase``, the learning rate and the schedules at the first and last step of every
phase, the data seeds, the success threshold). Nothing trains. A mutant the front end
rejects must be rejected with a located error (file, line, key).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ocdsl.errors import SpecError
from ocdsl.spec import load
from ocdsl.train.rng import data_seeds
from ocdsl.train.run import enter_phase, plan_run
from ocdsl.train.seeds import _threshold

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "specs").glob("*.toml")) + sorted((ROOT / "specs" / "variants").glob("*.toml"))


class StandIn(nn.Module):
    """The generated module's interface, as far as the run's configuration reads it: one
    small parameterised submodule per node, the spec's schedules (by the interpreter)."""

    def __init__(self, spec):
        super().__init__()
        self.NODES = tuple(spec.nodes)
        self.INPUTS = tuple(spec.inputs)
        self._spec = spec
        for name in spec.nodes:
            setattr(self, name, nn.Linear(2, 2))

    def schedules(self, step, phase_step=None, phase_steps=None, total_steps=None):
        return self._spec.schedule_values(step, phase_step, phase_steps, total_steps)


def build_run_config(spec, steps: int | None = None) -> list[float]:
    """What ``ocdsl run`` builds before its first step; returns the learning rates at the
    first and last step of every phase. Raises whatever the run would raise."""
    for section in (spec.train, spec.eval_cfg):  # numbers have their field's type (2.0 -> 2)
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if f.type in ("int", "int | None"):
                assert value is None or type(value) is int, (f.name, value)
    model = StandIn(spec)
    plan = plan_run(spec, model, steps)
    data_seeds(spec.train.seed, dict(spec.data_cfg.table))
    _threshold(spec)
    names = list(model.schedules(0))
    lrs, prev = [], None
    for ph in plan.phases:
        prev = enter_phase(spec, model, ph, names, prev)
        opt, lr_src = prev
        assert isinstance(opt, torch.optim.Optimizer)
        for step in (ph.start, ph.end - 1):
            sched = model.schedules(step, *ph.clock(step), plan.total)
            lrs.append(lr_src.at(sched, step, ph.clock(step), plan.total))
    return lrs


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_spec_builds_its_run_configuration(path):
    spec = load(path)
    lrs = build_run_config(spec)
    assert lrs and all(math.isfinite(x) and x >= 0 for x in lrs)
    assert any(x > 0 for x in lrs), "a run that never learns"


# (override, accepted by validation?) on a spec without phases (slot_attention) ...
FLAT = [
    ("train.batch_size=1", True), ("train.batch_size=0", False), ("train.batch_size=-4", False),
    ("train.batch_size=2.0", True), ("train.batch_size=2.5", False), ("train.batch_size=1048576", True),
    ("train.batch_size=100000000", False),  # beyond the batch bound (spec/bounds.py)
    ("train.steps=1", True), ("train.steps=0", False), ("train.steps=2000000000", True),
    ("train.steps=10000000000", False),  # beyond 2**31 - 1
    ("train.log_every=1", True), ("train.log_every=0", False),
    ("train.checkpoint_every=1", True), ("train.checkpoint_every=0", False),
    ("train.checkpoint_every=-1", False),
    ("train.seed=0", True), ("train.seed=-1", False), ("train.seed=4294967296", True),
    ("data.seed=-1", False), ("data.seed=7", True),
    ("train.time_limit=0", True), ("train.time_limit=-1", False), ("train.grad_clip=0", True),
    ("train.grad_clip=1e30", True), ("train.num_workers=-1", False), ("train.precision='fp16'", False),
    ("train.compile='gpu'", True), ("train.compile=false", True),
    ("train.steps_per_epoch=0", False), ("train.epoch_size=1", True),
    ("train.optimizer={name='adam', lr=1e-3}", True), ("train.optimizer={name='adam', lr=0}", False),
    ("train.optimizer={name='adam', lr=1e-3, momentum=0.9}", False),
    ("train.optimizer={name='adamw', lr=1e-3, momentum=0.9}", False),
    ("train.optimizer={name='sgd', lr=0.1, momentum=0.9}", True),
    ("train.optimizer={name='sgd', lr=0.1, betas=[0.9, 0.99]}", False),
    ("train.optimizer={name='sgd', lr=0.1, eps=1e-6}", False),
    ("train.optimizer={name='sgd', lr='2 * lr'}", True),
    ("train.optimizer={name='adamw', lr='lr * min(1, step / 10)', weight_decay=0.1}", True),
    ("train.optimizer={name='adam', lr='lr', nesterov=true}", False),
    ("train.optimizer={name='rmsprop', lr=0.1}", False),
    ("train.optimizer={name='adam'}", False),
    ("eval.every=1", True), ("eval.every=0", False),
    ("eval.batch_size=0", False), ("eval.seed=-1", False), ("eval.figure_images=0", True),
    ("eval.metrics=['ari_fg', 'mse_mean']", True), ("eval.metrics=['mse_mean']", False),  # success reads ari_fg
    ("eval.metrics=['mse_sum']", False), ("eval.metrics=['ari', 'ari']", False),
    ("eval.success='mse > 1'", True), ("eval.success='miou > 0.5'", False),
]
# ... and on one with phases (ast_seg).
PHASED = [
    ("train.phases[0].steps=1", True), ("train.phases[0].steps=0", False),
    ("train.phases[2].fresh_optimizer=false", False),
    ("train.phases[1].optimizer={name='sgd', lr='fg_lr', momentum=0.5}", True),
    ("train.phases[1].optimizer={name='adam', lr='fg_lr', momentum=0.5}", False),
    ("eval.datasets[0].name='test'", False),
    ("eval.every=0", False),
]


def _mutant(spec_file: str, override: str, accepted: bool, steps: int | None = None):
    try:
        spec = load(ROOT / "specs" / spec_file, [override])
    except SpecError as e:
        assert not accepted, f"{override}: validation rejected it:\n{e.format()}"
        for d in e.diagnostics:
            assert d.file and d.keypath, f"{override}: an error without a place: {d.format()}"
            assert d.line > 0 or d.file.startswith("--set"), d.format()
        return
    assert accepted, f"{override}: validation accepted it"
    lrs = build_run_config(spec, steps)  # must not raise
    assert all(math.isfinite(x) for x in lrs), (override, lrs)


@pytest.mark.parametrize("override,accepted", FLAT, ids=[o for o, _ in FLAT])
def test_train_and_eval_mutants_agree(override, accepted):
    _mutant("slot_attention.toml", override, accepted)


@pytest.mark.parametrize("override,accepted", PHASED, ids=[o for o, _ in PHASED])
def test_phase_mutants_agree(override, accepted):
    _mutant("ast_seg.toml", override, accepted)


def test_a_spec_without_a_length_needs_steps_and_nothing_else(tmp_path):
    """The one thing the run may ask of a spec that validates: its length, where the spec
    states none (no [train] steps, no phases), through ``--steps``."""
    text = (ROOT / "specs" / "slot_attention.toml").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("steps =")]
    path = tmp_path / "no_steps.toml"
    path.write_text("\n".join(lines))
    spec = load(path)
    assert spec.train.steps is None
    with pytest.raises(SpecError, match="train.steps is not set"):
        build_run_config(spec)
    assert build_run_config(spec, steps=5)
