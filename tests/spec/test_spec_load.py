"""load(): the whole front end on small specs built from toy ops."""

from __future__ import annotations

import pytest

from ocdsl.errors import SpecError, UserError
from ocdsl.spec import expr as E
from ocdsl.spec import load, loads
from ocdsl.spec.model import Ref

from spec_toys import TOY_SPEC


def test_load_builds_the_spec(toy_spec):
    spec = load(toy_spec)
    assert spec.name == "toy"
    assert spec.dims == {"N": 6, "I": 4, "D": 8, "W": 16}
    assert spec.inputs["x"].groups == (("B",), ("N",), ("I",))
    assert list(spec.nodes) == ["lin", "split"]
    lin, split = spec.nodes["lin"], spec.nodes["split"]
    assert lin.op == "toy_linear" and lin.inputs == {"x": Ref("x", None, "x", ("model", "nodes", "lin", "input"))}
    assert lin.params == {"width": "D", "hidden": ["W", 3]}
    assert set(lin.outputs) == {"out"} and lin.outputs["out"].text == "B N D"
    assert lin.keypath == ("model", "nodes", "lin")
    assert split.inputs["b"].node == "lin" and split.inputs["b"].port == "out"
    assert split.inputs["b"].keypath == ("model", "nodes", "split", "inputs", "b")
    assert set(split.outputs) == {"left", "right"}
    assert isinstance(spec.losses["total"], E.BinOp)
    assert spec.schedules["warmup"] == E.Num(100)
    assert E.evaluate(spec.schedules["weight"], {"step": 50, "warmup": 100}) == 0.5
    assert spec.train.loss == "total" and spec.data_cfg.table == {"dataset": "toy"}
    assert len(spec.source_hash) == 64 and not spec.warnings
    d = spec.diag(("model", "nodes", "lin", "width"), "boom")
    assert d.line == 16 and d.col == 1 and d.file == str(toy_spec)


def test_hash_and_name(write, toy_spec):
    a = load(toy_spec)
    b = load(write("other/copy.toml", TOY_SPEC.replace("# nothing", "")))
    assert a.source_hash == b.source_hash
    c = load(toy_spec, overrides=["train.steps=11"])
    assert c.source_hash != a.source_hash and c.train.steps == 11
    nameless = write("nameless.toml", TOY_SPEC.replace('name = "toy"', ""))
    assert load(nameless).name == "nameless"


def test_yaml_spec_equals_toml(write, toy_spec):
    import tomllib, yaml
    data = tomllib.loads(TOY_SPEC)
    y = write("toy.yaml", yaml.safe_dump(data, sort_keys=False))
    assert load(y).source_hash == load(toy_spec).source_hash


def test_loads_and_extends(write, tmp_path):
    write("base.toml", TOY_SPEC)
    spec = loads('extends = "base.toml"\n[dims]\nD = 4\n', base_dir=tmp_path, file="v.toml")
    assert spec.dims["W"] == 8
    assert spec.name == "v"                  # meta.name is not inherited through extends
    named = loads('extends = "base.toml"\n[meta]\nname = "mine"\n', base_dir=tmp_path, file="v.toml")
    assert named.name == "mine" and named.meta["name"] == "mine"
    assert loads('extends = "base.toml"', base_dir=tmp_path, file="v.toml", overrides=["meta.name=o"]).name == "o"


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load(tmp_path / "nope.toml")


def errors_of(write, text, overrides=None):
    p = write("s.toml", text)
    with pytest.raises(SpecError) as ei:
        load(p, overrides=overrides)
    return ei.value


def test_all_errors_reported_together(write):
    bad = TOY_SPEC.replace('width = "D"', 'width = "DD"').replace('loss = "total"', 'loss = "totl"') \
        .replace("batch_size = 4", 'batch_size = "4"').replace("[eval]", "[evall]")
    err = errors_of(write, bad)
    text = err.format()
    assert "unknown size 'DD'" in text and "did you mean 'D'?" in text
    assert "train.loss names no loss 'totl'" in text and "did you mean 'total'?" in text
    assert "[train.batch_size] expected an integer, got a string ('4')" in text
    assert "unknown key 'evall'" in text and "did you mean 'eval'?" in text
    assert len(err.errors) == 4
    lines = [d.line for d in err.diagnostics]
    assert lines == sorted(lines) and all(lines)


