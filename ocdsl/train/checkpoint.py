"""Checkpoints: atomic writes, ``weights_only`` loads, RNG state as plain tensors.

A run directory holds one ``checkpoint.pt``, always the *last good* state: it is
written only from a completed optimizer step whose loss was finite, and replaced
atomically (temp file in the same folder, fsync, ``os.replace``), so a crash, a full disk
or Ctrl-C during a save leaves the previous checkpoint intact and no partial file behind.

Contents (a dict that ``torch.load(..., weights_only=True)`` accepts)::

    format        int, CHECKPOINT_FORMAT
    spec_name     str;  spec_hash  str (Spec.source_hash of the spec that trained it)
    step          int, optimizer updates completed
    phase         int, index of the phase that wrote it (its optimizer state)
    batch_size    int, train.batch_size (the global batch)
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
    rng_ranks     [rng of rank 1, ..., rank N-1] of a run in N processes (distributed.py)
    history       list of the metrics.jsonl rows so far (plain dicts)
    elapsed_s     float, training wall time of all sessions so far
    images_seen   int
    torch_version str

:func:`load_checkpoint` checks every field (:func:`check_state`: no unknown one, each of
its type and layout, ``step <= steps``), so a damaged or edited file is a UserError naming
the file and the field, never a traceback later.
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
    "check_state",
    "check_optimizer_fits",
    "RESUME_REQUIRED",
]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
_REQUIRED = ("format", "spec_name", "spec_hash", "step", "model")
#: what ``--resume`` needs besides _REQUIRED
RESUME_REQUIRED = ("optimizer", "rng")


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
                    warn=None, require: tuple[str, ...] = ()) -> tuple[dict, Path]:
    """Read a checkpoint (``weights_only=True``) -> (state, path).

    ``where`` is a run directory or a ``checkpoint.pt``. Every field is checked
    (:func:`check_state`; ``require``: optional fields that must be there, e.g.
    :data:`RESUME_REQUIRED`). Raises UserError naming the file (and the field)
    when it is unreadable, not an ocdsl checkpoint, malformed, or (unless ``allow_spec_mismatch``)
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
    check_state(state, path, require=require)
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


# ---------------------------------------------------------------------------- field checks

def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _nonneg_int(v) -> str | None:
    return None if _is_int(v) and v >= 0 else "an integer >= 0"


def _opt(check):
    return lambda v: None if v is None else check(v)


def _tensor_dict(v) -> str | None:
    ok = isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())
    return None if ok else "a dict of parameter name -> tensor"


def _optimizer(v) -> str | None:
    ok = (isinstance(v, dict) and set(v) == {"state", "param_groups"} and isinstance(v["state"], dict)
          and isinstance(v["param_groups"], list) and all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                                          for g in v["param_groups"]))
    return None if ok else "an optimizer state_dict ({'state': {...}, 'param_groups': [{'params': [...]}, ...]})"


def _byte_tensor(v) -> bool:
    return isinstance(v, torch.Tensor) and v.dtype == torch.uint8 and v.dim() == 1


def _rng(v) -> str | None:
    """The shape of ocdsl.train.rng.capture_rng's dict."""
    want = ("{'torch': ByteTensor, 'cuda': [ByteTensor], 'numpy': {name, keys (624,) int64, pos, has_gauss, "
            "cached_gaussian}, 'python': [version, [625 ints], gauss_next]}")
    if not isinstance(v, dict) or set(v) != {"torch", "cuda", "numpy", "python"}:
        return want
    n, py = v["numpy"], v["python"]
    ok = (_byte_tensor(v["torch"]) and isinstance(v["cuda"], list) and all(_byte_tensor(c) for c in v["cuda"])
          and isinstance(n, dict) and set(n) == {"name", "keys", "pos", "has_gauss", "cached_gaussian"}
          and isinstance(n["name"], str) and isinstance(n["keys"], torch.Tensor)
          and n["keys"].dtype == torch.int64 and tuple(n["keys"].shape) == (624,)
          and _is_int(n["pos"]) and 0 <= n["pos"] <= 624 and _is_int(n["has_gauss"])
          and isinstance(n["cached_gaussian"], float)
          and isinstance(py, list) and len(py) == 3 and _is_int(py[0])
          and isinstance(py[1], list) and len(py[1]) == 625 and all(_is_int(x) for x in py[1])
          and (py[2] is None or isinstance(py[2], float)))
    return None if ok else want


