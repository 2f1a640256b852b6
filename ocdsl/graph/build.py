"""Spec -> model graph (a networkx MultiDiGraph of model inputs and op nodes).

Vertices are the spec's model inputs (``kind="input"``) and nodes (``kind="op"``). An edge
``u -> v`` carries ``src_port`` (u's output port) and ``dst_port`` (v's input port); two
ports of the same producer feeding one consumer are two parallel edges, hence a multigraph.

Checked here, all at once: undefined references (with a did-you-mean hint), unknown
input/output port names, missing required inputs, self-references and cycles, and (as
warnings) nodes whose outputs nothing uses. Name clashes and ``share`` targets are checked
earlier, by spec validation.
"""

from __future__ import annotations

import networkx as nx

from ocdsl.errors import Diagnostic, SpecError, did_you_mean
from ocdsl.ops import registry
from ocdsl.spec.model import Ref, Spec

__all__ = ["build_graph", "output_key", "referenced_outputs", "unused_warnings"]


def output_key(node: str, port: str, outputs: tuple[str, ...]) -> str:
    """Name of a node output in the generated module's output dict: ``"encoder"`` for a
    node with one output, ``"slots.attention"`` for each port of a node with several."""
    return node if len(outputs) == 1 else f"{node}.{port}"


def _default_port(G: nx.MultiDiGraph, node: str) -> str:
    data = G.nodes[node]
    return "out" if data["kind"] == "input" else data["opdef"].outputs[0]


def referenced_outputs(spec: Spec) -> set[str]:
    """Node names used by losses, the [eval] output keys (``EVAL_OUTPUTS``) and the
    declared invariances (``composite.image`` -> ``composite``)."""
    from ocdsl.spec import expr as E

    used: set[str] = set()
    for e in list(spec.losses.values()):
        for n in E.names(e):
            used.add(n.partition(".")[0])
    for ref in spec.eval_cfg.outputs.values():
        used.add(str(ref).partition(".")[0])
    for inv in spec.invariances:
        if "node" in inv:
            used.add(str(inv["node"]))
    return used


def build_graph(spec: Spec, op_of=None) -> nx.MultiDiGraph:
    """Build and check the model graph. Raises SpecError listing every problem found. The
    warnings (unused nodes and inputs, :func:`unused_warnings`) are in
    ``G.graph["warnings"]`` (a tuple); ``spec`` is read, never changed. ``op_of(node)``
    gives a node's OpDef where it is not a registered op (blocks: ocdsl/graph/blocks.py)."""
    G = nx.MultiDiGraph(name=spec.name)
    diags: list[Diagnostic] = []

    for name, sig in spec.inputs.items():
        G.add_node(name, kind="input", signature=sig, keypath=("model", "inputs", name))
    for name, node in spec.nodes.items():
        try:
            opdef = op_of(node) if op_of is not None else registry.get(node.op)
        except registry.UnknownOp:
            diags.append(spec.diag(node.keypath + ("op",), f"unknown op '{node.op}'",
                                   did_you_mean(node.op, registry.names())))
            continue
        G.add_node(name, kind="op", node=node, opdef=opdef, keypath=node.keypath)

    known = sorted(G.nodes)
    for name, node in spec.nodes.items():
        if name not in G or G.nodes[name]["kind"] != "op":
            continue
        opdef = G.nodes[name]["opdef"]
        ports = {p.name for p in opdef.inputs}
        for port, ref in node.inputs.items():
            kp = ref.keypath or node.keypath
            if port not in ports:
                diags.append(spec.diag(kp, f"op '{opdef.name}' has no input port '{port}' "
                                           f"(its inputs: {', '.join(p.name for p in opdef.inputs)})",
                                       did_you_mean(port, ports)))
                continue
            if ref.node == name:
                diags.append(spec.diag(kp, f"node '{name}' takes its own output as input"))
                continue
            if ref.node not in G:
                diags.append(spec.diag(kp, f"undefined reference '{ref.text}': no model input or node '{ref.node}'",
                                       did_you_mean(ref.node, known)))
                continue
            src_port = _check_port(spec, G, ref, kp, diags)
            if src_port is None:
                continue
            G.add_edge(ref.node, name, key=port, src_port=src_port, dst_port=port)
        for p in opdef.inputs:
            if not p.optional and p.name not in node.inputs:
                diags.append(spec.diag(node.keypath, f"node '{name}' ({opdef.name}) needs input '{p.name}'"
                                       + (f" ({p.signature})" if p.signature else ""),
                                       f"add `inputs = {{ {p.name} = \"...\" }}`" if len(opdef.inputs) > 1
                                       else "add `input = \"...\"`"))

    if not diags:
        try:
            cycle = nx.find_cycle(G)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            path = " -> ".join([e[0] for e in cycle] + [cycle[0][0]])
            first = cycle[0][1]
            diags.append(spec.diag(G.nodes[first]["keypath"], f"the model graph has a cycle: {path}",
                                   "a node cannot depend on its own output; use `share` to reuse weights"))

    if diags:
        raise SpecError(diags)

    G.graph["warnings"] = tuple(unused_warnings(spec, G))
    return G


def unused_warnings(spec: Spec, G: nx.MultiDiGraph) -> list[Diagnostic]:
    """Warnings for the nodes and model inputs of ``G`` whose outputs nothing reads (no
    node, loss, eval key or invariance), in spec order. Pure: the same list every call."""
    used = referenced_outputs(spec)
    out = [spec.diag(spec.nodes[name].keypath,
                     f"node '{name}' is unused: no node, loss or eval key reads its output", severity="warning")
           for name in spec.nodes if G.out_degree(name) == 0 and name not in used]
    out += [spec.diag(("model", "inputs", name), f"model input '{name}' is unused", severity="warning")
            for name in spec.inputs if G.out_degree(name) == 0 and name not in used]
    return out


def _check_port(spec: Spec, G: nx.MultiDiGraph, ref: Ref, kp: tuple, diags: list) -> str | None:
    data = G.nodes[ref.node]
    if data["kind"] == "input":
        if ref.port:
            diags.append(spec.diag(kp, f"'{ref.text}': model input '{ref.node}' has no ports"))
            return None
        return "out"
    outs = data["opdef"].outputs
    if ref.port is None:
        return outs[0]
    if ref.port not in outs:
        diags.append(spec.diag(kp, f"'{ref.text}': node '{ref.node}' ({data['opdef'].name}) has no output "
                                   f"'{ref.port}' (its outputs: {', '.join(outs)})",
                               did_you_mean(ref.port, outs)))
        return None
    return ref.port
