"""Checkpoints: atomic writes, ``weights_only`` loads, RNG state as plain tensors.

A run directory holds one ``checkpoint.pt``, always the *last good* state: it is
written only from a completed optimizer step whose loss was finite, and replaced
atomically (temp file in the same folder, fsync, ``os.replace``), so a crash, a full disk
or Ctrl-C during a save leaves the previous checkpoint intact and no partial file behind.

Contents (a dict that ``torch.load(..., weights_only=True)`` accepts)::

    format        int, CHECKPOINT_FORMAT
    spec_name     str;  spec_hash  str (Spec.source_hash of the spec that trained it)
    step          int, optimizer updates completed
    data_position int, training samples consumed from the stream (step * batch_size)
    model         the uncompiled module's state_dict (no ``_orig_mod.`` prefix)
    optimizer     optimizer.state_dict()
    rng           {"torch": ByteTensor, "cuda": [ByteTensor], "numpy": {...}, "python": [...]}
                  (the global generators after ``step`` steps: ocdsl.train.rng.capture_rng)
    steps         int, the steps the run was to reach (``--steps`` / the phases' total);
                  absent in older checkpoints
    data_seed     int, the seed of the training data stream (ocdsl.train.rng.data_seeds);
                  absent in older checkpoints, whose stream was data.seed (default 0) for a
                  generator and train.seed for the shuffling order
    history       list of the metrics.jsonl rows so far (plain dicts)
    elapsed_s     float, training wall time of all sessions so far
    images_seen   int
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ocdsl.errors import Diagnostic, UserError
from ocdsl.train.rng import capture_rng, restore_rng  # re-exported: they lived here

__all__ = [
    "CHECKPOINT_NAME",
    "CHECKPOINT_FORMAT",
    "json_dumps",
    "atomic_write_bytes",
    "atomic_write_json",
    "save_checkpoint",
    "load_checkpoint",
    "find_checkpoint",
    "capture_rng",
    "restore_rng",
    "load_model_state",
]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
_REQUIRED = ("format", "spec_name", "spec_hash", "step", "model")


# ---------------------------------------------------------------------------- atomic writes

def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, fsync, then rename over it.

    On any exception (KeyboardInterrupt included) the temp file is removed and ``path``
    is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data))


def _json_safe(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as the strings "nan", "inf", "-inf"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.generic,)):
        return _json_safe(obj.item())
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return _json_safe(obj.item())
    return obj


def json_dumps(obj: Any, **kwargs) -> str:
    return json.dumps(_json_safe(obj), allow_nan=False, default=str, **kwargs)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json_dumps(obj, indent=2) + "\n").encode())


# ---------------------------------------------------------------------------- save / load

def save_checkpoint(path: Path, state: dict) -> Path:
    """Write ``state`` (see module docstring) to ``path`` atomically."""
    state = dict(state, format=CHECKPOINT_FORMAT)
    _atomic_write(Path(path), lambda f: torch.save(state, f))
    return Path(path)


def find_checkpoint(where: Path) -> Path:
    """``where`` is a run directory or a checkpoint file -> the checkpoint file.
    Raises UserError when there is none."""
    where = Path(where)
    path = where / CHECKPOINT_NAME if where.is_dir() else where
    if not path.is_file():
        hint = ("--resume and `ocdsl eval` take a run directory (the one holding "
                f"{CHECKPOINT_NAME})")
        raise UserError(Diagnostic(f"no checkpoint found: {path} does not exist",
                                   file=str(path), hint=hint))
    return path


def load_checkpoint(where: Path, *, spec=None, allow_spec_mismatch: bool = False,
                    warn=None) -> tuple[dict, Path]:
    """Read a checkpoint (``weights_only=True``) -> (state, path).

    ``where`` is a run directory or a ``checkpoint.pt``. Raises UserError naming the file
    when it is unreadable, not an ocdsl checkpoint, or (unless ``allow_spec_mismatch``)
    written for a different spec name or hash; with the flag a mismatch is a warning
    (printed with ``warn``, default stderr)."""
    path = find_checkpoint(where)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip errors, UnpicklingError, EOFError, RuntimeError ...
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = [ln for ln in lines if ln.startswith("WeightsUnpickler error:")]
        first = (detail or lines or [type(e).__name__])[0]
        raise UserError(Diagnostic(
            f"cannot read checkpoint: {first}", file=str(path),
            hint="the file is truncated, corrupt or not a checkpoint written by ocdsl")) from None
    if not isinstance(state, dict) or any(k not in state for k in _REQUIRED):
        raise UserError(Diagnostic("not an ocdsl checkpoint (required entries missing)",
                                   file=str(path)))
    if state["format"] != CHECKPOINT_FORMAT:
        raise UserError(Diagnostic(
            f"checkpoint format {state['format']} is not supported (expected {CHECKPOINT_FORMAT})",
            file=str(path)))
    if spec is not None:
        problems = []
        if state["spec_name"] != spec.name:
            problems.append(f"it was written for spec '{state['spec_name']}', not '{spec.name}'")
        if state["spec_hash"] != spec.source_hash:
            problems.append(f"its spec hash {state['spec_hash'][:12]} differs from "
                            f"{spec.source_hash[:12]} (the spec or an override changed)")
        if problems:
            msg = "checkpoint does not match the spec: " + "; ".join(problems)
            if not allow_spec_mismatch:
                raise UserError(Diagnostic(
                    msg, file=str(path),
                    hint="use the spec and overrides the run was started with, or pass "
                         "--allow-spec-change to load it anyway"))
            (warn or (lambda m: print(m, file=sys.stderr)))(f"{path}: warning: {msg}")
    return state, path


def load_model_state(module: torch.nn.Module, state_dict: dict, path: Path) -> None:
    """``module.load_state_dict`` (strict), with a UserError naming the file on mismatch.
    A ``_orig_mod.`` prefix (a state_dict saved from a torch.compile'd module) is dropped."""
    prefix = "_orig_mod."
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as e:
        text = " ".join(str(e).split())
        if len(text) > 400:
            text = text[:400] + " ..."
        raise UserError(Diagnostic(f"checkpoint does not fit the model: {text}", file=str(path),
                                   hint="was it written by a different spec?")) from None
