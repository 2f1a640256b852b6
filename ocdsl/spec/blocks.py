"""Blocks and loops in the spec language.

A ``[blocks.<name>]`` table is a named sub-graph with its own ``inputs`` (name ->
signature), ``nodes`` (node tables, as in ``[model.nodes]``) and ``outputs`` (name ->
``node`` / ``node.port`` / block input). A node uses a block like an op:

- ``op = "<block>"`` runs it once;
- ``op = "repeat"``, ``block = "<block>"``, ``times = T`` runs it T times with one set of
  weights. ``carry = ["canvas", ...]`` names the state: the block's output ``canvas`` is its
  input ``canvas`` at the next step, and the node's ``inputs.canvas`` is the first value;
  every other input is the same at every step. Each block output ``o`` comes out twice:
  ``o``, every step's value stacked along a new axis 1 (``B T ...``), and ``final_o``, the
  last step's value. ``times`` is a positive integer, an expression over ``[dims]``, or the
  name of a ``[schedules]`` entry (the number of steps then follows the schedule during
  training: progressive training; the stacked axis is then a run-time size named like the
  schedule).

This module is the spec front end's part: the schema of ``[blocks]`` and of a repeat node,
the per-block op descriptions validation sees (:func:`stub_ops`), the semantic checks
(:func:`check`, errors at the block's own lines) and the :class:`BlockSpec` dataclasses.
graph/blocks.py analyses a block's sub-graph and gives it a shape rule; codegen/blocks.py
writes it as a class and a repeat as a ``for`` loop.
"""

from __future__ import annotations

import dataclasses
import keyword
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from ocdsl.errors import Diagnostic, did_you_mean
from ocdsl.ops import registry
from ocdsl.ops.registry import NAME_PATTERN, OpDef, Port
from ocdsl.spec.model import Locations, NodeSpec, Ref, Signature

if TYPE_CHECKING:  # pragma: no cover
    from ocdsl.spec.validate import _Validator

__all__ = ["REPEAT", "FINAL", "BlockSpec", "BlockModule", "blocks_schema", "repeat_branch", "stub_ops",
           "node_tables", "check", "scheduled_sizes", "build_blocks", "block_order", "repeat_outputs"]

REPEAT = "repeat"
FINAL = "final_"   # the last step's value of block output o is port final_<o> of a repeat node
_REF = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"


class BlockModule:
    """Marker base of the stand-in module class of a block's op: the generated file defines
    the real class (codegen/blocks.py), nothing is imported for it."""


@dataclass
class BlockSpec:
    """One ``[blocks.<name>]`` table: inputs (name -> Signature), nodes (as model nodes, key
    paths under ``blocks.<name>.nodes``) and outputs (name -> Ref into the block)."""

    name: str
    inputs: dict[str, Signature]
    nodes: dict[str, NodeSpec]
    outputs: dict[str, Ref]
    keypath: tuple


# ---- schema ---------------------------------------------------------------------------------

def blocks_schema(node_ref: dict) -> dict:
    """The schema of ``[blocks]``: name -> {inputs, nodes, outputs}."""
    name_map = {"type": "object", "propertyNames": {"pattern": NAME_PATTERN}}
    block = {
        "type": "object", "description": "A named sub-graph, used like an op (`op = \"<name>\"`) or "
                                         "run several times by a repeat node.",
        "properties": {
            "inputs": {**name_map, "minProperties": 1, "description": "Block inputs: name -> signature.",
                       "additionalProperties": {"type": "string", "minLength": 1}},
            "nodes": {**name_map, "minProperties": 1, "description": "The block's nodes (as [model.nodes]).",
                      "additionalProperties": node_ref},
            "outputs": {**name_map, "minProperties": 1,
                        "description": "Block outputs: name -> a block node, node.port or block input.",
                        "additionalProperties": {"type": "string", "pattern": _REF}},
        },
        "required": ["inputs", "nodes", "outputs"], "additionalProperties": False,
    }
    return {**name_map, "description": "Named sub-graphs (blocks): each has inputs, nodes and outputs.",
            "additionalProperties": block}


