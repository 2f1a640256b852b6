"""Reading TOML and YAML with the location of every key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from ocdsl.errors import SpecError
from ocdsl.spec.source import MAX_DEPTH, parse_source, parse_toml, parse_yaml, read_source

REPO = Path(__file__).resolve().parents[2]


def keypaths(d, path=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield path + (k,)
            yield from keypaths(v, path + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield path + (i,)
            yield from keypaths(v, path + (i,))


def assert_all_located(text: str, data, locs):
    lines = text.split("\n")
    for kp in keypaths(data):
        assert kp in locs, kp
        loc = locs.get(kp)
        assert loc.line >= 1 and loc.col >= 1, (kp, loc)
        if isinstance(kp[-1], str):
            assert kp[-1] in lines[loc.line - 1][loc.col - 1:], (kp, loc, lines[loc.line - 1])


def test_every_key_of_the_shipped_spec_is_located():
    text = (REPO / "specs" / "slot_attention.toml").read_text()
    data, locs = parse_toml(text, "sa.toml")
    assert_all_located(text, data, locs)
    # inline table key, array-of-tables entry, string value position
    assert locs.get(("model", "nodes", "slots", "output", "attention")).line == \
        next(i for i, l in enumerate(text.split("\n"), 1) if "attention = " in l)
    ds = locs.get(("eval", "datasets", 0))
    assert text.split("\n")[ds.line - 1].startswith("[[eval.datasets]]")


TRICKY = '''\
# comment [not.a.table]
title = """
[fake.header]
key = "value"   # still a string
"""
lit = \'\'\'a ' b [x] = y\'\'\'
"quoted key" = 1
'lit.key' = 2
a.b."c.d" = 3
arr = [
  1, # a comment with ] and = inside
  [2, 3],
  { x = 1, y.z = "s" },
]
inline = { p = { q = 1 }, r = [ { s = 2 } ] }
esc = "a \\" b"
date = 1979-05-27 07:32:00Z

[table . sub]
k = true

[[aot]]
name = "first"

[[aot.inner]]
v = 1

[[aot]]
name = "second"

[[aot.inner]]
v = 2

[[aot.inner]]
v = 3

[aot.meta]
w = 1
'''


def test_tricky_toml_locations():
    data, locs = parse_toml(TRICKY, "t.toml")
    assert_all_located(TRICKY, data, locs)
    assert data["title"].startswith("[fake.header]")
    assert ("fake",) not in locs
    assert locs.get(("quoted key",)).line == 7
    assert locs.get(("a", "b", "c.d")).line == 9
    assert locs.get(("arr", 2, "y", "z")).line == 13
    assert locs.get(("inline", "r", 0, "s")).line == 15
    assert locs.get(("table", "sub", "k")).line == 20
    assert data["aot"][1]["inner"][1]["v"] == 3
    assert locs.get(("aot", 1, "inner", 1, "v")).line == 35
    assert locs.get(("aot", 1, "inner", 1)).line == 34
    assert locs.get(("aot", 1, "meta", "w")).line == 38
    assert locs.get(("aot", 0, "inner", 0, "v")).line == 26
    # value positions: exact for plain strings, unknown where escapes break the 1:1 mapping
    v = locs.value(("arr", 2, "y", "z"))
    assert (v.line, TRICKY.split("\n")[v.line - 1][v.col - 1]) == (13, "s")
    assert locs.value(("esc",)) is None
    assert locs.value(("title",)) is None


@pytest.mark.parametrize("text, line, col, words", [
    ("a = 1\nb = abc\n", 2, 5, ["malformed TOML", "invalid value", 'strings need quotes: "abc"']),
    ("[a\nb = 1\n", 1, 3, ["malformed TOML", "']'"]),
    ("a = 1\nb = 2\na = 3\n", 3, 1, ["defined twice"]),
    ("x = 1\ns = \"abc\n", 2, 9, ["malformed TOML", "unterminated string"]),
    ("[a]\nx = 1\n[b]\n[a]\n", 4, 1, ["table [a] is defined twice"]),
    ("x = 1 2\n", 1, 7, ["malformed TOML"]),
])
def test_malformed_toml_points_at_the_problem(text, line, col, words):
    with pytest.raises(SpecError) as ei:
        parse_toml(text, "bad.toml")
    d = ei.value.diagnostics[0]
    assert (d.file, d.line, d.col) == ("bad.toml", line, col)
    for w in words:
        assert w in d.format()


YAML = """\
meta:
  name: y
