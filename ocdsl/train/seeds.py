"""Several seeds of one spec: ``ocdsl run SPEC --seeds 0,1,2``.

Each seed N is one ordinary run, exactly ``ocdsl run SPEC --set train.seed=N --out
<parent>/seed<N>`` (the caller hands :func:`run_seeds` the function that makes one run, so
a seed goes through the same path as any run), then the seeds are summarised. Writes::

    <parent>/                    default runs/<spec stem>/<timestamp>/
      seed<N>/                   one run directory per seed (checkpoint.pt, metrics.jsonl,
                                 summary.json, figures/ ...: see ocdsl/train/run.py);
                                 run.log too where the seeds run in parallel
      seeds_summary.json         per seed: status, step, last evaluation, pass/fail and why;
                                 per dataset and metric: mean, std, n and each seed's value;
                                 the failed count (rewritten after every seed)
      seeds_curves.png           every evaluation metric over the steps, one panel per
                                 metric, a colour per seed, a line style per dataset

and prints a table: for every evaluated dataset and metric, the mean ± std over the seeds
(and each seed's value), then how many seeds failed.

**Failure.** ``[eval] success = "<metric> <op> <number>"`` (e.g. ``"ari_fg >= 0.9"``, see
``ocdsl.spec.validate.parse_threshold``) is the threshold: a seed fails when *any*
evaluated dataset misses it at the seed's last evaluation, or when its run did not finish
(non-finite loss, error, interrupted, no evaluation). Without ``success`` only unfinished
runs fail. ``mean ± std`` are over the seeds whose run finished (``completed`` or
``time_limit``) and have a finite value; ``std`` is the sample standard deviation (n - 1),
0 for one seed.

**Order.** One seed after another, each in this process, except with ``--gpu`` where
several CUDA devices are visible: then one ``ocdsl run`` process per device
(``CUDA_VISIBLE_DEVICES`` set to that device), as many seeds at a time as there are
devices, each one's output in ``seed<N>/run.log``.

**Resume.** With ``resume`` (``--seeds ... --resume PARENT``) each ``seed<N>/`` holding a
checkpoint is resumed; a seed whose ``summary.json`` says it completed the steps to reach
is not run again (its results are reused); a seed without a directory starts fresh there
(so a study can be extended with more seeds). Without ``resume``, a ``seed<N>/`` that
already holds a checkpoint is refused before anything runs.

**Exit status** (:func:`run_seeds` returns it): 0 when every seed's run finished or stopped
on a non-finite loss (seeds that missed the threshold included: the table says it); 1 when
a seed's run crashed with an unexpected error (the other seeds still run). Ctrl-C stops the
seed in progress (it keeps its checkpoint), writes the summary of what ran and re-raises
KeyboardInterrupt (the CLI exits 130). A user error (bad data path, spec changed since a
checkpoint ...) writes the summary so far and is re-raised (exit 2).
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from ocdsl.errors import Diagnostic, UserError
from ocdsl.spec.validate import Threshold, parse_threshold
from ocdsl.tables import text_table
from ocdsl.train import _deps
from ocdsl.train.checkpoint import CHECKPOINT_NAME, atomic_write_json
from ocdsl.train.report import fmt_value
from ocdsl.train.run import NonFiniteLoss

__all__ = ["parse_seeds", "run_seeds", "seed_dir", "summarize_seeds", "seeds_table", "SUMMARY_NAME",
           "CURVES_NAME"]

SUMMARY_NAME = "seeds_summary.json"
CURVES_NAME = "seeds_curves.png"
FINISHED = ("completed", "time_limit")
#: exit status of a run that stopped on a user error or a non-finite loss (ocdsl.cli)
_EXIT_USER_ERROR = 2
_EXIT_INTERRUPTED = 130


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` (ranges inclusive, mixable: ``"0-2,7"``) -> distinct seeds
    >= 0 in the order written. Raises UserError otherwise."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            if dash:
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds += range(a, b + 1)
            else:
                seeds.append(int(part))
        except ValueError:
            raise UserError(Diagnostic(f"--seeds: expected seeds like 0,1,2 or 0-4, got {text!r}", file="ocdsl",
                                       hint="non-negative integers separated by commas; a-b for a range")) from None
    dup = sorted({s for s in seeds if seeds.count(s) > 1})
    if not seeds or any(s < 0 for s in seeds) or dup:
        why = f"seed {dup[0]} is given twice" if dup else "seeds must be integers >= 0"
        raise UserError(Diagnostic(f"--seeds {text!r}: {why}", file="ocdsl",
                                   hint="non-negative integers separated by commas; a-b for a range"))
    return seeds


def seed_dir(parent: Path, seed: int) -> Path:
    return Path(parent) / f"seed{seed}"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _target_steps(spec, steps: int | None) -> int | None:
    """The steps a run of ``spec`` reaches: ``--steps`` or the spec's (phases summed)."""
    return int(steps) if steps is not None else spec.train.total_steps


