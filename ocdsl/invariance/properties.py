"""Resolved ``[[invariances]]`` declarations -> hypothesis properties of a compiled model.

Each case draws a batch size, a seed for the inputs and drawn states (standard normal;
shifted sites get a blanked border at least as wide as the shift, see transforms.py) and
the permutation or shift; both runs share the torch RNG state, so random draws elsewhere
in the model (e.g. another node's slot initialisation) are identical. The weights are the
model's own (``run_checks(model=...)``) or a fresh initialisation from the check's seed,
the same for every case; the model runs in eval mode without gradients.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from ocdsl.errors import Diagnostic, UserError
from ocdsl.invariance.declarations import Declaration, resolve
from ocdsl.invariance.op_symmetry import node_data
from ocdsl.invariance.search import Outcome, Property, Result
from ocdsl.invariance.transforms import (TRANSLATION_KINDS, Expect, Permutation, Shift, Tolerance,
                                         apply_to_site, default_tolerance, deviation, expected_output,
                                         move_coords)
from ocdsl.shapes import Shape

__all__ = ["model_properties", "run_checks", "check_op"]


def _need_hypothesis() -> None:
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        raise UserError(Diagnostic(
            "checking symmetries needs the 'hypothesis' package, which is not installed",
            file="ocdsl check", hint="pip install hypothesis  (or: pip install 'ocdsl[dev]')"
        )) from None


def run_checks(spec_or_compiled: Any, examples: int = 20, *, overrides: list[str] | None = None,
               model=None, seed: int = 0, max_batch: int = 2) -> list[Result]:
    """Run every ``[[invariances]]`` declaration of a spec on its compiled model.

    ``spec_or_compiled``: a path, a ``Spec`` or a ``pipeline.Compiled``; ``examples``: cases
    tried per declaration (hypothesis' ``max_examples``); ``model``: run on this module
    instead of a fresh instance (e.g. a trained or deliberately broken one; its weights as
    they are), otherwise weights are initialised from ``seed``. Raises UserError / SpecError
    for a bad spec or declaration (with file, line and column)."""
    _need_hypothesis()
    from ocdsl.invariance.search import search
    from ocdsl.pipeline import Compiled, build

    compiled = spec_or_compiled if isinstance(spec_or_compiled, Compiled) else build(
        spec_or_compiled, overrides=overrides)
    if not compiled.spec.invariances:
        return []
    resolve(compiled)                      # report declaration errors before building a model
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = compiled.instantiate(device="cpu", torch_compile=False)
    from ocdsl.invariance.loss_checks import loss_properties, resolve_loss

    loss_decls = [resolve_loss(compiled, i, inv)[0] for i, inv in enumerate(compiled.spec.invariances)
                  if isinstance(inv, dict) and inv.get("losses") is not None]
    props = model_properties(compiled, model, max_batch=max_batch) + loss_properties(
        compiled, model, loss_decls, max_batch=max_batch)
    return [search(p, examples, seed=seed) for p in props]


def check_op(op, *, examples: int = 20, module=None, dtype=None, tolerance: Tolerance | None = None,
             seed: int = 0, max_shift: int | None = None) -> list[Result]:
    """Check the symmetries op ``op`` declares (``OpDef.symmetries``) on tiny instances;
    ``module`` replaces its module class (a factory taking the op's init_args)."""
    _need_hypothesis()
    from ocdsl.invariance.op_checks import check_op as _check_op
    return _check_op(op, examples=examples, module=module, dtype=dtype or torch.float32,
                     tolerance=tolerance, seed=seed, max_shift=max_shift)


# ---- running the model ---------------------------------------------------------------------

class _Intercept(nn.Module):
    """Wraps a node's module: injects drawn states and transforms inputs on the way in."""

    def __init__(self, inner: nn.Module, opdef, inject: dict[str, torch.Tensor],
                 fns: dict[str, Any], coord_fns: dict[str, Any] | None = None):
        super().__init__()
        self.inner = inner
        self.opdef = opdef
        self.inject = inject
        self.fns = fns
        self.coord_fns = coord_fns or {}     # port -> fn(value, inputs, module)

    def forward(self, *args, **kwargs):
        names = [p.name for p in self.opdef.inputs]
        bound = dict(kwargs)
        for name, a in zip(names, args):
            bound[name] = a
        bound.update(self.inject)
        given = dict(bound)
        for port, fn in self.fns.items():
            bound[port] = fn(bound[port])
        for port, fn in self.coord_fns.items():
            bound[port] = fn(bound[port], given, self.inner)
        if len(names) == 1:
            return self.inner(bound[names[0]])
        return self.inner(**{k: v for k, v in bound.items() if k in names})


def _owner(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    """(the module holding node ``path``'s module, its attribute): ``draw.target`` is
    ``model.draw.target`` (a block's class holds its nodes as attributes)."""
    *outer, last = path.split(".")
    for name in outer:
        model = getattr(model, name)
    return model, last


@contextmanager
def _wrapped(model: nn.Module, wrappers: dict[str, _Intercept]) -> Iterator[None]:
    saved = {n: getattr(*_owner(model, n)) for n in wrappers}
    try:
        for n, w in wrappers.items():
            setattr(*_owner(model, n), w)
        yield
    finally:
        for n, m in saved.items():
            setattr(*_owner(model, n), m)


@dataclass(frozen=True)
class _ModelCase:
    batch: int
    seed: int
    transform: Permutation | Shift


def _concrete(shape: Shape, b: int) -> tuple[int, ...]:
    out = []
    for d in shape:
        v = d.coeff
        for s in d.symbols:
            v *= b
        out.append(v)
    return tuple(out)


def model_properties(compiled, model: nn.Module, *, max_batch: int = 2) -> list[Property]:
    """One Property per declaration of ``compiled.spec``, run on ``model``."""
    return [_model_property(compiled, model, d, max_batch) for d in resolve(compiled)]


def _site_wrappers(model: nn.Module, spec, G, decl: Declaration, states: dict[str, torch.Tensor], t,
                   moved: bool) -> dict[str, "_Intercept"]:
    """Node name -> the :class:`_Intercept` of that node's module: the states injected at its
    ports and, with ``moved``, the transform ``t`` applied to each declared site there."""
    per_node: dict[str, tuple[dict, dict, dict]] = {}
    for s in decl.sites:
        if s.node is None:
            continue
        inject, fns, coord_fns = per_node.setdefault(s.node, ({}, {}, {}))
        if s.inject:
            inject[s.port] = states[s.label]
        if s.components:
            coord_fns[s.port] = _coordinate_fn(spec, G, s, t, moved)
        else:
            fns[s.port] = (lambda x, s=s: apply_to_site(x, s.axes, t, moved, s.fill))
    return {n: _Intercept(getattr(*_owner(model, n)), node_data(spec, G, n)["opdef"], inj, fns, cfns)
            for n, (inj, fns, cfns) in per_node.items()}


def _coordinate_fn(spec, G, s, t: Shift, moved: bool):
    """What a coordinate site's value becomes: pulled inside the frame by the op's example
    (``OpExample.inside``, margins per component), then, when ``moved``, moved by the shift."""
    from ocdsl.invariance.op_checks import EXAMPLES

    ex = EXAMPLES.get(node_data(spec, G, s.node)["opdef"].name)
    inside = ex.inside.get(s.port) if ex is not None else None
    margins = {c: m for c, m in zip(s.components, t.margins) if c >= 0}

    def fn(x, inputs, module):
        if inside is not None:
            x = inside(x, inputs, module, margins)
        return move_coords(x, s.components, s.scales, t.offsets) if moved else x
    return fn


def _model_property(compiled, model: nn.Module, decl: Declaration, max_batch: int) -> Property:
    from hypothesis import strategies as st

    from ocdsl.invariance import strategies as S

    spec, G = compiled.spec, compiled.graph
    first = next(model.parameters(), None)
    dtype = torch.float32 if first is None else first.dtype
    device = torch.device("cpu") if first is None else first.device
    tol = default_tolerance(dtype, decl.atol)
    symbolic = any(d.symbols for name in spec.inputs for d in G.nodes[name]["out_shapes"]["out"])
    translation = decl.kind in TRANSLATION_KINDS

    @st.composite
    def cases(draw):
        b = draw(S.batch_sizes(max_batch)) if symbolic else 1
        seed = draw(S.seeds())
        if translation:
            transform = draw(S.shifts(decl.sizes, decl.names, decl.max_shift))
        else:
            transform = draw(S.permutations_of(decl.sizes[0], decl.names[0]))
        return _ModelCase(b, seed, transform)

    def draws(case: _ModelCase):
        inputs = {name: S.tensor_from_seed(_concrete(G.nodes[name]["out_shapes"]["out"], case.batch),
                                           case.seed * 7919 + j, dtype).to(device)
                  for j, name in enumerate(spec.inputs)}
        states = {s.label: S.tensor_from_seed(_concrete(s.shape, case.batch),
                                              case.seed * 7919 + 1000 + j, dtype).to(device)
                  for j, s in enumerate(decl.sites) if s.inject}
        return inputs, states

    def run(case: _ModelCase, moved: bool) -> dict[str, torch.Tensor]:
        inputs, states = draws(case)
        t = case.transform
        for s in decl.sites:
            if s.model_input is not None:
                inputs[s.model_input] = apply_to_site(inputs[s.model_input], s.axes, t, moved, s.fill)
        wrappers = _site_wrappers(model, spec, G, decl, states, t, moved)
        feed = inputs[next(iter(spec.inputs))] if len(spec.inputs) == 1 else inputs
        with _wrapped(model, wrappers), torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(case.seed)
            return model(feed)

    def evaluate(case: _ModelCase) -> Outcome:
        was_training = model.training
        model.eval()
        try:
            base, moved = run(case, False), run(case, True)
        finally:
            model.train(was_training)
        devs = []
        for e in decl.expects:
            exp, mask = expected_output(base[e.key], e, case.transform)
            devs.append(deviation(e.key, moved[e.key], exp, tol, mask))
        return Outcome(devs)

    def describe(case: _ModelCase) -> list[str]:
        inputs, states = draws(case)
        sites = ", ".join(s.label if s.components else f"{s.label} (axis {' '.join(s.names)})"
                          for s in decl.sites)
        shapes = ", ".join([f"{k} {tuple(v.shape)}" for k, v in inputs.items()]
                           + [f"{k} {tuple(v.shape)}" for k, v in states.items()])
        return [f"batch size {case.batch}, values drawn from seed {case.seed} (standard normal)",
                f"{case.transform.describe()}, applied to {sites}",
                f"shapes: {shapes}"]

    compared = tuple(_compared(e, decl) for e in decl.expects)
    return Property(name=decl.label, node=decl.node, strategy=cases(), evaluate=evaluate,
                    describe=describe, tolerance=tol, where=decl.where,
                    notes=tuple(decl.notes), compared=compared)


def _compared(e: Expect, decl: Declaration) -> str:
    names = " ".join(decl.names)
    if e.action == "same":
        return f"{e.key}: unchanged"
    if e.action == "permute":
        return f"{e.key}: permuted along {names}"
    if e.action == "shift":
        return f"{e.key}: shifted along {names}"
    moves = ", ".join(f"{'xyz'[c]} {s:.3g}/px" for c, s in zip(e.components, e.scales) if c >= 0)
    return f"{e.key}: moves with the shift ({moves})"
