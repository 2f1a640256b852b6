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



def test_cache_file_is_named_by_the_generated_code(tmp_path, monkeypatch):
    """Two ocdsl versions sharing the cache never overwrite each other's module: the cached
    file is named by the hash of the code it holds, not only by the spec's hash."""
    import hashlib
    import inspect

    monkeypatch.setenv("OCDSL_CACHE", str(tmp_path / "cache"))
    c = build(write(tmp_path, TINY))
    c.source += "\n# another ocdsl version generated this\n"
    model = c.instantiate(torch_compile=False)
    path = Path(inspect.getsourcefile(type(model)))
    assert path.name.endswith(f"_{hashlib.sha256(c.source.encode()).hexdigest()[:12]}.py")
    assert path.read_text() == c.source
    fresh = build(write(tmp_path, TINY))
    fresh.instantiate(torch_compile=False)
    assert fresh.path != c.path and path.read_text() == c.source   # the first file untouched

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


# ---- text is data: nothing a spec says becomes a statement of the generated module ----------

HOSTILE = [
    '"""\nimport os\nos.system("echo pwned")\n"""',
    'ends with a quote"', "ends with a backslash\\", '\\"""; import os; """',
    "nul\x00byte", "line\u2028separator\u2029paragraph", "cr\rlf\r\nff\x0cvt\x0b", "tab\there\x1b[31m",
    "\\N{BULLET} \\x41 \\u0041 {braces} %s", "'''single'''", "\\",
]


def _shape(source: str) -> str:
    """The module's AST with every string constant blanked: the statements and expressions
    alone."""
    class Blank(ast.NodeTransformer):
        def visit_Constant(self, node):
            return ast.Constant("") if isinstance(node.value, str) else node
    return ast.dump(Blank().visit(ast.parse(source)))


def _spec_with_text(tmp_path, text: str, name: str = "tiny.toml") -> Path:
    import json
    toml_str = json.dumps(text)  # a JSON string is a TOML basic string (\uXXXX escapes included)
    body = TINY.replace('name = "tiny"', f'name = "tiny"\ndescription = {toml_str}\npaper = {toml_str}', 1)
    return write(tmp_path, body, name)


def _check_only_text_differs(tmp_path, text: str, file_name: str = "tiny.toml") -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    benign = build(_spec_with_text(tmp_path / "a", "benign")).source
    src = build(_spec_with_text(tmp_path / "b", text, file_name)).source
    tree = ast.parse(src)  # parses: nothing closed the docstring or a comment early
    assert _shape(src) == _shape(benign), "the hostile text changed the module's statements"
    assert ast.literal_eval(tree.body[0].value) == f"{text}.\n\nPaper: {text}\n"  # the text, as data
    assert "\x00" not in src and "\r" not in src and "\u2028" not in src


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_descriptions_stay_text(tmp_path, text):
    _check_only_text_differs(tmp_path, text)


def test_hostile_spec_file_name_stays_in_its_comment(tmp_path):
    _check_only_text_differs(tmp_path, "x", 'ti"""ny\nimport os\r.toml')


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=15, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('"\'\\\n\r\t\x00\x0b\x0c\x1b\u2028\u2029\x85#{}ab ')), min_size=1, max_size=30))
def test_generated_hostile_descriptions_stay_text(tmp_path_factory, text):
    _check_only_text_differs(tmp_path_factory.mktemp("h"), text)
