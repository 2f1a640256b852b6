"""Exact rewrites of the checked graph, applied between shape inference and code generation
(:func:`ocdsl.pipeline.build`).

A rewrite changes how a node computes, never what: the node's module gets extra
constructor arguments (``init_overrides`` on the node's graph data), its parameters and
state dict stay the same, and its outputs and gradients equal the unrewritten ones up to
floating-point rounding. Each applied rewrite leaves a note (``rewrites`` on the node's
data: name -> one line saying what was rewritten and why it is exact) that codegen writes
as a comment on the node's line of the generated ``__init__``.

Which rewrites run: spec ``[compile] rewrites`` (names from
:data:`ocdsl.spec.schema.REWRITES`, checked by spec validation); default all of them,
``rewrites = []`` none.

- ``fold_broadcast``: a ``spatial_broadcast_decoder`` computes its first layer (a 'same'
  Conv2d, or the strided ConvTranspose2d of the CLEVR decoder) on ``tile(slot) +
  position embedding`` as ``conv(position embedding)`` once per forward plus one ``o x d``
  matrix per border class times each slot (``SpatialBroadcastDecoder(fold_broadcast=True)``;
  the identity is in its docstring).
"""

from __future__ import annotations

from typing import Any, Callable

import networkx as nx

from ocdsl.ops.decoders import fold_classes
from ocdsl.spec.model import Spec
from ocdsl.spec.schema import REWRITES

__all__ = ["apply_rewrites", "enabled_rewrites", "PASSES"]

# A pass looks at one op node's graph data and returns (init overrides, note), or None
# where it does not apply.
Pass = Callable[[dict[str, Any]], "tuple[dict[str, Any], str] | None"]


def _fold_broadcast(data: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    if data["opdef"].name != "spatial_broadcast_decoder":
        return None
    kw = data["opdef"].init_args(data["in_shapes"], data["params"])
    kernels = kw["kernel"] if isinstance(kw["kernel"], list) else [kw["kernel"]] * len(kw["channels"])
    k, stride = int(kernels[0]), int(kw["strides"][0])
    r, c = fold_classes(kw["broadcast"], k, stride)
    h, w = kw["broadcast"]
    layer = f"Conv2d {k}x{k} 'same'" if stride == 1 else f"ConvTranspose2d {k}x{k} stride {stride}"
    note = (f"rewrite fold_broadcast: layer 1 ({layer}) on tile(slot) + pos ({h}x{w}) = conv(pos) "
            f"once per forward + M[row class, col class] @ slot over {r}x{c} border classes; "
            f"exact: the conv is linear and reads zeros outside the grid")
    return {"fold_broadcast": True}, note


PASSES: dict[str, Pass] = {"fold_broadcast": _fold_broadcast}
assert set(PASSES) == set(REWRITES), "ocdsl.spec.schema.REWRITES and the passes here must agree"


def enabled_rewrites(spec: Spec) -> list[str]:
    """``[compile] rewrites`` as written, else every rewrite (in :data:`PASSES` order)."""
    written = (spec.data.get("compile") or {}).get("rewrites")
    return list(PASSES) if written is None else [n for n in PASSES if n in written]


def apply_rewrites(spec: Spec, G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Apply the spec's enabled rewrites to ``G`` in place (and return it): on each op node
    a pass applies to, ``init_overrides`` (constructor kwargs) and ``rewrites`` (name ->
    note) are updated. Nodes that share another node's module are left alone (the owner's
    module is the one built)."""
    for name in enabled_rewrites(spec):
        fn = PASSES[name]
        for _, data in G.nodes(data=True):
            if data.get("kind") != "op" or data["node"].shared_with:
                continue
            got = fn(data)
            if got is None:
                continue
            overrides, note = got
            data.setdefault("init_overrides", {}).update(overrides)
            data.setdefault("rewrites", {})[name] = note
    return G
