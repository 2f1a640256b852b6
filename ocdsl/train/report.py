"""What a run tells its user: metrics.jsonl, the progress bar or log lines, the summary table."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable

from ocdsl.tables import text_table
from ocdsl.train import _deps
from ocdsl.train.checkpoint import json_dumps

__all__ = ["MetricsLog", "EventLog", "Progress", "fmt_duration", "fmt_value", "summary_table", "eval_rows_last",
           "write_curves"]


class MetricsLog:
    """Append-only ``metrics.jsonl``: one JSON object per line, flushed per row.

    Rows: ``{"step", "loss", <terms>, "lr", "images_per_s", "elapsed_s"}`` per logged step,
    ``{"step", "split", <metric means>, "count"}`` per evaluated dataset, and
    ``{"step", "event": "resume" | "interrupted" | "time_limit" | "nonfinite" | "error", ...}``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self._f.write(json_dumps(row) + "\n")
        self._f.flush()

    def close(self) -> None:
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
        except (OSError, ValueError):
            pass
        self._f.close()


class EventLog:
    """TensorBoard event files beside metrics.jsonl (``tensorboard --logdir runs``), written
    with ``torch.utils.tensorboard.SummaryWriter``.

    The rows of :class:`MetricsLog` become scalars at their ``step``: a training row's
    numbers as ``train/<key>`` (``loss``, each term, ``lr``, ``grad_norm``, ``images_per_s``;
    schedules as ``sched/<name>``), an evaluation row's as ``eval/<dataset>/<metric>``;
    event rows are not drawn. :meth:`figures` adds each evaluation's figure (the image
    decomposed into its slots' masks) as the image ``masks/<dataset>``."""

    _SKIP = frozenset({"step", "phase", "split", "count", "elapsed_s"})

    def __init__(self, out_dir: Path, message=None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(out_dir))
        self._message = message or (lambda m: print(m, file=sys.stderr))
        self._warned = False

    def write(self, row: dict) -> None:
        if "event" in row or "step" not in row:
            return
        step = int(row["step"])
        prefix = f"eval/{row['split']}/" if "split" in row else "train/"
        for key, v in row.items():
            if key in self._SKIP or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            tag = key if key.startswith("sched/") else prefix + key
            self.writer.add_scalar(tag, float(v), step)

    def figures(self, results: dict) -> None:
        """``results``: ocdsl.train.evaluate.evaluate_model's, with each dataset's figure path."""
        for name, r in results.items():
            if not r.get("figure"):
                continue
            try:
                image = _deps.read_png(Path(r["figure"]))
            except Exception as e:  # a figure is never worth losing the run over
                if not self._warned:
                    self._message(f"warning: TensorBoard: could not read {r['figure']}: {type(e).__name__}: {e}")
                    self._warned = True
                continue
            self.writer.add_image(f"masks/{name}", image, int(r["step"]), dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


def fmt_duration(s: float) -> str:
    s = max(0.0, float(s))
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{sec:02d}s"


def fmt_value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4f}"
    return str(v)


class Progress:
    """A tqdm bar on a terminal (stderr), otherwise one plain line per logged step."""

    def __init__(self, total: int, initial: int, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                            file=self.stream, smoothing=0.1)
        self.total = total

    def step(self, loss: float, images_per_s: float | None) -> None:
        if self.bar is not None:
            post = {"loss": f"{loss:.4g}"}
            if images_per_s:
                post["img/s"] = f"{images_per_s:.1f}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)

    def log(self, row: dict) -> None:
        """A logged step: a line on stdout when there is no bar."""
        if self.bar is not None:
            return
        width = len(str(self.total))
        parts = [f"step {row['step']:>{width}}/{self.total}", f"loss {fmt_value(row['loss'])}",
                 f"lr {row['lr']:.3g}"]
        if row.get("images_per_s"):
            parts.append(f"{row['images_per_s']:.1f} img/s")
        parts.append(fmt_duration(row["elapsed_s"]))
        print("  ".join(parts), flush=True)

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


_NOT_METRICS = ("step", "split", "count", "event", "elapsed_s", "seconds")


def eval_rows_last(history: Iterable[dict]) -> dict[str, dict]:
    """The latest evaluation of each split/dataset from flat metrics.jsonl rows ->
    ``{split: {"step", "count", "metrics": {name: mean}}}``."""
    last: dict[str, dict] = {}
    for row in history:
        if "split" in row and "event" not in row:
            last[row["split"]] = {"step": row.get("step"), "count": row.get("count"),
                                  "metrics": {k: v for k, v in row.items() if k not in _NOT_METRICS}}
    return last


def summary_table(evals: dict[str, dict], metric_names: list[str] | None = None) -> str:
    """Aligned plain-text table: one row per split, one column per metric mean, + count."""
    if not evals:
        return "(no evaluation)"
    names = list(metric_names or [])
    for row in evals.values():
        for k in row.get("metrics", {}):
            if k not in names:
                names.append(k)
    header = ["dataset", *names, "count", "step"]
    rows = [[split, *(fmt_value(r.get("metrics", {}).get(n)) for n in names),
             str(r.get("count", "-")), str(r.get("step", "-"))] for split, r in evals.items()]
    return text_table(header, rows, "lr")


def write_curves(out_dir: Path, history: list[dict], spec, duplicate: str | None, message) -> list[str]:
    """figures/loss.png (every logged loss term and lr), figures/schedules.png (every
    schedule, the ``sched/<name>`` keys of the rows) and figures/metrics.png (each dataset's
    metrics), from the history rows; ``duplicate``: a term not to draw beside ``loss`` (the
    phase loss of a run without phases, the same numbers). Returns the figures written and
    the mask strips evaluation left in ``figures/``; a figure that fails is a warning."""
    written: list[str] = []

    def attempt(path: Path, draw) -> None:
        try:
            draw(path)
            written.append(str(path))
        except Exception as e:
            message(f"warning: could not write figure {path}: {type(e).__name__}: {e}")

    figs = Path(out_dir) / "figures"
    logs = [r for r in history if "loss" in r and "split" not in r and "event" not in r]
    if logs:
        skip = {"step", "phase", "images_per_s", "elapsed_s"} | ({duplicate} - {"loss", None})
        keys = [k for k in logs[-1] if k not in skip and not k.startswith("sched/")]
        attempt(figs / "loss.png", lambda p: _deps.save_curve(p, logs, keys, logy=["loss", "lr"]))
        sched = list(dict.fromkeys(k for r in logs for k in r if k.startswith("sched/")))
        if sched:
            attempt(figs / "schedules.png", lambda p: _deps.save_curve(p, logs, sched, logy=()))
    evals = [r for r in history if "split" in r and "event" not in r]
    if evals:  # one panel per metric, a line per evaluated dataset (ocdsl.viz.save_metric_curves)
        attempt(figs / "metrics.png",
                lambda p: _deps.save_metric_curves(p, evals, list(spec.eval_cfg.metrics) or None,
                                                   colour="split", title=f"{spec.name}: evaluation"))
    written += [str(p) for p in sorted(figs.glob("*_masks_over_time.png"))]  # evaluate.py keeps them
    return written
