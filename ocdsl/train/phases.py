"""Training phases: ``[[train.phases]]`` -> a plan of step ranges, and what each trains.

A spec without phases trains as one implicit phase (``train``: every node, ``train.loss``,
``train.optimizer``, ``train.steps``). With phases, they run in order::

    [[train.phases]]
    name = "background"            # default phase1, phase2, ...
    steps = 2500
    trainable = ["background"]     # or frozen = [...]; default: everything trains
    loss = "background_fit"        # default train.loss
    optimizer = { name = "adamw", lr = "bg_lr" }   # default train.optimizer
    fresh_optimizer = true         # default; false keeps the previous phase's optimizer state
    clock = "foreground"           # phases sharing a clock share phase_step / phase_steps

What a phase means at run time (ocdsl/train/run.py):

- the parameters of frozen nodes get ``requires_grad = False`` and the nodes are put in
  eval mode (no dropout, no batch-norm statistics updates); the others train;
- the optimizer is built at the phase's first step over the trainable parameters only
  (a *fresh* state, as AST-Seg's curriculum starts a new Adam for joint fine-tuning), unless
  ``fresh_optimizer = false``;
- ``[schedules]`` see ``phase_step`` (steps completed since the clock started) and
  ``phase_steps`` (the clock's length); ``step`` stays the global count;
- a checkpoint records the phase its optimizer state belongs to, so a resume in the middle
  of any phase continues it exactly, and a resume at a boundary starts the next phase.

``--steps N`` scales the phases to a total of N steps, keeping their proportions (largest
remainders; every phase keeps at least one step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ocdsl.errors import Diagnostic, SpecError, UserError
from ocdsl.spec.config import OptimizerSpec

__all__ = ["Phase", "PhasePlan", "plan_phases", "scale_steps", "apply_phase"]


@dataclass(frozen=True)
class Phase:
    """One phase of the plan: global steps ``[start, end)``."""

    index: int
    name: str
    start: int
    steps: int
    loss: str | None
    optimizer: OptimizerSpec     # this phase's (its own, else [train]'s); .keypath: where written
    frozen: frozenset[str]       # node names whose parameters do not train
    fresh_optimizer: bool
    clock_start: int             # global step at which this phase's clock started
    clock_steps: int             # length of the clock (the run of phases sharing it)

    @property
    def end(self) -> int:
        return self.start + self.steps

    def clock(self, step: int) -> tuple[int, int]:
        """``(phase_step, phase_steps)`` at global ``step``."""
        return step - self.clock_start, self.clock_steps


@dataclass(frozen=True)
class PhasePlan:
    phases: tuple[Phase, ...]
    explicit: bool               # False: the implicit single phase of a spec without phases
    scaled_from: tuple[int, ...] | None = field(default=None)

    @property
    def total(self) -> int:
        return self.phases[-1].end

    def at(self, step: int) -> Phase:
        """The phase that performs the update from ``step`` to ``step + 1`` (the last phase
        for ``step >= total``)."""
        for ph in self.phases:
            if step < ph.end:
                return ph
        return self.phases[-1]

    def describe(self) -> str:
        parts = [f"{p.name} {p.steps}" for p in self.phases]
        text = "phases: " + ", ".join(parts) + f" (steps {self.total})"
        if self.scaled_from:
            text += " scaled from " + "/".join(map(str, self.scaled_from))
        return text


def scale_steps(steps: list[int], total: int) -> list[int]:
    """Split ``total`` steps over phases in proportion to ``steps`` (largest remainder),
    each phase at least 1. Raises ValueError when ``total < len(steps)``."""
    n = len(steps)
    if total < n:
        raise ValueError(f"--steps {total} is fewer than the {n} phases (each needs at least one step)")
    s = sum(steps)
    exact = [total * k / s for k in steps]
    out = [int(e) for e in exact]
    order = sorted(range(n), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[:total - sum(out)]:
        out[i] += 1
    for i in range(n):                      # a phase too short to get a step takes one
        if out[i] == 0:
            out[i] = 1
            out[max(range(n), key=lambda j: out[j])] -= 1
    return out


def plan_phases(spec, node_names, steps: int | None = None) -> PhasePlan:
    """The phase plan of ``spec`` (its typed ``spec.train``, ocdsl/spec/config.py).
    ``node_names``: the model's node names (what ``trainable`` leaves out is frozen).
    ``steps``: ``--steps`` override (scales the phases). Raises SpecError when the run's
    length is unknown (a spec without [train] steps or phases, run without ``--steps``), and
    UserError when ``--steps`` is shorter than the number of phases."""
    train = spec.train
    nodes = list(node_names)
    if not train.phases:
        total = steps if steps is not None else train.steps
        if total is None:
            raise SpecError(spec.diag(("train",), "train.steps is not set",
                                      hint="set [train] steps or pass --steps"))
        ph = Phase(0, "train", 0, int(total), train.loss, train.optimizer, frozenset(), True, 0, int(total))
        return PhasePlan((ph,), explicit=False)

    written = [p.steps for p in train.phases]
    scaled_from = None
    lengths = written
    if steps is not None:
        try:
            lengths = scale_steps(written, int(steps))
        except ValueError as e:
            raise UserError(Diagnostic(str(e), file="ocdsl", hint="pass a larger --steps")) from None
        scaled_from = tuple(written)
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    clock_of = [p.clock or f"#{i}" for i, p in enumerate(train.phases)]
    phases = []
    for i, p in enumerate(train.phases):
        run = [j for j in range(len(clock_of)) if clock_of[j] == clock_of[i]]
        frozen = (frozenset(n for n in nodes if n not in set(p.trainable)) if p.trainable is not None
                  else frozenset(p.frozen))
        phases.append(Phase(
            index=i, name=p.name, start=starts[i], steps=lengths[i], loss=p.loss, optimizer=p.optimizer,
            frozen=frozen, fresh_optimizer=p.fresh_optimizer,
            clock_start=starts[run[0]], clock_steps=sum(lengths[j] for j in run)))
    return PhasePlan(tuple(phases), explicit=True, scaled_from=scaled_from)


def apply_phase(model: torch.nn.Module, phase: Phase, node_names) -> None:
    """Freeze ``phase.frozen`` (requires_grad off, eval mode) and train the other nodes
    (requires_grad on, train mode). Call again after anything that calls ``model.train()``
    or ``model.eval()`` (evaluation)."""
    model.train()
    trains: dict[int, tuple[torch.nn.Module, bool]] = {}
    for n in node_names:
        sub = getattr(model, n, None)
        if isinstance(sub, torch.nn.Module):
            # a module shared by several nodes trains when any of its nodes does
            prev = trains.get(id(sub), (sub, False))[1]
            trains[id(sub)] = (sub, prev or n not in phase.frozen)
    for sub, on in trains.values():
        for p in sub.parameters():
            p.requires_grad_(on)
        sub.train(on)
