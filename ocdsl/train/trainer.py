"""The Trainer: one session's training state and what it does at each step.

- :meth:`Trainer.update` -- the training step: schedules, lr, forward (in the spec's
  precision), the phase's loss, backward, gradient clipping, optimizer update. ``ocdsl
  run`` (:meth:`Trainer.train_step`) and ``ocdsl bench`` (ocdsl/train/bench.py) both step
  through it; it keeps no count, so bench can repeat one step.
- :meth:`Trainer.train_step` -- a step of the run: the update, then its bookkeeping (step,
  images, data position, RNG state) as one section a second Ctrl-C does not cut in half.
- :meth:`Trainer.log` -- accumulate each term since the last row; :meth:`Trainer.flush_log`
  writes the row (metrics.jsonl, TensorBoard, the progress line).
- :meth:`Trainer.evaluate` -- the evaluation sets, their rows and figures.
- :meth:`Trainer.checkpoint` -- the last good state (ocdsl/train/checkpoint.py).
- :meth:`Trainer.summary` -- the content of summary.json.

Steps are counted in optimizer updates. The update that takes the run from ``s`` to
``s + 1`` completed steps sees ``model.schedules(s, ..., total_steps=steps)`` (also handed to
``model.set_schedules`` before the forward, where the generated module has one) and
``losses(..., step=s)``, so ``min(1, step / warmup)`` starts at 0 as in the papers; rows,
evaluations and checkpoints are labelled with the number of completed steps. A logged row
holds, besides the mean of each loss term since the previous row, ``lr`` and every
schedule's value (``"sched/<name>"``) at the row's last update.

With several processes (``dist``, ocdsl/train/distributed.py) the forward runs through
DistributedDataParallel, the logged terms are averaged over the processes, and only rank 0
writes files and evaluates.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ocdsl.errors import Diagnostic, SpecError, UserError
from ocdsl.train.checkpoint import CHECKPOINT_NAME, atomic_write_json, save_checkpoint
from ocdsl.train.distributed import LOCAL, Dist
from ocdsl.train.evaluate import check_eval_outputs, eval_message, eval_rows, evaluate_model
from ocdsl.train.model_io import (base_module, forward, is_compiled, model_inputs, node_names, resolve_precision,
                                  schedules_at)
from ocdsl.train.optim import build_optimizer, set_lr
from ocdsl.train.phases import Phase, PhasePlan, apply_phase
from ocdsl.train.report import eval_rows_last
from ocdsl.train.rng import capture_rng

__all__ = ["Trainer", "StepResult", "NonFinite", "TrainingInterrupted", "NonFiniteLoss", "enter_phase",
           "SCHED_PREFIX"]

_ROW_KEYS = frozenset({"step", "phase", "loss", "lr", "grad_norm", "images_per_s", "elapsed_s", "split", "count",
                       "event"})
#: Logged rows hold each schedule's value as ``SCHED_PREFIX + <name>`` (``"sched/lr"``).
SCHED_PREFIX = "sched/"


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run after its checkpoint and summary were written.
    The CLI exits with ``exit_code`` (130)."""

    exit_code = 130

    def __init__(self, summary: dict):
        super().__init__(f"interrupted at step {summary.get('step')}")
        self.summary = summary


class NonFiniteLoss(UserError):
    """The loss became NaN/inf; the run stopped keeping the last good checkpoint."""

    def __init__(self, diagnostic: Diagnostic, summary: dict):
        super().__init__(diagnostic)
        self.summary = summary


class NonFinite(Exception):
    """A step's loss (or gradient norm) was not finite: nothing of the step is kept."""

    def __init__(self, step: int, what: str, terms: dict[str, float]):
        super().__init__(f"step {step}: the {what} is not finite")
        self.step, self.what, self.terms = step, what, terms


@dataclass
class StepResult:
    loss: torch.Tensor           # the phase's loss (this process's batch)
    values: dict[str, float]     # every term, averaged over the processes
    lr: float
    grad_norm: float | None
    sched: dict


