"""A layered top-to-bottom layout of a model graph whose boxes fit their labels, blocks as
nested clusters: the geometry of ``ocdsl graph``'s picture (graph.py draws it).

- Each node is a box sized to its label, measured by the caller (``measure(text) ->
  (width, height)``, in points, from matplotlib's renderer). A node that runs a block
  (``op = "<block>"`` or a repeat) is a *cluster*: its title above the block's own graph,
  laid out the same way (so blocks inside blocks nest).
- Layers by longest path from the inputs (a node sits one layer below its lowest
  predecessor); an edge that spans several layers gets a dummy box in each layer it
  crosses, so it runs between the boxes, not through them; the order within a layer by
  barycentres of the predecessors (a few sweeps, Sugiyama et al. 1981), each box placed
  under its predecessors where the layer leaves room.

Coordinates are points, y growing downwards; a box's ``x, y`` is its top-left corner
relative to the layout that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import networkx as nx

from ocdsl.shapes import fmt_shape

__all__ = ["Box", "Layout", "layout", "node_label", "PAD", "GAP_X", "GAP_Y"]

PAD = 6.0          # text to box edge (points)
GAP_X = 18.0       # between boxes of a layer
GAP_Y = 34.0       # between layers (room for the edge labels)
CLUSTER_PAD = 10.0  # cluster frame to its content
DUMMY_W = 8.0      # the room a long edge takes in a layer it crosses
SWEEPS = 4

Measure = Callable[[str], tuple[float, float]]


@dataclass
class Box:
    """One node: ``label`` (op nodes and inputs) or ``title`` + ``inner`` (a cluster)."""

    name: str
    kind: str                      # "input" | "op" | "cluster"
    label: str
    w: float
    h: float
    x: float = 0.0
    y: float = 0.0
    inner: "Layout | None" = None
    text_w: float = 0.0
    text_h: float = 0.0

    @property
    def cx(self) -> float:
        return self.x + self.w / 2


@dataclass
class Layout:
    """``edges``: (the chain of boxes it runs through: source, dummies, target; its label).
    A dummy box (kind ``"dummy"``) holds an edge's place in each layer it crosses."""

    boxes: dict[str, Box]
    edges: list[tuple[list[str], str]]
    w: float = 0.0
    h: float = 0.0
    layers: list[list[str]] = field(default_factory=list)


def _shapes(data: dict, skip_final: bool = False) -> list[str]:
    outs = {p: s for p, s in data.get("out_shapes", {}).items()
            if not (skip_final and p.startswith("final_"))}
    if len(outs) == 1:
        return [fmt_shape(next(iter(outs.values())))]
    return [f"{p}: {fmt_shape(s)}" for p, s in outs.items()]


def node_label(name: str, data: dict) -> str:
    """``name``, the op, the output shapes (one per line); inputs: ``name`` and its shape."""
    if data["kind"] == "input":
        return f"{name}\ninput {fmt_shape(data['out_shapes']['out'])}"
    return "\n".join([name, data["opdef"].name, *_shapes(data)])


def _block_of(data: dict, blocks: dict) -> str | None:
    if data["kind"] != "op":
        return None
    node = data["node"]
    b = node.params.get("block") if node.op == "repeat" else node.op
    return b if b in blocks else None


def _cluster_title(name: str, data: dict, block: str) -> str:
    node = data["node"]
    if node.op == "repeat":
        head = f"repeat block '{block}' x {node.params.get('times')}"
        carry = node.params.get("carry") or []
        if carry:
            head += f", carrying {', '.join(carry)}"
    else:
        head = f"block '{block}'"
    return "\n".join([name, head, *_shapes(data, skip_final=True)])


def _edge_label(G: nx.MultiDiGraph, d: dict, target: str) -> str:
    data = G.nodes[target]
    n_in = len(data["opdef"].inputs) if data["kind"] == "op" else 1
    src = "" if d["src_port"] == "out" else d["src_port"]
    dst = d["dst_port"] if n_in > 1 else ""
    if src == dst:                      # "window -> window" says no more than "window"
        return src
    return f"{src} -> {dst}" if src and dst else src or dst


