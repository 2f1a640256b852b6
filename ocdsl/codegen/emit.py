"""Checked graph -> readable, deterministic Python source (``compiled/<spec>.py``).

The generated file holds one ``nn.Module`` class:

- ``__init__`` instantiates one op module per node, with literal keyword arguments (plus
  those of the exact rewrites applied to the node, ocdsl.graph.rewrites, each noted in a
  comment on the node's line);
- ``forward`` has one line per node, each with an end-of-line shape comment, and returns a
  dict of every node output (``"encoder"``, ``"slots.attention"``);
- ``schedules(step, phase_step, phase_steps, total_steps)`` and ``losses(inputs, outputs,
  sched, step)`` are the spec's expressions translated to Python (ocdsl.codegen.expr): spec
  text never reaches eval; ``epoch`` is a local ``epoch = step / <steps per epoch>`` where an
  expression uses it; ``total_steps`` (the run's length, passed by the trainer, so that
  ``--steps N`` makes it N) defaults to the spec's written length; ``phase_step`` /
  ``phase_steps`` (the training phase's clock, passed by the trainer) default to ``step`` /
  ``total_steps``;
- ``set_schedules(sched)`` (only when some node has a schedulable param written as a
  schedule name, e.g. ``ratio = "mask_ratio"``) assigns the schedule values to those module
  attributes; ``__init__`` passes each such param its schedule's value at step 0.

Same spec, same bytes: node order is the spec's (a valid topological order is checked, and
a stable topological sort is used otherwise), imports are sorted, and nothing depends on
dict order of unordered inputs, time or paths outside the spec's own name.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

import networkx as nx

from ocdsl import __version__
from ocdsl.codegen.blocks import block_class, repeat_lines, uses_repeat
from ocdsl.codegen.expr import to_python
from ocdsl.errors import shown
from ocdsl.graph.build import output_key
from ocdsl.shapes import fmt_shape
from ocdsl.spec.blocks import REPEAT, BlockModule
from ocdsl.spec.model import Spec

__all__ = ["generate_source", "class_name", "topological_nodes"]

_RESERVED = set(keyword.kwlist) | {"self", "fn", "torch", "nn", "Tensor", "inputs", "outputs", "sched",
                                   "step", "epoch", "phase_step", "phase_steps", "total_steps", "super", "dict", "str",
                                   "int", "float"}


def class_name(spec: Spec) -> str:
    """``slot_attention`` -> ``SlotAttentionModel``."""
    parts = re.split(r"[^0-9a-zA-Z]+", spec.name)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p) or "Spec"
    if name[0].isdigit():
        name = "M" + name
    return name + "Model"


def _ident(name: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", name)
    if not base or base[0].isdigit():
        base = "_" + base
    if base in _RESERVED:
        base += "_"
    cand, i = base, 2
    while cand in taken:
        cand, i = f"{base}_{i}", i + 1
    taken.add(cand)
    return cand


def topological_nodes(spec: Spec, G: nx.MultiDiGraph) -> list[str]:
    """Op nodes in a topological order that keeps the spec's order where it can."""
    order = {n: i for i, n in enumerate(list(spec.inputs) + list(spec.nodes))}
    topo = list(nx.lexicographical_topological_sort(G, key=lambda n: order[n]))
    return [n for n in topo if G.nodes[n]["kind"] == "op"]


def _comment(text: str) -> str:
    """``text`` for the end of a ``#`` comment: unchanged when every character is printable,
    else with line breaks and other control characters escaped (``\\n``, ``\\x00``), so it
    cannot end the comment and start a statement."""
    return shown(text)


def _doc_text(text: str, lines: bool = True) -> str:
    """``text`` for the inside of a ``\"\"\"`` docstring: backslashes and double quotes are
    escaped (so the text can neither close the string nor start an escape), and so is every
    unprintable character (``\\x00``, ``\\u2028``), line breaks included unless ``lines``
    (then ``\\n`` stays a line of the docstring and ``\\r`` is escaped). Text without such
    characters is unchanged; the docstring's value is the text either way."""
    out = []
    for c in text:
        if c == "\\" or c == '"':
            out.append("\\" + c)
        elif c == "\n" and lines:
            out.append(c)
        elif not c.isprintable():
            out.append(repr(c)[1:-1])
        else:
            out.append(c)
    return "".join(out)


def _literal(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_literal(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(x)}" for k, x in sorted(v.items())) + "}"
    return repr(v)


