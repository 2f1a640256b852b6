"""Code for blocks and repeat nodes: each ``[blocks.<name>]`` becomes a class of the
generated file (``StepBlock(nn.Module)``, one line per node as in the model class), and a
repeat node becomes a ``for`` loop in ``forward`` that calls the block's module (one set of
weights), carries the state from step to step and stacks every output along axis 1::

    draw_canvas_t = blank  # state 'canvas' before the first step
    draw_canvas, draw_window = [], []
    for _ in range(self.draw.times):  # block 'step': (B, 1, 64, 64), (B, 5) per step
        draw_canvas_t, draw_window_t = self.draw(image=image, canvas=draw_canvas_t)
        draw_canvas.append(draw_canvas_t)
        draw_window.append(draw_window_t)
    draw_canvas = torch.stack(draw_canvas, 1)  # (B, 4, 1, 64, 64)
    ...
"""

from __future__ import annotations

from typing import Callable

import networkx as nx

from ocdsl.shapes import fmt_shape
from ocdsl.spec.blocks import FINAL, REPEAT
from ocdsl.spec.model import Spec

__all__ = ["block_class", "repeat_lines", "uses_repeat"]


def uses_repeat(G: nx.MultiDiGraph) -> bool:
    """Whether the model or one of its blocks has a repeat node (the file imports torch)."""
    graphs = [G] + [g for _, g in (G.graph.get("blocks") or {}).values()]
    return any(d.get("kind") == "op" and d["node"].op == REPEAT for g in graphs for _, d in g.nodes(data=True))


def block_class(sub: Spec, G: nx.MultiDiGraph) -> list[str]:
    """The lines of block ``sub``'s class (``sub`` is the block as a Spec: ocdsl/graph/blocks.py)."""
    from ocdsl.codegen.emit import _comment, _doc_text, forward_lines, init_line, topological_nodes, variables
    from ocdsl.spec.blocks import _class_name

    name = sub.nodes[next(iter(sub.nodes))].keypath[1]
    block = sub.blocks[name]
    nodes = topological_nodes(sub, G)
    taken: set[str] = {"self"}
    var = variables(sub, G, nodes, taken)
    ins = ", ".join(f"{k} {v.text}" for k, v in block.inputs.items())
    doc = _doc_text(f"Block {name!r} (blocks.{name}): inputs {ins}; outputs {', '.join(block.outputs)}.",
                    lines=False)
    L = [f"class {_class_name(name)}(nn.Module):",
         f'    """{doc}"""',
         "",
         "    def __init__(self, times: int = 1) -> None:",
         "        super().__init__()",
         "        self.times = times  # steps, when a repeat node runs this block"]
    L += [init_line(n, G.nodes[n]) for n in nodes]
    args = ", ".join(f"{var[(p, 'out')]}: Tensor" for p in block.inputs)
    ret = "Tensor" if len(block.outputs) == 1 else "tuple[" + ", ".join(["Tensor"] * len(block.outputs)) + "]"
    L += ["", f"    def forward(self, {args}) -> {ret}:"]
    for n in nodes:
        L += forward_lines(n, G, var, taken)
    outs = []
    for o, ref in block.outputs.items():
        data = G.nodes[ref.node]
        port = "out" if data["kind"] == "input" else (ref.port or data["opdef"].outputs[0])
        outs.append(var[(ref.node, port)])
    L += [f"        return {', '.join(outs)}  # {_comment(', '.join(block.outputs))}", "", ""]
    return L


def repeat_lines(n: str, data: dict, edges: dict[str, str], var: dict[tuple[str, str], str],
                 ident: Callable[[str], str]) -> list[str]:
    """The ``for`` loop of repeat node ``n`` (see the module docstring)."""
    node, opdef = data["node"], data["opdef"]
    block, carry = node.params["block"], list(node.params.get("carry") or [])
    outs = [o for o in opdef.outputs if not o.startswith(FINAL)]
    step = {o: ident(f"{var[(n, o)]}_t") for o in outs}
    state = ", ".join(f"'{s}'" for s in carry) or "none"
    L = [f"        # {n}: block '{block}' run self.{n}.times times with one set of weights; state: {state}"]
    L += [f"        {step[s]} = {edges[s]}  # state '{s}' before the first step" for s in carry]
    lists = [var[(n, o)] for o in outs]
    L.append(f"        {', '.join(lists)} = {', '.join('[]' for _ in lists)}")
    call_args = {p.name: (step[p.name] if p.name in carry else edges[p.name]) for p in opdef.inputs}
    args = (next(iter(call_args.values())) if len(call_args) == 1
            else ", ".join(f"{p}={v}" for p, v in call_args.items()))
    per_step = ", ".join(fmt_shape(data["out_shapes"][FINAL + o]) for o in outs)
    L.append(f"        for _ in range(self.{n}.times):  # each step: {per_step}")
    L.append(f"            {', '.join(step[o] for o in outs)} = self.{n}({args})")
    L += [f"            {var[(n, o)]}.append({step[o]})" for o in outs]
    for o in outs:
        sig = node.outputs.get(o)
        shape = (f"{sig.text}: " if sig else "") + fmt_shape(data["out_shapes"][o])
        L.append(f"        {var[(n, o)]} = torch.stack({var[(n, o)]}, 1)  # {shape}")
    L.append(f"        {', '.join(var[(n, FINAL + o)] for o in outs)} = {', '.join(step[o] for o in outs)}"
             f"  # the last step's {', '.join(outs)}")
    return L
