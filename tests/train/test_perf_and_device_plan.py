"""The measuring tools of `ocdsl bench` (ocdsl/train/perf.py, ocdsl/train/bench.py) and the
device decisions of a run (ocdsl/train/device_plan.py), checked on the CPU: what they count
and decide, never how fast anything ran (no wall-clock assertions)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ocdsl.cli import main
from ocdsl.pipeline import build
from ocdsl.train.bench import format_bench, scaling_points
from ocdsl.train.device_plan import format_plan, plan_device
from ocdsl.train.perf import alternate, measure_peaks, step_flops
from ocdsl.train.model_io import resolve_precision

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "specs" / "slot_attention.toml"
PAPER = REPO / "specs" / "variants" / "slot_attention_paper.toml"
# The main job shrunk to a few thousand FLOPs per pixel (same graph, same rewrites).
SMALL = ["dims.H=8", "dims.W=8", "dims.F=4", "dims.D=8", "dims.M=8", "train.batch_size=2"]


def test_alternate_calls_every_variant_warmup_plus_rounds_times():
    calls = {"a": 0, "b": 0}

    def bump(k):
        calls[k] += 1

    t = alternate({k: (lambda k=k: bump(k)) for k in calls}, rounds=3, steps_per_round=2, warmup=1)
    assert calls == {"a": 7, "b": 7}
    for v in t.values():
        assert len(v["times"]) == 3 and v["median_s"] >= 0 and v["cpu_median_s"] >= 0


def test_step_flops_splits_convolution_and_matmul():
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    lin = torch.nn.Linear(5, 7, bias=False)
    x, y = torch.randn(1, 2, 4, 4), torch.randn(6, 5)

    def forward_only():
        with torch.no_grad():
            conv(x), lin(y)

    f = step_flops(forward_only)
    assert f["conv"] == 2 * (3 * 4 * 4) * 2 * 3 * 3      # 2 * outputs * Cin * k * k
    assert f["matmul"] == 2 * 6 * 5 * 7                   # 2 * M * K * N
    assert f["total"] == f["conv"] + f["matmul"]


def test_measure_peaks_reports_both_rates():
    p = measure_peaks(repeats=1)
    assert set(p) == {"matmul_gflops", "conv_gflops"}
    assert all(math.isfinite(v) and v > 0 for v in p.values())


def test_scaling_points_double_the_image_and_the_slots():
    spec = build(MAIN).spec
    assert scaling_points(spec) == [{}, {"H": 70, "W": 70}, {"K": 8}, {"H": 70, "W": 70, "K": 8}]


def test_format_bench_gives_ratios_and_achieved_rates():
    v = {"mode": "eager", "rewrites": True, "step_s": 0.1, "cpu_s": 0.2, "warmup_s": 1.0, "images_per_s": 80.0}
    res = {"batch": 8, "device": "cpu", "phase": None,
           "variants": {"eager": v, "eager, no rewrites": {**v, "rewrites": False, "step_s": 0.2}},
           "flops": {"eager": {"total": 5e9, "conv": 4e9, "matmul": 1e9},
                     "eager, no rewrites": {"total": 8e9, "conv": 7e9, "matmul": 1e9}},
           "peaks": {"matmul_gflops": 100.0, "conv_gflops": 200.0}}
    text = format_bench("m", res)
    row = next(line for line in text.splitlines() if line.lstrip().startswith("eager, no rewrites"))
    assert "   2.000" in row and "   8.00" in row and "    40.0" in row   # ratio, GFLOP, GFLOP/s
    assert "80.0% convolution, 20.0% matmul" in text
    assert "matmul 100.0 GFLOP/s, convolution 200.0 GFLOP/s" in text


@pytest.fixture
def bf16_gpu(monkeypatch):
    """A CUDA device, present, that computes bf16 (or not: ``bf16_gpu(False)``), as the run sees it;
    resolve_precision caches its answers, so the cache is cleared around the test."""
    def set_(supported: bool = True):
        resolve_precision.cache_clear()
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    set_(True)
    yield set_
    resolve_precision.cache_clear()


def test_gpu_plan_of_the_main_job_without_a_gpu(bf16_gpu):
    c = build(MAIN)
    plan = plan_device(c, "cuda")
    assert plan.precision == "bf16"                        # precision = "auto"
    assert plan.torch_compile is True                      # compile = "gpu"
    assert plan.channels_last == ("encoder", "decoder")    # the channels_last rewrite
    assert plan.pin_memory and plan.non_blocking
    assert any("num_workers" in w for w in plan.warnings)  # the spec keeps 0 workers
    assert "bf16 autocast, torch.compile on, channels-last convolutions in encoder, decoder" in format_plan(plan)
    absent = replace(plan, present=False, precision="fp32")   # as a machine without CUDA sees it
    assert 'bf16 autocast on a GPU that computes bf16 (precision = "auto"), else fp32' in format_plan(absent)
    cpu = plan_device(c, "cpu")
    assert cpu.torch_compile is False and not cpu.pin_memory and not cpu.warnings
    assert plan_device(c, "cuda", compile_mode=False).torch_compile is False   # --no-compile


def test_gpu_plan_keeps_fp32_where_the_spec_or_the_gpu_says_so(bf16_gpu):
    paper = plan_device(build(PAPER), "cuda")              # precision = "fp32"
    assert paper.precision == "fp32" and paper.torch_compile is True
    bf16_gpu(False)
    assert plan_device(build(MAIN), "cuda").precision == "fp32"
    assert plan_device(build(MAIN, overrides=["compile.rewrites=[]"]), "cuda").channels_last == ()


@pytest.mark.timeout(300)
def test_bench_prints_the_table_with_and_without_rewrites(capsys):
    args = ["bench", str(MAIN), "--no-compile", "--rounds", "1", "--scale"]
    for s in SMALL:
        args += ["--set", s]
    assert main(args) == 0
    out = capsys.readouterr().out
    for label in ("eager ", "eager, no rewrites"):
        assert any(line.lstrip().startswith(label) for line in out.splitlines()), label
    assert "peak here, same process: matmul" in out and "% convolution" in out
    assert "on cpu: " in out and "on cuda: " in out and "torch.compile on" in out
    assert "H=16 W=16" in out and "K=8" in out