@pytest.mark.parametrize("old, new, words", [
    ('width = "D"', 'width = "D"\nwidht = 3', ["unknown key 'widht' for op 'toy_linear'", "did you mean 'width'?"]),
    ('op = "toy_linear"', 'op = "toy_linaer"', ["unknown op 'toy_linaer'", "did you mean 'toy_linear'?"]),
    ('inputs = { a = "lin", b = "lin.out" }', 'inputs = { a = "lin", bb = "lin.out" }',
     ["op 'toy_split' has no input port 'bb'"]),
    ('output = { left = "B N D", right = "B N D" }', 'output = { left = "B N D", rigth = "B N D" }',
     ["op 'toy_split' has no output 'rigth'", "did you mean 'right'?"]),
    ('width = "D"', "", ["op 'toy_linear' needs parameter 'width'"]),
    ('width = "D"', "width = 0", ["out of range: must be >= 1"]),
    ('width = "D"', "width = true", ["expected an integer or a string, got a boolean"]),
    ('hidden = ["W", 3]', 'hidden = ["W", "Q"]', ["unknown size 'Q' in hidden[1]"]),
    ('W = "D * 2"', 'W = "D - 8"', ["evaluates to 0; a size must be positive"]),
    ('W = "D * 2"', 'W = "Z * 2"\nZ = 3', ["dim 'Z' is used before it is defined"]),
    ('W = "D * 2"', 'W = "D / 3"', ["not a whole number", "use // for integer division"]),
    ('W = "D * 2"', 'W = "step"', ["cannot depend on 'step'"]),
    ('x = "B N I"', 'x = "B N I J"', ["unknown size 'J' in signature 'B N I J'"]),
    ('x = "B N I"', 'x = "B (N I"', ["bad shape signature", "missing ')'"]),
    ('rec = "mean(split.left) + mean(split.right)"', 'rec = "mean(split.lft)"',
     ["node 'split' (toy_split) has no output 'lft'", "did you mean 'left'?"]),
    ('rec = "mean(split.left) + mean(split.right)"', 'rec = "mean(splt.left)"',
     ["unknown node 'splt'", "did you mean 'split'?"]),
    ('rec = "mean(split.left) + mean(split.right)"', 'rec = "mean(x.left)"', ["model input 'x' has no ports"]),
    ('total = "rec * weight"', 'total = "rec * wieght"', ["unknown name 'wieght'", "did you mean 'weight'?"]),
    ('total = "rec * weight"', 'total = "rec *"', ["unexpected end of expression"]),
    ('total = "rec * weight"', 'total = "rec * mse(1)"', ["mse() takes 2 arguments, got 1"]),
    ('total = "rec * weight"', 'total = "total + rec"', ["cycle: total -> total"]),
    ('total = "rec * weight"', 'total = "rec * weight"\nr2 = "r3"\nr3 = "r2"', ["cycle: r2 -> r3 -> r2"]),
    ('lr = "1e-3 * weight"', 'lr = "1e-3 * rec"', ["schedule 'lr' cannot use the loss 'rec'"]),
    ('lr = "1e-3 * weight"', 'lr = "1e-3 * lin.out"', ["cannot use the node output 'lin.out'"]),
    ('lr = "lr" }', 'lr = "lrr" }', ["unknown name 'lrr' in the learning rate", "did you mean 'lr'?"]),
    ('masks = "split.left"', 'masks = "split.masks"', ["has no output 'masks'"]),
    ('masks = "split.left"', 'masks = "x"', ["must be a node output"]),
    ('masks = "split.left"', 'masks = "split.left.x"', ["is not a tensor reference"]),
    ('metrics = ["mse"]', 'metrics = ["mse", "arii"]', ["'arii' is not one of", "did you mean 'ari'?"]),
    ('name = "adam"', 'name = "adamm"', ["'adamm' is not one of 'adam', 'adamw', 'sgd'"]),
    ('[dims]', '[dims]\nstep = 3', ["'step' is reserved"]),
    ('[dims]', '[dims]\nrec = 3', ["'rec' is both a dim and a loss"]),
    ('[dims]', '[dims]\n3x = 3', ["'3x' is not a valid name"]),
    ('loss = "total"', '', ["train.loss is missing"]),
    ('op = "toy_linear"', 'op = "toy_linear"\nshare = "lin2"', ["'share' names no node 'lin2'"]),
    ('op = "toy_linear"', 'op = "toy_linear"\nshare = "split"', ["the ops differ"]),
    ('input = "x"', 'input = "x"\ninputs = { x = "x" }', ["either 'input' or 'inputs'"]),
])
def test_error_messages(write, old, new, words):
    assert old in TOY_SPEC
    err = errors_of(write, TOY_SPEC.replace(old, new, 1))
    text = err.format()
    for w in words:
        assert w in text, text
    assert all(d.line for d in err.errors), text


def test_expression_errors_point_into_the_string(write):
    text = TOY_SPEC.replace('total = "rec * weight"', 'total = "rec * wieght"')
    d = errors_of(write, text).errors[0]
    line = text.split("\n")[d.line - 1]
    assert line[d.col - 1:].startswith("wieght")


def test_phases_and_invariances(write):
    text = TOY_SPEC + """
[[train.phases]]
name = "warm"
steps = 5
loss = "rec"
frozen = ["lin"]
trainable = ["lin", "splt"]

[[invariances]]
kind = "permutation_equivariance"
node = "split"
port = "lft"
axis = "N"

[[invariances]]
kind = "translation_invariance"
node = "nope"
axis = "N"
"""
    err = errors_of(write, text)
    t = err.format()
    assert "node 'lin' is both trainable and frozen" in t
    assert "trainable: no node 'splt'" in t
    assert "give either trainable or frozen, not both" in t
    assert "node 'split' (toy_split) has no output 'lft'" in t
    assert "no node 'nope'" in t
    ok = load(write("ok.toml", text.replace('"splt"', '"split"').replace('trainable = ["lin", ', 'trainable = [')
                    .replace('frozen = ["lin"]\n', '')
                    .replace('"lft"', '"left"').replace('"nope"', '"split"')))
    assert [w.message for w in ok.warnings] == ["train.steps is ignored: the phases' steps are used"]


def test_override_errors_are_located_at_the_override(write, toy_spec):
    with pytest.raises(SpecError) as ei:
        load(toy_spec, overrides=["train.batch_size=big", "train.stpes=3"])
    t = ei.value.format()
    assert "--set train.batch_size=big: error: [train.batch_size] expected an integer, got a string ('big')" in t
    assert "--set train.stpes=3: error: [train.stpes] unknown key 'stpes'" in t
