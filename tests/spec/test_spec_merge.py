"""extends and --set overrides."""

from __future__ import annotations

import pytest

from ocdsl.errors import SpecError
from ocdsl.spec.merge import load_merged, parse_override


def test_extends_chain_deep_merges_and_moves_locations(write):
    write("base.toml", """\
        [dims]
        H = 8
        K = 4
        [train]
        steps = 100
        optimizer = { name = "adam", lr = 1e-3 }
        [eval]
        metrics = ["ari", "mse"]
        """)
    write("mid.toml", """\
        extends = "base.toml"
        [dims]
        K = 5
        """)
    leaf = write("v/leaf.toml", """\
        extends = "../mid.toml"
        [train.optimizer]
        lr = 5e-4
        [eval]
        metrics = ["ari_fg"]
        """)
    m = load_merged(leaf)
    assert m.data["dims"] == {"H": 8, "K": 5}
    assert m.data["train"] == {"steps": 100, "optimizer": {"name": "adam", "lr": 5e-4}}
    assert m.data["eval"]["metrics"] == ["ari_fg"]          # arrays replace
    assert "extends" not in m.data
    L = m.locations
    assert L.get(("dims", "K")).file.endswith("mid.toml")
    assert L.get(("dims", "H")).file.endswith("base.toml")
    assert L.get(("train", "optimizer", "lr")).file.endswith("leaf.toml")
    assert L.get(("train", "optimizer", "name")).file.endswith("base.toml")
    assert L.get(("eval", "metrics", 0)).file.endswith("leaf.toml")
    assert (("eval", "metrics", 1)) not in L                 # the parent's second entry is gone
    assert len(m.files) == 3


def test_a_node_whose_op_changes_is_replaced_not_merged(write):
    write("base.toml", """\
        [model.nodes.features]
        op = "segformer"
        input = "image"
        variant = "b0"
        [model.nodes.refine]
        op = "transformer_refinement"
        input = "features"
        layers = 6
        """)
    leaf = write("leaf.toml", """\
        extends = "base.toml"
        [model.nodes.features]
        op = "unet_features"
        input = "image"
        [model.nodes.refine]
        layers = 0
        """)
    m = load_merged(leaf)
    assert m.data["model"]["nodes"]["features"] == {"op": "unet_features", "input": "image"}
    assert ("model", "nodes", "features", "variant") not in m.locations
    # the same op: params merge as usual
    assert m.data["model"]["nodes"]["refine"] == {"op": "transformer_refinement", "input": "features",
                                                  "layers": 0}


def test_a_block_node_whose_op_changes_is_replaced_and_data_still_merges(write):
    write("base.toml", """\
        [blocks.step.nodes.where]
        op = "localization_cnn"
        channels = [8]
        hidden = [64]
        [data]
        dataset = "tetrominoes"
        range = [-1.0, 1.0]
        """)
    leaf = write("leaf.toml", """\
        extends = "base.toml"
        [blocks.step.nodes.where]
        op = "mlp"
        hidden = [32]
        [data]
        dataset = "clevr_with_masks"
        path = "clevr.tfrecords"
        """)
    m = load_merged(leaf)
    assert m.data["blocks"]["step"]["nodes"]["where"] == {"op": "mlp", "hidden": [32]}
    # [data] merges key by key even when the dataset changes (CLEVR6 variants keep the range)
    assert m.data["data"] == {"dataset": "clevr_with_masks", "path": "clevr.tfrecords", "range": [-1.0, 1.0]}


def test_extends_errors(write):
    a = write("a.toml", 'extends = "b.toml"\n')
    write("b.toml", 'extends = "a.toml"\n')
    with pytest.raises(SpecError, match=r"'extends' cycle: b.toml -> a.toml -> b.toml|'extends' cycle"):
        load_merged(a)
    me = write("me.toml", 'extends = "me.toml"\n')
    with pytest.raises(SpecError, match="cycle"):
        load_merged(me)
    miss = write("miss.toml", '\n\nextends = "nope/base.toml"\n')
    with pytest.raises(SpecError) as ei:
        load_merged(miss)
    d = ei.value.diagnostics[0]
    assert "no such file 'nope/base.toml'" in d.message and d.line == 3
    bad = write("bad.toml", "extends = 3\n")
    with pytest.raises(SpecError, match="must be a path"):
        load_merged(bad)


