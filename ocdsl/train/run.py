"""The training run: ``ocdsl run``.

One call of :func:`train` is one session of a run directory::

    out_dir/
      checkpoint.pt        last good state (see checkpoint.py); the only file --resume needs
      metrics.jsonl        one row per logged step and per evaluated dataset (append-only)
      spec.resolved.json   the merged spec the run was started with
      summary.json         status, steps, times, final metrics, where things are
      figures/             step_<6-digit step>_<dataset>.png per evaluation, loss.png, metrics.png
                           (a panel per metric, a line per dataset), schedules.png,
                           <dataset>_masks_over_time.png (+ .npz: its data; see evaluate.py)

Steps are counted in optimizer updates. The update that takes the run from ``s`` to
``s + 1`` completed steps sees ``model.schedules(s, ..., total_steps=steps)`` (also handed to
``model.set_schedules`` before the forward, where the generated module has one: schedulable
op parameters such as a mask ratio) and ``losses(..., step=s)``, so
``min(1, step / warmup)`` starts at 0 as in the papers; rows, evaluations and checkpoints
are labelled with the number of completed steps. ``steps`` is the total to reach (``--steps``
or the spec's): resuming a run at step 1000 with ``steps = 3000`` does 2000 more updates;
schedules see it as ``total_steps``. A logged row holds, besides the mean of each loss term
since the previous row, ``lr`` and every schedule's value (``"sched/<name>"``) at the row's
last update.

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
    consistent), the summary written, and the exception re-raised.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ocdsl.errors import Diagnostic, SpecError, UserError
from ocdsl.train import _deps
from ocdsl.train.checkpoint import CHECKPOINT_NAME, atomic_write_json, load_checkpoint, load_model_state, save_checkpoint
from ocdsl.train.evaluate import (check_data_fits, check_eval_outputs, dataset_cfg, eval_message, eval_rows,
                                  eval_sets, evaluate_model)
from ocdsl.train.interrupt import StopGuard
from ocdsl.train.optim import build_optimizer, set_lr
from ocdsl.train.phases import Phase, PhasePlan, apply_phase, plan_phases
from ocdsl.train.report import MetricsLog, Progress, eval_rows_last, fmt_duration, summary_table
from ocdsl.train.rng import NOISE, capture_rng, data_seeds, restore_rng, seed_everything, seed_for
from ocdsl.train.stream import (forward, is_compiled, make_train_loader, model_inputs, resolve_precision,
                                schedules_at)

__all__ = ["train", "resolve_device", "seed_everything", "TrainingInterrupted", "NonFiniteLoss",
           "plan_run", "enter_phase", "SCHED_PREFIX"]


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


class _NonFinite(Exception):
    def __init__(self, step: int, what: str, terms: dict[str, float]):
        self.step, self.what, self.terms = step, what, terms


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


# ---------------------------------------------------------------------------- configuration

def plan_run(spec, model: torch.nn.Module, steps: int | None = None) -> PhasePlan:
    """What ``ocdsl run`` makes of the spec's typed ``[train]`` before anything else: the
    phase plan of ``model``'s nodes over the run's length (``steps``: ``--steps``, else the
    spec's). The spec is not judged again (validation did); raises UserError for a
    ``--steps`` below 1 or below the number of phases, and SpecError for a spec that states
    no length (no [train] steps or phases) run without ``--steps``."""
    if steps is not None and int(steps) < 1:
        raise UserError(Diagnostic(f"--steps must be >= 1, got {steps}", file="ocdsl"))
    base = getattr(model, "_orig_mod", model)
    return plan_phases(spec, _node_names(base), steps)


def enter_phase(spec, base: torch.nn.Module, ph: Phase, schedule_names, prev=None) -> tuple:
    """Freeze / unfreeze ``base``'s nodes for phase ``ph`` and give its ``(optimizer,
    lr source)``: a new one, or ``prev`` (the previous phase's) where the phase keeps it
    (validation made sure the two phases have the same optimizer and frozen nodes). Raises
    SpecError where the model's trainable parameters still differ (a module shared across
    the frozen / trainable line)."""
    apply_phase(base, ph, _node_names(base))
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


def _node_names(base: torch.nn.Module) -> tuple[str, ...]:
    return tuple(getattr(base, "NODES", ()) or (n for n, _ in base.named_children()))


# ---------------------------------------------------------------------------- the run

class _Run:
    """State of one session plus the files it writes."""

    def __init__(self, spec, steps: int, out_dir: Path, device, torch_compile: bool):
        self.spec, self.cfg, self.steps, self.out_dir = spec, spec.train, steps, out_dir
        self.device, self.torch_compile = str(device), bool(torch_compile)
        self.step = 0
        self.start_step = 0
        self.history: list[dict] = []
        self.elapsed_before = 0.0
        self.images_seen = 0
        self.data_position = 0  # training samples consumed from the stream
        self.session_images = 0
        self.session_train_s = 0.0
        self.t0 = time.monotonic()
        self.ckpt_path = out_dir / CHECKPOINT_NAME
        self.ckpt_step: int | None = None
        self.last_eval_step: int | None = None
        self.resumed_from: str | None = None
        self.figures: list[str] = []
        self.rng: dict | None = None
        self.data_seed: int | None = None  # seed of the training data stream (rng.data_seeds)
        self.phases: list[dict] | None = None  # [{name, start, steps}] of an explicit phase plan

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.t0)

    def save(self, base, opt, phase: int = 0) -> None:
        save_checkpoint(self.ckpt_path, {
            "spec_name": self.spec.name, "spec_hash": self.spec.source_hash,
            "step": self.step, "phase": phase, "data_position": self.data_position,
            "batch_size": self.cfg.batch_size,
            "model": base.state_dict(), "optimizer": opt.state_dict(), "rng": self.rng,
            "steps": self.steps, "data_seed": self.data_seed,
            "history": self.history, "elapsed_s": self.elapsed, "images_seen": self.images_seen,
            "torch_version": str(torch.__version__),
        })
        self.ckpt_step = self.step

    def summary(self, status: str, message: str | None = None) -> dict:
        losses = [r for r in self.history if "loss" in r and "split" not in r and "event" not in r]
        wall = time.monotonic() - self.t0
        return {
            "spec": self.spec.name, "spec_hash": self.spec.source_hash,
            "spec_path": str(self.spec.path), "status": status, "message": message,
            "step": self.step, "steps": self.steps, "batch_size": self.cfg.batch_size,
            "seed": self.cfg.seed, "data_seed": self.data_seed,
            "device": self.device, "torch_compile": self.torch_compile,
            "precision": resolve_precision(self.cfg.precision, str(self.device)),
            "wall_s": wall, "elapsed_s": self.elapsed,
            "images_seen": self.images_seen,
            "images_per_s": (self.session_images / self.session_train_s) if self.session_train_s else None,
            "final_loss": losses[-1]["loss"] if losses else None,
            "eval": eval_rows_last(self.history),
            "out_dir": str(self.out_dir),
            "checkpoint": str(self.ckpt_path) if self.ckpt_step is not None else None,
            "checkpoint_step": self.ckpt_step,
            "metrics": str(self.out_dir / "metrics.jsonl"),
            "figures": list(self.figures),
            "resumed_from": self.resumed_from,
            "phases": self.phases,
        }

    def write_summary(self, status: str, message: str | None = None) -> dict:
        s = self.summary(status, message)
        atomic_write_json(self.out_dir / "summary.json", s)
        return s


def _print_summary(s: dict, metric_names: list[str]) -> None:
    ips = f", {s['images_per_s']:.1f} images/s" if s.get("images_per_s") else ""
    print(f"\n{s['spec']}: {s['status']} at step {s['step']}/{s['steps']} in "
          f"{fmt_duration(s['wall_s'])} this session ({fmt_duration(s['elapsed_s'])} in all{ips}, {s['device']}, {s['precision']})")
    if s["eval"]:
        print(summary_table(s["eval"], metric_names))
    out = Path(s["out_dir"])
    files = []
    if s["checkpoint"]:
        files.append(f"{CHECKPOINT_NAME} (step {s['checkpoint_step']})")
    files += ["metrics.jsonl", "summary.json", "spec.resolved.json"]
    if (out / "figures").is_dir():
        n = len(list((out / "figures").glob("*.png")))
        files.append(f"figures/ ({n} PNG)")
    print(f"outputs: {out}/  " + ", ".join(files), flush=True)


def _check_out_dir(out_dir: Path, resume: Path | None, overwrite: bool) -> None:
    """A fresh run never replaces another run's checkpoint (unless ``overwrite``)."""
    if overwrite:
        return
    if resume is not None:
        rdir = resume if resume.is_dir() else resume.parent
        try:
            if rdir.resolve() == out_dir.resolve():
                return
        except OSError:
            pass
    if (out_dir / CHECKPOINT_NAME).exists():
        raise UserError(Diagnostic(
            f"{out_dir} already holds a run ({CHECKPOINT_NAME}); it will not be overwritten",
            file=str(out_dir),
            hint=f"continue it with --resume {out_dir}, or choose another output directory"))


