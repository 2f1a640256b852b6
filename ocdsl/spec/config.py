"""The typed run configuration of a spec: ``[train]`` (with its optimizer and phases),
``[data]`` and ``[eval]`` as frozen dataclasses, built once from the validated spec.

Every default lives here, as a dataclass field default (the JSON Schema's ``default`` of
each key is read from these fields, :func:`default_of`), and so does every list the schema
and the stages share: :data:`OPTIMIZERS` (name -> the options it takes) and
:data:`EVAL_OUTPUTS` (the ``[eval]`` keys that name model outputs). The metric names are in
:mod:`ocdsl.catalog`.

:func:`build_sections` converts, it does not check: its input has passed validation
(ocdsl/spec/validate.py), which is the one place a value is judged. The runner, the
benchmark and evaluation read these objects and never re-validate, so a spec that
``ocdsl validate`` accepts is not rejected by ``ocdsl run`` for a configuration reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

__all__ = ["OptimizerInfo", "OPTIMIZERS", "EVAL_OUTPUTS", "DEFAULT_BATCH_SIZE", "OptimizerSpec", "PhaseSpec",
           "TrainSpec", "DataSpec", "EvalSpec", "Sections", "build_sections", "default_of", "optimizer_spec"]

#: Examples per step in [train], and per evaluation batch in [eval], when not written.
DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class OptimizerInfo:
    """An optimizer a spec may name: ``torch.optim.<torch_name>`` and the options (besides
    ``name`` and ``lr``) it takes."""

    name: str
    torch_name: str
    options: tuple[str, ...]


#: name -> OptimizerInfo: the one list of optimizers (the schema's enum and its
#: per-optimizer options, and ocdsl/train/optim.py).
OPTIMIZERS: dict[str, OptimizerInfo] = {o.name: o for o in (
    OptimizerInfo("adam", "Adam", ("betas", "eps", "weight_decay")),
    OptimizerInfo("adamw", "AdamW", ("betas", "eps", "weight_decay")),
    OptimizerInfo("sgd", "SGD", ("momentum", "weight_decay")),
)}

#: [eval] key -> what the output it names holds: the one list of the eval output keys
#: (schema, validation, the unused-node analysis and evaluation read it).
EVAL_OUTPUTS: dict[str, str] = {
    "masks": "Output holding the per-slot masks (B K H W), e.g. composite.masks.",
    "reconstruction": "Output holding the reconstructed image, e.g. composite.image.",
    "attention": "Output holding per-slot attention over the image or a patch grid "
                 "(B K H W, or B K N with N = h * w patches), drawn in the figures.",
    "input_mask": "Output marking the parts of the input the model did not see (B H W, "
                  "or B N over a patch grid; 1 = hidden), drawn as the masked input.",
    "layers": "Output holding per-object layers (B K C H W, C = 3 RGB or 4 RGB + mask, "
              "in the data range), drawn one column per object, e.g. an AST-Seg "
              "spatial transformer's output.",
    "features": "Output holding per-slot features (B K D) that dataset-level metrics read "
                "(probe_ap max-pools them over the slots), e.g. object_proj.",
    "predictions": "Output holding per-slot property predictions (B K P: coordinates, class "
                   "scores, confidence last; the data's property layout) that the ap_* metrics "
                   "read, e.g. properties_pred.",
    "boxes": "Output holding one box per object layer (B K 4: x0, y0, x1, y1 in "
             "normalized image coordinates, -1 / +1 = the image edges), drawn on the "
             "input and on each layer.",
}


def _frozen_map(m: Mapping | None) -> Mapping:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class OptimizerSpec:
    """A ``[train] optimizer`` (or a phase's) table. ``lr``: a number, or an expression over
    step, [dims] and [schedules] (most often one schedule's name). ``keypath`` (where it was
    written) takes no part in equality: two phases with the same settings have equal ones."""

    name: str = "adam"
    lr: float | str = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    keypath: tuple = field(default=("train", "optimizer"), compare=False)

    @property
    def info(self) -> OptimizerInfo:
        return OPTIMIZERS[self.name]


@dataclass(frozen=True)
class PhaseSpec:
    """One ``[[train.phases]]`` entry with its defaults filled in: ``loss`` and ``optimizer``
    fall back to [train]'s; ``trainable`` is None when the phase lists ``frozen`` (or
    neither) instead."""

    index: int
    name: str
    steps: int
    loss: str | None
    optimizer: OptimizerSpec
    trainable: tuple[str, ...] | None = None
    frozen: tuple[str, ...] = ()
    fresh_optimizer: bool = True
    clock: str | None = None

    @property
    def keypath(self) -> tuple:
        return ("train", "phases", self.index)


@dataclass(frozen=True)
class TrainSpec:
    """``[train]``. ``loss``: train.loss, else the first [losses] entry (None without
    losses). ``time_limit`` None: no limit (0 as written); ``grad_clip`` 0: no clipping."""

    loss: str | None = None
    optimizer: OptimizerSpec = OptimizerSpec()
    batch_size: int = DEFAULT_BATCH_SIZE
    steps: int | None = None
    steps_per_epoch: float | None = None
    epoch_size: int | None = None
    log_every: int = 50
    checkpoint_every: int = 1000
    time_limit: float | None = None
    grad_clip: float = 0.0
    seed: int = 0
    precision: str = "fp32"
    compile: bool | str = "auto"
    num_workers: int = 0
    shuffle: bool = True
    phases: tuple[PhaseSpec, ...] = ()

    @property
    def total_steps(self) -> int | None:
        """Steps of the whole run as written: the phases' sum, else ``steps``."""
        return sum(p.steps for p in self.phases) if self.phases else self.steps

    @property
    def epoch_steps(self) -> float | None:
        """Steps in one epoch: ``steps_per_epoch``, or ``epoch_size / batch_size``; None
        when neither is set."""
        if self.steps_per_epoch is not None:
            return float(self.steps_per_epoch)
        if self.epoch_size is not None:
            return float(self.epoch_size) / float(self.batch_size)
        return None


