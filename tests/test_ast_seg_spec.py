"""specs/ast_seg.toml and its variants: they validate and compile, the curriculum is the
paper's (phases, frozen nodes, fresh optimizers, one foreground clock), the schedules give
the paper's numbers on the paper's clock, each ablation changes what it says, the pretrained
option never downloads, and a short run goes through all three phases and reports metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ocdsl.cli import main
from ocdsl.errors import SpecError
from ocdsl.pipeline import build
from ocdsl.spec import load
from ocdsl.train.phases import plan_phases

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "specs" / "ast_seg.toml"
VARIANTS = {p.stem: p for p in sorted((REPO / "specs" / "variants").glob("ast_seg_*.toml"))}


pytestmark = pytest.mark.usefixtures("one_thread")


def _nodes(spec):
    return list(spec.nodes)


def test_every_ablation_of_the_issue_is_shipped():
    assert {"ast_seg_no_transformer", "ast_seg_k_plus_1", "ast_seg_2k", "ast_seg_unet",
            "ast_seg_pretrained", "ast_seg_no_pixel_entropy", "ast_seg_frozen_background",
            "ast_seg_anisotropic", "ast_seg_baseline", "ast_seg_paper"} <= set(VARIANTS)


@pytest.mark.parametrize("path", [BASE, *VARIANTS.values()], ids=lambda p: p.stem)
def test_spec_validates_and_compiles(path):
    c = build(path)
    compile(c.source, str(path), "exec")
    assert "class " in c.source and "def schedules(self, step: int, phase_step" in c.source


def test_the_curriculum_is_the_papers():
    spec = load(VARIANTS["ast_seg_paper"])
    plan = plan_phases(spec, _nodes(spec))
    bg, frozen, joint = plan.phases
    assert [(p.name, p.steps) for p in plan.phases] == [("background", 2500), ("frozen_background", 30000),
                                                         ("joint", 95000)]
    assert bg.frozen == set(_nodes(spec)) - {"background"} and bg.loss == "background_fit"
    assert frozen.frozen == {"background"} and joint.frozen == frozenset()
    assert frozen.loss == joint.loss == "total"
    assert joint.fresh_optimizer                       # a new Adam for joint fine-tuning
    assert frozen.clock(2500) == (0, 125000) and joint.clock(32500) == (30000, 125000)


@pytest.mark.parametrize("phase_step,lr,w_pixel", [
    (0, 0.0, 0.0),
    (2500, 4e-5 * 0.25, 0.01 * 0.25 ** 2),     # half the 5k lr warm-up (quadratic); 1/4 of the 10k entropy one
    (5000, 4e-5, 0.01 * 0.25),
    (10000, 4e-5, 0.01),
    (112499, 4e-5, 0.01),
    (112500, 4e-6, 0.01),                     # x0.1 from 90 % of 125k
])
def test_foreground_schedules_give_the_papers_numbers(phase_step, lr, w_pixel):
    spec = load(VARIANTS["ast_seg_paper"])
    v = spec.schedule_values(2500 + phase_step, phase_step, 125000)
    assert v["fg_lr"] == pytest.approx(lr, rel=1e-9, abs=1e-15)
    assert v["w_pixel"] == pytest.approx(w_pixel, rel=1e-9, abs=1e-15)


def test_background_lr_drops_at_80_percent_of_its_phase():
    spec = load(VARIANTS["ast_seg_paper"])
    assert spec.schedule_values(1999, 1999, 2500)["bg_lr"] == pytest.approx(2e-3)
    assert spec.schedule_values(2000, 2000, 2500)["bg_lr"] == pytest.approx(2e-4)


def test_ablations_change_what_they_say():
    base = build(BASE)

    def node(c, name):
        return c.graph.nodes[name]

    assert node(base, "refine")["params"].get("layers", 6) == 6
    assert node(build(VARIANTS["ast_seg_no_transformer"]), "refine")["params"]["layers"] == 0
    assert load(VARIANTS["ast_seg_k_plus_1"]).dims["K"] == base.spec.dims["K"] + 1
    assert load(VARIANTS["ast_seg_2k"]).dims["K"] == 2 * base.spec.dims["K"]
    unet = build(VARIANTS["ast_seg_unet"])
    assert node(unet, "features")["opdef"].name == "unet_features"
    assert "variant" not in node(unet, "features")["params"]   # not inherited from segformer
    aniso = load(VARIANTS["ast_seg_anisotropic"])
    assert aniso.dims["S"] == 2 and aniso.data["model"]["nodes"]["latents"]["scaling"] == "anisotropic"
    assert load(VARIANTS["ast_seg_no_pixel_entropy"]).schedule_values(5000, 5000, 2000)["w_pixel"] == 0
    fb = load(VARIANTS["ast_seg_frozen_background"])
    assert [p.frozen >= {"background"} for p in plan_phases(fb, _nodes(fb)).phases] == [False, True]
    bt = load(VARIANTS["ast_seg_baseline"])
    (only,) = plan_phases(bt, _nodes(bt)).phases
    assert only.frozen == frozenset() and only.loss == "total"


def test_pretrained_weights_are_local_only(tmp_path):
    c = build(VARIANTS["ast_seg_pretrained"], overrides=[f"model.nodes.features.pretrained={tmp_path / 'none'}"])
    with pytest.raises(SpecError) as ei:
        c.instantiate(torch_compile=False)
    text = ei.value.format()
    assert "no directory" in text and "nothing is downloaded" in text


def test_declared_symmetries_pass():
    from ocdsl.invariance import check

    report = check(build(BASE), examples=2)
    assert report.passed, str(report)
    assert len(report.results) == 2


def test_short_run_goes_through_the_three_phases(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["run", str(BASE), "--steps", "7", "--out", str(out), "--no-progress",
               "--set", "eval.test_size=8", "--set", "eval.batch_size=8", "--set", "train.batch_size=2",
               "--set", "train.log_every=1"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["step"] == 7
    assert [(p["name"], p["steps"]) for p in summary["phases"]] == [
        ("background", 1), ("frozen_background", 2), ("joint", 4)]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r and "split" not in r]
    assert [r["phase"] for r in train_rows] == ["background", "frozen_background", "frozen_background",
                                                 "joint", "joint", "joint", "joint"]
    assert train_rows[0]["loss"] == train_rows[0]["background_fit"]
    assert train_rows[-1]["loss"] == train_rows[-1]["total"]
    (ev,) = [r for r in rows if r.get("split") == "test"]
    assert {"ari_fg", "miou_fg", "miou", "ari", "mse"} <= set(ev)
    assert 0.0 <= ev["ari_fg"] <= 1.0 and ev["mse"] > 0
    assert (out / "figures" / "step_000007_test.png").exists()
    assert "phases: background 1, frozen_background 2, joint 4" in capsys.readouterr().out
