"""Exact compiler rewrites (ocdsl/graph/rewrites.py; spec ``[compile] rewrites``): on by
default, visible in the generated code, off with ``rewrites = []``, and exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ocdsl.errors import SpecError
from ocdsl.graph.rewrites import PASSES
from ocdsl.pipeline import build
from ocdsl.spec.schema import REWRITES

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "specs" / "slot_attention.toml"
CLEVR = REPO / "specs" / "variants" / "slot_attention_clevr6.toml"


def _decoder_line(source: str) -> str:
    return next(line for line in source.splitlines() if line.lstrip().startswith("self.decoder = "))


def test_schema_and_passes_name_the_same_rewrites():
    assert set(PASSES) == set(REWRITES) and "fold_broadcast" in REWRITES


def test_main_job_is_folded_by_default_and_says_so():
    c = build(MAIN)
    line = _decoder_line(c.source)
    assert "fold_broadcast=True)  # rewrite fold_broadcast:" in line
    # The comment says what was folded and why it is exact.
    note = line.split("  # ", 1)[1]
    assert "Conv2d 5x5 'same'" in note and "35x35" in note and "5x5 border classes" in note
    assert "exact" in note and "linear" in note and "zeros" in note
    assert c.graph.nodes["decoder"]["rewrites"].keys() == {"fold_broadcast"}
    assert c.instantiate(torch_compile=False).decoder.fold_broadcast is True


def test_clevr_decoder_folds_its_strided_transposed_conv():
    line = _decoder_line(build(CLEVR).source)
    assert "fold_broadcast=True" in line and "ConvTranspose2d 5x5 stride 2" in line


@pytest.mark.parametrize("override", ["compile.rewrites=[]"])
def test_rewrites_off(override):
    c = build(MAIN, overrides=[override])
    line = _decoder_line(c.source)
    assert "fold_broadcast" not in c.source and "  # " not in line
    assert "rewrites" not in c.graph.nodes["decoder"]
    assert c.instantiate(torch_compile=False).decoder.fold_broadcast is False


def test_listing_the_rewrite_is_the_default():
    listed = build(MAIN, overrides=['compile.rewrites=["fold_broadcast"]']).source
    assert _decoder_line(listed) == _decoder_line(build(MAIN).source)


def test_folded_and_unfolded_main_job_agree_in_float64():
    """Same weights in both generated modules (the state dicts interchange): every output
    and every parameter's gradient of the loss equal to 1e-10 in float64."""
    on = build(MAIN).instantiate(torch_compile=False).double()
    off = build(MAIN, overrides=["compile.rewrites=[]"]).instantiate(torch_compile=False).double()
    assert on.decoder.fold_broadcast and not off.decoder.fold_broadcast
    off.load_state_dict(on.state_dict())
    torch.manual_seed(0)
    image = torch.rand(2, 3, 35, 35, dtype=torch.float64) * 2 - 1
    grads = []
    outs = []
    for model in (on, off):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        out = model(image)
        loss = model.losses({"image": image}, out, model.schedules(0), 0)["reconstruction"]
        loss.backward()
        outs.append(out)
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert outs[0].keys() == outs[1].keys()
    for key in outs[0]:
        torch.testing.assert_close(outs[0][key], outs[1][key], rtol=0, atol=1e-10, msg=key)
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[1].items():
        assert g is not None, name
        torch.testing.assert_close(grads[0][name], g, rtol=0, atol=1e-10, msg=name)
    # The decoder's first layer gets a real gradient (the comparison is not vacuous).
    assert grads[1]["decoder.layers.0.weight"].abs().max() > 1e-8


def test_unknown_rewrite_is_a_located_error_listing_the_known_ones():
    with pytest.raises(SpecError) as ei:
        build(MAIN, overrides=['compile.rewrites=["fold_brodcast"]'])
    text = ei.value.format()
    assert "[compile.rewrites[0]] unknown rewrite 'fold_brodcast'" in text
    assert "known rewrites: fold_broadcast" in text and "did you mean 'fold_broadcast'?" in text