def _set_aside_old_metrics(out_dir: Path, say) -> None:
    """metrics.jsonl of an earlier attempt that never checkpointed (it failed early):
    kept as metrics.old-N.jsonl rather than mixed with the new run's rows."""
    old = out_dir / "metrics.jsonl"
    if not old.exists():
        return
    n = 1
    while (out_dir / f"metrics.old-{n}.jsonl").exists():
        n += 1
    old.rename(out_dir / f"metrics.old-{n}.jsonl")
    say(f"note: {old} of an earlier attempt was renamed metrics.old-{n}.jsonl")


def _curves(run: _Run, duplicate: str | None, message) -> None:
    """figures/loss.png (every logged loss term and lr), figures/schedules.png (every
    schedule, the ``sched/<name>`` keys of the rows) and figures/metrics.png (each dataset's
    metrics), from the history rows."""
    logs = [r for r in run.history if "loss" in r and "split" not in r and "event" not in r]
    if logs:
        skip = {"step", "phase", "images_per_s", "elapsed_s"} | ({duplicate} - {"loss", None})  # == "loss"
        keys = [k for k in logs[-1] if k not in skip and not k.startswith(SCHED_PREFIX)]
        _try_curve(run, run.out_dir / "figures" / "loss.png", logs, keys, message, logy=["loss", "lr"])
        sched = list(dict.fromkeys(k for r in logs for k in r if k.startswith(SCHED_PREFIX)))
        if sched:
            _try_curve(run, run.out_dir / "figures" / "schedules.png", logs, sched, message)
    evals = [r for r in run.history if "split" in r and "event" not in r]
    if evals:  # one panel per metric, a line per evaluated dataset (ocdsl.viz.save_metric_curves)
        path = run.out_dir / "figures" / "metrics.png"
        try:
            _deps.save_metric_curves(path, evals, list(run.spec.eval_cfg.metrics) or None,
                                     colour="split", title=f"{run.spec.name}: evaluation")
            run.figures.append(str(path))
        except Exception as e:
            message(f"warning: could not write figure {path}: {type(e).__name__}: {e}")
    for strip in sorted((run.out_dir / "figures").glob("*_masks_over_time.png")):  # evaluate.py keeps them
        if str(strip) not in run.figures:
            run.figures.append(str(strip))