def _threshold(spec) -> Threshold | None:
    text = spec.eval_cfg.success
    if not text:
        return None
    return parse_threshold(text, metrics=spec.eval_cfg.metrics, file=str(spec.path))


# ---------------------------------------------------------------------------- one seed's record

def _record(seed: int, d: Path, status: str | None = None, message: str | None = None) -> dict:
    """What a seed's run left: its summary.json (status, step, last evaluation), or only
    ``status``/``message`` where it wrote none."""
    s = _read_json(d / "summary.json") or {}
    evals = {name: {k: v for k, v in (r.get("metrics") or {}).items() if not str(k).endswith("_nan")}
             for name, r in (s.get("eval") or {}).items()}
    steps = {name: r.get("step") for name, r in (s.get("eval") or {}).items()}
    return {"seed": seed, "dir": str(d), "status": status or s.get("status") or "error",
            "step": s.get("step"), "steps": s.get("steps"),
            "message": message if message is not None else s.get("message"),
            "eval": evals, "eval_step": steps}


def _judge(rec: dict, threshold: Threshold | None) -> None:
    """Set ``rec["failed"]`` and ``rec["reasons"]`` (why it failed)."""
    reasons = []
    if rec["status"] not in FINISHED:
        what = {"nonfinite": "non-finite loss", "interrupted": "interrupted", "not run": "not run"}.get(
            rec["status"], "error")
        reasons.append(f"{what}" + (f" at step {rec['step']}" if rec.get("step") is not None else ""))
    elif not rec["eval"]:
        reasons.append("no evaluation")
    elif threshold is not None:
        for name, metrics in rec["eval"].items():
            v = metrics.get(threshold.metric)
            if not threshold.passes(v):
                reasons.append(f"{threshold.metric} {fmt_value(v)} on {name} (needs {threshold.op} "
                               f"{threshold.value:g})")
    rec["failed"] = bool(reasons)
    rec["reasons"] = reasons


# ---------------------------------------------------------------------------- summary

def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def summarize_seeds(spec, seeds: Sequence[int], records: dict[int, dict], parent: Path,
                    threshold: Threshold | None, complete: bool) -> dict:
    """The content of seeds_summary.json (see the module docstring)."""
    metric_order = list(spec.eval_cfg.metrics)
    datasets: list[str] = []
    metrics: list[str] = list(metric_order)
    for seed in seeds:
        for name, ms in (records.get(seed, {}).get("eval") or {}).items():
            if name not in datasets:
                datasets.append(name)
            metrics += [m for m in ms if m not in metrics]
    aggregate: dict[str, dict] = {}
    for name in datasets:
        aggregate[name] = {}
        for m in metrics:
            per_seed = {str(s): records[s]["eval"].get(name, {}).get(m) for s in seeds if s in records}
            used = [records[s]["eval"][name][m] for s in seeds
                    if s in records and records[s]["status"] in FINISHED
                    and _finite(records[s]["eval"].get(name, {}).get(m))]
            if not any(v is not None for v in per_seed.values()):
                continue
            mean = statistics.fmean(used) if used else None
            std = (statistics.stdev(used) if len(used) > 1 else 0.0) if used else None
            aggregate[name][m] = {"mean": mean, "std": std, "n": len(used), "per_seed": per_seed}
    runs = [records[s] for s in seeds if s in records]
    failed = [r["seed"] for r in runs if r["failed"]]
    return {
        "spec": spec.name, "spec_path": str(spec.path), "parent": str(parent), "seeds": list(seeds),
        "complete": complete,
        "success": None if threshold is None else str(threshold),
        "rule": ("a seed fails when any evaluated dataset misses `success` at its last evaluation, or its run "
                 "did not finish (non-finite loss, error, interrupted, no evaluation); mean and std (n - 1) "
                 "are over the finished seeds"),
        "failed": len(failed), "failed_seeds": failed,
        "passed_seeds": [r["seed"] for r in runs if not r["failed"]],
        "not_run": [s for s in seeds if s not in records],
        "runs": runs, "aggregate": aggregate,
    }


