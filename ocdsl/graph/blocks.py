"""Blocks and repeat nodes in the graph: each ``[blocks.<name>]`` is analysed as a graph of
its own (build + shape inference, errors at the block's lines), then becomes an op whose
shape rule checks its inputs against the block's declared signatures and returns the
block's output shapes. A repeat node's op adds the step axis (``B T ...``) and the
``final_<o>`` ports, and checks that every carried state keeps its shape from step to
step (ocdsl/spec/blocks.py describes the language).

The analysed blocks are ``G.graph["blocks"]``: name -> (the block as a Spec of its own,
its graph), in an order where a block comes after the blocks it uses.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import networkx as nx

from ocdsl.errors import Diagnostic, SpecError
from ocdsl.graph.build import build_graph
from ocdsl.graph.infer import infer_shapes
from ocdsl.ops import registry
from ocdsl.ops.registry import OpDef
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape
from ocdsl.spec.blocks import FINAL, REPEAT, BlockSpec, block_order
from ocdsl.spec.model import NodeSpec, Spec

__all__ = ["analyse_with_blocks", "block_spec"]


def block_spec(spec: Spec, block: BlockSpec) -> Spec:
    """``block`` seen as a model of its own: its inputs and nodes, no losses."""
    return dataclasses.replace(spec, inputs=dict(block.inputs), nodes=dict(block.nodes), losses={})


def _same(a: Shape, b: Shape) -> bool:
    return len(a) == len(b) and all(Dim.of(x) == Dim.of(y) for x, y in zip(a, b))


class _Block:
    """One analysed block: its declared input shapes, output shapes and graph."""

    def __init__(self, spec: Spec, block: BlockSpec, sub: Spec, G: nx.MultiDiGraph):
        self.spec, self.block, self.sub, self.G = spec, block, sub, G
        free = tuple(spec.dynamic_sizes)
        self.in_shapes = {p: sig.resolve(spec.dims, free) for p, sig in block.inputs.items()}
        self.out_shapes: dict[str, Shape] = {}
        for o, ref in block.outputs.items():
            data = G.nodes[ref.node]
            port = "out" if data["kind"] == "input" else (ref.port or data["opdef"].outputs[0])
            self.out_shapes[o] = data["out_shapes"][port]
        self.compile_on_cpu = all(d["opdef"].compile_on_cpu for _, d in G.nodes(data=True) if d["kind"] == "op")

    def check_inputs(self, in_shapes: dict[str, Shape]) -> None:
        for p, want in self.in_shapes.items():
            got = in_shapes.get(p)
            if got is not None and not _same(got, want):
                raise ShapeError(f"input '{p}': block '{self.block.name}' declares "
                                 f"{self.block.inputs[p].text!r} = {fmt_shape(want)}, got {fmt_shape(got)}")

    def call_op(self, stub: OpDef) -> OpDef:
        def infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
            self.check_inputs(in_shapes)
            return dict(self.out_shapes)

        return dataclasses.replace(stub, infer=infer, init_args=lambda s, p: {},
                                   compile_on_cpu=self.compile_on_cpu)

    def repeat_op(self, stub: OpDef, node: NodeSpec) -> OpDef:
        times = node.params["times"]
        step_axis = Dim.of(times)     # an int, or the schedule's name: a run-time size
        carry = list(node.params.get("carry") or [])

        def infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
            self.check_inputs(in_shapes)
            for s in carry:
                if not _same(self.in_shapes[s], self.out_shapes[s]):
                    loc = self.spec.locations.get(self.block.keypath + ("outputs", s))
                    raise ShapeError(
                        f"state '{s}' changes shape between steps: block '{self.block.name}' takes it as "
                        f"{self.block.inputs[s].text!r} = {fmt_shape(self.in_shapes[s])} and returns "
                        f"{fmt_shape(self.out_shapes[s])} (its output '{s}' at {loc.file}:{loc.line})")
            _check_times(self.spec, node, params["times"])
            out = {o: (s[0], step_axis, *s[1:]) for o, s in self.out_shapes.items()}
            out.update({FINAL + o: s for o, s in self.out_shapes.items()})
            return out

        params = {"times": {"x-schedule": True}, "block": {}, "carry": {}}
        return dataclasses.replace(stub, infer=infer, params=params,
                                   init_args=lambda s, p: {"times": _whole(p["times"])},
                                   compile_on_cpu=self.compile_on_cpu)


def _whole(x: Any) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    return x if isinstance(x, int) else None


def _check_times(spec: Spec, node: NodeSpec, value: Any) -> None:
    """``times`` is a positive integer; for a schedule, at the first and the last step."""
    name = node.params["times"]
    if not isinstance(name, str):
        values = [("", value)]
    else:
        end = spec.total_steps or 1
        values = [(f"schedule '{name}' at step 0", value),
                  (f"schedule '{name}' at step {end}", spec.schedule_values(end).get(name))]
    for what, v in values:
        n = _whole(v)
        if n is None or n < 1:
            raise ShapeError(f"'times' = {what + ' = ' if what else ''}{v!r}: the number of steps must be "
                             f"a positive integer")


def _op_lookup(calls: dict[str, OpDef], blocks: dict[str, _Block], stubs: dict[str, OpDef]
               ) -> Callable[[NodeSpec], OpDef]:
    def op_of(node: NodeSpec) -> OpDef:
        if node.op == REPEAT:
            b = node.params["block"]
            return blocks[b].repeat_op(stubs[b], node)
        return calls[node.op] if node.op in calls else registry.get(node.op)
    return op_of


def _unused(sub: Spec, block: BlockSpec, G: nx.MultiDiGraph) -> list[Diagnostic]:
    used = {r.node for r in block.outputs.values()}
    return [sub.diag(n.keypath, f"node '{name}' of block '{block.name}' is unused: no node or block "
                                f"output reads it", severity="warning")
            for name, n in block.nodes.items() if G.out_degree(name) == 0 and name not in used]


def analyse_with_blocks(spec: Spec) -> nx.MultiDiGraph:
    """build_graph + infer_shapes for a spec with ``[blocks]``: every block first (in
    dependency order), then the model. Raises SpecError with every error of the blocks
    (or, when they are sound, of the model)."""
    from ocdsl.spec.blocks import stub_ops

    calls_stub, repeat_stub = stub_ops(spec.data)
    calls: dict[str, OpDef] = {}
    done: dict[str, _Block] = {}
    analysed: dict[str, tuple[Spec, nx.MultiDiGraph]] = {}
    diags: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    op_of = _op_lookup(calls, done, repeat_stub)
    for name in block_order(spec.blocks):
        block = spec.blocks[name]
        uses = {n.params.get("block") if n.op == REPEAT else n.op for n in block.nodes.values()}
        if any(u in spec.blocks and u not in done for u in uses):
            continue                     # a block it uses failed: its errors are reported
        sub = block_spec(spec, block)
        try:
            G = infer_shapes(sub, build_graph(sub, op_of=op_of))
        except SpecError as e:
            diags += e.diagnostics
            continue
        done[name] = _Block(spec, block, sub, G)
        calls[name] = done[name].call_op(calls_stub[name])
        analysed[name] = (sub, G)
        warnings += _unused(sub, block, G)
    if diags:
        raise SpecError(diags)
    G = infer_shapes(spec, build_graph(spec, op_of=op_of))
    G.graph["blocks"] = analysed
    G.graph["warnings"] = tuple(G.graph.get("warnings", ())) + tuple(warnings)
    return G
