"""The command line: exit codes, error format, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocdsl.cli import main
from tests.graph.test_graph import TINY, edit, write

REPO = Path(__file__).resolve().parents[2]


def test_validate_ok(tmp_path, capsys):
    assert main(["validate", str(write(tmp_path, TINY))]) == 0
    assert "ok (5 nodes" in capsys.readouterr().out


def test_user_error_exits_2_with_location_and_no_traceback(tmp_path, capsys):
    p = write(tmp_path, edit(TINY, 'input = "tokens"', 'input = "tokenz"'))
    assert main(["validate", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}:" in err and ": error:" in err and "did you mean 'tokens'?" in err
    assert "Traceback" not in err


def test_bad_override_exits_2(tmp_path, capsys):
    p = write(tmp_path, TINY)
    assert main(["validate", str(p), "--set", "dims.K"]) == 2
    assert "dims.K" in capsys.readouterr().err


def test_override_changes_shapes(tmp_path, capsys):
    p = write(tmp_path, TINY)
    assert main(["compile", str(p), "--set", "dims.K=3", "-o", str(tmp_path / "m.py")]) == 0
    assert "(B, 3, 3, 8, 8)" in (tmp_path / "m.py").read_text()


def test_compile_check_detects_stale(tmp_path, capsys):
    p = write(tmp_path, TINY)
    out = tmp_path / "m.py"
    assert main(["compile", str(p), "-o", str(out)]) == 0
    assert main(["compile", "--check", str(p), "-o", str(out)]) == 0
    out.write_text(out.read_text() + "# edited\n")
    assert main(["compile", "--check", str(p), "-o", str(out)]) == 1
    assert "stale" in capsys.readouterr().err


def test_graph_writes_picture_and_dot(tmp_path):
    p = write(tmp_path, TINY)
    png = tmp_path / "g.png"
    assert main(["graph", str(p), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dot = (tmp_path / "g.dot").read_text()
    assert "digraph" in dot and "slot_attention" in dot and "composite" in dot
    svg = tmp_path / "g.svg"
    assert main(["graph", str(p), "-o", str(svg)]) == 0
    assert "<svg" in svg.read_text()


def test_schema_is_json_with_op_params(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "model" in schema["properties"]
    assert "num_slots" in json.dumps(schema)  # op parameter schemas are merged in


def test_gpu_without_cuda_is_a_clear_error(tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", str(write(tmp_path, TINY)), "--gpu", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--gpu" in err and "CUDA" in err and "Traceback" not in err


def test_console_script_runs():
    exe = Path(sys.executable).parent / "ocdsl"
    if not exe.exists():
        pytest.skip("ocdsl console script not installed in this environment")
    r = subprocess.run([str(exe), "validate", "specs/slot_attention.toml"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_missing_data_path_exits_2(tmp_path, capsys):
    p = write(tmp_path, TINY)
    rc = main(["run", str(p), "--steps", "1", "--no-progress", "--out", str(tmp_path / "run"),
               "--set", "data.path=nowhere/tetrominoes.npz"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "nowhere/tetrominoes.npz" in err and "Traceback" not in err


def test_corrupt_checkpoint_exits_2(tmp_path, capsys):
    p = write(tmp_path, TINY)
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    assert main(["eval", str(p), str(run)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt" in err and "Traceback" not in err
    assert (run / "checkpoint.pt").read_bytes() == b"not a checkpoint at all"  # nothing lost


def test_data_of_another_resolution_exits_2(tmp_path, capsys):
    # TINY's model takes 8x8 images; the Tetrominoes generator makes 35x35 ones.
    rc = main(["run", str(write(tmp_path, TINY)), "--steps", "1", "--no-progress", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "(3, 35, 35)" in err and "'B C H W' = (B, 3, 8, 8)" in err and "Traceback" not in err


def test_run_then_resume_then_eval(tmp_path, capsys):
    """A tiny end-to-end run: train 2 steps, resume to 3, evaluate the checkpoint."""
    p = write(tmp_path, TINY + "\n[eval]\ntest_size = 4\nmetrics = [\"ari_fg\", \"mse\"]\n"
                               "masks = \"composite.masks\"\nreconstruction = \"composite.image\"\n")
    run = tmp_path / "run"
    size = ["--set", "dims.H=35", "--set", "dims.W=35"]  # the generator's resolution
    assert main(["run", str(p), "--steps", "2", "--no-progress", "--no-compile", "--out", str(run), *size]) == 0
    assert main(["run", str(p), "--steps", "3", "--no-progress", "--no-compile", "--resume", str(run), *size]) == 0
    assert main(["eval", str(p), str(run), *size]) == 0
    out = capsys.readouterr().out
    assert "ari_fg" in out
    import json
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r.get("step", 0) for r in rows) == 3
    assert (run / "model.py").exists() and (run / "summary.json").exists()


def test_validate_checks_invariance_axes(tmp_path, capsys):
    text = TINY + '\n[[invariances]]\nkind = "permutation_equivariance"\nnode = "slots"\naxis = "Q"\n'
    assert main(["validate", str(write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert "invariances" in err and "'Q'" in err and "Traceback" not in err


def test_check_passes_on_tiny_spec(tmp_path, capsys):
    text = TINY + '\n[[invariances]]\nkind = "permutation_equivariance"\nnode = "slots"\naxis = "K"\n'
    assert main(["check", str(write(tmp_path, text)), "--examples", "3"]) == 0
    assert "pass" in capsys.readouterr().out


def test_data_preview(tmp_path, capsys):
    p = write(tmp_path, TINY)
    out = tmp_path / "d.png"
    assert main(["data", str(p), "-n", "4", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tetrominoes: 3x35x35" in text and "min 3, mean 3.00, max 3" in text
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_bench_eager(tmp_path, capsys):
    p = write(tmp_path, TINY + "\n[schedules]\nlr = \"1e-3\"\n")
    assert main(["bench", str(p), "--no-compile", "--rounds", "1", "--batch", "2"]) == 0
    text = capsys.readouterr().out
    assert "eager" in text and "ms/step" in text and "front end: load" in text


def test_bench_times_one_phase_and_names_unknown_ones(tmp_path, capsys):
    phases = ('\n[schedules]\nlr = "1e-3"\n\n[[train.phases]]\nname = "warm"\nsteps = 2\n'
              '\n[[train.phases]]\nname = "main"\nsteps = 3\n')
    p = write(tmp_path, TINY.replace("steps = ", "# steps = ") + phases)
    assert main(["bench", str(p), "--no-compile", "--rounds", "1", "--batch", "2", "--phase", "warm"]) == 0
    assert "phase 'warm'" in capsys.readouterr().out
    assert main(["bench", str(p), "--no-compile", "--rounds", "1", "--batch", "2", "--phase", "mian"]) == 2
    err = capsys.readouterr().err
    assert "the spec has no phase 'mian' (phases: warm, main)" in err and "main" in err


def test_ops_lists_every_registered_op(capsys):
    from ocdsl.ops.registry import names
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    for name in names():
        assert f"\n{name}  (v" in "\n" + out
    assert "symmetry: permutation_equivariance" in out
    # every parameter with its type, default or "required", and allowed values
    assert "      num_slots: size, required\n" in out
    assert "      iterations: int, default 3\n" in out
    assert "      slot_init: one of 'gaussian', 'learned', default 'gaussian'\n" in out
    assert "      channels: list[size], required\n" in out
    assert "      axes: table of size, optional\n" in out


SEEDS_EVAL = ('\n[eval]\ntest_size = 4\nmetrics = ["ari_fg", "mse"]\nmasks = "composite.masks"\n'
              'reconstruction = "composite.image"\nsuccess = "mse >= 0"\n')


def test_seeds_two_runs_summary_and_a_threshold_every_seed_fails(tmp_path, capsys):
    """--seeds 0,1: two seed runs, mean ± std of their values, the failed count; a resume
    with another threshold re-judges the finished seeds without training them again."""
    import statistics

    p = write(tmp_path, TINY + SEEDS_EVAL)
    parent = tmp_path / "study"
    common = ["--steps", "2", "--no-progress", "--no-compile", "--set", "dims.H=35", "--set", "dims.W=35"]
    assert main(["run", str(p), "--seeds", "0,1", "--out", str(parent), *common]) == 0
    out = capsys.readouterr().out
    assert "failed: 0 of 2 seeds" in out and "success: mse >= 0 on every evaluated dataset" in out
    s = json.loads((parent / "seeds_summary.json").read_text())
    for n in (0, 1):
        run = json.loads((parent / f"seed{n}" / "summary.json").read_text())
        assert run["status"] == "completed" and run["step"] == 2
        assert json.loads((parent / f"seed{n}" / "spec.resolved.json").read_text())["train"]["seed"] == n
    vals = [json.loads((parent / f"seed{n}" / "summary.json").read_text())["eval"]["test"]["metrics"]["mse"]
            for n in (0, 1)]
    agg = s["aggregate"]["test"]["mse"]
    assert agg["mean"] == pytest.approx(statistics.fmean(vals)) and agg["std"] == pytest.approx(statistics.stdev(vals))
    assert s["failed"] == 0
    assert (parent / "seeds_curves.png").read_bytes()[:4] == b"\x89PNG"
    for n in (0, 1):
        assert (parent / f"seed{n}" / "figures" / "test_masks_over_time.png").exists()
        assert (parent / f"seed{n}" / "figures" / "metrics.png").exists()
    ckpt = (parent / "seed0" / "checkpoint.pt").stat().st_mtime_ns
    assert main(["run", str(p), "--seeds", "0,1", "--resume", str(parent), *common,
                 "--set", "eval.success=ari_fg > 1"]) == 0
    out = capsys.readouterr().out
    assert "not run again" in out and "failed: 2 of 2 seeds" in out and "ari_fg" in out
    assert json.loads((parent / "seeds_summary.json").read_text())["failed_seeds"] == [0, 1]
    assert (parent / "seed0" / "checkpoint.pt").stat().st_mtime_ns == ckpt


def test_seeds_bad_success_or_seed_list_exits_2(tmp_path, capsys):
    p = write(tmp_path, TINY + SEEDS_EVAL)
    out = tmp_path / "study"
    rc = main(["run", str(p), "--seeds", "0,1", "--out", str(out), "--set", "eval.success=ari_fg >= high"])
    err = capsys.readouterr().err
    assert rc == 2 and "[eval.success] success: the right side must be a number" in err
    assert "Traceback" not in err and not out.exists()
    p2 = write(tmp_path, TINY + SEEDS_EVAL.replace("mse >= 0", "ari_fgg >= 0.9"), name="typo.toml")
    assert main(["validate", str(p2)]) == 2
    err = capsys.readouterr().err
    assert f"{p2}:" in err and "unknown metric 'ari_fgg'" in err and "did you mean 'ari_fg'?" in err
    assert main(["run", str(p), "--seeds", "1,1", "--out", str(out)]) == 2
    assert "seed 1 is given twice" in capsys.readouterr().err and not out.exists()
