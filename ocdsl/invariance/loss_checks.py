"""Symmetries of a spec's losses: ``[[invariances]]`` entries with ``losses``.

A declaration::

    [[invariances]]
    kind = "permutation_invariance"
    node = "object_proj"        # the node output whose axis is permuted (its first output)
    axis = "K"                  # an axis name of that output's declared signature
    losses = ["object_loss"]    # the [losses] that must not change
    view = 2                    # optional: permute only view 2 of the views stacked along the
    views = 2                   # batch ([data] views; default 2), e.g. one view's slots

claims that the named losses are invariant when the node's output is permuted along the axis
(in only one view, with ``view``), everything else held fixed: the model runs once on drawn
inputs (standard normal, batch ``views * b``), the losses are computed on its outputs, then
again with that one output permuted. Contrastive slot attention's object losses match the
two views' slots with the Hungarian algorithm (Baldassarre & Azizpour 2022, Sec. 3.2), so
permuting one view's slots must leave them unchanged; a matching that ignored the
permutation (e.g. pairing slot i with slot i) fails the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ocdsl.invariance.search import Outcome, Property
from ocdsl.invariance.transforms import Permutation, default_tolerance, deviation

__all__ = ["LossDeclaration", "resolve_loss", "loss_properties"]


@dataclass(frozen=True)
class LossDeclaration:
    index: int
    node: str
    key: str              # the output key ("object_proj" or "node.port")
    axis: int             # the permuted axis of that output
    axis_name: str
    size: int
    losses: tuple[str, ...]
    view: int | None
    views: int
    atol: float | None
    where: str


def resolve_loss(compiled, i: int, inv: dict[str, Any]) -> tuple[LossDeclaration | None, list]:
    """Resolve entry ``i`` (which has ``losses``) against the graph: ``(declaration, [])`` or
    ``(None, diagnostics)`` for an unknown node or loss, an axis the output does not have, a
    kind other than permutation_invariance, or a view outside 1..views."""
    spec, G = compiled.spec, compiled.graph
    kp = ("invariances", i)
    diags = []
    if inv.get("kind") != "permutation_invariance":
        diags.append(spec.diag(kp + ("kind",), "a declaration about losses must be a permutation_invariance",
                               "write kind = \"permutation_invariance\""))
    for j, name in enumerate(inv.get("losses") or []):
        if name not in spec.losses:
            diags.append(spec.diag(kp + ("losses", j), f"no loss named '{name}'",
                                   "name one of: " + ", ".join(spec.losses)))
    node = inv.get("node")
    if node not in G or G.nodes[node].get("kind") != "op":
        diags.append(spec.diag(kp + ("node",), f"no node named '{node}'"))
        return None, diags
    data = G.nodes[node]
    port = data["opdef"].outputs[0]
    sig = data["node"].outputs.get(port)
    names = sig.axis_names() if sig is not None else []
    axis = str(inv.get("axis"))
    if axis not in names:
        diags.append(spec.diag(kp + ("axis",), f"output '{node}' has no axis '{axis}'"
                               + (f" (its signature: {sig.text!r})" if sig is not None else
                                  " (declare its output signature)")))
    views, view = int(inv.get("views", 2)), inv.get("view")
    if view is not None and not 1 <= int(view) <= views:
        diags.append(spec.diag(kp + ("view",), f"view {view} is not in 1..{views}"))
    if diags:
        return None, diags
    from ocdsl.graph.build import output_key
    from ocdsl.invariance.declarations import _where

    a = names.index(axis)
    key = output_key(node, port, data["opdef"].outputs)
    size = data["out_shapes"][port][a].value
    where = _where(spec, kp)
    return LossDeclaration(i, node, key, a, axis, int(size), tuple(inv["losses"]),
                           None if view is None else int(view), views, inv.get("tolerance"), where), []


def loss_properties(compiled, model, decls: list[LossDeclaration], *, max_batch: int = 2) -> list[Property]:
    """One hypothesis Property per loss declaration, run on ``model`` (eval mode, no grad)."""
    return [_loss_property(compiled, model, d, max_batch) for d in decls]


def _permute_view(x: torch.Tensor, d: LossDeclaration, perm: Permutation) -> torch.Tensor:
    idx = torch.as_tensor(perm.perm, device=x.device)
    if d.view is None:
        return x.index_select(d.axis, idx)
    b = x.shape[0] // d.views
    rows = slice((d.view - 1) * b, d.view * b)
    out = x.clone()
    out[rows] = x[rows].index_select(d.axis, idx)
    return out


def _loss_property(compiled, model, d: LossDeclaration, max_batch: int) -> Property:
    from hypothesis import strategies as st

    from ocdsl.invariance import strategies as S

    spec, G = compiled.spec, compiled.graph
    dtype = next(model.parameters()).dtype
    tol = default_tolerance(dtype, d.atol)

    @st.composite
    def cases(draw):
        return draw(S.batch_sizes(max_batch)), draw(S.seeds()), draw(S.permutations_of(d.size, d.axis_name))

    def inputs_of(b: int, seed: int) -> dict[str, torch.Tensor]:
        out = {}
        for j, name in enumerate(spec.inputs):
            shape = tuple(dim.coeff * (d.views * b) ** len(dim.symbols) for dim in G.nodes[name]["out_shapes"]["out"])
            out[name] = S.tensor_from_seed(shape, seed * 7919 + j, dtype)
        return out

    def evaluate(case) -> Outcome:
        b, seed, perm = case
        inputs = inputs_of(b, seed)
        feed = next(iter(inputs.values())) if len(inputs) == 1 else inputs
        was = model.training
        model.eval()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out = model(feed)
                sched = model.schedules(0)
                base = model.losses(inputs, out, sched, 0)
                moved_out = dict(out)
                moved_out[d.key] = _permute_view(out[d.key], d, perm)
                moved = model.losses(inputs, moved_out, sched, 0)
        finally:
            model.train(was)
        return Outcome([deviation(f"loss {n}", moved[n], base[n], tol) for n in d.losses])

    def describe(case) -> list[str]:
        b, seed, perm = case
        which = f"view {d.view} of {d.views} (views stacked along the batch)" if d.view else "every image"
        return [f"batch size {d.views * b}, inputs drawn from seed {seed} (standard normal)",
                f"{perm.describe()}, applied to {d.key} in {which}"]

    return Property(name=f"permutation_invariance {d.axis_name} (losses)", node=d.node, strategy=cases(),
                    evaluate=evaluate, describe=describe, tolerance=tol, where=d.where,
                    compared=tuple(f"loss {n}: unchanged" for n in d.losses))
