"""The optimizer from ``[train] optimizer`` and its per-step learning rate.

``optimizer = { name = "adam", lr = "lr", betas = [0.9, 0.999], eps = 1e-8, weight_decay = 0 }``

- ``name``: ``adam`` | ``adamw`` | ``sgd`` (``momentum``, ``nesterov`` for sgd);
- ``lr``: a number (constant) or the name of a ``[schedules]`` entry, read from
  ``model.schedules(step)`` and written into every param group before each step;
- ``adamw`` with ``weight_decay`` set decays only weight matrices and kernels: biases and
  other 1-D parameters (norm gains) go to a group with ``weight_decay = 0``, as in
  nanoGPT and the ViT/DINO recipes.

The optimizer is a string (``optimizer = "adam"``) too, meaning all defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ocdsl.errors import SpecError, did_you_mean

__all__ = ["OPTIMIZERS", "LrSource", "build_optimizer", "set_lr"]

OPTIMIZERS = ("adam", "adamw", "sgd")
_KEYS = {
    "adam": {"name", "lr", "betas", "eps", "weight_decay", "amsgrad"},
    "adamw": {"name", "lr", "betas", "eps", "weight_decay", "amsgrad"},
    "sgd": {"name", "lr", "momentum", "nesterov", "weight_decay", "dampening"},
}
_DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2}


@dataclass(frozen=True)
class LrSource:
    """Where the learning rate comes from: a constant or a schedule name."""

    value: float | None = None
    schedule: str | None = None

    def at(self, sched: dict[str, float]) -> float:
        return float(self.value if self.schedule is None else sched[self.schedule])


def _parse_lr(raw, spec, kp) -> LrSource:
    if isinstance(raw, bool):
        raise SpecError(spec.diag(kp, f"lr must be a number or a schedule name, got {raw!r}"))
    if isinstance(raw, (int, float)):
        return LrSource(value=float(raw))
    if isinstance(raw, str):
        try:
            return LrSource(value=float(raw))
        except ValueError:
            pass
        return LrSource(schedule=raw)
    raise SpecError(spec.diag(kp, f"lr must be a number or a schedule name, got {raw!r}"))


def build_optimizer(spec, module: torch.nn.Module, schedule_names, cfg=None,
                    kp: tuple = ("train", "optimizer")) -> tuple[torch.optim.Optimizer, LrSource]:
    """The optimizer over ``module``'s trainable parameters (``requires_grad``), and where
    its lr comes from.

    ``schedule_names``: the keys of ``model.schedules(step)``. ``cfg``: the optimizer table
    (default ``train.optimizer``; a phase passes its own with ``kp`` its key path). Raises
    SpecError (with the key's location) for an unknown optimizer or option, an lr naming no
    schedule, or nothing to train."""
    if cfg is None:
        cfg = spec.train.get("optimizer", "adam")
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    cfg = dict(cfg)
    name = str(cfg.get("name", "adam")).lower()
    if name not in OPTIMIZERS:
        raise SpecError(spec.diag(kp + ("name",), f"unknown optimizer '{name}' (one of: {', '.join(OPTIMIZERS)})",
                                  hint=did_you_mean(name, OPTIMIZERS)))
    unknown = sorted(set(cfg) - _KEYS[name])
    if unknown:
        raise SpecError([spec.diag(kp + (k,), f"unknown option '{k}' for optimizer '{name}'",
                                   hint=did_you_mean(k, _KEYS[name])) for k in unknown])
    lr = _parse_lr(cfg.get("lr", _DEFAULT_LR[name]), spec, kp + ("lr",))
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
    wd = float(cfg.get("weight_decay", 0.0))
    if name == "adamw" and wd:
        decay = [p for _, p in params if p.dim() >= 2]
        no_decay = [p for _, p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": wd},
                  {"params": no_decay, "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"params": [p for _, p in params], "weight_decay": wd}]

    lr0 = 0.0  # replaced before every step by set_lr
    if name in ("adam", "adamw"):
        kw = {"betas": tuple(float(b) for b in cfg.get("betas", (0.9, 0.999))),
              "eps": float(cfg.get("eps", 1e-8)), "amsgrad": bool(cfg.get("amsgrad", False))}
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        opt = cls(groups, lr=lr0, **kw)
    else:
        opt = torch.optim.SGD(groups, lr=lr0, momentum=float(cfg.get("momentum", 0.0)),
                              nesterov=bool(cfg.get("nesterov", False)),
                              dampening=float(cfg.get("dampening", 0.0)))
    return opt, lr


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr
