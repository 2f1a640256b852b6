"""The JSON Schema: well-formed, documented, wired to the op registry."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from jsonschema import Draft202012Validator

from ocdsl.ops import registry
from ocdsl.spec.schema import spec_schema

REPO = Path(__file__).resolve().parents[2]


def _walk_properties(schema, path=""):
    """Yield (path, subschema) for every entry of every `properties` map."""
    if isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            yield f"{path}.{name}", sub
        for key, sub in schema.items():
            if key in ("properties",):
                for name, s in sub.items():
                    yield from _walk_properties(s, f"{path}.{name}")
            elif isinstance(sub, (dict, list)):
                yield from _walk_properties(sub, f"{path}/{key}")
    elif isinstance(schema, list):
        for i, s in enumerate(schema):
            yield from _walk_properties(s, f"{path}[{i}]")


def test_schema_is_valid_and_serialisable():
    schema = spec_schema()
    Draft202012Validator.check_schema(schema)
    assert json.loads(json.dumps(schema)) == schema


def test_every_property_has_a_description():
    schema = spec_schema()  # every registered op's parameters included
    missing = [p for p, sub in _walk_properties(schema) if "description" not in sub and "/if" not in p]
    assert not missing, missing


def test_shipped_spec_validates():
    data = tomllib.loads((REPO / "specs" / "slot_attention.toml").read_text())
    errors = list(Draft202012Validator(spec_schema()).iter_errors(data))
    assert not errors, [e.message for e in errors]


def test_op_params_come_from_the_registry():
    schema = spec_schema()
    branches = schema["$defs"]["node"]["allOf"]
    by_op = {b["if"]["properties"]["op"]["const"]: b["then"] for b in branches}
    assert set(by_op) == set(registry.names()) | {"repeat"}   # repeat: the loop of [blocks]
    lin = by_op["toy_linear"]
    assert lin["additionalProperties"] is False
    assert {"width", "hidden", "bias", "op", "input", "inputs", "output", "share"} <= set(lin["properties"])
    assert lin["required"] == ["width"]
    assert set(lin["properties"]["inputs"]["properties"]) == {"x"}
    node = {"$defs": schema["$defs"], **schema["$defs"]["node"]}
    validator = Draft202012Validator(node)
    assert validator.is_valid({"op": "toy_linear", "input": "x", "width": 3})
    assert not validator.is_valid({"op": "toy_linear", "input": "x", "width": 3, "widht": 3})
    assert not validator.is_valid({"op": "toy_linear", "width": 3, "output": {"nope": "B"}})
    assert not validator.is_valid({"op": "no_such_op"})


def test_patterns_have_their_ecma_meaning():
    """JSON Schema patterns are ECMA-262: `$` is the end of the text, not 'before a final
    newline' as in Python, so a name with a trailing line break fails the identifier grammar."""
    from ocdsl.spec.schema import IDENT
    from ocdsl.spec.validate import pattern_matches

    assert pattern_matches(IDENT, "enc_1")
    for bad in ("enc\n", "enc\r\n", "1enc", "en c", "enc\x00", "enc\u2028", ""):
        assert not pattern_matches(IDENT, bad), repr(bad)
    assert pattern_matches(r"^[$]x$", "$x") and not pattern_matches(r"^[$]x$", "$x\n")
    assert pattern_matches(r"^a\$$", "a$") and not pattern_matches(r"^a\$$", "a$\n")


def test_the_schema_and_its_validators_are_built_once_per_set_of_ops(toy_spec, monkeypatch):
    """Loading again reuses the validators (the schema is not rebuilt); another set of
    registered ops gets its own; the cached schema is never modified by validation, and
    what spec_schema() returns is the caller's to change."""
    from dataclasses import replace

    from ocdsl.spec import load
    from ocdsl.spec import schema_errors

    built = []
    real = schema_errors.spec_schema
    monkeypatch.setattr(schema_errors, "spec_schema", lambda ops=None: built.append(1) or real(ops))
    schema_errors._validators.cache_clear()
    mine = spec_schema()
    mine["properties"].clear()                     # a caller's copy: validation does not see it
    load(toy_spec)
    load(toy_spec)
    assert len(built) == 1
    outer, per_op = schema_errors._validators(schema_errors._OpsKey(registry.all_ops()))
    fresh_outer, fresh_per_op = schema_errors._dispatch_node_branches(real())
    assert outer.schema == fresh_outer and {k: v.schema for k, v in per_op.items()} == fresh_per_op
    extra = replace(registry.get("toy_linear"), name="toy_linear_twin")
    registry.register(extra)
    try:
        load(toy_spec)
        assert len(built) == 2
        assert "toy_linear_twin" in schema_errors._validators(schema_errors._OpsKey(registry.all_ops()))[1]
    finally:
        registry._REGISTRY.pop("toy_linear_twin", None)
    load(toy_spec)
    assert len(built) == 2                          # the first set of ops again: still cached
