"""Generated source: deterministic, readable, importable, numerically the spec."""

from __future__ import annotations

import ast
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from ocdsl.codegen import class_name
from ocdsl.pipeline import build, compiled_path
from ocdsl.spec import expr as E

from tests.graph.test_graph import TINY, write

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "specs").rglob("*.toml")) + sorted((REPO / "specs").rglob("*.yaml"))


def test_same_spec_same_bytes(tmp_path):
    p = write(tmp_path, TINY)
    assert build(p).source == build(p).source


@pytest.mark.parametrize("spec_path", SHIPPED, ids=lambda p: p.stem)
def test_compiled_folder_is_in_sync(spec_path, monkeypatch):
    """compiled/<stem>.py must equal what `ocdsl compile` generates now."""
    monkeypatch.chdir(REPO)
    c = build(spec_path.relative_to(REPO))
    target = REPO / compiled_path(c.spec)
    assert target.exists(), f"{target} is missing: run `ocdsl compile {spec_path.relative_to(REPO)}`"
    assert target.read_text() == c.source, (
        f"{target.relative_to(REPO)} is stale: run `ocdsl compile {spec_path.relative_to(REPO)}`")


def test_make_compile_regenerates_every_spec_checked_here():
    """`make compile` (the stale message's other fix) covers the specs the test above checks."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    r = subprocess.run(["make", "-n", "-C", str(REPO), "compile", "VENV=.no-venv"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    loop = next(line for line in r.stdout.splitlines() if line.startswith("for s in"))
    regenerated = set(loop.split(";")[0].split()[3:])
    assert regenerated == {str(p.relative_to(REPO)) for p in SHIPPED}


def test_generated_source_reads_like_code(tmp_path):
    c = build(write(tmp_path, TINY))
    src = c.source
    ast.parse(src)  # valid Python
    assert "eval(" not in src and "exec(" not in src
    assert f"class {class_name(c.spec)}(nn.Module):" in src
    # one line per node in forward, each with a shape comment
    fwd = src[src.index("def forward"):src.index("def schedules")]
    for node in c.spec.nodes:
        line = next(l for l in fwd.splitlines() if f"self.{node}(" in l)
        assert "  # " in line and "(B, " in line
    assert "reconstruction = fn.mse(outputs['composite.image'], inputs['image'])" in src
    assert c.spec.source_hash in src.splitlines()[1]


def test_model_runs_and_matches_inferred_shapes(tmp_path):
    c = build(write(tmp_path, TINY))
    model = c.instantiate(torch_compile=False)
    out = model(torch.rand(3, 3, 8, 8))
    from ocdsl.graph import output_shapes
    for key, s in output_shapes(c.graph).items():
        expected = tuple(3 if str(d) == "B" else d.value for d in s)
        assert tuple(out[key].shape) == expected, key
    loss = model.losses({"image": torch.zeros(3, 3, 8, 8)}, out, model.schedules(0), 0)
    assert set(loss) == {"reconstruction"}
    assert torch.allclose(loss["reconstruction"], (out["composite.image"] ** 2).mean())


def test_module_is_imported_from_its_file(tmp_path):
    c = build(write(tmp_path, TINY))
    path = c.write(tmp_path / "tiny_model.py")
    model = c.instantiate(torch_compile=False)
    import inspect
    assert Path(inspect.getsourcefile(type(model))).resolve() == path.resolve()


SCHED = TINY.replace("[train]", """
[schedules]
warmup = "10"
lr = "4e-4 * min(1, step / warmup) * 0.5 ** (step / 100)"
weight = "0 if step < 5 else (step - 5) / 10"
neg = "-2 ** 2 + (-2) ** 2 - 7 // 2 % 3"

[train]""")


@pytest.mark.parametrize("step", [0, 1, 4, 5, 9, 10, 250])
def test_schedules_equal_the_expression_interpreter(tmp_path, step):
    c = build(write(tmp_path, SCHED))
    model = c.instantiate(torch_compile=False)
    got = model.schedules(step)
    env = dict(c.spec.dims, step=step)
    for name in ["warmup", "lr", "weight", "neg"]:
        env[name] = E.evaluate(c.spec.schedules[name], env)
        assert math.isclose(got[name], env[name], rel_tol=0, abs_tol=1e-15), name


def test_compile_modes_per_device(tmp_path):
    """train.compile / ocdsl.compile's torch_compile: booleans force, "gpu" compiles on CUDA
    only, "auto" also on the CPU where every op is marked compile_on_cpu."""
    c = build(write(tmp_path, TINY))
    on_cpu = all(d["opdef"].compile_on_cpu for _, d in c.graph.nodes(data=True) if d["kind"] == "op")
    assert c.will_compile("cpu", True) and not c.will_compile("cuda", False)
    assert c.will_compile("cuda", "gpu") and not c.will_compile("cpu", "gpu")
    assert c.will_compile("cuda", "auto") and c.will_compile("cpu", "auto") == on_cpu
    with pytest.raises(ValueError, match="'auto' or 'gpu'"):
        c.will_compile("cpu", "sometimes")


def test_shipped_main_job_is_eager_on_the_cpu_and_compiled_on_a_gpu():
    c = build(REPO / "specs" / "slot_attention.toml")
    mode = c.spec.train.compile
    assert not c.will_compile("cpu", mode) and c.will_compile("cuda", mode)
