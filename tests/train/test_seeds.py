"""Several seeds (ocdsl/train/seeds.py) on the tiny fake model, and the mask strip the
evaluator keeps (figures/<dataset>_masks_over_time.*)."""

from __future__ import annotations

import json
import statistics
import sys

import numpy as np
import pytest

from ocdsl.errors import UserError
from ocdsl.train import train
from ocdsl.train.seeds import parse_seeds, run_seeds


def runner(spec_factory, model_cls, actions=None, **spec_kw):
    """run_one for run_seeds: train the tiny model with train.seed = seed; ``actions``:
    {seed: on_train_forward} (e.g. {1: {2: "nan"}})."""
    def one(seed, out_dir, resume):
        spec = spec_factory(**{**spec_kw, "train": {**spec_kw.get("train", {}), "seed": seed}})
        model = model_cls((actions or {}).get(seed))
        return train(spec, model, out_dir=out_dir, resume=out_dir if resume else None, progress=False)
    return one


def summary_of(parent):
    return json.loads((parent / "seeds_summary.json").read_text())


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("3-5, 9") == [3, 4, 5, 9]
    for bad in ("", "a", "1,1", "-1", "5-3", "0,,1"):
        with pytest.raises(UserError, match="--seeds"):
            parse_seeds(bad)


@pytest.mark.parametrize("success, failed", [("fake_mse >= 0", 0), ("fake_ari > 2", 2)])
def test_two_seeds_mean_std_and_threshold(fakes, spec_factory, model_cls, tmp_path, capsys, success, failed):
    spec = spec_factory(eval={"success": success, "every": 3})
    parent = tmp_path / "seeds"
    rc = run_seeds(spec, [0, 1], parent, runner(spec_factory, model_cls, eval={"success": success, "every": 3}))
    assert rc == 0
    assert (parent / "seed0" / "checkpoint.pt").exists() and (parent / "seed1" / "checkpoint.pt").exists()
    s = summary_of(parent)
    assert s["seeds"] == [0, 1] and s["complete"] and s["success"] == success
    assert s["failed"] == failed and len(s["failed_seeds"]) == failed
    for metric in ("fake_ari", "fake_mse"):
        vals = [json.loads((parent / f"seed{n}" / "summary.json").read_text())["eval"]["test"]["metrics"][metric]
                for n in (0, 1)]
        agg = s["aggregate"]["test"][metric]
        assert agg["per_seed"] == {"0": vals[0], "1": vals[1]} and agg["n"] == 2
        assert agg["mean"] == pytest.approx(statistics.fmean(vals))
        assert agg["std"] == pytest.approx(statistics.stdev(vals))
    assert s["aggregate"]["test"]["fake_mse"]["per_seed"]["0"] != s["aggregate"]["test"]["fake_mse"]["per_seed"]["1"]
    out = capsys.readouterr().out
    assert f"failed: {failed} of 2 seeds" in out and "mean ± std" in out and "seed 1" in out
    if failed:
        assert "fake_ari" in out and "(needs > 2)" in out
    # the curves of both seeds: the figure reads each seed's metrics.jsonl
    assert {p.name for p in fakes.curves} >= {"seeds_curves.png"}


def test_a_non_finite_seed_fails_the_others_run_and_the_study_exits_0(fakes, spec_factory, model_cls, tmp_path,
                                                                      capsys):
    spec = spec_factory(eval={"success": "fake_mse >= 0"})
    parent = tmp_path / "seeds"
    rc = run_seeds(spec, [0, 1, 2], parent,
                   runner(spec_factory, model_cls, {1: {2: "nan"}}, eval={"success": "fake_mse >= 0"}))
    assert rc == 0
    s = summary_of(parent)
    assert [r["status"] for r in s["runs"]] == ["completed", "nonfinite", "completed"]
    assert s["failed_seeds"] == [1]
    assert s["aggregate"]["test"]["fake_mse"]["n"] == 2  # mean/std over the finished seeds
    assert "non-finite loss" in capsys.readouterr().out


