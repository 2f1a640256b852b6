"""Run directories: where a run's files go, when a directory may be used, and its summary.

A run directory (``ocdsl run --out DIR``, default ``runs/<spec stem>/<timestamp>``)::

    checkpoint.pt        last good state (ocdsl/train/checkpoint.py); the only file --resume needs
    model.py             the generated module the run trained (``ocdsl run``)
    metrics.jsonl        one row per logged step and per evaluated dataset (append-only)
    events.out.tfevents.* the same rows as TensorBoard scalars, and the evaluation figures
                         (``tensorboard --logdir runs``; ocdsl/train/report.py)
    spec.resolved.json   the merged spec the run was started with
    summary.json         status, steps, times, final metrics, where things are
    figures/             step_<6-digit step>_<dataset>.png per evaluation, loss.png, metrics.png,
                         schedules.png, <dataset>_masks_over_time.png (+ .npz; see evaluate.py)

Nothing is written until every check passed (:func:`check_out_dir` runs before any file is
made); a fresh run never replaces another run's files unless told to (``overwrite``).
"""

from __future__ import annotations

from pathlib import Path

from ocdsl.errors import Diagnostic, UserError
from ocdsl.train.checkpoint import CHECKPOINT_NAME, atomic_write_bytes, atomic_write_json
from ocdsl.train.report import fmt_duration, summary_table

__all__ = ["check_out_dir", "prepare_out_dir", "print_summary", "METRICS_NAME", "SUMMARY_NAME", "SPEC_NAME",
           "MODEL_NAME"]

METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "summary.json"
SPEC_NAME = "spec.resolved.json"
MODEL_NAME = "model.py"
EVENTS_GLOB = "events.out.tfevents.*"


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_out_dir(out_dir: Path, resume: Path | None, overwrite: bool) -> None:
    """May a run write into ``out_dir``? Raises UserError (naming the directory) where
    ``out_dir`` is a file, or, for a fresh run (``resume`` None or another directory),
    where it already holds a run (its ``checkpoint.pt``) and ``overwrite`` is off. Writes
    nothing."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(Diagnostic(f"{out_dir} is a file, not a run directory", file=str(out_dir),
                                   hint="choose a directory for --out"))
    if overwrite:
        return
    if resume is not None and _same_dir(resume if resume.is_dir() else resume.parent, out_dir):
        return
    if (out_dir / CHECKPOINT_NAME).exists():
        raise UserError(Diagnostic(
            f"{out_dir} already holds a run ({CHECKPOINT_NAME}); it will not be overwritten",
            file=str(out_dir),
            hint=f"continue it with --resume {out_dir}, or choose another output directory"))


def prepare_out_dir(out_dir: Path, spec, *, fresh: bool, overwrite: bool, model_source: str | None,
                    say) -> None:
    """Create ``out_dir`` and write ``spec.resolved.json`` (and ``model.py`` where
    ``model_source`` is given). A fresh run sets aside the ``metrics.jsonl`` and TensorBoard
    events of an earlier attempt that never checkpointed (kept as ``metrics.old-N.jsonl``
    and ``events.old-N/``), or drops them with ``overwrite``. Call only after every check
    passed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / SPEC_NAME, spec.data)
    if model_source is not None:
        atomic_write_bytes(out_dir / MODEL_NAME, model_source.encode())
    if not fresh:
        return
    old, events = out_dir / METRICS_NAME, sorted(out_dir.glob(EVENTS_GLOB))
    if overwrite:
        for f in [old, *events]:
            f.unlink(missing_ok=True)
        return
    n = 1
    while (out_dir / f"metrics.old-{n}.jsonl").exists() or (out_dir / f"events.old-{n}").exists():
        n += 1
    if old.exists():
        old.rename(out_dir / f"metrics.old-{n}.jsonl")
        say(f"note: {old} of an earlier attempt was renamed metrics.old-{n}.jsonl")
    if events:  # TensorBoard shows a subfolder as a run of its own
        (out_dir / f"events.old-{n}").mkdir()
        for f in events:
            f.rename(out_dir / f"events.old-{n}" / f.name)


def print_summary(s: dict, metric_names: list[str]) -> None:
    """The closing lines of ``ocdsl run``: status, times, the evaluation table, the files."""
    ips = f", {s['images_per_s']:.1f} images/s" if s.get("images_per_s") else ""
    print(f"\n{s['spec']}: {s['status']} at step {s['step']}/{s['steps']} in "
          f"{fmt_duration(s['wall_s'])} this session ({fmt_duration(s['elapsed_s'])} in all{ips}, "
          f"{s['device']}, {s['precision']})")
    if s["eval"]:
        print(summary_table(s["eval"], metric_names))
    out = Path(s["out_dir"])
    files = []
    if s["checkpoint"]:
        files.append(f"{CHECKPOINT_NAME} (step {s['checkpoint_step']})")
    files += [METRICS_NAME, SUMMARY_NAME, SPEC_NAME]
    if (out / "figures").is_dir():
        n = len(list((out / "figures").glob("*.png")))
        files.append(f"figures/ ({n} PNG)")
    print(f"outputs: {out}/  " + ", ".join(files), flush=True)
