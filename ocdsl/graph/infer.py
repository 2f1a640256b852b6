"""Shape inference over the model graph, before any tensor exists.

Walks the graph in topological order. Each model input's shape is its signature with
[dims] substituted (the batch ``B`` stays symbolic); each op node's input shapes are its
producers' output shapes, its size parameters are resolved to ints, and the op's shape rule
gives its output shapes, which must equal the node's declared ``output`` signatures.

Results live on the graph nodes (no globals): ``params`` (resolved), ``in_shapes`` (port ->
Shape), ``out_shapes`` (port -> Shape) and ``scheduled`` (param -> [schedules] entry, for
schedulable params written as a schedule name; ``params`` then holds that schedule's value
at step 0, which the op's shape rule and ``init_args`` see). A mismatch names both nodes and says expected
vs got, e.g. ``node 'slots' (slot_attention), input 'inputs' from 'features': expected
(B, N, 64), got (B, 1225, 32)``.
"""

from __future__ import annotations

from typing import Any, Mapping

import networkx as nx

from ocdsl.errors import Diagnostic, SpecError
from ocdsl.shapes import Shape, ShapeError, fmt_shape
from ocdsl.spec.bounds import size_problem
from ocdsl.spec.model import Location, NodeSpec, Spec

__all__ = ["infer_shapes", "resolve_sizes", "resolve_scheduled", "output_shapes"]


