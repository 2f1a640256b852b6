"""Checkpoints, optimizer construction, the data stream, the device check."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ocdsl.errors import SpecError, UserError
from ocdsl.train import checkpoint as ckpt
from ocdsl.train import resolve_device, train
from ocdsl.train.optim import build_optimizer
from ocdsl.train.model_io import from_range, to_range
from ocdsl.train.stream import StreamSampler


def _state(step=1):
    return {"spec_name": "tiny", "spec_hash": "hash-tiny", "step": step, "model": {"w": torch.ones(2)},
            "rng": ckpt.capture_rng(), "history": [{"step": step, "loss": 0.5}]}


def test_save_load_roundtrip_weights_only(tmp_path):
    p = ckpt.save_checkpoint(tmp_path / "checkpoint.pt", _state(3))
    state, path = ckpt.load_checkpoint(tmp_path)  # a directory works too
    assert path == p and state["step"] == 3 and state["history"][0]["loss"] == 0.5


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(target, _state(1))
    before = target.read_bytes()

    def failing_save(obj, f, *a, **k):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(target, _state(2))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temp file left

    def interrupted_save(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(target, _state(2))
    assert target.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_corrupt_checkpoint_is_a_user_error_naming_the_file(tmp_path, content):
    target = tmp_path / "checkpoint.pt"
    if content is None:  # truncated real checkpoint
        ckpt.save_checkpoint(target, _state(1))
        content = target.read_bytes()[: 200]
    target.write_bytes(content)
    with pytest.raises(UserError) as e:
        ckpt.load_checkpoint(tmp_path)
    assert str(target) in e.value.format() and "cannot read checkpoint" in e.value.format()


def test_missing_and_foreign_checkpoints(tmp_path):
    with pytest.raises(UserError, match="no checkpoint found"):
        ckpt.load_checkpoint(tmp_path)
    torch.save({"something": 1}, tmp_path / "checkpoint.pt")
    with pytest.raises(UserError, match="not an ocdsl checkpoint"):
        ckpt.load_checkpoint(tmp_path)


def test_spec_mismatch_errors_unless_allowed(tmp_path, spec_factory, capsys):
    ckpt.save_checkpoint(tmp_path / "checkpoint.pt", _state(1))
    other = spec_factory(source_hash="another-hash")
    with pytest.raises(UserError, match="does not match the spec") as e:
        ckpt.load_checkpoint(tmp_path, spec=other)
    assert "--allow-spec-change" in e.value.format()
    state, _ = ckpt.load_checkpoint(tmp_path, spec=other, allow_spec_mismatch=True)
    assert state["step"] == 1 and "warning" in capsys.readouterr().err
    ckpt.load_checkpoint(tmp_path, spec=spec_factory())  # same hash: fine


def test_resume_with_mismatched_spec_is_refused(fakes, spec_factory, model_cls, tmp_path):
    out = tmp_path / "r"
    train(spec_factory(train={"steps": 1}), model_cls(), out_dir=out, progress=False)
    with pytest.raises(UserError, match="does not match the spec"):
        train(spec_factory(train={"steps": 2}, source_hash="changed"), model_cls(), out_dir=out,
              resume=out, progress=False)


def test_rng_capture_restore_roundtrip():
    state = ckpt.capture_rng()
    a = (torch.rand(3), np.random.rand(3), random.random())
    ckpt.restore_rng(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_state_dict_prefix_from_compiled_module_is_dropped(tmp_path):
    m = torch.nn.Linear(2, 2)
    sd = {f"_orig_mod.{k}": v + 1 for k, v in m.state_dict().items()}
    ckpt.load_model_state(m, sd, tmp_path / "x.pt")
    assert torch.equal(m.bias, sd["_orig_mod.bias"])
    with pytest.raises(UserError, match="does not fit the model"):
        ckpt.load_model_state(m, {"weight": torch.zeros(3, 3)}, tmp_path / "x.pt")


def test_adamw_excludes_biases_and_1d_params_from_weight_decay(spec_factory, model_cls):
    spec = spec_factory(train={"optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.1,
                                             "betas": [0.8, 0.9], "eps": 1e-6}})
    m = model_cls()
    opt, lr = build_optimizer(spec, m, ["lr"])
    assert isinstance(opt, torch.optim.AdamW) and lr.value == 1e-3 and lr.schedule is None
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(m.enc.weight)}
    assert {id(p) for p in no_decay["params"]} == {id(m.enc.bias), id(m.gain)}
    assert decay["betas"] == (0.8, 0.9) and decay["eps"] == 1e-6


def test_optimizer_errors_of_the_run_are_spec_errors(spec_factory, model_cls):
    """What only the run can see: an lr naming a schedule the model does not compute."""
    with pytest.raises(SpecError, match="lr names no schedule: 'lrr'") as e:
        build_optimizer(spec_factory(train={"optimizer": {"name": "adam", "lr": "lrr"}}), model_cls(), ["lr"])
    assert "did you mean 'lr'" in e.value.format()


def test_bad_optimizer_and_train_values_are_validation_errors_reported_together():
    """The run no longer judges [train]: validation reports every bad value, at its line."""
    from ocdsl.spec import loads

    text = (Path(__file__).parents[1] / "bad_specs" / "out_of_range.toml").read_text()
    text = text.replace("steps = 0", 'steps = 10\nlog_every = "often"').replace("batch_size = 2", "batch_size = 0")
    text = text.replace('optimizer = { name = "adam", lr = "lr" }', 'optimizer = { name = "adma", lr = "lr", beta = [0.9] }')
    with pytest.raises(SpecError) as e:
        loads(text, file="bad.toml")
    msgs = sorted(d.message for d in e.value.errors)
    assert msgs == ["'adma' is not one of 'adam', 'adamw', 'sgd'", "0 is out of range: must be >= 1",
                    "expected an integer, got a string ('often')", "unknown key 'beta'"]
    assert all(d.line > 0 and d.file == "bad.toml" for d in e.value.errors)


def test_stream_sampler_resumes_at_any_position():
    full = StreamSampler(10, seed=3, start=0)
    it = iter(full)
    seq = [next(it) for _ in range(35)]
    assert sorted(seq[:10]) == list(range(10)) and seq[:10] != seq[10:20]  # epochs reshuffled
    it = iter(StreamSampler(10, seed=3, start=17))
    assert [next(it) for _ in range(18)] == seq[17:]


def test_range_mapping_roundtrip():
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(from_range(to_range(x, (-1.0, 1.0)), (-1.0, 1.0)), x)
    assert to_range(x, (0.0, 1.0)) is x


def test_gpu_without_cuda_is_a_user_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="--gpu: no CUDA device is available") as e:
        resolve_device(True)
    assert "drop --gpu" in e.value.format()
    assert resolve_device(False) == "cpu"
