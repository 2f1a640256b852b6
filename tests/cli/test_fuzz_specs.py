"""Fuzzing the command line with mutants of the shipped specs.

Every spec under specs/ (variants included) is mutated the way a careless or adversarial
user would: a key deleted or renamed, a value of another type, numbers at the extremes
(0, -1, 2**70, 1e308, nan, inf), a node duplicated, a reference broken, hostile text in a
name, a line of the file deleted or duplicated, the file cut short. Each mutant goes through
the CLI entry in this process (``ocdsl.cli.main``): the exit status must be 0 (accepted) or
2 (a located ``path:line:col: error:`` or ``path: error:``), never 3 (an internal error) and
never a traceback. 170 mutants in the fast suite (``validate``, the cheap path, and
``compile``); 3,000, with ``graph`` too, in the slow one. The examples are derandomized
(the same mutants every run); the memory of each run is bounded (:func:`memory_bound`), so
a mutant that makes the front end allocate by its sizes fails here instead of exhausting
the machine.

Found so far: ``dims.H = 8132102978624835`` made ``validate`` allocate 65 PB in the
``fold_broadcast`` rewrite's border-class count (fixed in ocdsl/ops/decoders.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import resource
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ocdsl.cli import main

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.relative_to(REPO).as_posix()
                 for p in [*REPO.glob("specs/*.toml"), *REPO.glob("specs/variants/*.toml")])
FUZZ = dict(deadline=None, database=None, derandomize=True, phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                   HealthCheck.data_too_large])

#: values a spec key may be replaced with: other types, extreme and non-finite numbers,
#: hostile or broken text
EXTREMES = [0, -1, 1, 2, 2**31, 2**63, 2**70, -2**70, 0.0, -0.0, 1e-308, 1e308, -1e308, math.inf, -math.inf,
            math.nan, True, False, "", " ", "x", "K", "B K D", "nope", "nope.out", "image", "1/0", "0 ** -1",
            "9 ** 9 ** 9", "log(0)", "sqrt(-1)", "exp(1000)", "step / 0", "a\nb", "a\x00b", "\"\"\"",
            "__import__('os')", "é", "x" * 300, [], [0], [-1], ["K"], [[[]]], {}, {"a": 1}, {"op": "mlp"}]

_ERROR_LINE = re.compile(r"^(?P<file>.+?)(?::\d+:\d+)?: error: ")


def _spec_files() -> dict[str, dict]:
    """The shipped specs as their own (unmerged) tables, by path relative to the repo."""
    return {rel: tomllib.loads((REPO / rel).read_text()) for rel in SHIPPED}


SPECS = _spec_files()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of specs/ (mutants are written beside the originals, so ``extends`` finds its
    base specs)."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(REPO / "specs", root / "specs")
    return root


# ------------------------------------------------------------------------------ mutations

def _paths(value, prefix=()) -> list[tuple]:
    """Every key path of a table, containers included, leaves last."""
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def _parent(data, path):
    for part in path[:-1]:
        data = data[part]
    return data


def _names(data: dict) -> list[str]:
    """Names a spec defines (nodes, inputs, dims, losses, schedules): the material of broken
    references."""
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    out = []
    for table in (model.get("nodes"), model.get("inputs"), data.get("dims"), data.get("losses"),
                  data.get("schedules")):
        if isinstance(table, dict):
            out += [str(k) for k in table]
    return out or ["x"]


@st.composite
def tree_mutant(draw, data: dict) -> dict:
    """``data`` (a deep copy) with one to three mutations of its tree."""
    data = json.loads(json.dumps(data))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(data, path), path[-1]
        kind = draw(st.sampled_from(["delete", "value", "value", "rename", "duplicate", "reference", "text"]))
        if kind == "delete":
            del parent[key]
        elif kind == "value":
            parent[key] = draw(st.sampled_from(EXTREMES) | st.integers() | st.floats() | st.text(max_size=12))
        elif kind == "rename" and isinstance(parent, dict):
            new = draw(st.sampled_from([key[:-1], key + "s", key.upper(), "", "a b", "a.b", "a\nb", "class",
                                        "_" + key, draw(st.sampled_from(_names(data)))]))
            parent[new] = parent.pop(key)
        elif kind == "duplicate" and isinstance(parent, dict):
            other = draw(st.sampled_from(sorted(parent)))
            parent[other] = json.loads(json.dumps(parent[key]))  # one entry copied over another
            parent[f"{key}_copy"] = json.loads(json.dumps(parent[key]))
        elif kind == "duplicate" and isinstance(parent, list):
            parent.insert(key, json.loads(json.dumps(parent[key])))
        elif kind == "reference" and isinstance(parent[key], str):
            name = draw(st.sampled_from(_names(data)))
            parent[key] = draw(st.sampled_from([name, f"{name}.nope", f"{name}.{name}", f"{parent[key]} + {name}",
                                                f"{parent[key]} * ({name}", parent[key][::-1]]))
        elif kind == "text" and isinstance(parent[key], str):
            s = parent[key]
            i = draw(st.integers(0, len(s)))
            parent[key] = s[:i] + draw(st.sampled_from(["(", ")", "**", ",", "\"", "'", "-", "[", "]", "\\",
                                                        " ", "\n", "{", "}", "..", "e", "9" * 30])) + s[i:]
    return data


def _toml(value) -> str:
    """``value`` as a TOML value; tables as inline tables, keys quoted (a minimal writer:
    nothing in the standard library writes TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value == math.inf else "-inf" if value == -math.inf
                                             else repr(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"


def to_toml(data: dict) -> str:
    return "".join(f"{json.dumps(str(k))} = {_toml(v)}\n" for k, v in data.items())


@st.composite
def text_mutant(draw, text: str) -> str:
    """The spec's text with a line deleted or duplicated, cut short, or a character inserted."""
    lines = text.splitlines(keepends=True)
    kind = draw(st.sampled_from(["delete", "duplicate", "cut", "insert"]))
    i = draw(st.integers(0, max(len(lines) - 1, 0)))
    if kind == "delete":
        return "".join(lines[:i] + lines[i + 1:])
    if kind == "duplicate":
        return "".join(lines[:i + 1] + lines[i:])
    at = draw(st.integers(0, len(text)))
    if kind == "cut":
        return text[:at]
    return text[:at] + draw(st.sampled_from(["[", "]", "=", "\"", "'''", "#", "\n", "{", "x", "\\", "\x00"])) + text[at:]


@st.composite
def mutant(draw) -> tuple[str, str, str]:
    """(shipped spec it came from, file suffix, mutant text)."""
    rel = draw(st.sampled_from(SHIPPED))
    form = draw(st.sampled_from(["toml", "yaml", "text"]))
    if form == "text":
        return rel, ".toml", draw(text_mutant((REPO / rel).read_text()))
    data = draw(tree_mutant(SPECS[rel]))
    if form == "toml":
        return rel, ".toml", to_toml(data)
    return rel, ".yaml", yaml.safe_dump(data, allow_unicode=False, sort_keys=False)


# ------------------------------------------------------------------------------ the property

def _write(tree: Path, rel: str, suffix: str, text: str) -> Path:
    path = (tree / rel).with_name("_mutant" + suffix)
    path.write_text(text, encoding="utf-8")
    return path


def assert_clean_exit(rc: int, err: str, spec: Path, tree: Path) -> None:
    """0 or 2; for 2, every error line is ``path[:line:col]: error:`` naming a spec file of
    the tree (the mutant or a spec it extends); never a traceback."""
    assert "Traceback" not in err, err
    assert rc in (0, 2), f"exit {rc} for {spec.name}:\n{spec.read_text()[:3000]}\n---\n{err}"
    if rc == 2:
        firsts = [l for l in err.splitlines() if ": error: " in l and not l.startswith(" ")]
        assert firsts, err
        for line in firsts:
            m = _ERROR_LINE.match(line)
            assert m, line
            assert (tree / "specs") in Path(m["file"]).resolve().parents or m["file"] == "ocdsl", line


@contextlib.contextmanager
def memory_bound(extra: int = 2 << 30):
    """At most ``extra`` more bytes of address space inside the block: a mutant that makes
    the front end allocate by its sizes fails the test (an allocation error is an internal
    error, exit 3) instead of exhausting the shared machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        now = int(f.read().split()[0]) * resource.getpagesize()
    bound = now + extra if hard == resource.RLIM_INFINITY else min(now + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (bound, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _run(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    with memory_bound():
        rc = main(argv)
    return rc, capsys.readouterr().err


@pytest.mark.timeout(300)
@settings(max_examples=150, **FUZZ)
@given(m=mutant())
def test_validate_never_crashes_on_a_mutant(tree, capsys, m):
    spec = _write(tree, *m)
    assert_clean_exit(*_run(["validate", str(spec)], capsys), spec, tree)


@pytest.mark.timeout(300)
@settings(max_examples=20, **FUZZ)
@given(m=mutant())
def test_compile_never_crashes_on_a_mutant(tree, capsys, m):
    spec = _write(tree, *m)
    assert_clean_exit(*_run(["compile", str(spec), "-o", str(tree / "out.py")], capsys), spec, tree)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(max_examples=3000, **FUZZ)
@given(m=mutant(), command=st.sampled_from(["validate", "compile", "graph"]))
def test_many_mutants_through_validate_compile_and_graph(tree, capsys, m, command):
    spec = _write(tree, *m)
    out = {"compile": ["-o", str(tree / "out.py")], "graph": ["-o", str(tree / "g.svg")]}.get(command, [])
    assert_clean_exit(*_run([command, str(spec), *out], capsys), spec, tree)


def test_the_mutants_reach_past_the_parser(tree, capsys):
    """The fuzzer is not only testing the parser: an unmutated shipped spec written back as
    TOML and as YAML by the test's writers validates (exit 0)."""
    for rel in (SHIPPED[0], "specs/variants/slot_attention_multi_dsprites.toml"):  # generated data
        for suffix, text in ((".toml", to_toml(SPECS[rel])), (".yaml", yaml.safe_dump(SPECS[rel], sort_keys=False))):
            spec = _write(tree, rel, suffix, text)
            rc, err = _run(["validate", str(spec)], capsys)
            assert rc == 0, err