def enter_phase(spec, base: torch.nn.Module, ph: Phase, schedule_names, prev=None) -> tuple:
    """Freeze / unfreeze ``base``'s nodes for phase ``ph`` and give its ``(optimizer,
    lr source)``: a new one, or ``prev`` (the previous phase's) where the phase keeps it
    (validation made sure the two phases have the same optimizer and frozen nodes). Raises
    SpecError where the model's trainable parameters still differ (a module shared across
    the frozen / trainable line)."""
    apply_phase(base, ph, node_names(base))
    if prev is not None and not ph.fresh_optimizer:
        kept = {id(p) for g in prev[0].param_groups for p in g["params"]}
        now = {id(p) for p in base.parameters() if p.requires_grad}
        if kept != now:
            raise SpecError(spec.diag(("train", "phases", ph.index, "fresh_optimizer"),
                                      f"phase '{ph.name}' keeps the previous phase's optimizer but the model "
                                      f"trains other parameters",
                                      hint="drop fresh_optimizer = false (a new optimizer), or train the "
                                           "same nodes"))
        return prev
    return build_optimizer(spec, base, schedule_names, ph.optimizer)


class Trainer:
    """One session of training ``model`` as ``spec`` says (module docstring).

    ``plan``: the phase plan (ocdsl/train/phases.py); ``total``: the steps to reach (None:
    the schedules use the spec's own length, as bench does); ``torch_compile``: run the
    forward through ``torch.compile`` (a model compiled already stays as it is)."""

    def __init__(self, spec, model: torch.nn.Module, *, device: str, plan: PhasePlan, total: int | None,
                 torch_compile: bool = False, dist: Dist = LOCAL):
        self.spec, self.cfg, self.plan, self.total = spec, spec.train, plan, total
        self.device, self.dist = device, dist
        self.base = base_module(model)
        self.module = torch.compile(self.base) if self.base is model and torch_compile else model
        self.fwd = self.module  # DistributedDataParallel(module) with several processes (enter)
        self.compiled = is_compiled(self.module)
        self.inputs_names = tuple(self.base.INPUTS)
        self.nodes = node_names(self.base)
        self.rng_range = spec.data_cfg.range
        self.sched_names = list(self.base.schedules(0))
        self.set_schedules = getattr(self.base, "set_schedules", None)
        self.phase: Phase | None = None
        self.opt, self.lr_src, self.params = None, None, []
        self.checked_outputs = False
        self.guard = None                  # a StopGuard while the loop runs
        self.consistent = True             # False only while the optimizer updates the parameters
        # bookkeeping (what a checkpoint keeps)
        self.step = self.start_step = 0
        self.images_seen = self.data_position = 0
        self.rng: dict | None = None       # the RNG state after ``step`` completed steps
        self.data_seed: int | None = None  # seed of the training data stream (rng.data_seeds)
        self.history: list[dict] = []
        self.elapsed_before = 0.0
        self.session_images, self.session_train_s = 0, 0.0
        self.t0 = time.monotonic()
        # files (rank 0 of a run; none for bench)
        self.out_dir: Path | None = None
        self.logs: list = []               # MetricsLog, EventLog: each has .write(row)
        self.bar = None                    # ocdsl.train.report.Progress
        self.say = print
        self.sets: list = []
        self.ckpt_step: int | None = None
        self.last_eval_step: int | None = None
        self.resumed_from: str | None = None
        self.figures: list[str] = []
        self.phases_info: list[dict] | None = None
        self._acc: dict[str, Any] = {}

    # ------------------------------------------------------------------------ phases

    def enter(self, phase: Phase, keep: bool = False) -> None:
        """Make ``phase`` current: its frozen nodes and its optimizer (the previous one
        where ``keep`` and the phase keeps it)."""
        prev = (self.opt, self.lr_src) if keep and self.opt is not None else None
        self.opt, self.lr_src = enter_phase(self.spec, self.base, phase, self.sched_names, prev)
        self.params = [p for g in self.opt.param_groups for p in g["params"]]
        self.phase = phase
        if self.dist.world > 1:  # DDP reduces the gradients of the parameters trainable now
            ids = None if str(self.device).startswith("cpu") else [torch.device(self.device).index]
            self.fwd = torch.nn.parallel.DistributedDataParallel(self.module, device_ids=ids, static_graph=True)

    # ------------------------------------------------------------------------ the step

    def update(self, arg, inputs: dict, at: int, commit=None) -> StepResult:
        """One optimizer update of the current phase from step ``at`` on the batch ``arg``
        (the forward's argument) / ``inputs`` (the losses' inputs); ``commit()``, where
        given, runs right after the update in the same critical section. Raises :class:`NonFinite`
        (nothing updated) for a non-finite loss or gradient norm, SpecError for a phase loss
        the model does not compute or eval outputs it lacks."""
        phase, clock = self.phase, self.phase.clock(at)
        sched = schedules_at(self.base, at, clock, self.total)
        if self.set_schedules is not None:
            self.set_schedules(sched)
        lr = self.lr_src.at(sched, at, clock, self.total)
        set_lr(self.opt, lr)
        outputs = forward(self.fwd, arg, self.device, self.cfg.precision)
        if not self.checked_outputs:
            check_eval_outputs(self.spec, outputs)
            self.checked_outputs = True
        terms = self.base.losses(inputs, outputs, sched, at)
        if phase.loss not in terms:
            raise SpecError(self.spec.diag(("train", "loss"), f"loss '{phase.loss}' is not among the "
                                           f"[losses]: {', '.join(terms)}"))
        loss = terms[phase.loss]
        names = list(terms)
        stacked = torch.stack([torch.as_tensor(terms[n]).detach().float().reshape(()).to(loss.device)
                               for n in names])
        vals = dict(zip(names, self.dist.mean(stacked).tolist()))
        if not math.isfinite(vals[phase.loss]):
            raise NonFinite(at + 1, f"loss '{phase.loss}'", vals)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = None
        if self.cfg.grad_clip:
            gn = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip))
            if not math.isfinite(gn):
                raise NonFinite(at + 1, "gradient norm", dict(vals, grad_norm=gn))
        with self._critical():
            self.consistent = False
            self.opt.step()
            if commit is not None:
                commit()
        return StepResult(loss, vals, lr, gn, sched)

    def _critical(self):
        return self.guard.critical() if self.guard is not None else contextlib.nullcontext()

    def train_step(self, data) -> StepResult:
        """The update from the current step on the next batch of ``data`` (an iterator),
        then the bookkeeping (inside the same critical section as the optimizer update)."""
        t_step = time.perf_counter()
        batch = next(data)
        arg, inputs = model_inputs(batch, self.inputs_names, self.rng_range, self.device)
        res = self.update(arg, inputs, self.step, commit=self._advance)
        dt = time.perf_counter() - t_step
        self.session_images += self.cfg.batch_size
        self.session_train_s += dt
        self.log(res, dt)
        return res

    def _advance(self) -> None:
        b = self.cfg.batch_size
        self.step += 1
        self.images_seen += b
        self.data_position += b
        self.rng = capture_rng()
        self.consistent = True

    # ------------------------------------------------------------------------ logging

    def write(self, row: dict) -> None:
        for log in self.logs:
            log.write(row)

    def log(self, res: StepResult, dt: float) -> None:
        """Add one step's terms to the sums since the last row."""
        acc = self._acc
        sums = acc.setdefault("sums", {})
        for n, v in res.values.items():
            sums[n] = sums.get(n, 0.0) + v
        acc["n"] = acc.get("n", 0) + 1
        acc["images"] = acc.get("images", 0) + self.cfg.batch_size
        acc["time"] = acc.get("time", 0.0) + dt
        acc["lr"], acc["sched"] = res.lr, res.sched
        if res.grad_norm is not None:
            acc["grad_norm"] = max(acc.get("grad_norm", res.grad_norm), res.grad_norm)
        if self.bar is not None:
            self.bar.step(res.values[self.phase.loss], self.cfg.batch_size / dt if dt > 0 else None)

    def flush_log(self) -> None:
        """One metrics.jsonl row: the mean of each term over the steps since the last row."""
        acc = self._acc
        if not acc.get("n"):
            return
        n, sums, phase = acc["n"], acc["sums"], self.phase
        row: dict[str, Any] = {"step": self.step}
        if self.plan.explicit:
            row["phase"] = phase.name
        row["loss"] = sums[phase.loss] / n
        for name, term_sum in sums.items():  # every term; a name clashing with a row key gets "loss_"
            if name == phase.loss == "loss":
                continue
            row[f"loss_{name}" if name in _ROW_KEYS else name] = term_sum / n
        row["lr"] = acc["lr"]
        for name, value in acc["sched"].items():  # every schedule at the row's last update
            row[SCHED_PREFIX + name] = float(value) if isinstance(value, (int, float)) else value
        if "grad_norm" in acc:
            row["grad_norm"] = acc["grad_norm"]
        row["images_per_s"] = acc["images"] / acc["time"] if acc["time"] > 0 else None
        row["elapsed_s"] = self.elapsed
        self.history.append(row)
        self.write(row)
        if self.bar is not None:
            self.bar.log(row)
        acc.clear()

    # ------------------------------------------------------------------------ evaluation

    def evaluate(self) -> None:
        """Evaluate on every set at the current step (rank 0; the others wait), append the
        rows and figures."""
        if self.dist.main:
            clock = self.plan.at(self.step - 1 if self.step else 0).clock(self.step)
            results = evaluate_model(self.spec, self.base, self.sets, device=self.device, step=self.step,
                                     figures_dir=self.out_dir, message=self.say, clock=clock,
                                     total_steps=self.total)
            apply_phase(self.base, self.phase, self.nodes)  # evaluation left every node in train mode
            for row in eval_rows(results):
                self.history.append(row)
                self.write(row)
            for log in self.logs:
                if hasattr(log, "figures"):
                    log.figures(results)
            self.figures += [r["figure"] for r in results.values() if r["figure"]]
            self.say(eval_message(results))
        self.last_eval_step = self.step
        self.dist.barrier()

    # ------------------------------------------------------------------------ checkpoint and summary

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.t0)

    @property
    def ckpt_path(self) -> Path:
        return Path(self.out_dir or ".") / CHECKPOINT_NAME

    def checkpoint(self) -> None:
        """Save the state after ``step`` completed steps (rank 0 writes; every rank's RNG
        state goes in)."""
        rngs = self.dist.gather(self.rng)
        if self.dist.main:
            state = {
                "spec_name": self.spec.name, "spec_hash": self.spec.source_hash,
                "step": self.step, "phase": self.phase.index, "data_position": self.data_position,
                "batch_size": self.cfg.batch_size,
                "model": self.base.state_dict(), "optimizer": self.opt.state_dict(), "rng": self.rng,
                "steps": self.total, "data_seed": self.data_seed,
                "history": self.history, "elapsed_s": self.elapsed, "images_seen": self.images_seen,
                "torch_version": str(torch.__version__),
            }
            if self.dist.world > 1:
                state["rng_ranks"] = rngs[1:]
            save_checkpoint(self.ckpt_path, state)
        self.ckpt_step = self.step

    def summary(self, status: str, message: str | None = None) -> dict:
        losses = [r for r in self.history if "loss" in r and "split" not in r and "event" not in r]
        out = Path(self.out_dir or ".")
        return {
            "spec": self.spec.name, "spec_hash": self.spec.source_hash,
            "spec_path": str(self.spec.path), "status": status, "message": message,
            "step": self.step, "steps": self.total, "batch_size": self.cfg.batch_size,
            "seed": self.cfg.seed, "data_seed": self.data_seed,
            "device": str(self.device), "torch_compile": self.compiled,
            "precision": resolve_precision(self.cfg.precision, str(self.device)),
            "wall_s": time.monotonic() - self.t0, "elapsed_s": self.elapsed,
            "images_seen": self.images_seen,
            "images_per_s": (self.session_images / self.session_train_s) if self.session_train_s else None,
            "final_loss": losses[-1]["loss"] if losses else None,
            "eval": eval_rows_last(self.history),
            "out_dir": str(out),
            "checkpoint": str(self.ckpt_path) if self.ckpt_step is not None else None,
            "checkpoint_step": self.ckpt_step,
            "metrics": str(out / "metrics.jsonl"),
            "figures": list(self.figures),
            "resumed_from": self.resumed_from,
            "phases": self.phases_info,
            **({"processes": self.dist.world} if self.dist.world > 1 else {}),
        }

    def write_summary(self, status: str, message: str | None = None) -> dict:
        s = self.summary(status, message)
        if self.dist.main and self.out_dir is not None:
            atomic_write_json(self.out_dir / "summary.json", s)
        return s