def _expr_deps(exprs: dict[str, Any]) -> dict[str, set[str]]:
    from ocdsl.spec import expr as E
    return {k: {n for n in E.names(e) if n in exprs} for k, e in exprs.items()}


def _ordered(exprs: dict[str, Any]) -> list[str]:
    """Expression names in dependency order, spec order among independent ones."""
    deps = _expr_deps(exprs)
    G = nx.DiGraph()
    G.add_nodes_from(exprs)
    for k, ds in deps.items():
        for d in ds:
            G.add_edge(d, k)
    order = {n: i for i, n in enumerate(exprs)}
    return list(nx.lexicographical_topological_sort(G, key=lambda n: order[n]))


def generate_source(spec: Spec, G: nx.MultiDiGraph, *, source_name: str | None = None) -> str:
    """The generated module's source text for a checked, shape-annotated graph."""
    nodes = topological_nodes(spec, G)
    imports = op_imports(G, nodes)
    block_graphs = G.graph.get("blocks") or {}
    for sub, subG in block_graphs.values():
        imports |= op_imports(subG, topological_nodes(sub, subG))

    taken: set[str] = set()
    var = variables(spec, G, nodes, taken)

    L = _module_head(spec, G, imports, source_name)
    for sub, subG in block_graphs.values():
        L.extend(block_class(sub, subG))
    L.extend(_class_head(spec, G, nodes))
    L.extend(_forward(spec, G, nodes, var, taken))
    L.extend(_schedule_methods(spec, G, nodes))
    L.extend(_loss_method(spec, G))
    return "\n".join(L) + "\n"


# The parts of the generated module, in order, for :func:`generate_source`.

def _module_head(spec: Spec, G: nx.MultiDiGraph, imports: set, source_name: str | None) -> list[str]:
    """The provenance comment, the module docstring and the imports."""
    L: list[str] = []
    w = L.append
    src = source_name or str(spec.path.name)
    w(f"# Generated by ocdsl {__version__} from {_comment(src)}; do not edit: run `ocdsl compile` instead.")
    w(f"# spec: {_comment(spec.name)}  sha256: {spec.source_hash}")
    paper = spec.meta.get("paper")
    desc = spec.meta.get("description") or spec.name
    w(f'"""{_doc_text(str(desc))}.')
    if paper:
        w("")
        w(f"Paper: {_doc_text(str(paper))}")
    w('"""')
    w("")
    w("from __future__ import annotations")
    w("")
    if uses_repeat(G):
        w("import torch")
    w("from torch import Tensor, nn")
    w("")
    w("from ocdsl.losses import functions as fn")
    for module, name in sorted(imports):
        w(f"from {module} import {name}")
    w("")
    w("")
    return L


def _class_head(spec: Spec, G: nx.MultiDiGraph, nodes: list[str]) -> list[str]:
    """The class line, its docstring and constants, and ``__init__``."""
    L: list[str] = []
    w = L.append
    w(f"class {class_name(spec)}(nn.Module):")
    inputs_doc = ", ".join(f"{k} {v.text}" for k, v in spec.inputs.items())
    w(f'    """{_doc_text(f"{spec.name}: {len(nodes)} nodes, inputs {inputs_doc}.", lines=False)}"""')
    w("")
    w(f"    SPEC_NAME = {spec.name!r}")
    w(f"    SPEC_HASH = {spec.source_hash!r}")
    w(f"    INPUTS = {_literal(tuple(spec.inputs))}")
    w(f"    LOSS = {spec.train.loss!r}")
    w(f"    DIMS = {_literal(dict(spec.dims))}")
    w(f"    NODES = {_literal(tuple(nodes))}")
    w("")
    w("    def __init__(self) -> None:")
    w("        super().__init__()")
    for n in nodes:
        w(init_line(n, G.nodes[n]))
    w("")
    return L


def _forward(spec: Spec, G: nx.MultiDiGraph, nodes: list[str], var: dict, taken: set[str]) -> list[str]:
    """``forward``: one line per node, returning every node output by its key."""
    L: list[str] = []
    w = L.append
    if len(spec.inputs) == 1:
        (only,) = spec.inputs
        w(f"    def forward(self, {var[(only, 'out')]}: Tensor) -> dict[str, Tensor]:")
    else:
        w("    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:")
        for name in spec.inputs:
            w(f"        {var[(name, 'out')]} = inputs[{name!r}]  # {spec.inputs[name].text}")
    for n in nodes:
        L.extend(forward_lines(n, G, var, taken))
    w("        return {")
    for n in nodes:
        opdef = G.nodes[n]["opdef"]
        for port in opdef.outputs:
            w(f"            {output_key(n, port, opdef.outputs)!r}: {var[(n, port)]},")
    w("        }")
    w("")
    return L