@dataclass(frozen=True)
class DataSpec:
    """``[data]``: ``table`` is the table as written (a dataset reader reads its own keys
    from it); ``range`` the pixel value range images are scaled to; ``seed`` data.seed
    (None: derived from train.seed)."""

    table: Mapping[str, Any] = field(default_factory=lambda: _frozen_map(None))
    range: tuple[float, float] = (0.0, 1.0)
    seed: int | None = None


@dataclass(frozen=True)
class EvalSpec:
    """``[eval]``. ``every`` None: evaluate at the end only. ``outputs``: the
    :data:`EVAL_OUTPUTS` keys the spec sets -> the output each names. ``datasets``: the
    ``[[eval.datasets]]`` tables as written."""

    every: int | None = None
    outputs: Mapping[str, str] = field(default_factory=lambda: _frozen_map(None))
    schedules: Mapping[str, float] = field(default_factory=lambda: _frozen_map(None))
    metrics: tuple[str, ...] = ()
    success: str | None = None
    test_size: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = 0
    figure_images: int = 8
    datasets: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Sections:
    """The typed sections of one spec."""

    train: TrainSpec
    data: DataSpec
    eval: EvalSpec


def default_of(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (the schema's ``default``)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def _table(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


_NUMBER = {"int": int, "int | None": int, "float": float, "float | None": float}


def _given(cls: type, table: Mapping, keys: tuple[str, ...], **extra: Any) -> Any:
    """``cls`` with the keys ``table`` sets (the others keep their defaults) and ``extra``.
    A number takes its field's type (JSON Schema's integer admits 2.0, TOML's float)."""
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    kw = {k: _NUMBER.get(types[k], lambda v: v)(table[k]) for k in keys if table.get(k) is not None}
    return cls(**kw, **extra)


def optimizer_spec(table: Any, keypath: tuple) -> OptimizerSpec:
    """The typed optimizer of a validated optimizer table (None / absent: the default)."""
    t = _table(table)
    kw = {k: t[k] for k in ("name", "lr", "eps", "weight_decay", "momentum") if k in t}
    if "betas" in t:
        kw["betas"] = tuple(float(b) for b in t["betas"])
    for k in ("eps", "weight_decay", "momentum"):
        if k in kw:
            kw[k] = float(kw[k])
    return OptimizerSpec(**kw, keypath=keypath)


def _phases(raw: Any, loss: str | None, optimizer: OptimizerSpec) -> tuple[PhaseSpec, ...]:
    out = []
    for i, p in enumerate(raw if isinstance(raw, list) else []):
        p = _table(p)
        opt = optimizer_spec(p["optimizer"], ("train", "phases", i, "optimizer")) if "optimizer" in p else optimizer
        out.append(PhaseSpec(
            index=i, name=str(p.get("name", f"phase{i + 1}")), steps=int(p.get("steps", 1)),
            loss=p.get("loss") or loss, optimizer=opt,
            trainable=tuple(p["trainable"]) if "trainable" in p else None,
            frozen=tuple(p.get("frozen", ())),
            fresh_optimizer=bool(p.get("fresh_optimizer", default_of(PhaseSpec, "fresh_optimizer"))),
            clock=p.get("clock")))
    return tuple(out)


_TRAIN_KEYS = ("batch_size", "steps", "steps_per_epoch", "epoch_size", "log_every", "checkpoint_every",
               "grad_clip", "seed", "precision", "compile", "num_workers", "shuffle")


def _train(t: dict, loss_names: list[str]) -> TrainSpec:
    loss = t.get("loss") or (loss_names[0] if loss_names else None)
    optimizer = optimizer_spec(t.get("optimizer"), ("train", "optimizer"))
    time_limit = t.get("time_limit")
    return _given(TrainSpec, t, _TRAIN_KEYS, loss=loss, optimizer=optimizer,
                  time_limit=float(time_limit) if time_limit else None,
                  phases=_phases(t.get("phases"), loss, optimizer))


_EVAL_KEYS = ("every", "success", "test_size", "batch_size", "seed", "figure_images")


def _eval(ev: dict) -> EvalSpec:
    return _given(EvalSpec, ev, _EVAL_KEYS,
                  outputs=_frozen_map({k: ev[k] for k in EVAL_OUTPUTS if ev.get(k)}),
                  schedules=_frozen_map({k: float(v) for k, v in _table(ev.get("schedules")).items()}),
                  metrics=tuple(ev.get("metrics") or ()),
                  datasets=tuple(_frozen_map(d) for d in (ev.get("datasets") or ())))


def build_sections(data: Mapping[str, Any], loss_names: list[str]) -> Sections:
    """The typed sections of a validated spec's merged data. ``loss_names``: the [losses]
    names in order (the first is train.loss's default). Converts only: values that did not
    pass validation may give wrong objects, never an error message of their own."""
    d = _table(data.get("data"))
    rng = d.get("range")
    return Sections(
        train=_train(_table(data.get("train")), list(loss_names)),
        data=DataSpec(table=_frozen_map(d),
                      range=(float(rng[0]), float(rng[1])) if rng else default_of(DataSpec, "range"),
                      seed=d.get("seed")),
        eval=_eval(_table(data.get("eval"))))
