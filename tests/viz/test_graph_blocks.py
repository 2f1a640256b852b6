"""`ocdsl graph` draws each block as a nested cluster of its own nodes (DOT)."""

from __future__ import annotations

import pydot

from ocdsl.pipeline import build
from ocdsl.spec import loads
from ocdsl.viz.graph import to_dot

SPEC = """
[dims]
D = 4
[model.inputs]
x = "B D"
[blocks.step]
inputs = { h = "B D" }
outputs = { h = "next" }
[blocks.step.nodes.next]
op = "linear"
input = "h"
size = "D"
[model.nodes.loop]
op = "repeat"
block = "step"
times = 2
inputs = { h = "x" }
carry = ["h"]
[losses]
total = "mean(loop.final_h)"
[train]
loss = "total"
"""


def test_block_is_a_cluster(tmp_path):
    c = build(loads(SPEC, file=str(tmp_path / "s.toml")))
    (graph,) = pydot.graph_from_dot_data(to_dot(c.graph, "s"))
    (cluster,) = graph.get_subgraphs()
    assert cluster.get_name() == "cluster_block_step"
    assert "run by loop" in cluster.get_label()
    names = {n.get_name().strip('"') for n in cluster.get_nodes()}
    assert {"step.h", "step.next"} <= names
    assert {n.get_name() for n in graph.get_nodes()} >= {"x", "loop"}