def layout(G: nx.MultiDiGraph, blocks: dict, measure: Measure) -> Layout:
    """The layout of ``G`` (a model or a block's graph); ``blocks``: name -> (Spec, graph),
    as ``G.graph["blocks"]`` of the model."""
    boxes = {n: _box(n, data, blocks, measure) for n, data in G.nodes(data=True)}
    level = _levels(G)
    labels: dict[tuple[str, str], list[str]] = {}
    for u, v, d in G.edges(data=True):          # parallel edges: one arrow, their labels
        labels.setdefault((u, v), []).append(_edge_label(G, d, v))
    A = nx.DiGraph()
    A.add_nodes_from(G.nodes)
    layers: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for n in G.nodes:                            # the spec's order within a layer, to start
        layers[level[n]].append(n)
    edges = []
    for (u, v), texts in labels.items():
        chain = [u]
        for k in range(level[u] + 1, level[v]):  # a long edge: a dummy in each layer it crosses
            d = f"{u}->{v}@{k}"
            boxes[d] = Box(d, "dummy", "", DUMMY_W, 0.0)
            layers[k].append(d)
            chain.append(d)
        chain.append(v)
        nx.add_path(A, chain)
        edges.append((chain, "\n".join(t for t in texts if t)))
    lay = Layout(boxes, edges)
    lay.layers = _order(A, layers)
    _place(A, lay)
    return lay


def _box(n: str, data: dict, blocks: dict, measure: Measure) -> Box:
    block = _block_of(data, blocks)
    if block is None:
        label = node_label(n, data)
        tw, th = measure(label)
        return Box(n, data["kind"], label, tw + 2 * PAD, th + 2 * PAD, text_w=tw, text_h=th)
    inner = layout(blocks[block][1], blocks, measure)
    title = _cluster_title(n, data, block)
    tw, th = measure(title)
    w = max(inner.w, tw) + 2 * CLUSTER_PAD
    h = th + CLUSTER_PAD + inner.h + 2 * CLUSTER_PAD
    return Box(n, "cluster", title, w, h, inner=inner, text_w=tw, text_h=th)


def _levels(G: nx.MultiDiGraph) -> dict[str, int]:
    """Longest-path layering: a node one layer below its lowest predecessor."""
    level: dict[str, int] = {}
    for n in nx.topological_sort(G):
        level[n] = max((level[p] + 1 for p in G.predecessors(n)), default=0)
    return level


def _order(G: nx.DiGraph, layers: list[list[str]]) -> list[list[str]]:
    """Barycentre sweeps: each layer sorted by the mean position of its predecessors."""
    pos = {n: float(i) for layer in layers for i, n in enumerate(layer)}
    for _ in range(SWEEPS):
        for layer in layers[1:]:
            def key(n: str) -> float:
                preds = list(G.predecessors(n))
                return sum(pos[p] for p in preds) / len(preds) if preds else pos[n]
            layer.sort(key=key)
            pos.update({n: float(i) for i, n in enumerate(layer)})
    return layers


def _place(G: nx.DiGraph, lay: Layout) -> None:
    """x: each box under the mean centre of its predecessors where the layer leaves room,
    boxes never closer than GAP_X; y: layers stacked with GAP_Y between them; a dummy spans
    its layer's height."""
    y = 0.0
    for layer in lay.layers:
        right = None
        for n in layer:
            b = lay.boxes[n]
            preds = [lay.boxes[p] for p in G.predecessors(n)]
            want = (sum(p.cx for p in preds) / len(preds) - b.w / 2) if preds else (right or 0.0)
            b.x = want if right is None else max(want, right + GAP_X)
            b.y = y
            right = b.x + b.w
        height = max(lay.boxes[n].h for n in layer)
        for n in layer:
            if lay.boxes[n].kind == "dummy":
                lay.boxes[n].h = height
        y += height + GAP_Y
    left = min((b.x for b in lay.boxes.values()), default=0.0)
    for b in lay.boxes.values():
        b.x -= left
    lay.w = max((b.x + b.w for b in lay.boxes.values()), default=0.0)
    lay.h = max(y - GAP_Y, 0.0)