def seeds_table(summary: dict) -> str:
    """The printed table: dataset, metric, mean ± std, n, then one column per seed; a
    ``result`` row (pass / FAIL / status) and the failed count with the reasons."""
    seeds = summary["seeds"]
    runs = {r["seed"]: r for r in summary["runs"]}
    header = ["dataset", "metric", "mean ± std", "n", *(f"seed {s}" for s in seeds)]
    rows = []
    for name, ms in summary["aggregate"].items():
        for m, a in ms.items():
            ms_txt = "-" if a["mean"] is None else f"{fmt_value(a['mean'])} ± {fmt_value(a['std'])}"
            rows.append([name, m, ms_txt, str(a["n"]), *(fmt_value(a["per_seed"].get(str(s))) for s in seeds)])

    def result(s):
        r = runs.get(s)
        if r is None:
            return "not run"
        return "FAIL" if r["failed"] else "pass"
    rows.append(["result", "", "", "", *(result(s) for s in seeds)])
    out = [text_table(header, rows, "llr")]
    rule = (f"success: {summary['success']} on every evaluated dataset" if summary["success"]
            else "success: not declared ([eval] success); only runs that did not finish fail")
    n_run = len(summary["runs"])
    out.append(f"{rule}")
    out.append(f"failed: {summary['failed']} of {n_run} seed{'s' if n_run != 1 else ''}"
               + (f" ({len(summary['not_run'])} not run)" if summary["not_run"] else ""))
    for r in summary["runs"]:
        if r["failed"]:
            out.append(f"  seed {r['seed']}: " + "; ".join(r["reasons"]))
    return "\n".join(out)


def _curves(parent: Path, seeds: Sequence[int], records: dict[int, dict], spec, say) -> Path | None:
    """seeds_curves.png from each seed's metrics.jsonl (evaluation rows)."""
    rows = []
    for s in seeds:
        if s not in records:
            continue
        path = seed_dir(parent, s) / "metrics.jsonl"
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for ln in lines:
            try:
                r = json.loads(ln)
            except ValueError:
                continue
            if isinstance(r, dict) and "split" in r and "event" not in r:
                rows.append({**r, "seed": s})
    if not rows:
        return None
    out = Path(parent) / CURVES_NAME
    metrics = list(spec.eval_cfg.metrics) or None
    try:
        _deps.save_metric_curves(out, rows, metrics, colour="seed", style="split",
                                 title=f"{spec.name}: seeds {', '.join(map(str, seeds))}")
        return out
    except Exception as e:  # a figure is never worth losing the summary over
        say(f"warning: could not write {out}: {type(e).__name__}: {e}")
        return None


# ---------------------------------------------------------------------------- running

