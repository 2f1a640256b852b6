"""A run writes nothing until every check passed, never touches a run it refuses, and a
checkpoint's contents are checked field by field on load (located errors, no traceback)."""

from __future__ import annotations

import pytest
import torch

from ocdsl.errors import UserError
from ocdsl.train import train
from ocdsl.train import checkpoint as ckpt


def snapshot(folder):
    """Every file under ``folder`` with its bytes and modification time."""
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def done_run(fakes, spec_factory, model_cls, tmp_path):
    out = tmp_path / "r"
    train(spec_factory(train={"steps": 2}), model_cls(), out_dir=out, progress=False,
          model_source="# the generated module\n")
    assert (out / "model.py").read_text() == "# the generated module\n"
    return out


def test_refused_resume_and_refused_fresh_run_leave_every_file_alone(done_run, spec_factory, model_cls):
    before = snapshot(done_run)
    with pytest.raises(UserError, match="does not match the spec"):  # spec changed since the checkpoint
        train(spec_factory(train={"steps": 4}, source_hash="changed"), model_cls(), out_dir=done_run,
              resume=done_run, progress=False, model_source="# another module\n")
    with pytest.raises(UserError, match="already holds a run"):
        train(spec_factory(train={"steps": 4}), model_cls(), out_dir=done_run, progress=False,
              model_source="# another module\n")
    with pytest.raises(UserError, match="past the 1 steps"):
        train(spec_factory(train={"steps": 1}), model_cls(), out_dir=done_run, resume=done_run, progress=False)
    assert snapshot(done_run) == before


def test_out_naming_a_file_is_a_user_error(fakes, spec_factory, model_cls, tmp_path):
    f = tmp_path / "taken"
    f.write_text("mine")
    with pytest.raises(UserError, match="is a file, not a run directory"):
        train(spec_factory(train={"steps": 1}), model_cls(), out_dir=f, progress=False)
    assert f.read_text() == "mine"


def test_a_batch_that_does_not_split_over_the_processes_is_refused_before_writing(fakes, spec_factory, model_cls,
                                                                                  tmp_path):
    from ocdsl.errors import SpecError
    from ocdsl.train.distributed import Dist

    with pytest.raises(SpecError, match="batch_size 4 does not split over 3 processes"):
        train(spec_factory(train={"steps": 1}), model_cls(), out_dir=tmp_path / "r", progress=False,
              dist=Dist(rank=0, world=3))
    assert not (tmp_path / "r").exists()


def _rng_bad_keys(rng):
    rng["numpy"]["keys"] = rng["numpy"]["keys"][:10]


def _optimizer_wrong_shape(state):
    for s in state["optimizer"]["state"].values():
        s["exp_avg"] = torch.zeros(7)


BAD = {
    "string step": (lambda s: s.update(step="2"), "'step' should be an integer >= 0, got str '2'"),
    "bool step": (lambda s: s.update(step=True), "'step' should be an integer >= 0"),
    "negative images": (lambda s: s.update(images_seen=-1), "'images_seen' should be an integer >= 0"),
    "malformed rng": (lambda s: _rng_bad_keys(s["rng"]), "'rng' should be"),
    "rng not a dict": (lambda s: s.update(rng=[1, 2]), "'rng' should be"),
    "model value": (lambda s: s["model"].update({"gain": "x"}), "'model' should be a dict of parameter name"),
    "history": (lambda s: s.update(history="rows"), "'history' should be a list"),
    "optimizer form": (lambda s: s.update(optimizer={"state": {}}), "'optimizer' should be an optimizer"),
    "extra key": (lambda s: s.update(surprise=1), "unknown checkpoint field 'surprise'"),
    "missing optimizer": (lambda s: s.pop("optimizer"), "checkpoint field 'optimizer' is missing"),
    "missing rng": (lambda s: s.pop("rng"), "checkpoint field 'rng' is missing"),
    "step past steps": (lambda s: s.update(steps=1), "checkpoint step 2 is past its run's 1 steps"),
    "model shape": (lambda s: s["model"].update({"gain": torch.zeros(5)}), "does not fit the model"),
    "optimizer shape": (_optimizer_wrong_shape, "optimizer state 'exp_avg' of parameter"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_checkpoint_is_a_located_error_and_nothing_is_written(case, done_run, spec_factory, model_cls):
    path = done_run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    damage, expected = BAD[case]
    damage(state)
    torch.save(state, path)
    before = snapshot(done_run)
    with pytest.raises(UserError) as e:
        train(spec_factory(train={"steps": 4}), model_cls(), out_dir=done_run, resume=done_run, progress=False,
              model_source="# another module\n")
    text = e.value.format()
    assert expected in text and text.startswith(f"{path}: error")
    assert "Traceback" not in text
    assert snapshot(done_run) == before


def test_evaluating_a_malformed_checkpoint_names_the_field(done_run, spec_factory, model_cls):
    from ocdsl.train import evaluate_checkpoint

    path = done_run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    state["step"] = "two"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"\[step\] checkpoint field 'step' should be an integer"):
        evaluate_checkpoint(spec_factory(train={"steps": 2}), model_cls(), done_run, quiet=True)


def test_check_state_reports_every_bad_field_at_once(tmp_path):
    state = {"format": 1, "spec_name": 3, "spec_hash": "h", "step": -1, "model": {}, "elapsed_s": float("nan")}
    with pytest.raises(UserError) as e:
        ckpt.check_state(state, tmp_path / "c.pt")
    text = e.value.format()
    assert "'spec_name' should be a string" in text and "'step' should be an integer >= 0" in text
    assert "'elapsed_s' should be a number >= 0" in text


def test_cli_resume_and_eval_of_a_damaged_checkpoint_exit_2_and_touch_nothing(tmp_path, capsys):
    from ocdsl.cli import main
    from tests.graph.test_graph import TINY

    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY + '\n[eval]\ntest_size = 2\nmetrics = ["mse"]\nmasks = "composite.masks"\n'
                    'reconstruction = "composite.image"\n')
    size = ["--set", "dims.H=35", "--set", "dims.W=35"]
    run = tmp_path / "run"
    assert main(["run", str(spec), *size, "--steps", "1", "--no-progress", "--no-compile", "--out", str(run)]) == 0
    assert (run / "model.py").exists()
    before = snapshot(run)
    capsys.readouterr()
    assert main(["run", str(spec), *size, "--steps", "2", "--no-progress", "--no-compile", "--resume", str(run),
                 "--set", "train.seed=1"]) == 2  # a changed spec: refused before anything is written
    assert "does not match the spec" in capsys.readouterr().err
    assert snapshot(run) == before  # model.py included
    path = run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    state["rng"]["python"] = [3, [1, 2], None]  # well-formed pickle, wrong contents
    torch.save(state, path)
    before = snapshot(run)
    assert main(["run", str(spec), *size, "--steps", "2", "--no-progress", "--no-compile", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: error: [rng] checkpoint field 'rng' should be" in err and "Traceback" not in err
    assert main(["eval", str(spec), *size, str(run)]) == 2
    assert "[rng] checkpoint field 'rng'" in capsys.readouterr().err
    assert snapshot(run) == before
