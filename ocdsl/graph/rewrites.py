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
- ``fuse_kv``: a ``slot_attention`` computes k and v with one matmul by the stacked weight
  ``[W_k; W_v]`` (``SlotAttention(fuse_kv=True)``).
- ``no_grad_detached``: a ``slot_attention`` with ``straight_through`` or ``implicit_grad``
  runs the iterations before the last, whose result is detached, without autograd
  (``SlotAttention(no_grad_detached=True)``).
- ``channels_last``: ``conv_stack`` and ``spatial_broadcast_decoder`` run their convolutions
  on channels-last tensors (``channels_last=True``), oneDNN's native layout on the CPU.

Several rewrites on one node put several notes on its line, in :data:`PASSES` order.
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


def _fuse_kv(data: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    if data["opdef"].name != "slot_attention":
        return None
    kw = data["opdef"].init_args(data["in_shapes"], data["params"])
    d, din = kw["slot_size"], kw["in_features"]
    note = (f"rewrite fuse_kv: k, v = inputs @ [W_k; W_v]^T ({2 * d}x{din}) split in two: one "
            f"matmul over the inputs instead of two; exact: the same products, stacked")
    return {"fuse_kv": True}, note


def _no_grad_detached(data: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    if data["opdef"].name != "slot_attention":
        return None
    kw = data["opdef"].init_args(data["in_shapes"], data["params"])
    why = ("straight_through" if kw["straight_through"] else
           "implicit_grad" if kw["implicit_grad"] else None)
    if why is None or kw["iterations"] < 2:
        return None
    note = (f"rewrite no_grad_detached: iterations 1-{kw['iterations'] - 1} run under no_grad; "
            f"exact: {why} detaches their result, so no gradient flows through them")
    return {"no_grad_detached": True}, note


_CHANNELS_LAST_OPS = ("conv_stack", "spatial_broadcast_decoder")


def _channels_last(data: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    if data["opdef"].name not in _CHANNELS_LAST_OPS:
        return None
    note = ("rewrite channels_last: convolutions on NHWC-strided tensors (oneDNN's layout, no "
            "reorder per call); exact: same values, only the memory layout differs")
    return {"channels_last": True}, note


PASSES: dict[str, Pass] = {"fold_broadcast": _fold_broadcast, "fuse_kv": _fuse_kv,
                           "no_grad_detached": _no_grad_detached, "channels_last": _channels_last}
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
