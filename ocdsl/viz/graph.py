"""The model graph as DOT (pydot) and as a PNG/SVG picture (matplotlib).

Graphviz's ``dot`` program is not needed: the picture is laid out top to bottom in layers
(inputs first), each box sized to its label as matplotlib renders it, and each node that
runs a block drawn as a dashed cluster holding the block's own graph
(ocdsl/viz/graph_layout.py); the DOT file is there for anyone who prefers Graphviz.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from ocdsl.viz.graph_layout import layout, node_label

__all__ = ["to_dot", "write_graph", "draw_graph"]

_label = node_label


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


FONT = {"family": "monospace", "size": 9}
EDGE_FONT = {"family": "monospace", "size": 7}
_FILL = {"input": "#cfe8ff", "op": "#fff2cc"}
MARGIN = 12.0      # points around the drawing
TITLE = 24.0       # points for the figure title


def draw_graph(spec, G: nx.MultiDiGraph, dpi: int = 100):
    """The picture of ``G`` as a matplotlib Figure (layered top to bottom, boxes sized to
    their labels, blocks as nested dashed clusters: ocdsl/viz/graph_layout.py). Returns
    ``(figure, layout, artists)``; ``artists``: node path (``draw.target`` inside a
    cluster) -> (box patch, label text)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(dpi=dpi)
    renderer = fig.canvas.get_renderer()

    def measure(text: str) -> tuple[float, float]:
        t = fig.text(0, 0, text, fontdict=FONT)
        bb = t.get_window_extent(renderer)
        t.remove()
        return bb.width * 72 / dpi, bb.height * 72 / dpi

    lay = layout(G, G.graph.get("blocks") or {}, measure)
    title = f"{spec.name}: model graph"
    width = max(lay.w, measure(title)[0]) + 2 * MARGIN
    height = lay.h + 2 * MARGIN + TITLE
    fig.set_size_inches(width / 72, height / 72)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)             # points, y down: 1 data unit = 1 point
    ax.axis("off")
    ax.text(MARGIN, MARGIN, title, fontdict={**FONT, "weight": "bold"}, va="top")
    artists: dict[str, tuple] = {}
    _draw_layout(ax, lay, MARGIN, MARGIN + TITLE, "", artists)
    return fig, lay, artists


def _draw_layout(ax, lay, ox: float, oy: float, prefix: str, artists: dict) -> None:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
    from matplotlib.path import Path

    from ocdsl.viz.graph_layout import CLUSTER_PAD, PAD

    for points, label, (lx, ly) in _edge_paths(lay, ox, oy):
        ax.add_patch(FancyArrowPatch(path=Path(points), arrowstyle="-|>", mutation_scale=10,
                                     color="#555", lw=0.9, zorder=1))
        if label:
            ax.text(lx, ly, label, fontdict=EDGE_FONT, ha="center", va="center", zorder=4,
                    bbox={"fc": "white", "ec": "none", "pad": 0.5})
    for name, box in lay.boxes.items():
        if box.kind == "dummy":
            continue
        x, y = ox + box.x, oy + box.y
        if box.inner is not None:
            patch = Rectangle((x, y), box.w, box.h, fill=False, ls="--", lw=1.0, ec="#444", zorder=0)
            ax.add_patch(patch)
            text = ax.text(x + CLUSTER_PAD, y + CLUSTER_PAD, box.label, fontdict=FONT, va="top", zorder=3)
            artists[prefix + name] = (patch, text)
            _draw_layout(ax, box.inner, x + CLUSTER_PAD, y + 2 * CLUSTER_PAD + box.text_h,
                         f"{prefix}{name}.", artists)
            continue
        patch = FancyBboxPatch((x, y), box.w, box.h, boxstyle="round,pad=0,rounding_size=4",
                               fc=_FILL[box.kind], ec="#333", lw=0.9, zorder=2)
        ax.add_patch(patch)
        text = ax.text(x + PAD, y + PAD, box.label, fontdict=FONT, va="top", ha="left", zorder=3)
        artists[prefix + name] = (patch, text)


def _spread(boxes: dict, ends: dict[str, list[tuple[float, int]]]) -> dict[int, float]:
    """Edge index -> x where it leaves / enters its box: the edges of a box spread over its
    width in the order of the x they come from / go to."""
    out = {}
    for name, items in ends.items():
        b = boxes[name]
        for j, (_, i) in enumerate(sorted(items)):
            out[i] = b.x + b.w * (j + 1) / (len(items) + 1)
    return out


def _edge_paths(lay, ox: float, oy: float):
    """Per edge: its polyline (through its dummies), label and the label's place, a few
    points above the target on the last segment (labels into one box in staggered rows)."""
    B = lay.boxes
    out_ends: dict[str, list] = {}
    in_ends: dict[str, list] = {}
    for i, (chain, _) in enumerate(lay.edges):
        out_ends.setdefault(chain[0], []).append((B[chain[1]].cx, i))
        in_ends.setdefault(chain[-1], []).append((B[chain[-2]].cx, i))
    leave, enter = _spread(B, out_ends), _spread(B, in_ends)
    row: dict[str, int] = {}
    for i, (chain, label) in enumerate(lay.edges):
        u, v = B[chain[0]], B[chain[-1]]
        pts = [(leave[i], u.y + u.h)]
        for d in chain[1:-1]:
            pts += [(B[d].cx, B[d].y), (B[d].cx, B[d].y + B[d].h)]
        pts.append((enter[i], v.y))
        pts = [(ox + x, oy + y) for x, y in pts]
        j = row.get(chain[-1], 0)
        row[chain[-1]] = j + (1 if label else 0)
        (x0, y0), (x1, y1) = pts[-2], pts[-1]
        ly = y1 - 9 - 10 * (j % 3)
        t = (ly - y0) / (y1 - y0) if y1 != y0 else 1.0
        yield pts, label, (x0 + t * (x1 - x0), ly)


def write_graph(spec, G: nx.MultiDiGraph, out: Path) -> list[Path]:
    """Write ``out`` (.png or .svg: :func:`draw_graph`) and ``out`` with suffix .dot.
    Returns both paths. Raises UserError for another suffix."""
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix not in (".png", ".svg"):
        from ocdsl.errors import Diagnostic, UserError
        raise UserError(Diagnostic(f"graph picture must be .png or .svg, got '{out.suffix or out.name}'",
                                   file=str(out)))
    out.parent.mkdir(parents=True, exist_ok=True)
    dot_path = out.with_suffix(".dot")
    dot_path.write_text(to_dot(G, spec.name))
    fig, _, _ = draw_graph(spec, G)
    fig.savefig(out, dpi=fig.dpi)
    plt.close(fig)
    return [out, dot_path]
