"""bench/levers.py: every lever is a valid ``--set`` change of the main job, and the
session-7 schedule lever computes the schedule its row describes."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from ocdsl.spec import load

REPO = Path(__file__).resolve().parents[1]


def _levers():
    spec = importlib.util.spec_from_file_location("bench_levers", REPO / "bench" / "levers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


LEVERS = _levers()


@pytest.mark.parametrize("name", sorted(LEVERS.LEVERS))
def test_every_lever_validates_and_has_a_what_and_a_source(name):
    what, source, overrides = LEVERS.LEVERS[name]
    assert what and source
    load(LEVERS.SPEC, overrides)  # raises SpecError on a bad override


def test_lr_hold_warms_up_over_a_tenth_and_reaches_zero_at_seven_thirds_of_the_run():
    spec = load(LEVERS.SPEC, LEVERS.LEVERS["lr_hold"][2])
    lr = {s: spec.schedule_values(s, total_steps=3000)["lr"] for s in (0, 150, 300, 3000)}
    assert lr[0] == 0 and lr[150] == pytest.approx(3e-4) and lr[300] == pytest.approx(6e-4)
    # r3's cosine from the warm-up's end to 7000 (bench/recipe/RESULTS.md), at step 3000
    assert lr[3000] == pytest.approx(6e-4 * 0.5 * (1 + math.cos(math.pi * 2700 / 6700)))
    assert spec.schedule_values(7000, total_steps=3000)["lr"] == pytest.approx(0, abs=1e-12)


def test_the_harness_command_carries_the_eval_interval_and_the_lever():
    cmd = LEVERS._command("decoder_k3", 1, 1000, REPO / "runs" / "x", LEVERS.SPEC, eval_every=600)
    assert "eval.every=600" in cmd and "model.nodes.decoder.kernel=3" in cmd and "train.seed=1" in cmd
    assert "eval.every=500" in LEVERS._command("learned", 0, 1000, REPO / "runs" / "x", LEVERS.SPEC)
