"""A spec's ``[[invariances]]``, resolved against its checked graph.

A declaration::

    [[invariances]]
    kind = "permutation_equivariance"   # | permutation_invariance | translation_equivariance
                                        # | translation_invariance
    node = "slots"                      # the node the symmetry is about
    axis = "K"                          # one axis ("K", "(H W)"); translation: one or two ("H W")
    # optional:
    inputs = ["slots"]                  # what is transformed (default: see below)
    port = "attention"                  # compare only this output of `node`
    outputs = ["composite.image", "composite.masks"]   # compare these outputs
    tolerance = 1e-4                    # absolute tolerance (default per dtype)
    max_shift = 2                       # translation: largest shift in pixels

(``outputs`` and ``max_shift`` are read here; the spec schema must list them to accept them.)

**What is transformed** (``inputs``): entries are model inputs (``"image"``), input ports
of ``node`` (``"slots"``: for slot attention the initial slots) or ``"<node>.<input port>"``
of another node; a table ``{ slots = "K" }`` gives each entry its own axis name. Without
``inputs``: every input port of ``node`` that has the axis. A port is transformed where
the value enters the node (the node's module is wrapped for the run), so what feeds it is
computed as usual and permuted or shifted on the way in. An *unconnected* optional port
(an initial state such as slot attention's ``slots``) gets a value drawn by the check, of
the shape of the node's output of the same name: ``node = "slots", axis = "K"`` draws
initial slots and permutes them.

**Axis names** are looked up in the signature of what feeds the site (the producer's
declared ``output``, or the model input's signature; for an initial state, the node's
declared output of that name), then among the op's own port letters (``N`` for slot
attention's inputs). A name must name a whole axis: ``"(H W)"`` is the flattened token
axis of ``"B (H W) F"``.

**What is compared** (``outputs`` > ``port`` > default): by default, every output of
``node`` and, for permutation kinds, of every node downstream of it; for translation kinds
only ``node``'s own outputs (what follows a localiser is rarely shift-structured). Each
output is expected to:

- permutation: be permuted along each of its axes that has the permuted axis's name (by
  its declared signature, e.g. ``composite.masks = "B K H W"``), and be unchanged if it
  has none (``composite.image = "B C H W"``); an output without a declared signature is
  unchanged when no axis has the permuted size, else it is left out (with a note);
- translation: be shifted along its axes of the shifted names; the node's own outputs that
  the op declares as coordinates (``Symmetry.output`` ``"x normalized"``) move by the shift
  in those units; an output without a declared signature is left out (with a note)
  unless the op says it is unchanged; anything else is unchanged;
- for the invariance kinds, outputs named in ``outputs`` / ``port`` must be unchanged
  whatever their axes (that is the claim); default outputs follow the rules above.

**Nodes inside blocks** (``node = "draw.target"``: node ``target`` of the block that model
node ``draw`` runs) and **coordinate inputs** (a DRAW window whose centre moves with the
shifted image): ocdsl/invariance/op_symmetry.py.

Resolving is static (the graph and its shapes, no model is run): ``ocdsl validate``
runs it. properties.py turns each resolved declaration into a property of the model;
report.py runs them and prints the results.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch

from ocdsl.errors import Diagnostic, SpecError, did_you_mean
from ocdsl.graph.build import output_key
from ocdsl.invariance.op_symmetry import OpSymmetryMixin, block_of, node_data
from ocdsl.invariance.transforms import (KINDS, PERMUTATION_KINDS, TRANSLATION_KINDS, Expect, Tolerance,
                                         default_tolerance)
from ocdsl.shapes import Shape, ShapeError

__all__ = ["Site", "Declaration", "resolve", "axis_tokens"]


def axis_tokens(text: str) -> list[str]:
    """``"K"`` -> ["K"]; ``"H W"`` -> ["H", "W"]; ``"(H  W)"`` -> ["(H W)"]."""
    out = []
    for tok in re.findall(r"\([^)]*\)|[^\s()]+", str(text)):
        if tok.startswith("("):
            tok = "(" + " ".join(tok[1:-1].split()) + ")"
        out.append(tok)
    return out


@dataclass(frozen=True)
class Site:
    """A tensor the check transforms: a model input, or an input port of a node."""

    label: str                   # "image", "slots.slots (initial state)", "slots.inputs"
    shape: Shape                 # symbolic in B
    axes: tuple[int, ...]        # the transformed axes
    names: tuple[str, ...]       # their names (as in the feeding signature)
    model_input: str | None = None
    node: str | None = None
    port: str | None = None
    inject: bool = False         # an unconnected state: the check draws its value
    fill: float = 0.0
    components: tuple[int, ...] = ()   # a coordinate site: the component each shifted axis
    scales: tuple[float, ...] = ()     # moves (-1 none), in units per pixel (op_symmetry.py)


@dataclass
class Declaration:
    """One resolved ``[[invariances]]`` entry."""

    index: int
    kind: str
    node: str
    names: tuple[str, ...]       # canonical names of the transformed axes
    sizes: tuple[int, ...]
    sites: list[Site]
    expects: list[Expect]
    tolerance: Tolerance
    where: str = ""
    max_shift: int | None = None
    atol: float | None = None    # the declaration's `tolerance`
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind} {' '.join(self.names)}"


# ---- resolving declarations against the graph ----------------------------------------------

class _Resolver(OpSymmetryMixin):
    def __init__(self, spec, G: nx.MultiDiGraph, diags: list[Diagnostic] | None = None,
                 in_block: bool = False):
        self.spec = spec
        self.G = G
        self.diags: list[Diagnostic] = [] if diags is None else diags
        self.in_block = in_block     # a block's graph: its inputs are not model inputs

    def block_resolver(self, outer: str) -> "_Resolver | None":
        """The resolver of the block model node ``outer`` runs (errors shared)."""
        b = block_of(self.spec, outer)
        sub = None if b is None else self.G.graph.get("blocks", {}).get(b)
        return None if sub is None else _Resolver(sub[0], sub[1], self.diags, in_block=True)

    def error(self, kp: tuple, msg: str, hint: str | None = None) -> None:
        self.diags.append(self.spec.diag(kp, msg, hint))

    # what feeds a site: (label, signature or None, shape, inject)
    def feed_of_port(self, node: str, port: str):
        for u, _, d in self.G.in_edges(node, data=True):
            if d["dst_port"] == port:
                src = self.G.nodes[u]
                sig = (src["signature"] if src["kind"] == "input"
                       else src["node"].outputs.get(d["src_port"]))
                return f"{node}.{port}", sig, src["out_shapes"][d["src_port"]], False
        data = self.G.nodes[node]
        if port in data["out_shapes"]:
            shape = data["out_shapes"][port]
            try:
                data["opdef"].infer({**data["in_shapes"], port: shape}, data["params"])
            except ShapeError:
                return None
            return (f"{node}.{port} (initial state)", data["node"].outputs.get(port), shape, True)
        return None

    def locate(self, names: list[str], sig, op_port_sig: str) -> tuple[tuple[int, ...], tuple[str, ...]] | None:
        sig_names = sig.axis_names() if sig is not None else []
        letters = op_port_sig.split()
        axes, canon = [], []
        for t in names:
            if t in sig_names:
                i = sig_names.index(t)
            elif t in letters:
                i = letters.index(t)
            else:
                return None
            axes.append(i)
            canon.append(sig_names[i] if i < len(sig_names) else t)
        return tuple(axes), tuple(canon)

    def fill_of(self, node: str | None, port: str | None) -> float:
        if node is None:
            return 0.0
        try:
            from ocdsl.invariance.op_checks import EXAMPLES
        except ImportError:                 # no hypothesis: resolving only (validation)
            return 0.0
        ex = EXAMPLES.get(self.G.nodes[node]["opdef"].name)
        return float(ex.fills.get(port, 0.0)) if ex else 0.0

    def site_at_port(self, node: str, port: str, names: list[str], kp: tuple,
                     quiet: bool = False) -> Site | None:
        opdef = self.G.nodes[node]["opdef"]
        ports = {p.name: p for p in opdef.inputs}
        feed = self.feed_of_port(node, port)
        if feed is None:
            if not quiet:
                self.error(kp, f"input '{port}' of node '{node}' is not connected and its shape "
                               f"is unknown, so the check cannot draw a value for it",
                           "connect it, or transform another input")
            return None
        label, sig, shape, inject = feed
        found = self.locate(names, sig, ports[port].signature)
        if found is None:
            if not quiet:
                have = sig.text if sig is not None else ports[port].signature
                self.error(kp, f"input '{port}' of node '{node}' has no axis "
                               f"{' '.join(names)!r} (its layout: {have!r})")
            return None
        axes, canon = found
        return Site(label, tuple(shape), axes, canon, node=node, port=port, inject=inject,
                    fill=self.fill_of(node, port))

    def site_at_input(self, name: str, names: list[str], kp: tuple) -> Site | None:
        data = self.G.nodes[name]
        found = self.locate(names, data["signature"], "")
        if found is None:
            self.error(kp, f"model input '{name}' has no axis {' '.join(names)!r} "
                           f"(its signature: {data['signature'].text!r})")
            return None
        axes, canon = found
        return Site(name, tuple(data["out_shapes"]["out"]), axes, canon, model_input=name)

    def site_entry(self, node: str, entry: Any, names: list[str], kp: tuple) -> Site | None:
        if not isinstance(entry, str) or not entry:
            self.error(kp, f"expected a model input or an input port, got {entry!r}")
            return None
        if entry in self.spec.inputs and not self.in_block:
            return self.site_at_input(entry, names, kp)
        target, _, port = entry.rpartition(".")
        if not target:
            ports = [p.name for p in self.G.nodes[node]["opdef"].inputs]
            if port not in ports:
                choices = list(self.spec.inputs) + ports
                self.error(kp, f"'{entry}' is neither a model input nor an input port of node "
                               f"'{node}'", did_you_mean(entry, choices)
                           or f"model inputs: {', '.join(self.spec.inputs)}; inputs of "
                              f"'{node}': {', '.join(ports)}")
                return None
            target = node
        if target not in self.spec.nodes or self.G.nodes[target].get("kind") != "op":
            self.error(kp, f"'{entry}' is neither a model input nor an input port of a node",
                       did_you_mean(target, list(self.spec.nodes) + list(self.spec.inputs)))
            return None
        ports = [p.name for p in self.G.nodes[target]["opdef"].inputs]
        if port not in ports:
            self.error(kp, f"node '{target}' ({self.G.nodes[target]['opdef'].name}) has no input "
                           f"port '{port}'", did_you_mean(port, ports) or f"its inputs: {', '.join(ports)}")
            return None
        return self.site_at_port(target, port, names, kp)

    # ---- one declaration
    def declaration(self, i: int, inv: dict) -> Declaration | None:
        kp = ("invariances", i)
        kind, node = inv.get("kind"), inv.get("node")
        if kind not in KINDS:
            self.error(kp + ("kind",), f"unknown kind {kind!r}", did_you_mean(str(kind), KINDS)
                       or f"kinds: {', '.join(KINDS)}")
            return None
        if not isinstance(node, str) or node_data(self.spec, self.G, node) is None:
            self.error(kp + ("node",), f"no node '{node}'", did_you_mean(str(node), self.spec.nodes))
            return None
        names = axis_tokens(inv.get("axis", ""))
        translation = kind in TRANSLATION_KINDS
        if not names or (not translation and len(names) != 1) or len(names) > 2:
            want = "one or two axes (e.g. 'H W')" if translation else "exactly one axis (e.g. 'K')"
            self.error(kp + ("axis",), f"{kind} needs {want}, got {inv.get('axis')!r}")
            return None
        sites = self.sites(i, node, inv, names, kp)
        if sites is None:
            return None
        sizes = None
        for s in sites:
            try:
                sz = tuple(s.shape[a].value for a in s.axes)
            except ShapeError:
                self.error(kp + ("axis",), f"axis {' '.join(names)!r} of {s.label} has no fixed size")
                return None
            if sizes is None:
                sizes = sz
            elif sz != sizes:
                self.error(kp + ("inputs",), f"the transformed axes differ in size: {sites[0].label} "
                                             f"{sizes}, {s.label} {sz}")
                return None
        canon = sites[0].names
        if translation:
            sites += [Site(f"{node}.{port} (coordinates)", (), (), canon, node=node, port=port,
                           components=c, scales=sc)
                      for port, c, sc in self.coordinate_ports(node, sites, sizes)]
        tol = default_tolerance(torch.float32, inv.get("tolerance"))
        decl = Declaration(i, kind, node, canon, sizes, sites, [], tol,
                           where=_where(self.spec, kp), max_shift=inv.get("max_shift"),
                           atol=inv.get("tolerance"))
        self.outputs(decl, inv, kp)
        if not decl.expects:
            self.error(kp, "nothing to compare: no output of the node (or downstream) could be "
                           "checked", "name outputs with `outputs = [...]`")
            return None
        return decl

    def sites(self, i, node, inv, names, kp) -> list[Site] | None:
        if "." in node:                 # a node inside a block: its ports in the block's graph
            outer, _, inner = node.partition(".")
            found = self.block_resolver(outer).sites(i, inner, inv, names, kp)
            return None if found is None else [
                dataclasses.replace(s, node=f"{outer}.{s.node}", label=f"{outer}.{s.label}")
                for s in found]
        entries = inv.get("inputs")
        if entries is None:
            opdef = self.G.nodes[node]["opdef"]
            sites = [s for p in opdef.inputs
                     if (s := self.site_at_port(node, p.name, names, kp, quiet=True)) is not None]
            if not sites:
                have = []
                for p in opdef.inputs:
                    feed = self.feed_of_port(node, p.name)
                    sig = feed[1].text if feed and feed[1] is not None else p.signature
                    have.append(f"{p.name} {sig!r}")
                self.error(kp + ("axis",), f"no input of node '{node}' ({opdef.name}) has axis "
                                           f"{' '.join(names)!r}", "its inputs: " + ", ".join(have))
                return None
            return sites
        if isinstance(entries, dict):
            items = [(k, axis_tokens(v), kp + ("inputs", k)) for k, v in entries.items()]
        else:
            items = [(e, names, kp + ("inputs", j)) for j, e in enumerate(entries)]
        sites = [self.site_entry(node, e, ns, k) for e, ns, k in items]
        if any(s is None for s in sites):
            return None
        if not sites:
            self.error(kp + ("inputs",), "no inputs to transform")
            return None
        return sites

    def outputs(self, decl: Declaration, inv: dict, kp: tuple) -> None:
        node = decl.node
        explicit: list[tuple[str, str, tuple]] = []
        if "outputs" in inv:
            for j, ref in enumerate(inv["outputs"]):
                r = self.output_ref(str(ref), kp + ("outputs", j))
                if r:
                    explicit.append((*r, kp + ("outputs", j)))
        elif inv.get("port"):
            r = self.output_ref(f"{node}.{inv['port']}", kp + ("port",))
            if r:
                explicit.append((*r, kp + ("port",)))
        if explicit:
            for n, p, k in explicit:
                e = self.expect(decl, n, p, explicit=True, kp=k)
                if e is not None:
                    decl.expects.append(e)
            return
        if "." in node:
            outs = self.own_outputs(node)
        else:
            nodes = [node]
            if decl.kind in PERMUTATION_KINDS:
                order = {n: j for j, n in enumerate(self.spec.nodes)}
                nodes += sorted(nx.descendants(self.G, node), key=lambda n: order.get(n, 1 << 30))
            outs = [(n, p) for n in nodes for p in self.G.nodes[n]["opdef"].outputs]
        for n, p in outs:
            e = self.expect(decl, n, p, explicit=False, kp=kp)
            if e is not None:
                decl.expects.append(e)

    def output_ref(self, ref: str, kp: tuple) -> tuple[str, str] | None:
        n, _, p = ref.partition(".")
        if n not in self.spec.nodes or self.G.nodes[n].get("kind") != "op":
            self.error(kp, f"no node '{n}' (in output reference '{ref}')",
                       did_you_mean(n, self.spec.nodes))
            return None
        outs = self.G.nodes[n]["opdef"].outputs
        p = p or outs[0]
        if p not in outs:
            self.error(kp, f"node '{n}' has no output '{p}'", did_you_mean(p, outs)
                       or f"its outputs: {', '.join(outs)}")
            return None
        return n, p

    def dim_depends_on(self, name: str, seen: frozenset = frozenset()) -> set[str]:
        """The [dims] that dim ``name``'s expression uses, transitively ("K1 = K + 1" -> {K})."""
        from ocdsl.spec import expr as E

        text = (self.spec.data.get("dims") or {}).get(name)
        if not isinstance(text, str) or name in seen:
            return set()
        try:
            used = E.names(E.parse(text))
        except Exception:  # validation reported it
            return set()
        out = set(used)
        for u in used:
            out |= self.dim_depends_on(u, seen | {name})
        return out

    def expect(self, decl: Declaration, n: str, p: str, explicit: bool, kp: tuple) -> Expect | None:
        data = self.G.nodes[n]
        key = output_key(n, p, data["opdef"].outputs)
        sig = data["node"].outputs.get(p)
        shape = data["out_shapes"][p]
        if explicit and decl.kind.endswith("invariance"):
            return Expect(key, "same", why="declared invariant")
        if sig is not None:
            names = sig.axis_names()
            if decl.kind in PERMUTATION_KINDS:
                axes = tuple(j for j, a in enumerate(names) if a == decl.names[0])
                if axes:
                    return Expect(key, "permute", axes, why=f"has axis {decl.names[0]}")
                derived = [a for a in names if decl.names[0] in self.dim_depends_on(a)]
                if derived:  # e.g. K1 = "K + 1" (background + K objects): permuted, but not as K
                    decl.notes.append(f"not compared: {key}: its axis {derived[0]} is computed from "
                                      f"{decl.names[0]}, so how it permutes is unknown")
                    return None
                return Expect(key, "same", why=f"no axis {decl.names[0]}")
            if all(a in names for a in decl.names):
                return Expect(key, "shift", tuple(names.index(a) for a in decl.names),
                              why=f"has axes {' '.join(decl.names)}")
        elif decl.kind in PERMUTATION_KINDS:
            sizes = [d.value for d in shape[1:] if d.is_concrete]
            if decl.sizes[0] not in sizes:
                return Expect(key, "same", why=f"no axis of size {decl.sizes[0]}")
            return self.not_compared(decl, kp, explicit,
                                     f"{key}: no declared signature, so which axis is {decl.names[0]} "
                                     f"is unknown (declare `output` on node '{n}')")
        own = self.own_port(decl.node, n, p)
        if decl.kind == "translation_equivariance" and own is not None:
            coords = self.op_coords(decl, own)
            if coords is not None:
                return Expect(key, "coords", components=coords[0], scales=coords[1],
                              why="coordinates (op symmetry)")
        if sig is None and decl.kind in TRANSLATION_KINDS and not self.op_says_same(decl, own):
            return self.not_compared(decl, kp, explicit,
                                     f"{key}: no declared signature, so whether it moves is unknown "
                                     f"(declare `output` on node '{n}')")
        return Expect(key, "same", why=f"no axes {' '.join(decl.names)}")

    def not_compared(self, decl: Declaration, kp: tuple, explicit: bool, msg: str) -> None:
        """An output whose expected behaviour is unknown: an error where the declaration
        names it (``explicit``), else a note on the declaration that it is not compared."""
        if explicit:
            self.error(kp, msg)
        else:
            decl.notes.append("not compared: " + msg)


def _where(spec, kp: tuple) -> str:
    loc = spec.locations.get(kp)
    return f"{loc.file}:{loc.line}:{loc.col or 1}" if loc.line else loc.file


def resolve(compiled) -> list[Declaration]:
    """Every ``[[invariances]]`` entry of ``compiled.spec`` resolved against its graph.
    Raises SpecError listing every problem (with file, line and column)."""
    from ocdsl.invariance.loss_checks import resolve_loss

    r = _Resolver(compiled.spec, compiled.graph)
    out = []
    for i, inv in enumerate(compiled.spec.invariances):
        if not isinstance(inv, dict):
            r.error(("invariances", i), "expected a table")
            continue
        if inv.get("losses") is not None:  # a symmetry of the losses: ocdsl/invariance/loss_checks.py
            r.diags += resolve_loss(compiled, i, inv)[1]
            continue
        d = r.declaration(i, inv)
        if d is not None:
            out.append(d)
    if r.diags:
        raise SpecError(r.diags)
    return out
