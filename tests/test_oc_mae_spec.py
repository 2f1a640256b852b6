"""specs/oc_mae.toml and its variants: they validate and compile, the generated module runs
at a tiny size and equals the hand-written reference, schedulable params reach the ops, the
per-epoch schedules follow the paper, evaluation runs at mask ratio 0, and the declared
class-token symmetry holds."""

from __future__ import annotations

import importlib.util
import math
import textwrap
from pathlib import Path

import pytest
import torch

from ocdsl.errors import SpecError
from ocdsl.graph import output_shapes
from ocdsl.ops.vit import kept_count
from ocdsl.pipeline import build
from ocdsl.spec import expr as E

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "specs" / "oc_mae.toml"
VARIANTS = sorted((REPO / "specs" / "variants").glob("oc_mae_*.toml"))
# Tiny: the Tetrominoes layout (7x7 patches of 5 px, K = 4) with narrow, shallow transformers.
TINY = ["dims.D=16", "dims.E=8", "model.nodes.encoder.depth=1", "model.nodes.encoder.heads=2",
        "model.nodes.decoder.depth=1", "model.nodes.decoder.heads=2"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return build(BASE, overrides=TINY)


def test_table7_settings_and_ablations_are_shipped():
    names = {p.stem for p in VARIANTS}
    assert {"oc_mae_paper", "oc_mae_multi_dsprites", "oc_mae_clevr6", "oc_mae_clevrtex",
            "oc_mae_no_object_entropy", "oc_mae_no_pixel_entropy", "oc_mae_no_entropy",
            "oc_mae_no_masking"} <= names


@pytest.mark.parametrize("path", [BASE] + VARIANTS, ids=lambda p: p.stem)
def test_spec_validates_and_compiles(path):
    c = build(path)
    compile(c.source, str(path), "exec")
    assert "def set_schedules(self, sched" in c.source
    assert "self.masking.ratio = sched['mask_ratio']" in c.source


@pytest.mark.parametrize("stem,dims,heads,r0", [
    ("oc_mae_paper", dict(H=35, P=5, K=4, D=192, E=128), 4, 0.75),
    ("oc_mae_multi_dsprites", dict(H=64, P=8, K=6, D=384, E=256), 8, 0.5),
    ("oc_mae_clevr6", dict(H=128, P=16, K=7, D=768, E=512), 16, 0.75),
    ("oc_mae_clevrtex", dict(H=128, P=16, K=11, D=768, E=512), 16, 0.75),
])
def test_table7(stem, dims, heads, r0):
    c = build(REPO / "specs" / "variants" / f"{stem}.toml")
    assert {k: c.spec.dims[k] for k in dims} == dims
    assert c.spec.nodes["encoder"].params["heads"] == heads == c.spec.nodes["decoder"].params["heads"]
    assert c.spec.schedule_values(0)["mask_ratio"] == r0
    assert c.spec.train.batch_size == 128


def test_generated_module_runs_at_a_tiny_size(tiny):
    model = tiny.instantiate(torch_compile=False)
    x = torch.rand(2, 3, 35, 35) * 2 - 1
    out = model(x)
    keep = kept_count(49, 0.75)
    for key, s in output_shapes(tiny.graph).items():
        want = tuple({"B": 2, "L": keep}.get(str(d), None) or d.value for d in s)
        assert tuple(out[key].shape) == want, key
    torch.testing.assert_close(out["composite.masks"].sum(1), torch.ones(2, 35, 35))
    terms = model.losses({"image": x}, out, model.schedules(0), 0)
    assert set(terms) == {"reconstruction", "pixel_ent", "object_ent", "total"}
    terms["total"].backward()
    assert model.cls.tokens.grad is not None and model.broadcast.mask_token.grad is not None


def test_set_schedules_reaches_the_ops(tiny):
    model = tiny.instantiate(torch_compile=False)
    assert model.masking.ratio == 0.75                               # step-0 value from __init__
    model.set_schedules({**model.schedules(0), "mask_ratio": 0.5, "cls_noise": 0.2})
    assert model.masking.ratio == 0.5 and model.cls.noise == 0.2
    assert model(torch.zeros(1, 3, 35, 35))["masking.tokens"].shape[1] == kept_count(49, 0.5)
    model.set_schedules(model.schedules(10_000))                     # past the anneal: ratio 0
    assert model.masking.ratio == 0.0
    assert model(torch.zeros(1, 3, 35, 35))["masking.tokens"].shape[1] == 49


def test_equals_the_hand_written_reference(tiny):
    spec = importlib.util.spec_from_file_location("reference_oc_mae", REPO / "bench" / "reference_oc_mae.py")
    ref_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref_mod)
    model = tiny.instantiate(torch_compile=False).eval()
    ref = ref_mod.build_model(dim=16, depth=1, heads=2, dec_dim=8, dec_depth=1, dec_heads=2).eval()
    ref_mod.load_ocdsl_state(ref, model.state_dict())
    x = torch.rand(3, 3, 35, 35) * 2 - 1
    for ratio in (0.75, 0.0):
        model.set_schedules({**model.schedules(0), "mask_ratio": ratio})
        torch.manual_seed(5)
        out = model(x)
        torch.manual_seed(5)
        r = ref(x, mask_ratio=ratio)
        torch.testing.assert_close(out["composite.image"], r["recon"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out["composite.masks"], r["masks"], rtol=1e-4, atol=1e-5)


# ---- schedules in epochs ------------------------------------------------------------------------

def _paper_lr(e):
    if e < 10:
        return 1e-5 + (5e-4 - 1e-5) * e / 10
    if e < 300:
        return 1e-5 + 0.5 * 4.9e-4 * (1 + math.cos(math.pi * e / 300))
    return 1e-5


@pytest.mark.parametrize("epoch", [0, 3, 9.5, 10, 11, 150, 299, 300, 329])
def test_paper_schedules_per_epoch(epoch):
    c = build(REPO / "specs" / "variants" / "oc_mae_paper.toml")
    model = c.instantiate(torch_compile=False)
    spe = c.spec.train.steps_per_epoch
    step = int(epoch * spe)
    s = model.schedules(step)
    e = math.floor(epoch)                                            # per epoch in this variant
    assert s["e"] == e
    assert math.isclose(s["lr"], _paper_lr(e), rel_tol=1e-9)
    assert math.isclose(s["mask_ratio"], max(0.0, 0.75 * (1 - max(0, e - 10) / 290)), abs_tol=1e-12)
    prog = min(1.0, max(0, e - 10) / 290)
    assert math.isclose(s["w_pixel"], 1e-4 + prog * (3e-3 - 1e-4), rel_tol=1e-9)
    assert math.isclose(s["w_object"], 1e-4 + prog * (1e-2 - 1e-4), rel_tol=1e-9)
    assert model.schedules(step + spe - 1)["mask_ratio"] == s["mask_ratio"] or epoch != int(epoch)


def test_cpu_default_schedules_per_step(tiny):
    model = tiny.instantiate(torch_compile=False)
    spe = tiny.spec.train.steps_per_epoch
    a, b = model.schedules(20 * spe), model.schedules(20 * spe + 1)  # within epoch 20
    assert b["mask_ratio"] < a["mask_ratio"]                         # fractional epochs
    assert model.schedules(0)["lr"] == 1e-5 and model.schedules(330 * spe)["lr"] == 1e-5


def test_clevrtex_noise_only_during_warm_up():
    c = build(REPO / "specs" / "variants" / "oc_mae_clevrtex.toml")
    spe = c.spec.train.steps_per_epoch
    assert c.spec.schedule_values(0)["cls_noise"] == 0.1
    assert c.spec.schedule_values(10 * spe)["cls_noise"] == 0.1      # code: through epoch 10
    assert c.spec.schedule_values(11 * spe)["cls_noise"] == 0
    assert "self.cls.noise = sched['cls_noise']" in c.source


def test_ablations():
    v = {p.stem: build(p).spec.schedule_values(200 * 8) for p in VARIANTS if "_no_" in p.stem}
    assert v["oc_mae_no_object_entropy"]["w_object"] == 0 < v["oc_mae_no_object_entropy"]["w_pixel"]
    assert v["oc_mae_no_pixel_entropy"]["w_pixel"] == 0 < v["oc_mae_no_pixel_entropy"]["w_object"]
    assert v["oc_mae_no_entropy"]["w_pixel"] == v["oc_mae_no_entropy"]["w_object"] == 0
    assert v["oc_mae_no_masking"]["mask_ratio"] == 0
    assert build(REPO / "specs/variants/oc_mae_no_masking.toml").spec.schedule_values(0)["mask_ratio"] == 0


EPOCH_SPEC = """
[dims]
H = 8
W = 8
D = 8

[model.inputs]
image = "B 3 H W"

[model.nodes.patches]
op = "patch_embedding"
input = "image"
patch = 4
dim = "D"
output = "B 4 D"

[model.nodes.masking]
op = "random_masking"
input = "patches"
ratio = "ratio"
kept = "M"
output = { tokens = "B M D", mask = "B 4", ids_restore = "B 4" }

[losses]
rec = "mean(masking.tokens) * min(1, epoch)"

[schedules]
ratio = "0.5 * max(0, 1 - epoch / 4)"
whole = "floor(epoch)"

[train]
loss = "rec"
optimizer = { name = "adam", lr = 1e-3 }
batch_size = 16
epoch_size = 40
steps = 1
"""


@pytest.mark.parametrize("step", [0, 1, 2, 3, 5, 7, 10])
def test_epoch_from_epoch_size_in_schedules_and_losses(tmp_path, step):
    p = tmp_path / "epochs.toml"
    p.write_text(textwrap.dedent(EPOCH_SPEC))
    c = build(p)
    assert c.spec.steps_per_epoch == 40 / 16
    assert "epoch = step / 2.5  # train.epoch_size / train.batch_size" in c.source
    model = c.instantiate(torch_compile=False)
    got = model.schedules(step)
    epoch = step * 16 / 40
    assert math.isclose(got["ratio"], 0.5 * max(0, 1 - epoch / 4)) and got["whole"] == math.floor(epoch)
    env = dict(c.spec.dims, step=step, epoch=step / 2.5)
    assert math.isclose(got["ratio"], E.evaluate(c.spec.schedules["ratio"], env), abs_tol=1e-15)
    out = model(torch.zeros(2, 3, 8, 8))
    loss = model.losses({"image": torch.zeros(2, 3, 8, 8)}, out, got, step)["rec"].detach()
    torch.testing.assert_close(loss, out["masking.tokens"].detach().mean() * min(1, epoch))
    assert "# ratio <- schedule 'ratio'" in c.source


def test_both_epoch_lengths_are_an_error(tmp_path):
    p = tmp_path / "both.toml"
    p.write_text(textwrap.dedent(EPOCH_SPEC).replace("epoch_size = 40", "epoch_size = 40\nsteps_per_epoch = 3"))
    with pytest.raises(SpecError, match="give either train.steps_per_epoch or train.epoch_size"):
        build(p)


def test_reserved_epoch_name(tmp_path):
    p = tmp_path / "reserved.toml"
    p.write_text(textwrap.dedent(EPOCH_SPEC).replace('whole = "floor(epoch)"', 'epoch = "1"'))
    with pytest.raises(SpecError, match=r"'epoch' is reserved \(the training epoch\)"):
        build(p)


# ---- training and evaluation --------------------------------------------------------------------

def test_training_sets_schedules_and_evaluates_at_ratio_zero(tiny, tmp_path):
    from ocdsl.train import train

    c = build(BASE, overrides=TINY + ["train.steps=2", "train.batch_size=4", "eval.test_size=4",
                                      "eval.figure_images=2", "eval.every=1000", "eval.datasets=[]"])
    model = c.instantiate(torch_compile=False)
    seen = []
    real = model.set_schedules

    def record(sched):
        seen.append((model.training, sched["mask_ratio"]))
        real(sched)

    model.set_schedules = record
    summary = train(c.spec, model, out_dir=tmp_path / "run", progress=False)
    assert summary["status"] == "completed" and summary["step"] == 2
    assert [r for t, r in seen if t][:2] == [0.75, 0.75]             # before each training step
    assert (False, 0.0) in seen                                      # evaluation: eval.schedules
    assert model.masking.ratio == model.schedules(2)["mask_ratio"]   # restored afterwards
    ev = summary["eval"]
    assert {"ari_fg", "ari", "miou_fg", "miou", "mse"} <= set(ev["test"]["metrics"])
    figs = {Path(f).name for f in summary["figures"]}
    assert "step_000002_test.png" in figs
    assert (tmp_path / "run" / "figures" / "step_000002_test_train_schedules.png").exists()


def test_declared_class_token_symmetry_holds(tiny):
    from ocdsl.invariance import check
    report = check(tiny, examples=3)
    assert report.passed, str(report)
    (r,) = report.results
    assert r.property == "permutation_equivariance K" and r.node == "encoder"
    assert any("composite.image: unchanged" in x for x in r.compared)
    assert any("composite.masks: permuted along K" in x for x in r.compared)
    assert any("objects.slots: permuted along K" in x for x in r.compared)


def test_patch_grid_maps_become_pixel_maps():
    from ocdsl.train.evaluate import pixel_maps
    a = torch.arange(6.0).reshape(1, 1, 6)                           # a 2x3 grid on a 4x6 image
    out = pixel_maps(a, 4, 6)
    assert out.shape == (1, 1, 4, 6)
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 0, 2] == 1 and out[0, 0, 3, 5] == 5
    assert pixel_maps(torch.zeros(1, 1, 7), 4, 6) is None            # fits no grid


def test_eval_scores_the_object_function_attention_over_the_patch_grid():
    """`eval.masks` may name a (B, K, N) patch-grid output: it is scored at pixel level with
    each patch's value over its 5x5 pixels (the attention ARI next to the alphas' ARI); any
    other shape is an error naming eval.masks."""
    from ocdsl.errors import UserError
    from ocdsl.train.evaluate import _masks

    c = build(BASE, overrides=TINY + ["eval.masks=broadcast.attention"])
    att = torch.rand(2, 4, 49).softmax(1)
    image = torch.zeros(2, 3, 35, 35)
    m = _masks(c.spec, {"broadcast.attention": att}, image)
    assert m.shape == (2, 4, 35, 35)
    assert torch.equal(m[:, :, 5:10, 10:15], att[:, :, 1 * 7 + 2, None, None].expand(2, 4, 5, 5))   # grid row 1, col 2
    with pytest.raises(UserError, match=r"eval.masks.*\(2, 4, 48\)"):
        _masks(c.spec, {"broadcast.attention": att[:, :, :48]}, image)