def _check_dirs(parent: Path, seeds: Sequence[int], resume: bool) -> None:
    if resume:
        if not parent.is_dir():
            raise UserError(Diagnostic(f"--resume: no directory '{parent}'", file=str(parent),
                                       hint="with --seeds, pass the parent directory holding seed<N>/"))
        if (parent / CHECKPOINT_NAME).exists():
            raise UserError(Diagnostic(
                f"--resume {parent} with --seeds: this is a single run (it holds {CHECKPOINT_NAME}), "
                "not the parent directory of seed<N>/ runs", file=str(parent),
                hint="resume it without --seeds, or pass the directory holding seed0/, seed1/ ..."))
        return
    taken = [s for s in seeds if (seed_dir(parent, s) / CHECKPOINT_NAME).exists()]
    if taken:
        raise UserError(Diagnostic(
            f"{seed_dir(parent, taken[0])} already holds a run ({CHECKPOINT_NAME}); it will not be overwritten",
            file=str(parent), hint=f"continue the seeds with --resume {parent}, or choose another --out"))


def _done(d: Path, target: int | None) -> bool:
    """The seed's run already completed the steps to reach."""
    s = _read_json(d / "summary.json")
    return bool(s and s.get("status") == "completed" and target is not None and s.get("steps") == target
                and s.get("step") == target)


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def _parallel(jobs: list[tuple[int, Path, bool]], devices: Sequence[str],
              command: Callable[[int, Path, bool], list[str]], records: dict, say, on_done) -> None:
    """One child ``ocdsl run`` per device at a time; records each seed as its child exits."""
    pending = list(jobs)
    running: dict[str, tuple[int, Path, subprocess.Popen, Any]] = {}

    def finish(dev: str, rc: int) -> None:
        seed, d, _, log = running.pop(dev)
        log.close()
        if rc == 0:
            rec = _record(seed, d)
        elif rc == _EXIT_INTERRUPTED:
            rec = _record(seed, d, status="interrupted")
        else:
            s = _read_json(d / "summary.json") or {}
            status = s.get("status") if s.get("status") in ("nonfinite", "error") else "error"
            rec = _record(seed, d, status=status, message=s.get("message") if s.get("status") == status
                          else f"exit status {rc}: {_tail(d / 'run.log')}")
        records[seed] = rec
        say(f"seed {seed}: {rec['status']} (exit status {rc}; output in {d / 'run.log'})")
        on_done()

    try:
        while pending or running:
            for dev in devices:
                if dev not in running and pending:
                    seed, d, res = pending.pop(0)
                    d.mkdir(parents=True, exist_ok=True)
                    log = open(d / "run.log", "ab")
                    env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(dev))
                    proc = subprocess.Popen(command(seed, d, res), stdout=log, stderr=subprocess.STDOUT, env=env)
                    running[dev] = (seed, d, proc, log)
                    say(f"seed {seed}: {'resuming' if res else 'started'} on device {dev} (pid {proc.pid}, "
                        f"output in {d / 'run.log'})")
            time.sleep(0.2)
            for dev in list(running):
                rc = running[dev][2].poll()
                if rc is not None:
                    finish(dev, rc)
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches the children too; a signal sent to this process alone
        # does not: pass it on. A second SIGINT only makes a child abandon its current step;
        # the checkpoint keeps the last completed one either way.
        for _, _, proc, _ in running.values():
            try:
                proc.send_signal(signal.SIGINT)
            except OSError:
                pass
        for dev in list(running):
            proc = running[dev][2]
            try:
                rc = proc.wait(timeout=120)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                proc.kill()
                rc = proc.wait()
            finish(dev, rc)
        raise


def _jobs(seeds: Sequence[int], parent: Path, resume: bool, target: int | None, records: dict,
          say) -> list[tuple[int, Path, bool]]:
    """``(seed, directory, resume it)`` of each seed to run; a resumed seed that already
    completed its steps is recorded and not run again."""
    jobs = []
    for seed in seeds:
        d = seed_dir(parent, seed)
        res = resume and (d / CHECKPOINT_NAME).exists()
        if res and _done(d, target):
            records[seed] = _record(seed, d)
            say(f"seed {seed}: already completed at step {records[seed]['step']} in {d} (not run again)")
            continue
        jobs.append((seed, d, res))
    return jobs


