"""The optimizer from a typed ``[train] optimizer`` (ocdsl/spec/config.py) and its per-step
learning rate.

``optimizer = { name = "adam", lr = "lr", betas = [0.9, 0.999], eps = 1e-8, weight_decay = 0 }``

- ``name``: one of ``ocdsl.spec.config.OPTIMIZERS`` (adam, adamw, sgd), each with its own
  options (validation rejects the others, e.g. ``momentum`` with adam);
- ``lr``: a number (constant), the name of a ``[schedules]`` entry (read from
  ``model.schedules(step)``), or an expression over step, [dims] and [schedules] (evaluated
  by the expression interpreter); written into every param group before each step;
- ``adamw`` with ``weight_decay`` set decays only weight matrices and kernels: biases and
  other 1-D parameters (norm gains) go to a group with ``weight_decay = 0``, as in
  nanoGPT and the ViT/DINO recipes.

The spec was validated when it was loaded: nothing here judges a value again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ocdsl.errors import SpecError, did_you_mean
from ocdsl.spec import expr as E
from ocdsl.spec.config import OPTIMIZERS, OptimizerSpec
from ocdsl.spec.validate import RESERVED

__all__ = ["OPTIMIZERS", "LrSource", "build_optimizer", "set_lr"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class LrSource:
    """Where the learning rate comes from: a constant ``value``, a ``schedule`` name, or an
    ``expr`` (with the spec's ``dims`` and ``steps_per_epoch`` for its names)."""

    value: float | None = None
    schedule: str | None = None
    expr: Any = None
    dims: Mapping[str, int] = field(default_factory=dict)
    steps_per_epoch: float | None = None

    def at(self, sched: Mapping[str, Any], step: int = 0, clock: tuple[int, int] | None = None,
           total_steps: int | None = None) -> float:
        """The lr for the update from ``step``: ``sched`` are the schedules' values there,
        ``clock`` the phase's ``(phase_step, phase_steps)``, ``total_steps`` the run's length
        (the last three matter only to an expression)."""
        if self.expr is None:
            return float(self.value if self.schedule is None else sched[self.schedule])
        total = step if total_steps is None else total_steps
        phase_step, phase_steps = clock if clock is not None else (step, total)
        env = {**self.dims, "step": step, "total_steps": total, "phase_step": phase_step,
               "phase_steps": phase_steps, **sched}
        if self.steps_per_epoch:
            env["epoch"] = step / self.steps_per_epoch
        return float(E.evaluate(self.expr, env))


def lr_source(spec, lr: float | str, kp: tuple) -> LrSource:
    """The :class:`LrSource` of an optimizer's ``lr`` as validated: a number, a number
    written as a string, a schedule name or an expression."""
    if not isinstance(lr, str):
        return LrSource(value=float(lr))
    try:
        return LrSource(value=float(lr))
    except ValueError:
        pass
    if _NAME.match(lr) and lr not in spec.dims and lr not in RESERVED:
        return LrSource(schedule=lr)  # validation made sure it names a schedule
    loc = spec.locations.get(kp)
    return LrSource(expr=E.parse(lr, file=loc.file, line=loc.line, col=loc.col, keypath=kp, exact=False),
                    dims=dict(spec.dims), steps_per_epoch=spec.steps_per_epoch)


def build_optimizer(spec, module: torch.nn.Module, schedule_names,
                    cfg: OptimizerSpec | None = None) -> tuple[torch.optim.Optimizer, LrSource]:
    """The optimizer over ``module``'s trainable parameters (``requires_grad``), and where
    its lr comes from.

    ``schedule_names``: the keys of ``model.schedules(step)``. ``cfg``: the typed optimizer
    (default ``spec.train.optimizer``; a phase passes its own). Raises SpecError (at the
    optimizer's key) when ``lr`` names a schedule the model does not compute (a model not
    generated from this spec) or when nothing is trainable (a phase freezing every node
    that has parameters)."""
    cfg = spec.train.optimizer if cfg is None else cfg
    kp = cfg.keypath
    lr = lr_source(spec, cfg.lr, kp + ("lr",))
    names = list(schedule_names)
    if lr.schedule is not None and lr.schedule not in names:
        hint = did_you_mean(lr.schedule, names) or (
            f"[schedules] defines: {', '.join(names)}" if names else "[schedules] is empty")
        raise SpecError(spec.diag(kp + ("lr",), f"lr names no schedule: '{lr.schedule}'", hint=hint))

    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not params:
        where = kp[:3] if kp[:2] == ("train", "phases") else ("model",)
        raise SpecError(spec.diag(where, "nothing to train: no parameter has requires_grad",
                                  hint="list nodes with parameters in the phase's trainable" if where != ("model",) else None))
    wd = cfg.weight_decay
    if cfg.name == "adamw" and wd:
        decay = [p for _, p in params if p.dim() >= 2]
        no_decay = [p for _, p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": wd},
                  {"params": no_decay, "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"params": [p for _, p in params], "weight_decay": wd}]

    cls = getattr(torch.optim, cfg.info.torch_name)
    kw: dict[str, Any] = {"lr": 0.0}  # replaced before every step by set_lr
    if "betas" in cfg.info.options:
        kw.update(betas=tuple(cfg.betas), eps=cfg.eps)
    if "momentum" in cfg.info.options:
        kw.update(momentum=cfg.momentum)
    return cls(groups, **kw), lr


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every param group of ``opt``."""
    for g in opt.param_groups:
        g["lr"] = lr