def resolve_sizes(schema_props: Mapping[str, Any], params: Mapping[str, Any], dims: Mapping[str, int],
                  where: str = "") -> dict[str, Any]:
    """Return ``params`` with every value whose schema property is marked ``x-size`` (or a
    list whose items are) evaluated to an int over ``dims``. Raises ShapeError on a value
    that is not a positive integer."""
    from ocdsl.spec import expr as E

    def one(value: Any, key: str) -> Any:
        if isinstance(value, bool):
            raise ShapeError(f"{key}: expected a size, got {value!r}")
        if isinstance(value, int):
            out = value
        elif isinstance(value, str):
            out = E.evaluate(E.parse(value), dict(dims))
        else:
            raise ShapeError(f"{key}: expected a size, got {value!r}")
        if isinstance(out, float) and out.is_integer():
            out = int(out)
        if not isinstance(out, int) or out < 1:
            raise ShapeError(f"{key} = {value!r} evaluates to {out!r}; expected a positive integer")
        if size_problem(out, key):
            raise ShapeError(size_problem(out, key))
        return out

    def is_size(prop: Mapping[str, Any]) -> bool:
        return bool(prop.get("x-size")) or any(is_size(p) for p in prop.get("anyOf", []) if isinstance(p, dict))

    resolved = dict(params)
    for key, value in params.items():
        prop = schema_props.get(key) or {}
        if isinstance(value, dict) and is_size(prop.get("additionalProperties") or {}):
            # A name -> size table (e.g. rearrange's `axes = {k = "K"}`).
            resolved[key] = {k: one(v, f"{key}.{k}") for k, v in value.items()}
        elif is_size(prop) and not isinstance(value, list):
            resolved[key] = one(value, key)
        elif isinstance(value, list):
            items = prop.get("items") or {}
            if isinstance(items, dict) and is_size(items):
                resolved[key] = [one(v, f"{key}[{i}]") for i, v in enumerate(value)]
            elif is_size(prop):
                # A size-or-list property (e.g. `kernel = 5` or `kernel = [5, 3]`).
                resolved[key] = [one(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return resolved


def resolve_scheduled(schema_props: Mapping[str, Any], params: Mapping[str, Any],
                      values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``params`` with every schedulable value (schema ``"x-schedule"``) that names a
    schedule replaced by ``values[name]`` (its value at step 0), and param -> schedule name."""
    resolved, scheduled = dict(params), {}
    for key, value in params.items():
        prop = schema_props.get(key) or {}
        if prop.get("x-schedule") and isinstance(value, str):
            scheduled[key] = value
            resolved[key] = values[value]
    return resolved, scheduled


def infer_shapes(spec: Spec, G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Annotate every vertex of ``G`` with shapes (see module docstring). Raises SpecError
    with every mismatch found; a node whose inputs failed is skipped (its error would only
    repeat the first)."""
    diags: list[Diagnostic] = []
    failed: set[str] = set()
    sched0: dict[str, Any] | None = None  # schedule values at step 0, computed when needed
    for name in nx.topological_sort(G):
        data = G.nodes[name]
        if data["kind"] == "input":
            try:
                data["out_shapes"] = {"out": data["signature"].resolve(spec.dims)}
            except ShapeError as e:
                diags.append(spec.diag(data["keypath"], str(e)))
                failed.add(name)
            continue
        node, opdef = data["node"], data["opdef"]
        preds = list(G.in_edges(name, data=True))
        if any(u in failed for u, _, _ in preds):
            failed.add(name)
            continue
        in_shapes = {d["dst_port"]: G.nodes[u]["out_shapes"][d["src_port"]] for u, _, d in preds}
        sources = {d["dst_port"]: _src_text(G, u, d["src_port"]) for u, _, d in preds}
        try:
            params = resolve_sizes(opdef.params, node.params, spec.dims)
        except (ShapeError, SpecError, ValueError, ZeroDivisionError) as e:
            diags.append(spec.diag(node.keypath, f"node '{name}' ({opdef.name}): {e}"))
            failed.add(name)
            continue
        names = [v for k, v in node.params.items()
                 if (opdef.params.get(k) or {}).get("x-schedule") and isinstance(v, str)]
        if names and sched0 is None:
            try:
                sched0 = spec.schedule_values(0)
            except SpecError as e:
                diags.extend(e.diagnostics)
                sched0 = {}
        if any(v not in (sched0 or {}) for v in names):
            failed.add(name)  # its schedule failed to evaluate (reported above)
            continue
        params, scheduled = resolve_scheduled(opdef.params, params, sched0 or {})
        try:
            out_shapes = opdef.infer(in_shapes, params)
        except ShapeError as e:
            diags.append(spec.diag(node.keypath, f"node '{name}' ({opdef.name}): {e}",
                                   _input_hint(sources, in_shapes)))
            failed.add(name)
            continue
        data.update(params=params, in_shapes=in_shapes, out_shapes=out_shapes, scheduled=scheduled)
        for port, sig in node.outputs.items():
            if port not in out_shapes:
                diags.append(spec.diag(node.keypath + ("output",),
                                       f"node '{name}' ({opdef.name}) has no output '{port}' "
                                       f"(its outputs: {', '.join(opdef.outputs)})"))
                continue
            try:
                declared = sig.resolve(spec.dims, tuple(spec.dynamic_sizes))
            except ShapeError as e:
                diags.append(spec.diag(node.keypath + ("output",), str(e)))
                continue
            got = out_shapes[port]
            if declared != got:
                failed.add(name)  # its consumers would only repeat this error
                label = "output" if len(opdef.outputs) == 1 else f"output '{port}'"
                at, where = _mismatch_at(spec, node)
                diags.append(spec.diag(
                    at,
                    f"node '{name}' ({opdef.name}) {label}: declared {sig.text!r} = {fmt_shape(declared)}"
                    f"{where}, but the op produces {fmt_shape(got)}",
                    _input_hint(sources, in_shapes)))
    if diags:
        raise SpecError(diags)
    return G


def _mismatch_at(spec: Spec, node: NodeSpec) -> tuple[tuple, str]:
    """Where to report a node output that differs from its declaration, and how to name the
    declaration there. At the declaration, unless one of the node's own keys (its inputs or
    a parameter) was set after it: by the variant that extends the declaring spec, or by an
    override. Then at that key, the change that broke the declaration, naming the
    declaration's file and line (a variant is told at its own line, not at the base's)."""
    locs = spec.locations
    declared_at = node.keypath + ("output",)
    rank = locs.derivation(declared_at)
    later = [kp for kp in (node.keypath + (k,) for k in ("input", "inputs", *node.params))
             if kp in locs and locs.derivation(kp) < rank]
    if not later:
        return declared_at, ""
    at = min(later, key=locs.derivation)
    loc = locs.get(declared_at)
    others = [f"'{kp[-1]}' ({_where(locs.get(kp))})" for kp in later if kp != at]
    return at, f" (at {_where(loc)}" + (f"; also set since: {', '.join(others)}" if others else "") + ")"


def _where(loc: Location) -> str:
    return f"{loc.file}:{loc.line}" if loc.line else loc.file


def _src_text(G: nx.MultiDiGraph, node: str, port: str) -> str:
    data = G.nodes[node]
    if data["kind"] == "input" or len(data["opdef"].outputs) == 1:
        return node
    return f"{node}.{port}"


def _input_hint(sources: dict[str, str], in_shapes: dict[str, Shape]) -> str | None:
    if not sources:
        return None
    return "its inputs: " + ", ".join(f"'{p}' from '{s}' {fmt_shape(in_shapes[p])}" for p, s in sources.items())


def output_shapes(G: nx.MultiDiGraph) -> dict[str, Shape]:
    """Output key (``"encoder"``, ``"slots.attention"``) -> Shape, for every op node."""
    from ocdsl.graph.build import output_key

    out: dict[str, Shape] = {}
    for name, data in G.nodes(data=True):
        if data["kind"] != "op":
            continue
        for port, s in data["out_shapes"].items():
            out[output_key(name, port, data["opdef"].outputs)] = s
    return out