def repeat_branch(common: Mapping[str, Any]) -> dict:
    """The node schema's branch for ``op = "repeat"``."""
    props = {k: v for k, v in common.items() if k != "input"}
    props["op"] = {"const": REPEAT, "description": "Run a block several times with shared weights."}
    props["inputs"] = {"type": "object", "description": "Block input -> its value (for a carried state: "
                                                        "the first step's value).",
                       "additionalProperties": {"type": "string", "pattern": _REF}}
    props["block"] = {"type": "string", "pattern": NAME_PATTERN, "description": "The [blocks] entry to run."}
    props["times"] = {"type": ["integer", "string"],
                      "description": "How many steps: a positive integer, an expression over [dims], "
                                     "or the name of a [schedules] entry (progressive training)."}
    props["carry"] = {"type": "array", "uniqueItems": True, "items": {"type": "string", "pattern": NAME_PATTERN},
                      "description": "State carried from step to step: names that are both a block input "
                                     "and a block output."}
    return {"if": {"properties": {"op": {"const": REPEAT}}, "required": ["op"]},
            "then": {"properties": props, "required": ["block", "times"], "additionalProperties": False}}


# ---- what validation sees ---------------------------------------------------------------------

def _tables(data: Mapping[str, Any]) -> dict[str, dict]:
    b = data.get("blocks") if isinstance(data, Mapping) else None
    return {k: v for k, v in b.items() if isinstance(v, dict)} if isinstance(b, dict) else {}


def _names(t: Any) -> list[str]:
    return [k for k in t if isinstance(k, str)] if isinstance(t, dict) else []


def _no_infer(in_shapes, params):  # replaced by graph/blocks.py before any shape is inferred
    raise RuntimeError("a block's shape rule is built by ocdsl.graph.blocks")


def _stub(name: str, table: dict, outputs: list[str], params: dict, required=(), label: str = "") -> OpDef:
    inputs = tuple(Port(p, s if isinstance(s, str) else "") for p, s in (table.get("inputs") or {}).items()
                   if isinstance(p, str))
    module = type(_class_name(name), (BlockModule,), {"__doc__": f"Block '{name}' of the spec."})
    return OpDef(name=label or name, module=module, inputs=inputs, outputs=tuple(outputs), params=params,
                 infer=_no_infer, init_args=_no_infer, required=tuple(required),
                 summary=f"block '{name}'")


def _class_name(block: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in block.split("_") if p) + "Block"


def repeat_outputs(outputs: list[str]) -> list[str]:
    """A repeat node's ports: every block output stacked over the steps, then each one's
    last value (``final_<o>``)."""
    return list(outputs) + [FINAL + o for o in outputs]


def stub_ops(data: Mapping[str, Any]) -> tuple[dict[str, OpDef], dict[str, OpDef]]:
    """(block name -> the op a call node sees, block name -> the op a repeat node sees)."""
    calls, repeats = {}, {}
    for name, t in _tables(data).items():
        outs = _names(t.get("outputs"))
        calls[name] = _stub(name, t, outs, {})
        repeats[name] = _stub(name, t, repeat_outputs(outs), {}, ("block", "times"), f"repeat of block '{name}'")
    return calls, repeats


def node_tables(data: Mapping[str, Any]) -> Iterator[tuple[tuple, Any]]:
    """(key path, table) of every node: the model's, then each block's."""
    model = data.get("model") if isinstance(data, Mapping) else None
    nodes = model.get("nodes") if isinstance(model, dict) else None
    for name, t in (nodes.items() if isinstance(nodes, dict) else ()):
        yield ("model", "nodes", name), t
    for b, bt in _tables(data).items():
        for name, t in (bt.get("nodes").items() if isinstance(bt.get("nodes"), dict) else ()):
            yield ("blocks", b, "nodes", name), t


# ---- semantic checks --------------------------------------------------------------------------