def _schedule_methods(spec: Spec, G: nx.MultiDiGraph, nodes: list[str]) -> list[str]:
    """``schedules`` and, when an op parameter is scheduled, ``set_schedules``."""
    L: list[str] = []
    w = L.append
    w("    def schedules(self, step: int, phase_step: int | None = None, phase_steps: int | None = None,")
    w("                  total_steps: int | None = None) -> dict[str, float]:")
    clock = _uses_phase_clock(spec.schedules.values())
    if clock or _uses(spec.schedules.values(), "total_steps"):
        w('        """[schedules]: values as functions of the training step, the run\'s length and the')
        w('        phase clock (the trainer passes total_steps, phase_step and phase_steps; by default')
        w('        the run is as long as the spec says and one phase spans it)."""')
        w(f"        total_steps = {spec.total_steps or 1!r} if total_steps is None else total_steps")
        if clock:
            w("        phase_step = step if phase_step is None else phase_step")
            w("        phase_steps = total_steps if phase_steps is None else phase_steps")
    else:
        w('        """[schedules]: values as functions of the training step."""')
    L.extend(_epoch_line(spec, spec.schedules.values()))
    L.extend(_assignments(spec.schedules, lambda ref, names: _sched_ref(ref, spec, names)))
    w("")
    setters = [(n, p, sname) for n in nodes if not G.nodes[n]["node"].shared_with
               for p, sname in (G.nodes[n].get("scheduled") or {}).items()]
    if setters:
        w("    def set_schedules(self, sched: dict[str, float]) -> None:")
        w('        """Schedulable op parameters <- [schedules] values (before every training step)."""')
        for n, p, sname in setters:
            value = f"round(sched[{sname!r}])" if G.nodes[n]["node"].op == REPEAT else f"sched[{sname!r}]"
            w(f"        self.{n}.{p} = {value}")
        w("")
    return L


def _loss_method(spec: Spec, G: nx.MultiDiGraph) -> list[str]:
    """``losses``: every [losses] term."""
    L: list[str] = []
    w = L.append
    w("    def losses(self, inputs: dict[str, Tensor], outputs: dict[str, Tensor],")
    w("               sched: dict[str, float], step: int) -> dict[str, Tensor]:")
    w('        """[losses]: every named loss term; train.loss is minimised."""')
    okeys = _output_keys(G)
    L.extend(_epoch_line(spec, spec.losses.values()))
    L.extend(_assignments(spec.losses, lambda ref, names: _loss_ref(ref, spec, names, okeys)))
    return L


def variables(spec: Spec, G: nx.MultiDiGraph, nodes: list[str], taken: set[str]) -> dict[tuple[str, str], str]:
    """(vertex, port) -> the local variable of ``forward`` holding it (names added to ``taken``)."""
    var: dict[tuple[str, str], str] = {}
    for name in spec.inputs:
        var[(name, "out")] = _ident(name, taken)
    for n in nodes:
        opdef = G.nodes[n]["opdef"]
        for port in opdef.outputs:
            single = len(opdef.outputs) == 1 or port == n
            var[(n, port)] = _ident(n if single else f"{n}_{port}", taken)
    return var


def op_imports(G: nx.MultiDiGraph, nodes: list[str]) -> set[tuple[str, str]]:
    """(module, class) of every op node's module; a block's class is generated, not imported."""
    out = set()
    for n in nodes:
        mod = G.nodes[n]["opdef"].module
        if not issubclass(mod, BlockModule):
            out.add((mod.__module__, mod.__name__))
    return out


def init_line(n: str, data: dict) -> str:
    """The ``__init__`` statement of node ``n``: its module, literal arguments and notes."""
    opdef, node = data["opdef"], data["node"]
    if node.shared_with:
        return f"        self.{n} = self.{node.shared_with}  # shares weights with {node.shared_with}"
    kwargs = {**opdef.init_args(data["in_shapes"], data["params"]), **(data.get("init_overrides") or {})}
    args = ", ".join(f"{k}={_literal(v)}" for k, v in kwargs.items())
    scheduled = data.get("scheduled") or {}
    notes = [f"{p} <- schedule {s!r}" for p, s in scheduled.items()]
    notes += list((data.get("rewrites") or {}).values())
    note = "  # " + "; ".join(notes) if notes else ""
    return f"        self.{n} = {opdef.module.__name__}({args}){note}"


