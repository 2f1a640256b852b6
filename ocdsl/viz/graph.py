"""The model graph as DOT (pydot) and as a PNG/SVG picture (matplotlib + networkx).

Graphviz's ``dot`` program is not needed: the picture is laid out by topological
generation (inputs on the left, losses' sources on the right) with networkx's
multipartite layout and drawn with matplotlib; the DOT file is there for anyone who
prefers Graphviz.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from ocdsl.shapes import fmt_shape

__all__ = ["to_dot", "write_graph"]


def _label(name: str, data: dict) -> str:
    if data["kind"] == "input":
        return f"{name}\ninput {fmt_shape(data['out_shapes']['out'])}"
    outs = data.get("out_shapes", {})
    shapes = "\n".join(fmt_shape(s) if len(outs) == 1 else f"{p}: {fmt_shape(s)}" for p, s in outs.items())
    return f"{name}\n{data['opdef'].name}\n{shapes}"


def to_dot(G: nx.MultiDiGraph, name: str = "model") -> str:
    """DOT text of a shape-annotated graph: one box per node (name, op, output shapes),
    edges labelled ``src_port -> dst_port`` where a port is not the default; each block
    (``G.graph["blocks"]``) a nested, dashed cluster of its own nodes."""
    import pydot

    dot = pydot.Dot(name, graph_type="digraph", rankdir="LR")
    _add_graph(dot, G, "")
    users: dict[str, list[str]] = {}
    for n, data in G.nodes(data=True):
        if data["kind"] == "op" and data["node"].op in (G.graph.get("blocks") or {}):
            users.setdefault(data["node"].op, []).append(n)
        elif data["kind"] == "op" and data["node"].op == "repeat":
            users.setdefault(data["node"].params["block"], []).append(n)
    for b, (_, sub) in (G.graph.get("blocks") or {}).items():
        # a block is a nested cluster; its vertices are named "<block>.<node>"
        ran_by = ", ".join(users.get(b, [])) or "no node"
        cluster = pydot.Cluster(f"block_{b}", label=f"block {b} (run by {ran_by})", style="dashed",
                                fontname="monospace")
        _add_graph(cluster, sub, f"{b}.")
        dot.add_subgraph(cluster)
    return dot.to_string()


def _add_graph(dot, G: nx.MultiDiGraph, prefix: str) -> None:
    import pydot

    for n, data in G.nodes(data=True):
        shape = "ellipse" if data["kind"] == "input" else "box"
        dot.add_node(pydot.Node(f'"{prefix}{n}"' if prefix else n, label=_label(n, data), shape=shape,
                                fontname="monospace"))
    for u, v, d in G.edges(data=True):
        label = d["dst_port"] if d["src_port"] in ("out",) else f"{d['src_port']} -> {d['dst_port']}"
        src, dst = (f'"{prefix}{u}"', f'"{prefix}{v}"') if prefix else (u, v)
        dot.add_edge(pydot.Edge(src, dst, label=label, fontsize="9"))


def write_graph(spec, G: nx.MultiDiGraph, out: Path) -> list[Path]:
    """Write ``out`` (.png or .svg) and ``out`` with suffix .dot. Returns both paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix not in (".png", ".svg"):
        from ocdsl.errors import Diagnostic, UserError
        raise UserError(Diagnostic(f"graph picture must be .png or .svg, got '{out.suffix or out.name}'",
                                   file=str(out)))
    out.parent.mkdir(parents=True, exist_ok=True)
    dot_path = out.with_suffix(".dot")
    dot_path.write_text(to_dot(G, spec.name))

    H = nx.DiGraph(G)
    for layer, nodes in enumerate(nx.topological_generations(H)):
        for n in nodes:
            H.nodes[n]["layer"] = layer
    pos = nx.multipartite_layout(H, subset_key="layer", align="vertical")
    n_layers = 1 + max(H.nodes[n]["layer"] for n in H)
    fig, ax = plt.subplots(figsize=(3.2 * n_layers, 4.5))
    colors = ["#cfe8ff" if H.nodes[n]["kind"] == "input" else "#fff2cc" for n in H]
    nx.draw_networkx_edges(H, pos, ax=ax, arrows=True, arrowsize=14, node_size=6000, edge_color="#555")
    nx.draw_networkx_nodes(H, pos, ax=ax, node_color=colors, node_shape="s", node_size=6000,
                           edgecolors="#333")
    nx.draw_networkx_labels(H, pos, labels={n: _label(n, G.nodes[n]) for n in H}, ax=ax, font_size=7,
                            font_family="monospace")
    ax.set_title(f"{spec.name}: model graph")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return [out, dot_path]
