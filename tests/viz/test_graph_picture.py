"""`ocdsl graph`'s picture: layered top to bottom, every label inside its box (measured
with matplotlib's renderer), no two boxes overlapping, blocks as nested dashed clusters."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

from ocdsl.pipeline import build
from ocdsl.spec import loads
from ocdsl.viz.graph import draw_graph, write_graph

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[2]

CHAIN = """
[dims]
D = 4
[model.inputs]
x = "B D"
[model.nodes.a_long_node_name_for_a_box]
op = "linear"
input = "x"
size = "D"
[model.nodes.b]
op = "linear"
input = "a_long_node_name_for_a_box"
size = "D"
[model.nodes.c]
op = "linear"
input = "b"
size = "D"
[model.nodes.d]
op = "linear"
input = "c"
size = "D"
[losses]
total = "mean(d)"
"""
LONG = "a_long_node_name_for_a_box"


def _inside(inner, outer, slack: float = 0.5) -> bool:
    return (inner.x0 >= outer.x0 - slack and inner.x1 <= outer.x1 + slack
            and inner.y0 >= outer.y0 - slack and inner.y1 <= outer.y1 + slack)


def _check_picture(fig, lay, artists) -> None:
    renderer = fig.canvas.get_renderer()
    ext = {n: (p.get_window_extent(renderer), t.get_window_extent(renderer)) for n, (p, t) in artists.items()}
    for name, (box, text) in ext.items():
        assert _inside(text, box), f"label of {name} overflows its box: {text} not in {box}"
        parent = name.rpartition(".")[0]
        if parent:                                   # a node of a block lies in its cluster
            assert _inside(box, ext[parent][0]), f"{name} outside the cluster {parent}"
    fig_box = fig.bbox
    assert all(_inside(b, fig_box) for b, _ in ext.values())

    def check_layout(layout, prefix=""):
        real = {n: b for n, b in layout.boxes.items() if b.kind != "dummy"}
        names = list(real)
        for i, m in enumerate(names):
            for n in names[i + 1:]:
                a, b = real[m], real[n]
                apart = (a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y)
                assert apart, f"boxes {prefix}{m} and {prefix}{n} overlap"
        for chain, _ in layout.edges:                # top to bottom: each edge goes down
            u, v = layout.boxes[chain[0]], layout.boxes[chain[-1]]
            assert v.y >= u.y + u.h, f"{chain[0]} -> {chain[-1]} does not go down"
        for n, b in real.items():
            if b.inner is not None:
                check_layout(b.inner, f"{prefix}{n}.")

    check_layout(lay)


def test_a_chain_is_drawn_top_to_bottom_with_labels_in_their_boxes(tmp_path):
    c = build(loads(CHAIN, file=str(tmp_path / "chain.toml")))
    fig, lay, artists = draw_graph(c.spec, c.graph)
    w, h = fig.get_size_inches()
    assert h > 1.5 * w                               # taller than wide
    assert lay.layers == [["x"], [LONG], ["b"], ["c"], ["d"]]
    _check_picture(fig, lay, artists)
    assert lay.boxes[LONG].w > 2 * lay.boxes["b"].w  # sized to its label


@pytest.mark.parametrize("spec", ["ast_seg", "asae"])
def test_shipped_pictures_are_readable(spec, tmp_path):
    c = build(ROOT / "specs" / f"{spec}.toml")
    fig, lay, artists = draw_graph(c.spec, c.graph)
    _check_picture(fig, lay, artists)
    w, h = fig.get_size_inches() * fig.dpi
    assert h > w and w < 1000                        # a column a person reads at 100 %
    if spec == "asae":                               # the repeat node holds the block's graph
        assert lay.boxes["draw"].kind == "cluster"
        assert {"draw.where", "draw.glimpse", "draw.write", "draw.image"} <= set(artists)
        assert artists["draw"][0].get_linestyle() == "--"
    paths = write_graph(c.spec, c.graph, tmp_path / f"{spec}.png")
    assert [p.suffix for p in paths] == [".png", ".dot"] and all(p.stat().st_size > 0 for p in paths)
