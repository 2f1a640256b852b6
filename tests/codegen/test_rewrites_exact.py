"""Every exact rewrite (ocdsl/graph/rewrites.py) on every shipped spec it applies to: the
generated module with only that rewrite and the one with none agree in float64 (every output
and every parameter's gradient of the training loss to 1e-10), with the same weights.
Specs a rewrite does not apply to get no note from it. The large paper-sized models are
marked slow (float64 convolutions at 64x64 and 128x128)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ocdsl.graph.rewrites import PASSES
from ocdsl.pipeline import build

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted((REPO / "specs").glob("*.toml")) + sorted((REPO / "specs" / "variants").glob("*.toml"))
# Where each rewrite applies (checked against the built graph by test_where_rewrites_apply).
APPLIES = {
    "slot_attention": {"fold_broadcast", "fuse_kv", "no_grad_detached", "channels_last"},
    "slot_attention_paper": {"fold_broadcast", "fuse_kv", "channels_last"},
    "slot_attention_multi_dsprites": {"fold_broadcast", "fuse_kv", "channels_last"},
    "slot_attention_clevr6": {"fold_broadcast", "fuse_kv", "channels_last"},
    # set prediction: the encoder and slot attention, a per-slot MLP, no decoder
    "slot_attention_set_prediction": {"fuse_kv", "channels_last"},
    "slot_attention_set_prediction_clevr": {"fuse_kv", "channels_last"},
    # contrastive slot attention: slot attention over learned queries, no decoder
    **{stem: {"fuse_kv"} for stem in ("osc_contrastive", "osc_cossim", "osc_cossim_no_global",
                                      "osc_ctr_all_no_global", "osc_ctr_img", "osc_ctr_img_no_global",
                                      "osc_global_only")},
}
SLOW = {"slot_attention_multi_dsprites", "slot_attention_clevr6", "slot_attention_set_prediction_clevr", "osc_cossim", "osc_cossim_no_global",
        "osc_ctr_all_no_global", "osc_ctr_img", "osc_ctr_img_no_global", "osc_global_only"}


def _applied(path: Path) -> set[str]:
    G = build(path).graph
    return {name for _, d in G.nodes(data=True) for name in (d.get("rewrites") or {})}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_where_rewrites_apply(path):
    assert _applied(path) == APPLIES.get(path.stem, set())


def _run(model, spec, inputs: dict[str, torch.Tensor]):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same Gaussian initial slots in both models
    arg = next(iter(inputs.values())) if len(inputs) == 1 else inputs
    out = model(arg)
    loss = model.losses(inputs, out, model.schedules(0), 0)[spec.train.loss]
    loss.backward()
    return out, {n: p.grad for n, p in model.named_parameters()}


def _cases():
    for stem, names in sorted(APPLIES.items()):
        marks = [pytest.mark.slow] if stem in SLOW else []
        for name in sorted(names) + ["all"]:
            yield pytest.param(stem, name, marks=marks, id=f"{stem}-{name}")


@pytest.mark.parametrize("stem,rewrite", list(_cases()))
def test_rewrite_is_exact_in_float64(stem, rewrite):
    path = next(p for p in SPECS if p.stem == stem)
    listed = list(PASSES) if rewrite == "all" else [rewrite]
    on_c = build(path, overrides=[f"compile.rewrites={listed}".replace("'", '"')])
    off_c = build(path, overrides=["compile.rewrites=[]"])
    on = on_c.instantiate(torch_compile=False).double()
    off = off_c.instantiate(torch_compile=False).double()
    off.load_state_dict(on.state_dict())  # the rewrite keeps the state dict's keys and shapes
    spec = on_c.spec
    lo, hi = spec.data_cfg.range
    torch.manual_seed(0)
    inputs = {n: torch.rand(*s, dtype=torch.float64) * (hi - lo) + lo
              for n, s in spec.input_shapes(2).items()}
    (out_on, g_on), (out_off, g_off) = _run(on, spec, inputs), _run(off, spec, inputs)
    assert out_on.keys() == out_off.keys()
    for key in out_on:
        torch.testing.assert_close(out_on[key], out_off[key], rtol=0, atol=1e-10, msg=key)
    assert g_on.keys() == g_off.keys()
    # Gradients can be tiny at init (about 1e-9 on CLEVR6): also equal to 1e-8 of the largest.
    scale = max(g.abs().max() for g in g_off.values() if g is not None)
    for n, g in g_off.items():
        if g is None:
            assert g_on[n] is None, n
            continue
        torch.testing.assert_close(g_on[n], g, rtol=0, atol=1e-10, msg=n)
        assert (g_on[n] - g).abs().max() <= 1e-8 * scale, n
    # Not vacuous: the rewritten nodes' weights get a gradient.
    # (the k and v projections are the fused ones; in osc_global_only, trained by the global
    # loss alone, the keys got no gradient here and the values did)
    assert max(g_off[f"slots.to_{w}.weight"].abs().max() for w in "kv") > 0
    if "decoder.layers.0.weight" in g_off:  # contrastive slot attention has no decoder
        assert g_off["decoder.layers.0.weight"].abs().max() > 0
