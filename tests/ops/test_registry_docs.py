"""Every op is documented: docstring sections, described params, literal init kwargs."""

import inspect

import pytest

import ocdsl.ops
from ocdsl.invariance.transforms import parse_coords
from ocdsl.ops import all_ops, get, names

EXPECTED = {
    "conv_stack", "soft_position_embedding", "rearrange", "mlp", "layer_norm",
    "slot_attention", "spatial_broadcast_decoder", "alpha_composite",
    "patch_embedding", "sincos_position_embedding", "random_masking", "class_tokens",
    "transformer_encoder", "vit_decoder", "object_function", "broadcast_unshuffle", "unpatchify",
    "segformer", "unet_features", "split", "concat", "transformer_refinement",
    "latent_split", "glimpse_generator", "spatial_transformer", "occlusion_composite",
    "background_autoencoder", "gaussian_read", "gaussian_write", "localization_cnn",
    "region_autoencoder", "background_network", "linear", "reduce", "parameter",
    "cross_attention", "learned_position_embedding",
}


def test_importing_the_package_registers_every_op():
    assert EXPECTED <= set(names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_docstring_has_sections(name):
    doc = get(name).doc
    for section in ("Args:", "Shapes:", "Raises:", "Source:"):
        assert section in doc, f"{name}: docstring lacks {section}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_param_has_a_description(name):
    op = get(name)
    schema = op.params_schema()
    for key, prop in schema["properties"].items():
        assert prop.get("description"), f"{name}.{key} has no description"
    assert set(op.required) <= set(schema["properties"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ports_and_symmetries_are_consistent(name):
    op = get(name)
    in_ports = {p.name: p for p in op.inputs}
    assert not op.inputs[0].optional, "the first (default) input port must be required"
    for sym in op.symmetries:
        for port, axis in sym.transform.items():
            if parse_coords(axis) is not None:       # a coordinate input (a DRAW window)
                assert sym.kind == "translation_equivariance", (name, port, axis)
                continue
            assert axis in in_ports[port].signature.split(), (name, port, axis)
        for port in sym.output:
            assert port in op.outputs, (name, port)
        if sym.kind == "permutation_invariance":
            assert all(v is None for v in sym.output.values())


def test_all_ops_have_a_docstring_mentioning_shapes():
    for op in all_ops():
        assert "Shapes" in op.doc, op.name
        assert op.module.__module__.startswith("ocdsl.ops."), op.name
        assert inspect.getdoc(op.module)


def test_package_exports_registry_api():
    assert ocdsl.ops.get("mlp").name == "mlp"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_params_schema_is_valid_json_schema(name):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(get(name).params_schema())


def test_shipped_spec_nodes_fit_the_op_schemas():
    """Every node of specs/slot_attention.toml uses known params, gives the required ones,
    and validates against its op's schema (sizes still as dim names, as written)."""
    import tomllib
    from pathlib import Path

    jsonschema = pytest.importorskip("jsonschema")
    spec = Path(__file__).resolve().parents[2] / "specs" / "slot_attention.toml"
    nodes = tomllib.loads(spec.read_text())["model"]["nodes"]
    node_keys = {"op", "input", "inputs", "output", "share"}
    for node_name, node in nodes.items():
        op = get(node["op"])
        params = {k: v for k, v in node.items() if k not in node_keys}
        unknown = set(params) - set(op.params)
        assert not unknown, f"{node_name}: unknown params {unknown}"
        jsonschema.validate(params, op.params_schema())


# Ops whose primary input port predates the naming rule (docs/internals.md, input port
# names): specs and [[invariances]] name these ports, so they are not renamed.
_OLDER_PORT_NAMES = {"latent_split": "input", "transformer_refinement": "input", "split": "input",
                     "slot_attention": "inputs"}


def test_input_ports_follow_the_naming_rule():
    """A new op names its primary input `x` or after its role, never `input` / `inputs`
    (the spec's node keys): only the older ops listed above keep those names."""
    generic = {op.name: p.name for op in all_ops() for p in op.inputs if p.name in ("input", "inputs")}
    assert generic == _OLDER_PORT_NAMES


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_param_defaults_come_from_the_constructor(name):
    """One place for an op parameter's default: the constructor's signature; the schema's
    ``default`` (what editors and ``ocdsl schema`` show) is read from it."""
    from ocdsl.ops.registry import constructor_defaults

    op = get(name)
    ctor = constructor_defaults(op.module)
    for key, prop in op.params.items():
        if key in ctor:
            assert prop.get("default") == ctor[key], (name, key)
    assert get("slot_attention").params["iterations"]["default"] == 3  # SlotAttention(iterations=3)


def test_a_schema_default_other_than_the_constructors_is_refused():
    from ocdsl.ops.registry import OpDef, integer, register

    class Mod:
        def __init__(self, depth: int = 2):
            self.depth = depth

    op = OpDef(name="_two_defaults", module=Mod, inputs=(), outputs=("out",),
               params={"depth": integer("layers", default=3)}, infer=lambda s, p: {}, init_args=lambda s, p: {})
    with pytest.raises(ValueError, match="'depth' defaults to 3 in its schema but to 2 in Mod"):
        register(op)
    assert "_two_defaults" not in names()


def test_no_op_param_is_shadowed_by_a_node_key():
    """A param named like a node key (``output``, ``input`` ...) could never be set from a
    spec: the node key wins (region_autoencoder's output activation was such a param)."""
    from ocdsl.ops import all_ops
    from ocdsl.spec.schema import NODE_KEYS

    clashes = {op.name: sorted(set(op.params) & set(NODE_KEYS)) for op in all_ops()}
    assert not {k: v for k, v in clashes.items() if v}