@pytest.mark.parametrize("text, path, value", [
    ("train.steps=10", ("train", "steps"), 10),
    ("dims.K=5", ("dims", "K"), 5),
    ('train.optimizer.lr="1e-3"', ("train", "optimizer", "lr"), "1e-3"),
    ("train.optimizer.lr=1e-3", ("train", "optimizer", "lr"), 1e-3),
    ("data.dataset=multi_dsprites", ("data", "dataset"), "multi_dsprites"),
    ("losses.total=rec + 0.1 * kl", ("losses", "total"), "rec + 0.1 * kl"),
    ("eval.metrics=[\"ari\", \"mse\"]", ("eval", "metrics"), ["ari", "mse"]),
    ("train.optimizer={name = \"sgd\", lr = 0.1}", ("train", "optimizer"), {"name": "sgd", "lr": 0.1}),
    ("eval.datasets[0].optional=false", ("eval", "datasets", 0, "optional"), False),
    ('model.nodes."my node".kernel = 3', ("model", "nodes", "my node", "kernel"), 3),
])
def test_parse_override(text, path, value):
    assert parse_override(text) == (path, value)


def test_overrides_apply_with_locations(write):
    p = write("s.toml", """\
        [train]
        steps = 100
        [[eval.datasets]]
        name = "a"
        """)
    m = load_merged(p, ["train.steps=10", "train.batch_size=4", "eval.datasets.0.name=b", "new.table.key=1"])
    assert m.data["train"] == {"steps": 10, "batch_size": 4}
    assert m.data["eval"]["datasets"][0]["name"] == "b"
    assert m.data["new"] == {"table": {"key": 1}}
    assert m.locations.get(("train", "steps")).file == "--set train.steps=10"


@pytest.mark.parametrize("override, words", [
    ("train.steps", "expected KEY.PATH=VALUE"),
    ("=3", "key path before '=' is empty"),
    ("train.steps.x=1", "train.steps is a number"),
    ("eval.datasets.3.name=x", "has 1 entry, there is no [3]"),
    ("eval.datasets.name=x", "is a list"),
    ("train[0]=1", "is a table, not a list"),
    ("a..b=1", "cannot read the key path"),
    ("a.=1", "ends with '.'"),
    ("extends=x.toml", "cannot be overridden"),
])
def test_bad_overrides(write, override, words):
    p = write("s.toml", '[train]\nsteps = 1\n[[eval.datasets]]\nname = "a"\n')
    with pytest.raises(SpecError) as ei:
        load_merged(p, [override])
    d = ei.value.diagnostics[0]
    assert d.file == "--set"
    assert words in d.message and f"'{override}'" in d.message


def test_all_bad_overrides_reported(write):
    p = write("s.toml", "[train]\nsteps = 1\n")
    with pytest.raises(SpecError) as ei:
        load_merged(p, ["nope", "train.steps.x=1"])
    assert len(ei.value.diagnostics) == 2


def test_a_cycle_closed_by_a_variant_or_override_is_reported_there(write):
    """The cycle is named from the member set last: the variant's key, or the override's."""
    from ocdsl.spec import load

    write("base.toml", """\
        [schedules]
        a = "b + 1"
        b = "step"
        c = "step"
        """)
    leaf = write("v/leaf.toml", """\
        extends = "../base.toml"
        [schedules]
        b = "2 * a"
        """)
    with pytest.raises(SpecError) as ei:
        load(leaf)
    (d,) = [d for d in ei.value.diagnostics if "cycle" in d.message]
    assert (d.file, d.line, d.keypath) == (str(leaf), 3, ("schedules", "b"))
    assert "b -> a -> b" in d.message
    with pytest.raises(SpecError) as ei:
        load(leaf, ["schedules.c=a", "schedules.b=c"])
    (d,) = [d for d in ei.value.diagnostics if "cycle" in d.message]
    assert d.file.startswith("--set") and d.keypath[0] == "schedules"


@pytest.mark.parametrize("text, words", [
    ("a=" + "[" * 5000 + "]" * 5000, "the value nests more than 32 levels deep"),
    (".".join(["a"] * 5000) + "=1", "the key path is more than 32 keys long"),
])
def test_override_nesting_is_bounded(text, words):
    with pytest.raises(SpecError) as ei:
        parse_override(text)
    assert words in ei.value.format() and ei.value.diagnostics[0].file == "--set"