dims:
  K: 4
  on: 1
model:
  inputs:
    image: "B 3 H W"
  nodes:
    enc: &base
      op: conv_stack
      output: {out: "B K D"}
    dec:
      <<: *base
      kernel: 3
losses:
  rec: mse(enc, image)
  esc: "a\\tb"
list:
  - {a: 1}
  - b: 2
"""


def test_yaml_locations_and_keys_as_written():
    data, locs = parse_yaml(YAML, "y.yaml")
    assert_all_located(YAML, data, locs)
    assert "on" in data["dims"]  # YAML 1.1 would make this True; keys are taken as written
    assert data["model"]["nodes"]["dec"]["op"] == "conv_stack"
    assert locs.get(("list", 1, "b")).line == 21
    assert locs.get(("model", "nodes", "enc", "output", "out")).line == 12
    v = locs.value(("losses", "rec"))
    assert (v.line, v.col) == (17, 8)
    v = locs.value(("model", "inputs", "image"))
    assert (v.line, v.col) == (8, 13)
    assert locs.value(("losses", "esc")) is None


@pytest.mark.parametrize("text, line, words", [
    ("a: [1, 2\n", 2, ["malformed YAML"]),
    ("a: b: c\n", 1, ["malformed YAML", "mapping values are not allowed"]),
    ("a: 1\nb: 2\na: 3\n", 3, ["key 'a' is defined twice"]),
    ("- 1\n- 2\n", 1, ["a mapping"]),
    ("a: !!python/object:os.system ls\n", 1, ["malformed YAML"]),
    ("a: &x [*x]\n", 1, ["malformed YAML"]),
])
def test_malformed_yaml(text, line, words):
    with pytest.raises(SpecError) as ei:
        parse_yaml(text, "bad.yaml")
    d = ei.value.diagnostics[0]
    assert d.file == "bad.yaml" and d.line == line
    for w in words:
        assert w in d.format()


def test_read_source_errors(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        read_source(tmp_path / "nope.toml")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(SpecError, match="unknown spec format"):
        read_source(tmp_path / "x.json")
    (tmp_path / "x.toml").write_bytes(b"a = '\xff'")
    with pytest.raises(SpecError, match="UTF-8"):
        read_source(tmp_path / "x.toml")
    (tmp_path / "e.yaml").write_text("")
    assert read_source(tmp_path / "e.yaml").data == {}


# ---- property: the scanner locates every key of generated TOML -------------------------------

_keys = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True) | st.sampled_from(["quoted key", "a.b", "x=y"])
_scalars = st.one_of(st.integers(-5, 5), st.booleans(),
                     st.text(st.sampled_from('ab [] {} = # "\'\\\n'), max_size=8))


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").isalnum() else '"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_value(v, inline_ok=True) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list):
        return "[\n  " + ",\n  ".join(_toml_value(x) for x in v) + ",\n]" if v else "[]"
    return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"


_leaf = st.recursive(_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(_keys, c, max_size=3),
                     max_leaves=6)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(_keys, st.dictionaries(_keys, _leaf, max_size=4), min_size=1, max_size=3),
       st.dictionaries(_keys, _leaf, max_size=3))
def test_scanner_locates_generated_toml(tables, top):
    tables = {k: v for k, v in tables.items() if k not in top}
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in top.items()]
    for name, body in tables.items():
        lines.append(f"\n[{_toml_key(name)}]  # table {name}")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items()]
    text = "\n".join(lines) + "\n"
    data, locs = parse_toml(text, "gen.toml")
    assert data == {**top, **tables}
    for kp in keypaths(data):
        assert kp in locs, (kp, text)


def test_yaml_and_toml_give_the_same_data():
    text = (REPO / "specs" / "slot_attention.toml").read_text()
    data, _ = parse_toml(text)
    ydata, ylocs = parse_yaml(yaml.safe_dump(data, sort_keys=False))
    assert ydata == data


def test_crlf_and_bom(tmp_path):
    text = (REPO / "specs" / "slot_attention.toml").read_text()
    p = tmp_path / "win.toml"
    p.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    src = read_source(p)
    plain, locs = parse_toml(text)
    assert src.data == plain
    kp = ("eval", "datasets", 0, "optional")
    assert (src.locations.get(kp).line, src.locations.get(kp).col) == (locs.get(kp).line, locs.get(kp).col)


# ---- bounds: no spec text can hang the loader or exhaust the stack ---------------------------

def _billion_laughs(levels: int = 9) -> str:
    lines = ["l0: &l0 [" + ", ".join(['"lol"'] * 9) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fmt, text, words", [
    ("yaml", _billion_laughs(), ["aliases stand for more than"]),
    ("yaml", "a: " + "[" * 50_000 + "]" * 50_000 + "\n", ["nested more than"]),
    ("yaml", "a:\n" + "".join(" " * (i + 1) + "- \n" for i in range(400)), ["nested more than"]),
    ("yaml", "a: &a [1, 2]\nb: " + "[" * 20 + "*a" + "]" * 20 + "\nc: &c " + "[" * 20 + "*a" + "]" * 20
     + "\nd: " + "[" * 20 + "*c" + "]" * 20 + "\n", ["nested more than"]),  # depth counts what aliases stand for
    ("toml", "a = " + "[" * 50_000 + "]" * 50_000 + "\n", ["nested more than"]),
    ("toml", "a = " + "{b = " * 5_000 + "1" + "}" * 5_000 + "\n", ["nested more than"]),
    ("toml", "[" + ".".join(["a"] * 20_000) + "]\nx = 1\n", ["nested more than"]),
    ("toml", ".".join(["a"] * 20_000) + " = 1\n", ["nested more than"]),
])
@pytest.mark.timeout(60)   # a hang guard, not a speed test: unbounded, these ran past 90 s
def test_bombs_and_deep_nesting_are_refused_fast(fmt, text, words):
    with pytest.raises(SpecError) as ei:
        parse_source(text, fmt, "bomb." + fmt)
    d = ei.value.diagnostics[0]
    assert d.file == "bomb." + fmt and d.line >= 1 and d.col >= 1, d.format()
    for w in words:
        assert w in d.format()


def test_bounds_leave_ordinary_specs_alone():
    """Aliases within the bound, strings full of brackets and dots, and numbers with dots
    are not nesting."""
    data, _ = parse_yaml("base: &b {op: conv, k: [1, 2, 3]}\nx: {<<: *b, j: [4]}\ny: *b\n", "ok.yaml")
    assert data["x"] == {"op": "conv", "k": [1, 2, 3], "j": [4]} and data["y"]["k"] == [1, 2, 3]
    text = ('a = "' + "[" * 100 + '"\n' + "b = '" + "{" * 100 + "'\n" + 'c = """' + "[." * 100 + '"""\n'
            + "# " + "[" * 100 + "\n" + "d = [1.5, 2.5, 3.5]\n" + "e.f.g = 1979-05-27T07:32:00.999\n")
    data, _ = parse_toml(text, "ok.toml")
    assert data["d"] == [1.5, 2.5, 3.5] and data["a"] == "[" * 100
    nested = "x = " + "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1) + "\n"
    assert parse_source(nested, "toml", "ok.toml").data  # exactly at the bound (x, then the lists)
    with pytest.raises(SpecError, match="nested more than"):
        parse_source("x = " + "[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH + "\n", "toml", "deep.toml")