class _BlockLocations(Locations):
    """The locations of a block seen as a model: ``model.X`` is ``blocks.<name>.X``."""

    def __init__(self, base: Locations, prefix: tuple):
        super().__init__(base.default_file)
        self.update(base)
        self.prefix = prefix

    def _map_kp(self, kp: tuple) -> tuple:
        return self.prefix + tuple(kp[1:]) if kp[:1] == ("model",) else tuple(kp)

    def get(self, keypath: tuple):
        return super().get(self._map_kp(tuple(keypath)))

    def value(self, keypath: tuple):
        return super().value(self._map_kp(tuple(keypath)))


def _moved(d: Diagnostic, prefix: tuple) -> Diagnostic:
    kp = tuple(d.keypath)
    return dataclasses.replace(d, keypath=prefix + kp[1:]) if kp[:1] == ("model",) else d


def check(v: "_Validator") -> None:
    """Every block's own checks (names, signatures, nodes, outputs) at the block's lines,
    blocks that use themselves, repeat nodes, and references into a block from outside."""
    from ocdsl.spec.validate import _Validator

    blocks = _tables(v.data)
    for name in list(blocks):
        if name in registry.names() or name == REPEAT or keyword.iskeyword(name):
            v.error(("blocks", name), f"block name '{name}' is already an op" if name != REPEAT and
                    not keyword.iskeyword(name) else f"'{name}' cannot name a block",
                    "rename the block: a node uses it as `op = \"<block>\"`")
    for name, t in blocks.items():
        prefix = ("blocks", name)
        sub_data = {"dims": v.data.get("dims") or {}, "schedules": v.data.get("schedules") or {},
                    "model": {"inputs": t.get("inputs") or {}, "nodes": t.get("nodes") or {}}}
        sub = _Validator(sub_data, _BlockLocations(v.locs, prefix), v.ops)
        sub.repeat_ops = v.repeat_ops
        sub.dims = v.dims
        sub.check_names()
        scheduled_sizes(sub)
        sub.check_inputs()
        sub.check_nodes()
        _check_repeats(sub, blocks)
        for out, text in (t.get("outputs") or {}).items():
            if isinstance(text, str):
                node, _, port = text.partition(".")
                sub.check_port_ref(node, port or None, text, ("model", "outputs", out))
        v.errors += [_moved(d, prefix) for d in sub.errors]
        v.warnings += [_moved(d, prefix) for d in sub.warnings]
        v.block_checked[name] = (sub.inputs, sub.outputs)
    _check_recursion(v, blocks)
    _check_repeats(v, blocks)
    _check_outside_refs(v, blocks)


def _uses(t: dict) -> set[str]:
    out = set()
    for _, nt in ((k, x) for k, x in (t.get("nodes") or {}).items() if isinstance(x, dict)):
        op = nt.get("op")
        out.add(nt.get("block") if op == REPEAT else op)
    return out


def _check_recursion(v: "_Validator", blocks: dict[str, dict]) -> None:
    import networkx as nx

    G = nx.DiGraph()
    for name, t in blocks.items():
        G.add_node(name)
        G.add_edges_from((name, u) for u in _uses(t) if u in blocks)
    for comp in nx.strongly_connected_components(G):
        first = min(comp, key=list(blocks).index)
        if len(comp) > 1 or G.has_edge(first, first):
            v.error(("blocks", first), f"block '{first}' uses itself (blocks {', '.join(sorted(comp))})",
                    "a block cannot contain itself; to run it several times, use a repeat node")


def scheduled_sizes(v: "_Validator") -> None:
    """A repeat whose ``times`` names a schedule makes its step axis a run-time size of
    that name (node output signatures may use it)."""
    for name, t in v.node_tables.items():
        if isinstance(t, dict) and t.get("op") == REPEAT and t.get("times") in v.schedule_names:
            v.dynamic.setdefault(t["times"], name)


