"""ocdsl: a declarative compiler for object-centric learning.

Public API (docs/architecture.md, Public API)::

    spec = ocdsl.load("specs/slot_attention.toml", overrides=["dims.K=5"])
    model = ocdsl.compile(spec, torch_compile="auto", device="cpu")
    out = model(images)            # dict of every node output

Errors in user input raise :class:`ocdsl.SpecError` (a :class:`ocdsl.UserError`).
"""

from __future__ import annotations

__version__ = "0.1.0"

from ocdsl.errors import Diagnostic, SpecError, UserError  # noqa: E402

__all__ = ["__version__", "load", "compile", "check", "Diagnostic", "SpecError", "UserError"]


def load(path, overrides=None):
    """Load, merge (``extends``), override and validate a spec file -> ``Spec``.
    Raises SpecError listing every problem, each with file, line, column and key."""
    from ocdsl.spec import load as _load
    return _load(path, overrides)


def compile(spec_or_path, *, torch_compile="auto", device="cpu", overrides=None, out=None):  # noqa: A001
    """Spec (or path) -> instantiated ``torch.nn.Module`` on ``device``.

    The generated source is written to ``out`` (default: a per-user cache named after the
    spec's hash) and imported from there. ``torch_compile``: True/False force it;
    ``"auto"`` compiles on CUDA, and on the CPU only for models whose ops all measured
    faster compiled (docs/results.md, The machines). Compilation is in place
    (``nn.Module.compile``), so ``state_dict`` keys stay those of the generated module.
    """
    from ocdsl.pipeline import build
    return build(spec_or_path, overrides=overrides, out=out).instantiate(device=device,
                                                                         torch_compile=torch_compile)


def check(spec_or_path, *, examples=20, overrides=None):
    """Run the spec's declared symmetries (``[[invariances]]``) as hypothesis property
    tests -> report (``.passed``, ``.failures``; ``str(report)`` is the table with the
    smallest counterexample of each failure)."""
    from ocdsl.invariance import check as _check
    return _check(spec_or_path, examples=examples, overrides=overrides)