# ---- unset ----------------------------------------------------------------------------------

_UNSET_BASE = """\
    [dims]
    H = 8
    [data]
    dataset = "mnist_scenes"
    digits = "digits.csv"
    seed = 3
    [model.nodes.refine]
    op = "transformer_refinement"
    layers = 6
    [eval]
    metrics = ["ari"]
    """


def test_unset_removes_inherited_keys_before_the_variant_merges(write):
    """unset acts on the merged base, then the variant's tables merge on top: a table unset
    and written again is replaced whole; the removed keys' locations go too."""
    write("base.toml", _UNSET_BASE)
    leaf = write("v/leaf.toml", """\
        extends = "../base.toml"
        unset = ["data.digits", "model.nodes.refine"]
        [model.nodes.refine]
        op = "identity"
        """)
    m = load_merged(leaf)
    assert m.data["data"] == {"dataset": "mnist_scenes", "seed": 3}
    assert m.data["model"]["nodes"]["refine"] == {"op": "identity"}   # not merged with layers = 6
    assert "unset" not in m.data and "extends" not in m.data
    assert ("data", "digits") not in m.locations
    assert ("model", "nodes", "refine", "layers") not in m.locations
    assert m.locations.get(("model", "nodes", "refine", "op")).file.endswith("leaf.toml")


def test_unset_through_a_chain_and_keeps_the_parent_intact(write):
    """A middle spec's unset holds for the specs that extend it; the base itself still has
    the key (nothing is modified in place)."""
    base = write("base.toml", _UNSET_BASE)
    write("mid.toml", 'extends = "base.toml"\nunset = ["data.digits"]\n')
    leaf = write("leaf.toml", 'extends = "mid.toml"\nunset = ["data.seed"]\n')
    assert load_merged(leaf).data["data"] == {"dataset": "mnist_scenes"}
    assert load_merged(base).data["data"]["digits"] == "digits.csv"


@pytest.mark.parametrize("entry, words, hint", [
    ("data.digit", "the base spec has no key 'data.digit'", "did you mean 'data.digits'?"),
    ("data.nope.x", "no key 'data.nope.x' (it has no 'data.nope')", "data has: dataset, digits, seed"),
    ("eval.metrics.x", "eval.metrics is a list: 'unset' removes table keys", "set eval.metrics"),
    ("dims.H.x", "dims.H is a number, it has no key 'x'", "unset dims.H itself"),
    ("a..b", "cannot read the key path", "dotted names"),
])
def test_unset_errors_are_located_at_the_entry(write, entry, words, hint):
    write("base.toml", _UNSET_BASE)
    leaf = write("leaf.toml", f'extends = "base.toml"\n\nunset = ["data.digits",\n  "{entry}"]\n')
    with pytest.raises(SpecError) as ei:
        load_merged(leaf)
    (d,) = ei.value.diagnostics
    assert (d.file, d.line, d.col, d.keypath) == (str(leaf), 4, 3, ("unset", 1))
    assert words in d.message and hint in d.hint


def test_unset_without_extends_or_not_a_list_or_overridden(write):
    alone = write("alone.toml", '\nunset = ["dims.H"]\n[dims]\nH = 1\n')
    with pytest.raises(SpecError, match="this spec extends nothing") as ei:
        load_merged(alone)
    assert ei.value.diagnostics[0].line == 2
    write("base.toml", _UNSET_BASE)
    bad = write("bad.toml", 'extends = "base.toml"\nunset = "data.digits"\n')
    with pytest.raises(SpecError, match="must be a list of key paths"):
        load_merged(bad)
    with pytest.raises(SpecError, match="'unset' cannot be overridden"):
        load_merged(write("ok.toml", 'extends = "base.toml"\n'), ['unset=["dims.H"]'])


def test_unset_in_yaml(write):
    write("base.toml", _UNSET_BASE)
    leaf = write("leaf.yaml", "extends: base.toml\nunset: [data.digits, data.seed]\n")
    assert load_merged(leaf).data["data"] == {"dataset": "mnist_scenes"}