def _check_repeats(v: "_Validator", blocks: dict[str, dict]) -> None:
    """``block`` names a block, ``times`` is a positive integer (or a size / schedule),
    ``carry`` names inputs that are also outputs and have a first value."""
    for name, t in v.node_tables.items():
        if not (isinstance(t, dict) and t.get("op") == REPEAT):
            continue
        kp = ("model", "nodes", name)
        block = t.get("block")
        if isinstance(block, str) and block not in blocks:
            v.error(kp + ("block",), f"no block '{block}'", did_you_mean(block, blocks)
                    or ("define it under [blocks." + block + "]"))
            continue
        times = t.get("times")
        if isinstance(times, int) and not isinstance(times, bool) and times < 1:
            v.error(kp + ("times",), f"'times' = {times}: the number of steps must be a positive integer",
                    "write a positive integer, an expression over [dims] or a [schedules] name")
        elif isinstance(times, str) and times not in v.schedule_names:
            v.check_size_expr(times, kp + ("times",), "times")
        bt = blocks.get(block) if isinstance(block, str) else None
        if not isinstance(bt, dict):
            continue
        ins, outs = _names(bt.get("inputs")), _names(bt.get("outputs"))
        given = t.get("inputs") if isinstance(t.get("inputs"), dict) else {}
        for s in t.get("carry") or []:
            if not isinstance(s, str):
                continue
            if s not in ins or s not in outs:
                missing = "an input" if s not in ins else "an output"
                v.error(kp + ("carry",), f"'{s}' cannot be carried: block '{block}' has no {missing} '{s}'",
                        "a carried state is both a block input (this step's value) and a block output "
                        f"(the next step's); inputs: {', '.join(ins)}; outputs: {', '.join(outs)}")
            elif s not in given:
                v.error(kp + ("inputs",), f"state '{s}' has no first value",
                        f"add `inputs = {{ {s} = \"...\" }}` (e.g. a zeros_like node for a blank canvas)")


def _check_outside_refs(v: "_Validator", blocks: dict[str, dict]) -> None:
    """A name that is only a block's node, used from outside the block."""
    inner = {n: b for b, t in blocks.items() for n in _names(t.get("nodes"))}
    outer = set(v.node_tables) | set(v.input_names)
    for name, t in v.node_tables.items():
        if not isinstance(t, dict):
            continue
        refs = {("input",): t.get("input")} if "input" in t else {}
        refs.update({("inputs", p): r for p, r in (t.get("inputs") or {}).items()} if isinstance(t.get("inputs"), dict) else {})
        for sub, ref in refs.items():
            node = ref.partition(".")[0] if isinstance(ref, str) else None
            if node in inner and node not in outer:
                b = inner[node]
                v.error(("model", "nodes", name) + sub,
                        f"'{ref}' is a node inside block '{b}': a block's nodes are visible only inside it",
                        f"use an output of the node that runs block '{b}' (outputs: "
                        f"{', '.join(_names(blocks[b].get('outputs')))})")


# ---- the Spec's blocks ---------------------------------------------------------------------------

def block_order(blocks: Mapping[str, BlockSpec]) -> list[str]:
    """Block names, each after the blocks it uses (spec order otherwise)."""
    done: list[str] = []

    def visit(b: str) -> None:
        if b in done:
            return
        for n in blocks[b].nodes.values():
            u = n.params.get("block") if n.op == REPEAT else n.op
            if u in blocks and u != b:
                visit(u)
        done.append(b)

    for b in blocks:
        visit(b)
    return done


def build_blocks(data: Mapping[str, Any], block_checked: Mapping[str, tuple],
                 make_node: Callable[[str, dict, tuple, dict], NodeSpec]) -> dict[str, BlockSpec]:
    """The :class:`BlockSpec` of every block of validated ``data``."""
    out = {}
    for name, t in _tables(data).items():
        kp = ("blocks", name)
        inputs, sigs = block_checked[name]
        nodes = {n: make_node(n, nt, kp + ("nodes", n), sigs.get(n, {})) for n, nt in t["nodes"].items()}
        outputs = {o: Ref.parse(r, kp + ("outputs", o)) for o, r in t["outputs"].items()}
        out[name] = BlockSpec(name, dict(inputs), nodes, outputs, kp)
    return out