def _try_curve(run, path, records, keys, message, logy=()) -> None:
    try:
        _deps.save_curve(path, records, keys, logy=logy)
        run.figures.append(str(path))
    except Exception as e:
        message(f"warning: could not write figure {path}: {type(e).__name__}: {e}")


def train(spec, model: torch.nn.Module, *, device: str | torch.device = "cpu", out_dir: Path,
          steps: int | None = None, resume: Path | None = None, torch_compile: bool = False,
          progress: bool = True, allow_spec_mismatch: bool = False, overwrite: bool = False) -> dict:
    """Train ``model`` (a generated module, docs/internals.md) as ``spec`` says.

    Args:
        spec: the loaded Spec; its typed ``spec.train``, ``spec.data_cfg`` and ``spec.eval_cfg``
            (ocdsl/spec/config.py) are read as they are: validation judged them.
        model: the module; if it is already ``torch.compile``'d its ``_orig_mod`` is what is
            optimised and saved.
        device: ``"cpu"`` or ``"cuda"`` (see :func:`resolve_device`).
        out_dir: the run directory (created). A fresh run refuses a directory that already
            holds one unless ``overwrite``.
        steps: total steps to reach; overrides ``train.steps``.
        resume: a run directory (or its checkpoint.pt) to continue from; ``out_dir`` may be
            the same directory (appends) or a new one (gets the history copied).
        torch_compile: run the training forward through ``torch.compile(model)``.
        progress: show a tqdm bar when stderr is a terminal (plain log lines otherwise).
        allow_spec_mismatch: resume from a checkpoint whose spec hash differs (a warning).
        overwrite: start afresh in a directory that holds a run.

    Returns:
        the summary (also in ``out_dir/summary.json``).

    Raises:
        UserError / SpecError: a bad ``steps``, data, model or checkpoint problems (exit 2).
        NonFiniteLoss (a UserError): the loss became NaN/inf (exit 2).
        TrainingInterrupted (a KeyboardInterrupt): Ctrl-C, after saving (exit 130).
    """
    out_dir = Path(out_dir)
    resume = Path(resume) if resume is not None else None
    cfg = spec.train
    plan = plan_run(spec, model, steps)
    total = plan.total  # the steps to reach
    eval_every = spec.eval_cfg.every
    base = getattr(model, "_orig_mod", model)
    fwd = model
    if base is model and torch_compile:
        fwd = torch.compile(base)
    inputs_names = tuple(base.INPUTS)
    node_names = _node_names(base)
    _check_out_dir(out_dir, resume, overwrite)

    state = None
    if resume is not None:
        state, ckpt_file = load_checkpoint(resume, spec=spec, allow_spec_mismatch=allow_spec_mismatch)
        if int(state["step"]) > total:
            raise UserError(Diagnostic(
                f"the checkpoint is at step {state['step']}, past the {total} steps to reach",
                file=str(ckpt_file), hint="pass --steps with a larger total"))

    # Data first: a missing file should fail before anything is written.
    base_dir = Path(spec.path).parent if spec.path else Path(".")
    train_cfg = dataset_cfg(spec, ("data",))
    data_seed, _ = data_seeds(cfg.seed, train_cfg)  # data.seed, else derived from train.seed
    stream_seed = data_seed
    if state is not None:  # a resume reads on in the stream the run was reading
        if state.get("data_seed") is not None:
            data_seed = stream_seed = int(state["data_seed"])
        else:  # a checkpoint from before ocdsl/train/rng.py: data.seed (default 0), order by train.seed
            data_seed, stream_seed = int(spec.data_cfg.seed or 0), cfg.seed
    train_cfg["seed"] = data_seed
    train_set = _deps.make_dataset(train_cfg, "train", base_dir, None, spec_file=str(spec.path))
    check_data_fits(spec, "train", train_set, ("data",))
    sets = eval_sets(spec)
    rng_range = spec.data_cfg.range

    base.to(device)
    sched_names = list(base.schedules(0))
    set_schedules = getattr(base, "set_schedules", None)

    def enter(ph: Phase, prev=None):
        return enter_phase(spec, base, ph, sched_names, prev)

    phase = plan.at(int(state["step"]) if state is not None else 0)
    opt, lr_src = enter(phase)
    params = [p for g in opt.param_groups for p in g["params"]]

    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(spec, total, out_dir, device, is_compiled(fwd))
    run.data_seed = data_seed if data_seed == stream_seed else None  # None: the legacy pair (see above)
    if plan.explicit:
        run.phases = [{"name": p.name, "start": p.start, "steps": p.steps, "loss": p.loss} for p in plan.phases]
    same_dir = False
    if state is not None:
        load_model_state(base, state["model"], ckpt_file)
        # The saved optimizer state belongs to the phase that wrote it: the current one, or,
        # for a checkpoint at a phase boundary, the previous one (kept only where this phase
        # keeps its optimizer).
        saved_phase = int(state.get("phase", 0))
        if saved_phase == phase.index or (saved_phase == phase.index - 1 and not phase.fresh_optimizer):
            try:
                opt.load_state_dict(state["optimizer"])
            except (ValueError, KeyError, RuntimeError) as e:
                raise UserError(Diagnostic(f"the optimizer state does not fit: {e}", file=str(ckpt_file),
                                           hint="the [train] optimizer changed since the checkpoint")) from None
        run.step = run.start_step = int(state["step"])
        run.history = list(state.get("history", []))
        run.elapsed_before = float(state.get("elapsed_s", 0.0))
        run.images_seen = int(state.get("images_seen", 0))
        run.resumed_from = str(ckpt_file)
        same_dir = ckpt_file.parent.resolve() == out_dir.resolve()
        if same_dir:
            run.ckpt_step = run.step
        run.data_position = int(state.get("data_position", run.step * cfg.batch_size))
    atomic_write_json(out_dir / "spec.resolved.json", spec.data)

    if state is None:
        if overwrite and (out_dir / "metrics.jsonl").exists():
            (out_dir / "metrics.jsonl").unlink()
        _set_aside_old_metrics(out_dir, print)
    log = MetricsLog(out_dir / "metrics.jsonl")
    if state is not None:
        if not same_dir:
            for row in run.history:
                log.write(row)
        log.write({"step": run.step, "event": "resume", "checkpoint": str(ckpt_file)})

    keys = tuple(dict.fromkeys((*inputs_names, "image", "mask")))
    data = make_train_loader(train_set, batch_size=cfg.batch_size, seed=stream_seed, start=run.data_position,
                             keys=keys, num_workers=cfg.num_workers, shuffle=cfg.shuffle,
                             pin_memory=str(device).startswith("cuda"))
    bar = Progress(total, run.step, progress)
    say = bar.message
    if plan.explicit:
        say(plan.describe())
    if state is not None:
        restore_rng(state["rng"])
        say(f"resuming {spec.name} from {ckpt_file} at step {run.step}/{total}")
    else:  # training noise: its own stream, never a replay of the initialisation's draws
        seed_for(cfg.seed, NOISE)
    run.rng = capture_rng()  # the RNG state after run.step completed steps

    status, message, failure = "completed", None, None
    consistent = True  # False only while the optimizer is updating the parameters
    checked_outputs = False
    acc: dict[str, Any] = {}  # sums since the last logged row

    def accumulate(vals: dict[str, float], lr: float, gn: float | None, dt: float, sched: dict) -> None:
        sums = acc.setdefault("sums", {})
        for n, v in vals.items():
            sums[n] = sums.get(n, 0.0) + v
        acc["n"] = acc.get("n", 0) + 1
        acc["images"] = acc.get("images", 0) + cfg.batch_size
        acc["time"] = acc.get("time", 0.0) + dt
        acc["lr"] = lr
        acc["sched"] = sched
        if gn is not None:
            acc["grad_norm"] = max(acc.get("grad_norm", gn), gn)

    def flush_log() -> None:
        """One metrics.jsonl row: the mean of each term over the steps since the last row."""
        if not acc.get("n"):
            return
        n, sums = acc["n"], acc["sums"]
        row: dict[str, Any] = {"step": run.step}
        if plan.explicit:
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
        row["elapsed_s"] = run.elapsed
        run.history.append(row)
        log.write(row)
        bar.log(row)
        acc.clear()

    def do_eval():
        clock = plan.at(run.step - 1 if run.step else 0).clock(run.step)
        results = evaluate_model(spec, base, sets, device=device, step=run.step, figures_dir=out_dir, message=say,
                                 clock=clock, total_steps=total)
        apply_phase(base, phase, node_names)  # evaluation left every node in train mode
        for row in eval_rows(results):
            run.history.append(row)
            log.write(row)
        run.figures += [r["figure"] for r in results.values() if r["figure"]]
        run.last_eval_step = run.step
        say(eval_message(results))

    guard = StopGuard(say)
    try:
        with guard:
            try:
                while run.step < total:
                    if guard.requested:
                        status = "interrupted"
                        break
                    if cfg.time_limit is not None and time.monotonic() - run.t0 >= cfg.time_limit:
                        status = "time_limit"
                        message = f"time limit of {cfg.time_limit:g} s reached at step {run.step}"
                        say(message)
                        break
                    if plan.at(run.step) is not phase:
                        flush_log()  # a row never mixes two phases' losses
                        if run.ckpt_step != run.step:  # a resume at the boundary starts the next phase
                            run.save(base, opt, phase.index)
                        phase = plan.at(run.step)
                        opt, lr_src = enter(phase, (opt, lr_src))
                        params = [p for g in opt.param_groups for p in g["params"]]
                        log.write({"step": run.step, "event": "phase", "phase": phase.name,
                                   "steps": phase.steps})
                        say(f"phase '{phase.name}' (step {run.step}, {phase.steps} steps)")
                    t_step = time.perf_counter()
                    batch = next(data)
                    sched = schedules_at(base, run.step, phase.clock(run.step), total)
                    if set_schedules is not None:
                        set_schedules(sched)
                    lr = lr_src.at(sched, run.step, phase.clock(run.step), total)
                    set_lr(opt, lr)
                    arg, inputs = model_inputs(batch, inputs_names, rng_range, device)
                    outputs = forward(fwd, arg, device, cfg.precision)
                    if not checked_outputs:
                        check_eval_outputs(spec, outputs)
                        checked_outputs = True
                    terms = base.losses(inputs, outputs, sched, run.step)
                    if phase.loss not in terms:
                        raise SpecError(spec.diag(("train", "loss"), f"loss '{phase.loss}' is not among the "
                                                  f"[losses]: {', '.join(terms)}"))
                    loss = terms[phase.loss]
                    names = list(terms)
                    values = torch.stack([torch.as_tensor(terms[n]).detach().float().reshape(())
                                          .to(loss.device) for n in names]).tolist()
                    vals = dict(zip(names, values))
                    if not math.isfinite(vals[phase.loss]):
                        raise _NonFinite(run.step + 1, f"loss '{phase.loss}'", vals)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    gn = None
                    if cfg.grad_clip:
                        gn = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
                        if not math.isfinite(gn):
                            raise _NonFinite(run.step + 1, "gradient norm", dict(vals, grad_norm=gn))
                    with guard.critical():
                        consistent = False
                        opt.step()
                        run.step += 1
                        run.images_seen += cfg.batch_size
                        run.data_position += cfg.batch_size
                        run.rng = capture_rng()
                        consistent = True
                    dt = time.perf_counter() - t_step
                    run.session_images += cfg.batch_size
                    run.session_train_s += dt
                    accumulate(vals, lr, gn, dt, sched)
                    bar.step(vals[phase.loss], cfg.batch_size / dt if dt > 0 else None)

                    if (run.step % cfg.log_every == 0 or run.step == total
                            or run.step == run.start_step + 1):
                        flush_log()
                    if eval_every and run.step % eval_every == 0 and run.step < total:
                        do_eval()
                    if cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0 and run.step < total:
                        run.save(base, opt, phase.index)
                        run.write_summary("running")
            except KeyboardInterrupt:
                status = "interrupted"
            except _NonFinite as e:
                status, failure = "nonfinite", e
            except BaseException as e:
                status, failure = "error", e

            guard.mode = "ignore"
            flush_log()  # steps since the last row (a stop between log_every boundaries)
            bar.close()
            if status in ("completed", "time_limit"):
                try:
                    if run.ckpt_step != run.step:
                        run.save(base, opt, phase.index)
                    if run.last_eval_step != run.step:
                        guard.mode = "immediate"  # the checkpoint is safe: Ctrl-C may cut this short
                        do_eval()
                    _curves(run, None if plan.explicit else phase.loss, say)
                except KeyboardInterrupt:
                    status = "interrupted"
                    message = "interrupted during the final evaluation"
                guard.mode = "ignore"
                if status == "time_limit":
                    log.write({"step": run.step, "event": "time_limit", "time_limit": cfg.time_limit})
                summary = run.write_summary(status, message)
                _print_summary(summary, list(spec.eval_cfg.metrics))
                if status == "interrupted":
                    raise TrainingInterrupted(summary)
                return summary

            if status == "interrupted":
                if consistent and run.ckpt_step != run.step:
                    run.save(base, opt, phase.index)
                message = message or f"interrupted; checkpoint at step {run.ckpt_step}"
                log.write({"step": run.step, "event": "interrupted", "checkpoint_step": run.ckpt_step})
                summary = run.write_summary(status, message)
                _print_summary(summary, list(spec.eval_cfg.metrics))
                print(f"resume with: --resume {out_dir}", flush=True)
                raise TrainingInterrupted(summary)

            if status == "nonfinite":
                e = failure
                terms_txt = ", ".join(f"{k}={v:.4g}" for k, v in e.terms.items())
                where = (f"{run.ckpt_path} (step {run.ckpt_step}) is kept as the last good checkpoint"
                         if run.ckpt_step is not None else "no checkpoint had been written yet")
                message = (f"step {e.step}: the {e.what} is not finite ({terms_txt}); training stopped, "
                           f"nothing from that step was saved; {where}")
                log.write({"step": e.step, "event": "nonfinite", "what": e.what, **e.terms})
                summary = run.write_summary(status, message)
                raise NonFiniteLoss(Diagnostic(
                    message, file=str(spec.path),
                    hint="lower the learning rate, set train.grad_clip, or check the losses; "
                         + (f"--resume {out_dir} continues from the last good checkpoint"
                            if run.ckpt_step is not None else "")), summary)

            # status == "error": keep what the completed steps achieved, then re-raise.
            if consistent and run.step > (run.ckpt_step if run.ckpt_step is not None else run.start_step):
                try:
                    run.save(base, opt, phase.index)
                except Exception as save_err:  # report, but the original error matters more
                    print(f"warning: could not save a checkpoint after the error: {save_err}", file=sys.stderr)
            log.write({"step": run.step, "event": "error", "error": f"{type(failure).__name__}: {failure}"})
            run.write_summary("error", f"{type(failure).__name__}: {failure}")
            raise failure
    finally:
        bar.close()
        log.close()