#: field -> check (None when the value is fine, else what was expected); see the module docstring
FIELDS = {
    "format": lambda v: None if _is_int(v) else "an integer",
    "spec_name": lambda v: None if isinstance(v, str) else "a string",
    "spec_hash": lambda v: None if isinstance(v, str) else "a string",
    "step": _nonneg_int,
    "phase": _nonneg_int,
    "data_position": _nonneg_int,
    "batch_size": lambda v: None if _is_int(v) and v >= 1 else "an integer >= 1",
    "model": _tensor_dict,
    "optimizer": _optimizer,
    "rng": _rng,
    "rng_ranks": lambda v: None if isinstance(v, list) and all(_rng(r) is None for r in v)
    else "a list of RNG states",
    "steps": _opt(lambda v: None if _is_int(v) and v >= 1 else "an integer >= 1"),
    "data_seed": _opt(lambda v: None if _is_int(v) else "an integer"),
    "history": lambda v: None if isinstance(v, list) and all(isinstance(r, dict) for r in v)
    else "a list of metrics rows (dicts)",
    "elapsed_s": lambda v: None if _is_num(v) and v >= 0 else "a number >= 0",
    "images_seen": _nonneg_int,
    "torch_version": lambda v: None if isinstance(v, str) else "a string",
}


def _describe(v) -> str:
    if isinstance(v, torch.Tensor):
        return f"a {str(v.dtype).replace('torch.', '')} tensor of shape {tuple(v.shape)}"
    if isinstance(v, dict):
        keys = ", ".join(map(str, list(v)[:8])) + (", ..." if len(v) > 8 else "")
        return f"a dict with keys {{{keys}}}"
    if isinstance(v, (list, tuple)) and any(isinstance(x, (list, dict, torch.Tensor)) for x in v):
        return f"a {type(v).__name__} of {len(v)} items"
    text = repr(v)
    return f"{type(v).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def check_state(state: dict, path: Path, *, require: tuple[str, ...] = ()) -> None:
    """Every field of a loaded checkpoint (:data:`FIELDS`): no unknown field, none of
    ``require`` missing, each of the right type and shape, and ``step`` within ``steps``.
    Raises UserError naming the file and every bad field."""
    bad = []
    for key in sorted(set(state) - set(FIELDS), key=str):
        bad.append(Diagnostic(f"unknown checkpoint field '{key}'", file=str(path), keypath=(str(key),),
                              hint="not written by this version of ocdsl"))
    for key in require:
        if key not in state:
            bad.append(Diagnostic(f"checkpoint field '{key}' is missing", file=str(path), keypath=(key,),
                                  hint="the file was not written by `ocdsl run`, or by an older version"))
    for key, check in FIELDS.items():
        if key in state:
            want = check(state[key])
            if want is not None:
                bad.append(Diagnostic(f"checkpoint field '{key}' should be {want}, got {_describe(state[key])}",
                                      file=str(path), keypath=(key,), hint="the file is damaged or was edited"))
    if not bad and state.get("steps") is not None and state["step"] > state["steps"]:
        bad.append(Diagnostic(f"checkpoint step {state['step']} is past its run's {state['steps']} steps",
                              file=str(path), keypath=("step",), hint="the file is damaged or was edited"))
    if bad:
        raise UserError(bad)


def check_optimizer_fits(opt: torch.optim.Optimizer, path: Path) -> None:
    """After ``opt.load_state_dict``: each per-parameter state tensor (Adam's moments ...)
    has its parameter's shape, so a mismatch fails here and not inside the first step.
    Raises UserError naming the file."""
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            for name, v in opt.state.get(p, {}).items():
                if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                    raise UserError(Diagnostic(
                        f"optimizer state '{name}' of parameter {pi} of group {gi} has shape "
                        f"{tuple(v.shape)}, its parameter {tuple(p.shape)}", file=str(path),
                        keypath=("optimizer",), hint="the checkpoint belongs to a different model"))
