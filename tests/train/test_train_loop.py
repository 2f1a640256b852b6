"""The training loop on a tiny fake model: schedules, logging, evaluation, resume, stops."""

from __future__ import annotations

import json
import math
import signal
import threading

import pytest
import torch

from ocdsl.errors import SpecError, UserError
from ocdsl.train import NonFiniteLoss, TrainingInterrupted, train
from ocdsl.train.checkpoint import load_checkpoint


def rows(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def step_rows(out_dir):
    return [r for r in rows(out_dir) if "loss" in r and "split" not in r and "event" not in r]


def test_lr_schedule_applied_every_step_and_rows(fakes, spec_factory, model_cls, tmp_path, capsys):
    spec = spec_factory()
    model = model_cls()
    out = tmp_path / "run"
    summary = train(spec, model, out_dir=out, progress=False)
    assert summary["status"] == "completed" and summary["step"] == 6
    logs = step_rows(out)
    assert [r["step"] for r in logs] == [1, 2, 3, 4, 5, 6]
    for r in logs:  # the update to step s used schedules(s - 1)
        assert r["lr"] == pytest.approx(model.schedules(r["step"] - 1)["lr"])
        assert {"loss", "reconstruction", "reg", "lr", "images_per_s", "elapsed_s"} <= set(r)
        assert r["loss"] == pytest.approx(r["reconstruction"] + 0.1 * r["reg"])
    # final evaluation: one row per dataset, figures, curves, files
    ev = [r for r in rows(out) if "split" in r]
    assert [(r["split"], r["step"], r["count"]) for r in ev] == [("test", 6, 6)]
    assert set(ev[0]) == {"step", "split", "fake_ari", "fake_mse", "count"}
    assert (out / "figures" / "step_000006_test.png").exists()
    assert {p.name for p in fakes.curves} == {"loss.png", "metrics.png", "schedules.png"}
    for r in logs:  # every schedule's value at the row's last update, next to lr
        assert r["sched/lr"] == r["lr"] and r["sched/w"] == 0.1
    for name in ("checkpoint.pt", "summary.json", "spec.resolved.json"):
        assert (out / name).exists()
    assert json.loads((out / "spec.resolved.json").read_text()) == spec.data
    s = json.loads((out / "summary.json").read_text())
    assert s["eval"]["test"]["metrics"]["fake_ari"] == pytest.approx(ev[0]["fake_ari"])
    text = capsys.readouterr().out
    assert "completed at step 6/6" in text and "fake_ari" in text and str(out) in text


def test_steps_override_log_every_and_eval_every(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(train={"log_every": 2, "steps": 100},
                        eval={"every": 2, "datasets": [{"name": "extra", "dataset": "tiny", "size": 3}]})
    out = tmp_path / "run"
    train(spec, model_cls(), out_dir=out, steps=5, progress=False)
    assert [r["step"] for r in step_rows(out)] == [1, 2, 4, 5]
    ev = [(r["step"], r["split"], r["count"]) for r in rows(out) if "split" in r]
    assert ev == [(2, "test", 6), (2, "extra", 3), (4, "test", 6), (4, "extra", 3), (5, "test", 6), (5, "extra", 3)]


def test_optional_eval_dataset_missing_is_skipped_required_is_an_error(fakes, spec_factory, model_cls, tmp_path, capsys):
    opt = {"name": "real", "dataset": "tiny", "path": "nowhere/x.npz", "optional": True}
    spec = spec_factory(train={"steps": 1}, eval={"datasets": [opt]})
    train(spec, model_cls(), out_dir=tmp_path / "a", progress=False)
    assert "skipping optional evaluation dataset 'real'" in capsys.readouterr().err
    spec = spec_factory(train={"steps": 1}, eval={"datasets": [dict(opt, optional=False)]})
    with pytest.raises(UserError, match="evaluation dataset 'real'.*does not exist"):
        train(spec, model_cls(), out_dir=tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()  # failed before writing anything


def test_bad_eval_output_name_fails_on_first_step(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(eval={"masks": "composite.mask"})
    with pytest.raises(SpecError, match="'composite.mask' is not an output") as e:
        train(spec, model_cls(), out_dir=tmp_path / "r", progress=False)
    assert "composite.masks" in e.value.format()  # did you mean
    # the failed attempt wrote no checkpoint: the same directory can be used again, and the
    # attempt's rows are set aside, not mixed in
    train(spec_factory(train={"steps": 1}), model_cls(), out_dir=tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "metrics.old-1.jsonl").exists()
    assert all("event" not in r for r in rows(tmp_path / "r"))


def test_resume_is_bit_identical(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(train={"steps": 8, "checkpoint_every": 3}, eval={"every": 2})
    a = tmp_path / "a"
    full = model_cls()
    train(spec, full, out_dir=a, progress=False)
    b = tmp_path / "b"
    train(spec, model_cls(), out_dir=b, steps=4, progress=False)
    half = model_cls()
    torch.manual_seed(1234)  # whatever the caller's RNG did meanwhile must not matter
    summary = train(spec, half, out_dir=b, resume=b, progress=False)
    assert summary["step"] == 8 and summary["resumed_from"].endswith("checkpoint.pt")
    la = [(r["step"], r["loss"], r["reg"], r["lr"]) for r in step_rows(a)]
    lb = [(r["step"], r["loss"], r["reg"], r["lr"]) for r in step_rows(b)]
    assert la == lb  # exact floats
    ea = [r for r in rows(a) if "split" in r]
    eb = [r for r in rows(b) if "split" in r]  # b's step-4 evaluation was its final one
    assert [r["step"] for r in ea] == [2, 4, 6, 8]
    assert [(r["step"], r["fake_ari"], r["fake_mse"]) for r in ea] == \
           [(r["step"], r["fake_ari"], r["fake_mse"]) for r in eb]
    for (k, va), vb in zip(full.state_dict().items(), half.state_dict().values()):
        assert torch.equal(va, vb), k
    assert any(r.get("event") == "resume" and r["step"] == 4 for r in rows(b))


def test_resume_into_a_new_directory_copies_history(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(train={"steps": 4})
    a = tmp_path / "a"
    train(spec, model_cls(), out_dir=a, steps=2, progress=False)
    train(spec, model_cls(), out_dir=tmp_path / "c", resume=a / "checkpoint.pt", progress=False)
    assert [r["step"] for r in step_rows(tmp_path / "c")] == [1, 2, 3, 4]


def test_fresh_run_refuses_a_directory_holding_a_run(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(train={"steps": 1})
    train(spec, model_cls(), out_dir=tmp_path / "r", progress=False)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    with pytest.raises(UserError, match="already holds a run") as e:
        train(spec, model_cls(), out_dir=tmp_path / "r", progress=False)
    assert "--resume" in e.value.format()
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before
    train(spec, model_cls(), out_dir=tmp_path / "r", progress=False, overwrite=True)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(train={"steps": 10, "checkpoint_every": 2})
    out = tmp_path / "r"
    with pytest.raises(NonFiniteLoss) as e:
        train(spec, model_cls({5: "nan"}), out_dir=out, progress=False)
    msg = e.value.format()
    assert "step 5" in msg and "not finite" in msg and "step 4" in msg and "checkpoint.pt" in msg
    state, _ = load_checkpoint(out)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert e.value.summary["status"] == "nonfinite"
    assert json.loads((out / "summary.json").read_text())["checkpoint_step"] == 4
    assert [r["step"] for r in step_rows(out)] == [1, 2, 3, 4]  # nothing logged from step 5
    assert rows(out)[-1]["event"] == "nonfinite"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files


def test_nonfinite_before_any_checkpoint(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(train={"steps": 10, "checkpoint_every": 5})
    with pytest.raises(NonFiniteLoss, match="no checkpoint had been written"):
        train(spec, model_cls({2: "nan"}), out_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_keyboard_interrupt_saves_last_completed_step_and_resumes_exactly(fakes, spec_factory, model_cls, tmp_path):
    """KeyboardInterrupt raised inside step 4's forward: step 4 never completed, so the
    checkpoint holds step 3 (with step 3's RNG and data position)."""
    spec = spec_factory(train={"steps": 6}, eval={"every": 2})
    out = tmp_path / "r"
    with pytest.raises(TrainingInterrupted) as e:
        train(spec, model_cls({4: "interrupt"}), out_dir=out, progress=False)
    assert isinstance(e.value, KeyboardInterrupt) and e.value.exit_code == 130
    state, _ = load_checkpoint(out)
    assert state["step"] == 3 and state["data_position"] == 3 * 4
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["checkpoint_step"] == 3
    assert rows(out)[-1]["event"] == "interrupted"
    train(spec, model_cls(), out_dir=out, resume=out, progress=False)
    ref = tmp_path / "ref"
    train(spec, model_cls(), out_dir=ref, progress=False)
    assert [(r["step"], r["loss"]) for r in step_rows(out)] == [(r["step"], r["loss"]) for r in step_rows(ref)]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs signals")
def test_ctrl_c_signal_finishes_the_current_step(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(train={"steps": 6})
    out = tmp_path / "r"
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted):
        train(spec, model_cls({3: "sigint"}), out_dir=out, progress=False)
    assert signal.getsignal(signal.SIGINT) is previous  # handler restored
    state, _ = load_checkpoint(out)
    assert state["step"] == 3  # the step in flight completed, then the run stopped
    assert [r["step"] for r in step_rows(out)] == [1, 2, 3]


def test_time_limit_stops_early_with_checkpoint_and_final_eval(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(train={"steps": 1000, "time_limit": 0.3})
    out = tmp_path / "r"
    summary = train(spec, model_cls({i: "sleep:0.1" for i in range(1, 1000)}), out_dir=out, progress=False)
    assert summary["status"] == "time_limit" and 1 <= summary["step"] < 10
    state, _ = load_checkpoint(out)
    assert state["step"] == summary["step"]
    assert [r["step"] for r in rows(out) if "split" in r] == [summary["step"]]
    assert step_rows(out)[-1]["step"] == summary["step"]  # the steps since the last row are logged
    assert any(r.get("event") == "time_limit" for r in rows(out))


def test_grad_clip_and_sgd_constant_lr(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(train={"steps": 2, "grad_clip": 1e-3,
                               "optimizer": {"name": "sgd", "lr": 0.5, "momentum": 0.9}})
    out = tmp_path / "r"
    train(spec, model_cls(), out_dir=out, progress=False)
    logs = step_rows(out)
    assert [r["lr"] for r in logs] == [0.5, 0.5]
    assert all(r["grad_norm"] > 0 for r in logs)


def test_interrupt_flag_restores_no_handler_leak_on_error(fakes, spec_factory, model_cls, tmp_path):
    """An internal error re-raises after saving the last completed step."""
    class Boom(model_cls):
        def losses(self, inputs, outputs, sched, step):
            if step == 2:
                raise RuntimeError("boom")
            return super().losses(inputs, outputs, sched, step)

    spec = spec_factory(train={"steps": 6})
    out = tmp_path / "r"
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError, match="boom"):
        train(spec, Boom(), out_dir=out, progress=False)
    assert signal.getsignal(signal.SIGINT) is previous
    assert load_checkpoint(out)[0]["step"] == 2
    assert json.loads((out / "summary.json").read_text())["status"] == "error"


def test_time_limit_zero_means_no_limit(fakes, spec_factory, model_cls, tmp_path):
    spec = spec_factory(train={"steps": 3, "time_limit": 0})
    summary = train(spec, model_cls(), out_dir=tmp_path / "r", progress=False)
    assert summary["status"] == "completed" and summary["step"] == 3


def test_bf16_precision_runs_forward_under_autocast_and_losses_in_fp32(fakes, spec_factory, model_cls, tmp_path):
    seen = []
    model = model_cls()
    model.enc.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    orig = model.losses

    def losses(inputs, outputs, sched, step):
        seen.append(("loss-input", outputs[next(iter(outputs))].dtype))
        return orig(inputs, outputs, sched, step)

    model.losses = losses
    spec = spec_factory(train={"steps": 2, "precision": "bf16"})
    summary = train(spec, model, out_dir=tmp_path / "r", progress=False)
    assert summary["status"] == "completed"
    train_convs = seen[: seen.index(next(s for s in seen if isinstance(s, tuple)))]
    assert train_convs and all(d == torch.bfloat16 for d in train_convs)  # the conv ran in bf16
    assert all(s[1] == torch.float32 for s in seen if isinstance(s, tuple))  # losses saw fp32
    assert all(math.isfinite(r["loss"]) for r in step_rows(tmp_path / "r"))


def test_auto_precision_is_bf16_only_where_the_device_computes_it_natively(fakes, spec_factory, model_cls,
                                                                          tmp_path, monkeypatch):
    from ocdsl.train import model_io

    assert model_io.resolve_precision("fp32", "cpu") == "fp32"
    assert model_io.resolve_precision("bf16", "cpu") == "bf16"
    for native, expected in ((True, "bf16"), (False, "fp32")):
        model_io.resolve_precision.cache_clear()
        with monkeypatch.context() as m:
            m.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda native=native: native)
            assert model_io.resolve_precision("auto", "cpu") == expected
    model_io.resolve_precision.cache_clear()
    spec = spec_factory(train={"steps": 1, "precision": "auto"})
    summary = train(spec, model_cls(), out_dir=tmp_path / "r", progress=False)
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert summary["status"] == "completed" and summary["precision"] == ("bf16" if native else "fp32")


def test_summary_says_whether_the_model_is_compiled(fakes, spec_factory, model_cls, tmp_path, monkeypatch):
    """A module compiled in place (``nn.Module.compile``, what ``ocdsl run`` does) is
    reported as compiled although train() was not asked to compile; a plain one is not.
    torch.compile is replaced by a pass-through so that no real compilation runs."""
    monkeypatch.setattr(torch, "compile", lambda fn, *a, **k: fn)
    compiled = model_cls()
    compiled.compile()                       # the real in-place path, with the stand-in
    assert compiled._compiled_call_impl is not None
    spec = spec_factory(train={"steps": 1})
    for name, model, want in (("plain", model_cls(), False), ("compiled", compiled, True)):
        summary = train(spec, model, out_dir=tmp_path / name, torch_compile=False, progress=False)
        assert summary["torch_compile"] is want, name
        assert json.loads((tmp_path / name / "summary.json").read_text())["torch_compile"] is want
