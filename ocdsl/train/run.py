"""The training run: ``ocdsl run``.

One call of :func:`train` is one session of a run directory (its files:
ocdsl/train/rundir.py). The pieces: the step, logging, evaluation and checkpoints are
the :class:`~ocdsl.train.trainer.Trainer`'s (ocdsl/train/trainer.py, which also says how
steps are counted); the data stream and evaluation sets ocdsl/train/stream.py; the random
streams ocdsl/train/rng.py; the model's inputs, outputs and precision
ocdsl/train/model_io.py; several processes ocdsl/train/distributed.py. This module checks
everything, then prepares the directory and runs the loop.

**Nothing is written until every check passed**: ``--steps``, the output directory, the
checkpoint to resume (read and validated field by field, spec and step count), the training
and evaluation data (paths, shapes against the model), the optimizer of the current phase,
the checkpoint's model and optimizer state against the model. A refused run leaves every
file where it was.

Random streams (ocdsl/train/rng.py): the caller builds the model under the ``"init"`` seed
(``ocdsl run`` does); :func:`train` seeds the global generators with the ``"noise"`` seed
before step 0 and reads the training data from the ``"data"`` seed (or ``data.seed``);
evaluation uses the ``"eval"`` seed. A checkpoint stores the generators' state and the data
seed, so a resume continues every stream exactly.

How a session ends (``summary["status"]``):

``completed`` / ``time_limit``
    checkpoint (if not already written at that step), final evaluation, curves, summary;
    :func:`train` returns the summary (exit status 0).
``interrupted`` (Ctrl-C)
    the first Ctrl-C finishes the current step, a second one abandons it; either way the
    checkpoint holds the last *completed* step (with the RNG and data position of that
    step, so a resume continues bit-identically), then the summary; raises
    :class:`TrainingInterrupted` (a KeyboardInterrupt, ``exit_code = 130``). No final
    evaluation.
``nonfinite``
    a NaN/inf loss (or gradient norm when ``grad_clip`` is set) at some step: nothing of that
    step is saved; ``checkpoint.pt`` stays the last good one; raises :class:`NonFiniteLoss`
    (a UserError: exit status 2, message names the step and the checkpoint).
``error``
    any other exception: the last completed step is checkpointed (when the state is
    consistent and there is one process), the summary written, and the exception re-raised.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ocdsl.errors import Diagnostic, UserError
from ocdsl.train.checkpoint import RESUME_REQUIRED, check_optimizer_fits, load_checkpoint, load_model_state
from ocdsl.train.distributed import LOCAL, Dist, check_batch
from ocdsl.train.interrupt import StopGuard
from ocdsl.train.model_io import base_module, node_names
from ocdsl.train.phases import PhasePlan, plan_phases
from ocdsl.train.report import EventLog, MetricsLog, Progress, write_curves
from ocdsl.train.rundir import METRICS_NAME, check_out_dir, prepare_out_dir, print_summary
from ocdsl.train.rng import capture_rng, seed_everything, start_noise
from ocdsl.train.stream import eval_sets, make_train_loader, training_data
from ocdsl.train.trainer import (SCHED_PREFIX, NonFinite, NonFiniteLoss, Trainer, TrainingInterrupted,
                                 enter_phase)

__all__ = ["train", "resolve_device", "seed_everything", "TrainingInterrupted", "NonFiniteLoss",
           "plan_run", "enter_phase", "SCHED_PREFIX"]


def resolve_device(gpu: bool) -> str:
    """``"cuda"`` for ``--gpu`` (UserError where CUDA is unavailable), else ``"cpu"``."""
    if not gpu:
        return "cpu"
    if not torch.cuda.is_available():
        raise UserError(Diagnostic(
            "--gpu: no CUDA device is available (torch.cuda.is_available() is False"
            + ("; this torch is a CPU-only build)" if torch.version.cuda is None else ")"),
            file="ocdsl",
            hint="drop --gpu to train on the CPU"))
    return "cuda"


def plan_run(spec, model: torch.nn.Module, steps: int | None = None) -> PhasePlan:
    """What ``ocdsl run`` makes of the spec's typed ``[train]`` before anything else: the
    phase plan of ``model``'s nodes over the run's length (``steps``: ``--steps``, else the
    spec's). The spec is not judged again (validation did); raises UserError for a
    ``--steps`` below 1 or below the number of phases, and SpecError for a spec that states
    no length (no [train] steps or phases) run without ``--steps``."""
    if steps is not None and int(steps) < 1:
        raise UserError(Diagnostic(f"--steps must be >= 1, got {steps}", file="ocdsl"))
    return plan_phases(spec, node_names(base_module(model)), steps)


def train(spec, model: torch.nn.Module, *, device: str | torch.device = "cpu", out_dir: Path,
          steps: int | None = None, resume: Path | None = None, torch_compile: bool = False,
          progress: bool = True, allow_spec_mismatch: bool = False, overwrite: bool = False,
          model_source: str | None = None, dist: Dist = LOCAL) -> dict:
    """Train ``model`` (a generated module, docs/internals.md) as ``spec`` says.

    Args:
        spec: the loaded Spec; its typed ``spec.train``, ``spec.data_cfg`` and ``spec.eval_cfg``
            (ocdsl/spec/config.py) are read as they are: validation judged them.
        model: the module; if it is already ``torch.compile``'d its ``_orig_mod`` is what is
            optimised and saved.
        device: ``"cpu"`` or ``"cuda"`` (see :func:`resolve_device`).
        out_dir: the run directory (created once every check passed). A fresh run refuses a
            directory that already holds one unless ``overwrite``.
        steps: total steps to reach; overrides ``train.steps``.
        resume: a run directory (or its checkpoint.pt) to continue from; ``out_dir`` may be
            the same directory (appends) or a new one (gets the history copied).
        torch_compile: run the training forward through ``torch.compile(model)``.
        progress: show a tqdm bar when stderr is a terminal (plain log lines otherwise).
        allow_spec_mismatch: resume from a checkpoint whose spec hash differs (a warning).
        overwrite: start afresh in a directory that holds a run.
        model_source: the generated module's source, written as ``model.py`` in the run.
        dist: this process's place among several (ocdsl/train/distributed.py).

    Returns:
        the summary (also in ``out_dir/summary.json``).

    Raises:
        UserError / SpecError: a bad ``steps``, data, model or checkpoint problems (exit 2).
        NonFiniteLoss (a UserError): the loss became NaN/inf (exit 2).
        TrainingInterrupted (a KeyboardInterrupt): Ctrl-C, after saving (exit 130).
    """
    out_dir = Path(out_dir)
    resume = Path(resume) if resume is not None else None
    plan = plan_run(spec, model, steps)
    check_batch(spec, dist.world)
    check_out_dir(out_dir, resume, overwrite)
    state, ckpt_file = None, None
    if resume is not None:
        state, ckpt_file = load_checkpoint(resume, spec=spec, allow_spec_mismatch=allow_spec_mismatch,
                                           require=RESUME_REQUIRED)
        if int(state["step"]) > plan.total:
            raise UserError(Diagnostic(
                f"the checkpoint is at step {state['step']}, past the {plan.total} steps to reach",
                file=str(ckpt_file), hint="pass --steps with a larger total"))
    data = training_data(spec, state)
    sets = eval_sets(spec) if dist.main else []

    tr = Trainer(spec, model, device=str(device), plan=plan, total=plan.total, torch_compile=torch_compile,
                 dist=dist)
    tr.base.to(device)
    tr.sets, tr.out_dir, tr.data_seed = sets, out_dir, data.recorded_seed
    tr.enter(plan.at(int(state["step"]) if state is not None else 0))
    if plan.explicit:
        tr.phases_info = [{"name": p.name, "start": p.start, "steps": p.steps, "loss": p.loss} for p in plan.phases]
    if state is not None:
        _load_state(tr, state, ckpt_file)

    # every check passed: from here on the run writes
    say = _open_outputs(tr, spec, state, ckpt_file, overwrite, model_source, progress)
    keys = tuple(dict.fromkeys((*tr.inputs_names, "image", "mask")))
    stream = make_train_loader(data.dataset, batch_size=spec.train.batch_size, seed=data.stream_seed,
                               start=tr.data_position, keys=keys, num_workers=spec.train.num_workers,
                               shuffle=spec.train.shuffle, pin_memory=str(device).startswith("cuda"),
                               rank=dist.rank, world=dist.world)
    if plan.explicit:
        say(plan.describe())
    start_noise(spec.train.seed, state, dist.rank)
    if state is not None:
        say(f"resuming {spec.name} from {ckpt_file} at step {tr.step}/{plan.total}")
    tr.rng = capture_rng()  # the RNG state after tr.step completed steps
    tr.t0 = time.monotonic()  # the session's clock (train.time_limit) starts with the first step
    try:
        return _session(tr, stream)
    finally:
        if tr.bar is not None:
            tr.bar.close()
        for log in tr.logs:
            log.close()


def _open_outputs(tr: Trainer, spec, state, ckpt_file, overwrite: bool, model_source, progress: bool):
    """Rank 0: the run directory, metrics.jsonl and TensorBoard logs (a resume into a new
    directory gets the history copied), the progress display -> how to print a message
    (nothing on the other ranks)."""
    if not tr.dist.main:
        return lambda m: None
    out_dir = tr.out_dir
    prepare_out_dir(out_dir, spec, fresh=state is None, overwrite=overwrite, model_source=model_source, say=print)
    tr.logs = [MetricsLog(out_dir / METRICS_NAME), EventLog(out_dir)]
    if state is not None:
        if ckpt_file.parent.resolve() != out_dir.resolve():
            for row in tr.history:
                tr.write(row)
        tr.write({"step": tr.step, "event": "resume", "checkpoint": str(ckpt_file)})
    tr.bar = Progress(tr.total, tr.step, progress)
    tr.say = tr.bar.message
    return tr.say


def _load_state(tr: Trainer, state: dict, ckpt_file: Path) -> None:
    """Put a checkpoint's model, optimizer and counters into ``tr`` (before anything is
    written: a state that does not fit is a UserError naming the file)."""
    load_model_state(tr.base, state["model"], ckpt_file)
    # The saved optimizer state belongs to the phase that wrote it: the current one, or, for
    # a checkpoint at a phase boundary, the previous one (kept where this phase keeps it).
    saved_phase, phase = int(state.get("phase", 0)), tr.phase
    if saved_phase == phase.index or (saved_phase == phase.index - 1 and not phase.fresh_optimizer):
        try:
            tr.opt.load_state_dict(state["optimizer"])
        except (ValueError, KeyError, RuntimeError, TypeError, IndexError) as e:
            raise UserError(Diagnostic(f"the optimizer state does not fit: {e}", file=str(ckpt_file),
                                       hint="the [train] optimizer changed since the checkpoint")) from None
        check_optimizer_fits(tr.opt, ckpt_file)
    tr.step = tr.start_step = int(state["step"])
    tr.history = list(state.get("history", []))
    tr.elapsed_before = float(state.get("elapsed_s", 0.0))
    tr.images_seen = int(state.get("images_seen", 0))
    tr.resumed_from = str(ckpt_file)
    if ckpt_file.parent.resolve() == tr.out_dir.resolve():
        tr.ckpt_step = tr.step
    tr.data_position = int(state.get("data_position", tr.step * tr.cfg.batch_size))


def _stop_reason(tr: Trainer) -> tuple[str, str | None] | None:
    """Whether to stop before the next step (Ctrl-C, time limit), the same in every process."""
    limit = tr.cfg.time_limit
    interrupted, time_up = tr.dist.any(tr.guard.requested,
                                       limit is not None and time.monotonic() - tr.t0 >= limit)
    if interrupted:
        return "interrupted", None
    if time_up:
        return "time_limit", f"time limit of {limit:g} s reached at step {tr.step}"
    return None


def _loop(tr: Trainer, stream) -> tuple[str, str | None]:
    """Steps until the total, a stop or an exception; logs, evaluates and checkpoints."""
    cfg, plan, total, every = tr.cfg, tr.plan, tr.total, tr.spec.eval_cfg.every
    while tr.step < total:
        stop = _stop_reason(tr)
        if stop is not None:
            if stop[1]:
                tr.say(stop[1])
            return stop
        if plan.at(tr.step) is not tr.phase:
            tr.flush_log()  # a row never mixes two phases' losses
            if tr.ckpt_step != tr.step:  # a resume at the boundary starts the next phase
                tr.checkpoint()
            tr.enter(plan.at(tr.step), keep=True)
            tr.write({"step": tr.step, "event": "phase", "phase": tr.phase.name, "steps": tr.phase.steps})
            tr.say(f"phase '{tr.phase.name}' (step {tr.step}, {tr.phase.steps} steps)")
        tr.train_step(stream)
        if tr.step % cfg.log_every == 0 or tr.step == total or tr.step == tr.start_step + 1:
            tr.flush_log()
        if every and tr.step % every == 0 and tr.step < total:
            tr.evaluate()
        if cfg.checkpoint_every and tr.step % cfg.checkpoint_every == 0 and tr.step < total:
            tr.checkpoint()
            tr.write_summary("running")
    return "completed", None


def _session(tr: Trainer, stream) -> dict:
    """The loop under a Ctrl-C guard, then the ending its status calls for (module docstring)."""
    status, message, failure = "completed", None, None
    guard = tr.guard = StopGuard(tr.say)
    with guard:
        try:
            status, message = _loop(tr, stream)
        except KeyboardInterrupt:
            status = "interrupted"
        except NonFinite as e:
            status, failure = "nonfinite", e
        except BaseException as e:
            status, failure = "error", e
        guard.mode = "ignore"
        tr.flush_log()  # steps since the last row (a stop between log_every boundaries)
        if tr.bar is not None:
            tr.bar.close()
        if status in ("completed", "time_limit"):
            return _finish(tr, status, message)
        if status == "interrupted":
            _interrupted(tr, message)
        if status == "nonfinite":
            _nonfinite(tr, failure)
        _error(tr, failure)


def _finish(tr: Trainer, status: str, message: str | None) -> dict:
    """completed / time_limit: checkpoint, final evaluation (Ctrl-C may cut it short: the
    checkpoint is safe), curves, summary."""
    try:
        if tr.ckpt_step != tr.step:
            tr.checkpoint()
        if tr.last_eval_step != tr.step:
            tr.guard.mode = "immediate"
            tr.evaluate()
        if tr.dist.main:
            duplicate = None if tr.plan.explicit else tr.phase.loss
            tr.figures += [f for f in write_curves(tr.out_dir, tr.history, tr.spec, duplicate, tr.say)
                           if f not in tr.figures]
    except KeyboardInterrupt:
        status = "interrupted"
        message = "interrupted during the final evaluation"
    tr.guard.mode = "ignore"
    if status == "time_limit":
        tr.write({"step": tr.step, "event": "time_limit", "time_limit": tr.cfg.time_limit})
    summary = tr.write_summary(status, message)
    if tr.dist.main:
        print_summary(summary, list(tr.spec.eval_cfg.metrics))
    if status == "interrupted":
        raise TrainingInterrupted(summary)
    return summary


def _interrupted(tr: Trainer, message: str | None) -> None:
    if tr.consistent and tr.ckpt_step != tr.step:
        tr.checkpoint()
    message = message or f"interrupted; checkpoint at step {tr.ckpt_step}"
    tr.write({"step": tr.step, "event": "interrupted", "checkpoint_step": tr.ckpt_step})
    summary = tr.write_summary("interrupted", message)
    if tr.dist.main:
        print_summary(summary, list(tr.spec.eval_cfg.metrics))
        print(f"resume with: --resume {tr.out_dir}", flush=True)
    raise TrainingInterrupted(summary)


def _nonfinite(tr: Trainer, e: NonFinite) -> None:
    terms_txt = ", ".join(f"{k}={v:.4g}" for k, v in e.terms.items())
    where = (f"{tr.ckpt_path} (step {tr.ckpt_step}) is kept as the last good checkpoint"
             if tr.ckpt_step is not None else "no checkpoint had been written yet")
    message = (f"step {e.step}: the {e.what} is not finite ({terms_txt}); training stopped, "
               f"nothing from that step was saved; {where}")
    tr.write({"step": e.step, "event": "nonfinite", "what": e.what, **e.terms})
    summary = tr.write_summary("nonfinite", message)
    raise NonFiniteLoss(Diagnostic(
        message, file=str(tr.spec.path),
        hint="lower the learning rate, set train.grad_clip, or check the losses; "
             + (f"--resume {tr.out_dir} continues from the last good checkpoint"
                if tr.ckpt_step is not None else "")), summary)


def _error(tr: Trainer, failure: BaseException) -> None:
    """Keep what the completed steps achieved (one process: with several, a collective
    save could wait on a process that failed), then re-raise."""
    last = tr.ckpt_step if tr.ckpt_step is not None else tr.start_step
    if tr.consistent and tr.dist.world == 1 and tr.step > last:
        try:
            tr.checkpoint()
        except Exception as save_err:  # report, but the original error matters more
            print(f"warning: could not save a checkpoint after the error: {save_err}", file=sys.stderr)
    tr.write({"step": tr.step, "event": "error", "error": f"{type(failure).__name__}: {failure}"})
    tr.write_summary("error", f"{type(failure).__name__}: {failure}")
    raise failure
