"""Graph construction and shape inference on tiny specs."""

from __future__ import annotations

import textwrap

import pytest

from ocdsl.errors import SpecError
from ocdsl.graph import analyse, build_graph, output_shapes
from ocdsl.shapes import shape
from ocdsl.spec import load

TINY = """
[meta]
name = "tiny"

[dims]
H = 8
W = 8
C = 3
K = 2
F = 4
D = 8

[model.inputs]
image = "B C H W"

[model.nodes.encoder]
op = "conv_stack"
input = "image"
channels = ["F", "F"]
kernel = 3
output = "B F H W"

[model.nodes.tokens]
op = "rearrange"
input = "encoder"
pattern = "b c h w -> b (h w) c"
output = "B (H W) F"

[model.nodes.slots]
op = "slot_attention"
input = "tokens"
num_slots = "K"
slot_size = "D"
iterations = 2
output = { slots = "B K D", attention = "B K (H W)" }

[model.nodes.decoder]
op = "spatial_broadcast_decoder"
input = "slots.slots"
resolution = ["H", "W"]
channels = ["F"]
kernel = 3
out_channels = "C + 1"
output = { rgb = "B K C H W", alpha_logits = "B K 1 H W" }

[model.nodes.composite]
op = "alpha_composite"
inputs = { rgb = "decoder.rgb", alpha_logits = "decoder.alpha_logits" }
output = { image = "B C H W", masks = "B K H W" }

[losses]
reconstruction = "mse(composite.image, image)"

[train]
loss = "reconstruction"
optimizer = { name = "adam", lr = 1e-3 }
batch_size = 2
steps = 2

[data]
dataset = "tetrominoes"
"""


def write(tmp_path, text: str, name: str = "tiny.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_shapes_inferred_on_every_node(tmp_path):
    G = analyse(load(write(tmp_path, TINY)))
    shapes = output_shapes(G)
    assert shapes["encoder"] == shape("B", 4, 8, 8)
    assert shapes["tokens"] == shape("B", 64, 4)
    assert shapes["slots.slots"] == shape("B", 2, 8)
    assert shapes["slots.attention"] == shape("B", 2, 64)
    assert shapes["decoder.rgb"] == shape("B", 2, 3, 8, 8)
    assert shapes["composite.masks"] == shape("B", 2, 8, 8)
    assert G.nodes["slots"]["params"]["num_slots"] == 2  # "K" resolved from [dims]
    assert G.nodes["decoder"]["params"]["out_channels"] == 4  # "C + 1"


def test_edges_carry_ports(tmp_path):
    G = build_graph(load(write(tmp_path, TINY)))
    ports = sorted((d["src_port"], d["dst_port"]) for _, _, d in G.in_edges("composite", data=True))
    assert ports == [("alpha_logits", "alpha_logits"), ("rgb", "rgb")]


def test_undefined_reference_has_hint(tmp_path):
    text = edit(TINY, 'input = "tokens"', 'input = "tokenz"')
    with pytest.raises(SpecError) as e:
        analyse(load(write(tmp_path, text)))
    msg = e.value.format()
    assert "undefined reference 'tokenz'" in msg
    assert "did you mean 'tokens'?" in msg
    assert "tiny.toml:" in msg


def test_wrong_port_names_outputs(tmp_path):
    text = edit(TINY, 'input = "slots.slots"', 'input = "slots.slot"')
    with pytest.raises(SpecError, match="has no output 'slot'"):
        analyse(load(write(tmp_path, text)))


def test_cycle_is_reported_with_path(tmp_path):
    text = edit(TINY, 'input = "image"\nchannels', 'input = "composite.image"\nchannels')
    with pytest.raises(SpecError) as e:
        analyse(load(write(tmp_path, text)))
    assert "cycle" in e.value.format()
    assert "encoder" in e.value.format()


def test_shape_mismatch_names_both_nodes_expected_vs_got(tmp_path):
    # the decoder emits F=4 channels per slot, but the declared rgb signature says C=3
    text = edit(TINY, 'out_channels = "C + 1"', 'out_channels = "F + 2"')
    with pytest.raises(SpecError) as e:
        analyse(load(write(tmp_path, text)))
    msg = e.value.format()
    assert "node 'decoder'" in msg
    assert "(B, 2, 3, 8, 8)" in msg and "(B, 2, 5, 8, 8)" in msg


def test_input_shape_mismatch_names_producer(tmp_path):
    # slot attention fed an image (rank 4) instead of tokens (rank 3)
    text = edit(TINY, 'input = "tokens"', 'input = "encoder"')
    with pytest.raises(SpecError) as e:
        analyse(load(write(tmp_path, text)))
    msg = e.value.format()
    assert "node 'slots'" in msg and "'encoder'" in msg


def test_unused_node_is_a_warning(tmp_path):
    text = TINY + textwrap.dedent("""
    [model.nodes.extra]
    op = "layer_norm"
    input = "tokens"
    """)
    spec = load(write(tmp_path, text))
    G = analyse(spec)
    assert any("'extra' is unused" in w.message and w.severity == "warning" for w in G.graph["warnings"])


def test_analysis_is_pure_its_warnings_are_returned(tmp_path):
    """Analysing reads the spec and returns the warnings: the Spec is unchanged, and a second
    analysis gives the same warnings, once each (they used to be appended to spec.warnings)."""
    import copy

    from ocdsl.pipeline import build

    text = edit(TINY, '[model.inputs]\n', '[model.inputs]\nspare = "B C"\n') + textwrap.dedent("""
    [model.nodes.extra]
    op = "layer_norm"
    input = "tokens"
    """)
    spec = load(write(tmp_path, text))
    before_warnings, before_data = list(spec.warnings), copy.deepcopy(spec.data)
    first = analyse(spec).graph["warnings"]
    second = analyse(spec).graph["warnings"]
    assert [w.message for w in first] == ["node 'extra' is unused: no node, loss or eval key reads its output",
                                          "model input 'spare' is unused"]
    assert second == first
    assert spec.warnings == before_warnings and spec.data == before_data
    c = build(spec)  # the pipeline's warnings: the spec's, then the analysis's, once
    assert [w.message for w in c.warnings] == [w.message for w in [*before_warnings, *first]]


def test_missing_required_input(tmp_path):
    text = edit(TINY, 'inputs = { rgb = "decoder.rgb", alpha_logits = "decoder.alpha_logits" }',
                'inputs = { rgb = "decoder.rgb" }')
    with pytest.raises(SpecError, match="needs input 'alpha_logits'"):
        analyse(load(write(tmp_path, text)))


def test_all_errors_reported_together(tmp_path):
    text = edit(TINY, 'input = "tokens"', 'input = "tokenz"')
    text = edit(text, 'input = "slots.slots"', 'input = "slotz.slots"')
    with pytest.raises(SpecError) as e:
        analyse(load(write(tmp_path, text)))
    assert len(e.value.errors) == 2