def forward_lines(n: str, G: nx.MultiDiGraph, var: dict[tuple[str, str], str], taken: set[str]) -> list[str]:
    """The ``forward`` statement(s) of node ``n``: one call with its shape comment, or a
    repeat node's ``for`` loop (codegen/blocks.py)."""
    data = G.nodes[n]
    opdef = data["opdef"]
    edges = {d["dst_port"]: var[(u, d["src_port"])] for u, _, d in G.in_edges(n, data=True)}
    if data["node"].op == REPEAT:
        return repeat_lines(n, data, edges, var, lambda name: _ident(name, taken))
    if len(opdef.inputs) == 1:
        args = edges[opdef.inputs[0].name]
    else:
        args = ", ".join(f"{p.name}={edges.get(p.name, 'None')}" for p in opdef.inputs
                         if p.name in edges or not p.optional)
    outs = [var[(n, p)] for p in opdef.outputs]
    return [f"        {', '.join(outs)} = self.{n}({args})  # {_comment(shapes_text(data))}"]


def shapes_text(data: dict) -> str:
    """``"B D: (B, 64)"`` for each output port (its declared signature, where given)."""
    declared = data["node"].outputs
    return ", ".join((f"{declared[p].text}: " if p in declared else "") + fmt_shape(data["out_shapes"][p])
                     for p in data["opdef"].outputs)


def _uses_phase_clock(exprs) -> bool:
    from ocdsl.spec import expr as E
    return any(n in ("phase_step", "phase_steps") for e in exprs for n in E.names(e))


def _uses(exprs, name: str) -> bool:
    from ocdsl.spec import expr as E
    return any(name in E.names(e) for e in exprs)


def _epoch_line(spec: Spec, exprs) -> list[str]:
    """``epoch = step / <steps per epoch>`` when one of ``exprs`` uses ``epoch``."""
    from ocdsl.spec import expr as E
    if not any("epoch" in E.names(e) for e in exprs):
        return []
    spe = spec.steps_per_epoch
    if spe is None:
        raise ValueError("an expression uses 'epoch' but the spec sets neither train.steps_per_epoch "
                         "nor train.epoch_size")
    src = ("train.steps_per_epoch" if spec.train.steps_per_epoch is not None
           else "train.epoch_size / train.batch_size")
    return [f"        epoch = step / {spe!r}  # {src}"]


def _assignments(exprs: dict[str, Any], resolve) -> list[str]:
    """Method body: one assignment per named expression in dependency order, then a dict
    of all of them in spec order. ``resolve(ref, local_names)`` gives a reference's code."""
    order = _ordered(exprs)
    taken: set[str] = set()
    local = {name: _ident(name, taken) for name in order}
    lines = [f"        {local[n]} = {to_python(exprs[n], lambda ref: resolve(ref, local))}" for n in order]
    lines.append("        return {" + ", ".join(f"{n!r}: {local[n]}" for n in exprs) + "}")
    return lines


def _output_keys(G: nx.MultiDiGraph) -> dict[str, str]:
    """Reference text -> output dict key (``"decoder"`` -> ``"decoder"``,
    ``"decoder.rgb"`` -> ``"decoder"`` when rgb is the default port)."""
    out: dict[str, str] = {}
    for n, data in G.nodes(data=True):
        if data["kind"] != "op":
            continue
        outs = data["opdef"].outputs
        for p in outs:
            out[f"{n}.{p}"] = output_key(n, p, outs)
        out[n] = output_key(n, outs[0], outs)
    return out


def _sched_ref(ref: str, spec: Spec, s_var: dict[str, str]) -> str:
    if ref in ("step", "epoch", "phase_step", "phase_steps", "total_steps"):
        return ref
    if ref in s_var:
        return s_var[ref]
    if ref in spec.dims:
        return repr(spec.dims[ref])
    raise ValueError(f"schedule references {ref!r}, which is not a dim, schedule or step")


def _loss_ref(ref: str, spec: Spec, l_var: dict[str, str], okeys: dict[str, str]) -> str:
    if ref in ("step", "epoch"):
        return ref
    if ref in l_var:
        return l_var[ref]
    if ref in spec.schedules:
        return f"sched[{ref!r}]"
    if ref in spec.dims:
        return repr(spec.dims[ref])
    if ref in spec.inputs:
        return f"inputs[{ref!r}]"
    if ref in okeys:
        return f"outputs[{okeys[ref]!r}]"
    raise ValueError(f"loss references {ref!r}, which is not a loss, schedule, dim, input or node output")