def test_crash_is_recorded_and_exits_1(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory()
    good = runner(spec_factory, model_cls)

    def one(seed, out_dir, resume):
        if seed == 1:
            raise RuntimeError("boom")
        return good(seed, out_dir, resume)
    assert run_seeds(spec, [0, 1], tmp_path / "p", one) == 1
    s = summary_of(tmp_path / "p")
    assert [r["status"] for r in s["runs"]] == ["completed", "error"] and s["failed_seeds"] == [1]
    assert "boom" in s["runs"][1]["message"]


def test_ctrl_c_writes_the_summary_then_resume_finishes_every_seed(fakes, spec_factory, model_cls, tmp_path, capsys):
    spec = spec_factory()
    parent = tmp_path / "seeds"
    with pytest.raises(KeyboardInterrupt):
        run_seeds(spec, [0, 1, 2], parent, runner(spec_factory, model_cls, {1: {3: "interrupt"}}))
    s = summary_of(parent)
    assert not s["complete"] and s["not_run"] == [2]
    assert [r["status"] for r in s["runs"]] == ["completed", "interrupted"]
    assert f"--resume {parent}" in capsys.readouterr().out
    # a fresh study over it is refused; --resume continues seed 1, starts seed 2, leaves seed 0
    with pytest.raises(UserError, match="already holds a run"):
        run_seeds(spec, [0, 1, 2], parent, runner(spec_factory, model_cls))
    ran = []
    base = runner(spec_factory, model_cls)

    def one(seed, out_dir, resume):
        ran.append((seed, resume))
        return base(seed, out_dir, resume)
    assert run_seeds(spec, [0, 1, 2], parent, one, resume=True) == 0
    assert ran == [(1, True), (2, False)]
    s = summary_of(parent)
    assert s["complete"] and [r["status"] for r in s["runs"]] == ["completed"] * 3 and s["failed"] == 0


def test_resume_of_a_single_run_or_a_missing_parent_is_refused(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory()
    train(spec, model_cls(), out_dir=tmp_path / "single", progress=False)
    with pytest.raises(UserError, match="single run"):
        run_seeds(spec, [0], tmp_path / "single", runner(spec_factory, model_cls), resume=True)
    with pytest.raises(UserError, match="no directory"):
        run_seeds(spec, [0], tmp_path / "nowhere", runner(spec_factory, model_cls), resume=True)


_CHILD = r"""
import json, os, sys
seed, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)
status = {0: "completed", 1: "nonfinite", 2: "error"}[seed]
json.dump({"status": status, "step": 3, "steps": 3, "message": os.environ["CUDA_VISIBLE_DEVICES"],
           "eval": {"test": {"step": 3, "metrics": {"fake_ari": 0.5 + seed}}}},
          open(os.path.join(out, "summary.json"), "w"))
print("child", seed)
sys.exit({0: 0, 1: 2, 2: 1}[seed])
"""


def test_parallel_one_child_per_device(fakes, spec_factory, tmp_path):
    spec = spec_factory(eval={"success": "fake_ari >= 0"})
    parent = tmp_path / "par"

    def command(seed, out_dir, resume):
        return [sys.executable, "-c", _CHILD, str(seed), str(out_dir)]

    def never(*a):
        raise AssertionError("parallel seeds run as child processes")
    rc = run_seeds(spec, [0, 1, 2], parent, never, devices=["3", "5"], command=command, say=lambda m: None)
    assert rc == 1  # seed 2's child crashed
    s = summary_of(parent)
    runs = {r["seed"]: r for r in s["runs"]}
    assert [runs[n]["status"] for n in (0, 1, 2)] == ["completed", "nonfinite", "error"]
    assert runs[0]["message"] in ("3", "5") and s["failed_seeds"] == [1, 2]
    assert "child 0" in (parent / "seed0" / "run.log").read_text()
    assert s["aggregate"]["test"]["fake_ari"]["n"] == 1


def test_mask_strip_gains_a_row_per_evaluation(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(eval={"every": 2})
    out = tmp_path / "run"
    train(spec, model_cls(), out_dir=out, progress=False)
    strips = [(p.name, steps) for p, steps in fakes.strips]
    assert strips == [("test_masks_over_time.png", [2]), ("test_masks_over_time.png", [2, 4]),
                      ("test_masks_over_time.png", [2, 4, 6])]
    with np.load(out / "figures" / "test_masks_over_time.npz") as z:
        assert list(z["steps"]) == [2, 4, 6]
        assert z["segs"].shape == (3, 4, 8, 8) and z["images"].shape == (4, 3, 8, 8)
        assert z["labels"].shape == (4, 8, 8)
        assert z["images"].dtype == np.uint8 and int(z["segs"].max()) < 2
    # a resume goes on from the stored rows; an evaluation at a stored step replaces it
    train(spec, model_cls(), out_dir=out, steps=8, resume=out, progress=False)
    assert fakes.strips[-1][1] == [2, 4, 6, 8]
