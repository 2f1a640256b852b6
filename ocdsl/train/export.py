"""Model weights out of a run, in the ecosystem's format: ``ocdsl export SPEC RUN``.

Writes the weights of a run's checkpoint as a safetensors file (a flat name -> tensor
table, no pickle, loadable with ``safetensors.torch.load_file`` from any framework that
reads it), after checking that they fit the spec's model. The file's metadata names the
spec, its hash and the step, so a reader knows what produced it::

    {"format": "ocdsl-weights", "spec": "<name>", "spec_hash": "<sha256>", "step": "<int>"}

:func:`load_weights` reads such a file back into a model of the same spec (strict: every
name and shape must fit).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ocdsl.errors import Diagnostic, UserError
from ocdsl.train.checkpoint import load_checkpoint, load_model_state

__all__ = ["export_weights", "load_weights", "WEIGHTS_NAME"]

#: Default file name, written in the run directory.
WEIGHTS_NAME = "model.safetensors"


def export_weights(spec, model: torch.nn.Module, run_dir: Path, out: Path | None = None, *,
                   allow_spec_mismatch: bool = False) -> Path:
    """Load the checkpoint of ``run_dir`` into ``model`` (the uncompiled module built from
    ``spec``) and write its weights to ``out`` (default ``run_dir/model.safetensors``).

    Tied weights (a ``share``d module) are written once (``safetensors.torch.save_model``).
    Returns the path written. Raises UserError (naming the file) when the checkpoint is
    unreadable, written for another spec (unless ``allow_spec_mismatch``) or does not fit
    the model, and when ``out`` is an existing folder."""
    from safetensors.torch import save_model

    state, ckpt = load_checkpoint(Path(run_dir), spec=spec, allow_spec_mismatch=allow_spec_mismatch)
    load_model_state(model, state["model"], ckpt)
    path = Path(out) if out is not None else ckpt.parent / WEIGHTS_NAME
    if path.is_dir():
        raise UserError(Diagnostic(f"{path} is a folder", file=str(path),
                                   hint=f"name a file, e.g. {path / WEIGHTS_NAME}"))
    metadata = {"format": "ocdsl-weights", "spec": str(spec.name), "spec_hash": str(spec.source_hash),
                "step": str(int(state["step"]))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_model(model, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def load_weights(model: torch.nn.Module, path: Path) -> dict[str, str]:
    """Read a safetensors file written by :func:`export_weights` into ``model`` (strict).
    Returns the file's metadata. Raises UserError naming the file when it is unreadable or
    does not fit the model."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        load_model(model, str(path), strict=True)
    except (OSError, SafetensorError) as e:
        raise UserError(Diagnostic(f"cannot read weights: {e}", file=str(path))) from None
    except RuntimeError as e:
        text = " ".join(str(e).split())[:400]
        raise UserError(Diagnostic(f"weights do not fit the model: {text}", file=str(path),
                                   hint="were they exported from a different spec?")) from None
    return metadata
