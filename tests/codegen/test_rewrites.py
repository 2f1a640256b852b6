"""Exact compiler rewrites (ocdsl/graph/rewrites.py; spec ``[compile] rewrites``): on by
default, visible in the generated code, off with ``rewrites = []``; exactness in float64 is
tests/codegen/test_rewrites_exact.py."""

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
    assert list(PASSES) == list(REWRITES)
    assert set(REWRITES) == {"fold_broadcast", "fuse_kv", "no_grad_detached", "channels_last"}


def test_main_job_is_folded_by_default_and_says_so():
    c = build(MAIN)
    line = _decoder_line(c.source)
    assert "fold_broadcast=True, channels_last=True)  # rewrite fold_broadcast:" in line
    # The comment says what was folded and why it is exact.
    note = line.split("  # ", 1)[1]
    assert "Conv2d 5x5 'same'" in note and "35x35" in note and "5x5 border classes" in note
    assert "exact" in note and "linear" in note and "zeros" in note
    assert c.graph.nodes["decoder"]["rewrites"].keys() == {"fold_broadcast", "channels_last"}
    model = c.instantiate(torch_compile=False)
    assert model.decoder.fold_broadcast is True and model.decoder.channels_last is True


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


def test_listing_every_rewrite_is_the_default():
    names = ", ".join(f'"{n}"' for n in reversed(REWRITES))  # the order written does not matter
    def body(source):  # the spec's hash covers the --set override; the code must not differ
        return [line for line in source.splitlines() if "sha256:" not in line and "SPEC_HASH" not in line]

    assert body(build(MAIN, overrides=[f"compile.rewrites=[{names}]"]).source) == body(build(MAIN).source)


def test_one_rewrite_listed_applies_that_one_only():
    c = build(MAIN, overrides=['compile.rewrites=["fuse_kv"]'])
    assert "fuse_kv=True)  # rewrite fuse_kv: k, v = inputs @ [W_k; W_v]^T (128x32)" in c.source
    for other in ("fold_broadcast", "no_grad_detached", "channels_last"):
        assert other not in c.source


def test_each_rewrite_is_noted_on_its_node_line():
    c = build(MAIN)
    lines = {n: next(line for line in c.source.splitlines() if line.lstrip().startswith(f"self.{n} = "))
             for n in ("encoder", "slots", "decoder")}
    assert "channels_last=True)  # rewrite channels_last: " in lines["encoder"]
    assert "fuse_kv=True, no_grad_detached=True)  # rewrite fuse_kv: " in lines["slots"]
    assert "; rewrite no_grad_detached: iterations 1-2 run under no_grad; exact: straight_through" in lines["slots"]
    assert "; rewrite channels_last: " in lines["decoder"]


def test_unknown_rewrite_is_a_located_error_listing_the_known_ones():
    with pytest.raises(SpecError) as ei:
        build(MAIN, overrides=['compile.rewrites=["fold_brodcast"]'])
    text = ei.value.format()
    assert "[compile.rewrites[0]] unknown rewrite 'fold_brodcast'" in text
    assert "known rewrites: fold_broadcast, fuse_kv, no_grad_detached, channels_last" in text
    assert "did you mean 'fold_broadcast'?" in text
