"""What a declaration learns from its node's op (``OpDef.symmetries``) and how it reaches
a node inside a block: a mixin of the resolver in declarations.py (it uses its ``spec``,
``G``, ``diags`` and ``error``).

**Nodes inside blocks.** ``node = "draw.target"`` names node ``target`` of the block that
model node ``draw`` runs (once, or T times for a repeat node; deeper paths go on through
nested blocks). The transformed inputs are that node's input ports (found in the block's
own graph, where block inputs are not model inputs); the compared outputs are model
outputs: by default those the node's outputs become (block output ``o`` of ``draw`` is
``draw.o`` and, for a repeat, ``draw.final_o``), each expected to do what the op declares.

**Coordinate inputs.** An op symmetry may move an input's coordinates with the shift
(``Symmetry.transform`` value ``"x normalized_padded"``: a DRAW window's g~x). The
declaration then gets a coordinate site for that port (moved by the shift in those units,
after the op's example pulls it inside the frame: ``OpExample.inside``).
"""

from __future__ import annotations

from typing import Any

from ocdsl.invariance.transforms import parse_coords, unit_per_pixel

__all__ = ["OpSymmetryMixin", "node_data", "block_of"]


def block_of(spec, node: str) -> str | None:
    """The block model node ``node`` runs (``op = "<block>"`` or a repeat), or None."""
    n = spec.nodes.get(node)
    if n is None:
        return None
    b = n.params.get("block") if n.op == "repeat" else n.op
    return b if b in spec.blocks else None


def _sub(spec, G, outer: str):
    """(the block's Spec, its graph) for model node ``outer``, or None."""
    b = block_of(spec, outer)
    return None if b is None else G.graph.get("blocks", {}).get(b)


def node_data(spec, G, path: str) -> dict | None:
    """The graph data of an op node named by ``path`` (``node`` or ``outer.inner...``)."""
    outer, _, rest = path.partition(".")
    if not rest:
        data = G.nodes[path] if path in spec.nodes and path in G else None
        return data if data is not None and data.get("kind") == "op" else None
    sub = _sub(spec, G, outer)
    return None if sub is None else node_data(sub[0], sub[1], rest)


class OpSymmetryMixin:
    spec: Any
    G: Any

    # ---- nodes inside blocks
    def own_port(self, path: str, n: str, p: str) -> str | None:
        """The output port of node ``path`` that model output ``n.p`` carries (for a node in a
        block: through the block's outputs, stacked or final), or None."""
        if n == path:
            return p
        outer, _, rest = path.partition(".")
        if not rest or n != outer:
            return None
        b = block_of(self.spec, outer)
        sub = _sub(self.spec, self.G, outer)
        name = p[len("final_"):] if p.startswith("final_") and p not in self.spec.blocks[b].outputs else p
        ref = self.spec.blocks[b].outputs.get(name)
        if ref is None or sub is None or ref.node not in sub[0].nodes:
            return None
        inner = sub[1].nodes[ref.node]
        port = ref.port or inner["opdef"].outputs[0]
        head, _, tail = rest.partition(".")
        if ref.node != head:
            return None
        if not tail:
            return port
        nested = type(self).__new__(type(self))
        nested.spec, nested.G = sub
        return nested.own_port(rest, ref.node, port)

    def own_outputs(self, path: str) -> list[tuple[str, str]]:
        """The model outputs ``(node, port)`` that carry node ``path``'s outputs."""
        outer = path.partition(".")[0]
        ports = self.G.nodes[outer]["opdef"].outputs
        return [(outer, p) for p in ports if self.own_port(path, outer, p) is not None]

    # ---- what the op declares
    def _op_values(self, decl, port: str) -> list[Any] | None:
        """For each shifted axis, what the op's translation symmetry says its output ``port``
        does (None if the op declares nothing for it)."""
        data = node_data(self.spec, self.G, decl.node)
        opdef = data["opdef"]
        ports = {q.name: q for q in opdef.inputs}
        out = []
        for k in range(len(decl.names)):
            found = None
            for s in decl.sites:
                if s.node != decl.node or s.components:
                    continue
                letters = ports[s.port].signature.split()
                letter = letters[s.axes[k]] if s.axes[k] < len(letters) else None
                for sym in opdef.symmetries:
                    if (sym.kind == "translation_equivariance" and port in sym.output
                            and sym.transform.get(s.port, "").split() == [letter]):
                        found = ("value", sym.output[port])
                if found:
                    break
            if found is None:
                return None
            out.append(found[1])
        return out

    def op_coords(self, decl, port: str):
        values = self._op_values(decl, port)
        if values is None or not all(isinstance(v, str) and parse_coords(v) for v in values):
            return None
        comps, scales = [], []
        for v, size in zip(values, decl.sizes):
            comp, units = parse_coords(v)
            comps.append(comp)
            scales.append(unit_per_pixel(units, size))
        return tuple(comps), tuple(scales)

    def op_says_same(self, decl, port: str | None) -> bool:
        if port is None:
            return False
        values = self._op_values(decl, port)
        return values is not None and all(v is None for v in values)

    def coordinate_ports(self, path: str, sites: list, sizes: tuple[int, ...]
                         ) -> list[tuple[str, tuple[int, ...], tuple[float, ...]]]:
        """``(port, components, scales)`` of each input of node ``path`` whose coordinates
        the op moves with the shift of the sites (one component per shifted axis, -1 none)."""
        opdef = node_data(self.spec, self.G, path)["opdef"]
        ports = {q.name: q for q in opdef.inputs}
        mine = [s for s in sites if s.node == path]
        out = []
        for port in ports:
            if any(s.port == port for s in mine):
                continue
            comps, scales = [], []
            for k, size in enumerate(sizes):
                comp, unit = -1, 0.0
                for s in mine:
                    letters = ports[s.port].signature.split()
                    letter = letters[s.axes[k]] if s.axes[k] < len(letters) else None
                    for sym in opdef.symmetries:
                        spec = parse_coords(sym.transform.get(port, ""))
                        if (sym.kind == "translation_equivariance" and spec is not None
                                and sym.transform.get(s.port, "").split() == [letter]):
                            comp, unit = spec[0], unit_per_pixel(spec[1], size)
                comps.append(comp)
                scales.append(unit)
            if any(c >= 0 for c in comps):
                out.append((port, tuple(comps), tuple(scales)))
        return out