def _serial(jobs: list[tuple[int, Path, bool]], run_one, records: dict, say, on_done) -> bool:
    """One seed after another in this process; whether one crashed with an unexpected error
    (a KeyboardInterrupt or a UserError is recorded and re-raised)."""
    crashed = False
    for i, (seed, d, res) in enumerate(jobs):
        say(f"\n=== seed {seed} ({i + 1}/{len(jobs)}): {d}{' (resuming)' if res else ''} ===")
        try:
            run_one(seed, d, res)
            records[seed] = _record(seed, d)
        except KeyboardInterrupt:
            records[seed] = _record(seed, d, status="interrupted")
            raise
        except NonFiniteLoss as e:  # this seed failed; the others may not
            print(e.format(), file=sys.stderr)
            records[seed] = _record(seed, d, status="nonfinite")
        except Exception as e:
            traceback.print_exc()
            records[seed] = _record(seed, d, status="error", message=f"{type(e).__name__}: {e}")
            crashed = True
        on_done()
    return crashed


def run_seeds(spec, seeds: Sequence[int], parent: Path, run_one: Callable[[int, Path, bool], Any], *,
              resume: bool = False, steps: int | None = None, devices: Sequence[str] | None = None,
              command: Callable[[int, Path, bool], list[str]] | None = None,
              say: Callable[[str], None] = print) -> int:
    """Train ``spec`` once per seed under ``parent`` and summarise (module docstring).

    Args:
        spec: the loaded spec (its name, ``[eval] success`` and ``metrics``).
        seeds: distinct seeds (:func:`parse_seeds`).
        parent: the directory holding ``seed<N>/``.
        run_one: ``run_one(seed, out_dir, resume)`` makes one run in this process, exactly
            ``ocdsl run SPEC --set train.seed=<seed> --out <out_dir>`` (``--resume
            <out_dir>`` when ``resume``); it writes ``out_dir/summary.json``, raises
            NonFiniteLoss / KeyboardInterrupt / UserError like ``ocdsl run``.
        resume: continue each seed directory that holds a checkpoint.
        steps: ``--steps`` (to tell which resumed seeds have nothing left to do).
        devices: with more than one (and ``command``), run one child process per device
            (``CUDA_VISIBLE_DEVICES``); otherwise one seed after another via ``run_one``.
        command: ``command(seed, out_dir, resume)`` -> the argv of that one run as a child
            process.

    Returns:
        0, or 1 when a seed's run crashed with an unexpected error.

    Raises:
        UserError: ``--resume`` of a missing or single-run directory, a fresh run over an
            existing seed run, or a user error inside a seed's run (after writing the summary).
        KeyboardInterrupt: Ctrl-C (after writing the summary).
    """
    parent = Path(parent)
    seeds = list(seeds)
    threshold = _threshold(spec)
    _check_dirs(parent, seeds, resume)
    parent.mkdir(parents=True, exist_ok=True)
    target = _target_steps(spec, steps)
    records: dict[int, dict] = {}

    def write(complete: bool) -> dict:
        for r in records.values():
            _judge(r, threshold)
        summary = summarize_seeds(spec, seeds, records, parent, threshold, complete)
        atomic_write_json(parent / SUMMARY_NAME, summary)
        return summary

    def finish(complete: bool) -> dict:
        summary = write(complete)
        curves = _curves(parent, seeds, records, spec, say)
        say(f"\n{spec.name}: {len(records)} of {len(seeds)} seeds in {parent}/")
        say(seeds_table(summary))
        say(f"outputs: {parent / SUMMARY_NAME}" + (f", {curves}" if curves else ""))
        return summary

    jobs = _jobs(seeds, parent, resume, target, records, say)
    crashed = False
    parallel = devices is not None and len(devices) > 1 and command is not None and len(jobs) > 1
    try:
        if parallel:
            say(f"{len(jobs)} seeds on {len(devices)} devices, one process per device")
            _parallel(jobs, list(devices), command, records, say, lambda: write(False))
            crashed = any(r["status"] == "error" for r in records.values())
        else:
            crashed = _serial(jobs, run_one, records, say, lambda: write(False))
    except KeyboardInterrupt:
        finish(False)
        say(f"interrupted; continue the seeds with --resume {parent}")
        raise
    except UserError:
        if records:
            write(False)
        raise
    finish(True)
    return 1 if crashed else 0
