"""JSON Schema validation of a spec and its errors as located, human diagnostics.

``SpecValidator`` is Draft 2020-12 with ECMA-262 patterns; ``schema_diagnostics`` runs it
(each node against its own op's branch only) and turns every violation into a Diagnostic at
the key it is about, with a did-you-mean hint where one helps. Also the schema markers of op
parameters (``x-size``, ``x-schedule``, ``x-dynamic-size``). Moved out of validate.py
unchanged; validate.py re-exports the public names.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterable, Mapping

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from ocdsl.errors import Diagnostic, did_you_mean, format_keypath
from ocdsl.ops import registry
from ocdsl.ops.registry import OpDef
from ocdsl.spec import blocks
from ocdsl.spec.config import OPTIMIZERS
from ocdsl.spec.model import Locations
from ocdsl.spec.schema import IDENT, REF_PATTERN, REWRITES, spec_schema

__all__ = ["SpecValidator", "pattern_matches", "schema_diagnostics", "is_size_schema", "is_schedule_schema",
           "dynamic_size_params", "dynamic_size_names"]


# ---- JSON Schema patterns, with their ECMA-262 meaning ---------------------------------------

@functools.lru_cache(maxsize=256)
def _ecma(pattern: str) -> re.Pattern:
    """``pattern`` (an ECMA-262 regex, as JSON Schema patterns are) compiled for Python's
    ``re``: outside a character class, ``$`` becomes ``\\Z``. In ECMA-262 (no ``m`` flag) ``$``
    is the end of the text; Python's ``$`` also matches before a final newline, so
    ``"enc\\n"`` would pass ``^[A-Za-z_][A-Za-z0-9_]*$``."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        out.append("\\Z" if c == "$" and not in_class else c)
        i += 1
    return re.compile("".join(out))


def pattern_matches(pattern: str, text: str) -> bool:
    """Whether ``text`` matches the JSON Schema ``pattern`` (searched, ECMA-262 ``$``)."""
    return _ecma(pattern).search(text) is not None


def _pattern_keyword(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not pattern_matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties_keyword(validator, patterns, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for k, v in instance.items():
            if pattern_matches(pattern, k):
                yield from validator.descend(v, subschema, path=k, schema_path=pattern)


#: Draft 2020-12 with ``pattern`` / ``patternProperties`` read as ECMA-262 (see :func:`_ecma`).
SpecValidator = validators.extend(Draft202012Validator, {"pattern": _pattern_keyword,
                                                         "patternProperties": _pattern_properties_keyword})


# ---- JSON Schema errors -> human diagnostics ------------------------------------------------

_TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a table", "null": "nothing"}


def _describe(v: Any) -> str:
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, int):
        return f"an integer ({v})"
    if isinstance(v, float):
        return f"a number ({v})"
    if isinstance(v, str):
        return f"a string ({v!r})"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a table"
    return type(v).__name__


def _types(schema: Mapping[str, Any]) -> list[str]:
    t = schema.get("type")
    if isinstance(t, str):
        return [t]
    if isinstance(t, list):
        return list(t)
    if "enum" in schema:
        return ["one of " + ", ".join(repr(x) for x in schema["enum"])]
    if "const" in schema:
        return [repr(schema["const"])]
    return []


def _join_or(words: list[str]) -> str:
    words = list(dict.fromkeys(words))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def is_schedule_schema(prop: Any) -> bool:
    """Whether an op parameter schema is schedulable (marked ``"x-schedule": true``)."""
    return isinstance(prop, Mapping) and bool(prop.get("x-schedule"))


def dynamic_size_params(nodes: Mapping[str, Any], ops: Mapping[str, OpDef]) -> list[tuple[str, str, str]]:
    """``(node, param, name)`` for every run-time size the nodes' ops introduce (params
    marked ``"x-dynamic-size"``, their default included), in spec order."""
    out = []
    for name, table in nodes.items():
        op = ops.get(table.get("op")) if isinstance(table, dict) else None
        if op is None:
            continue
        for key, prop in op.params.items():
            if isinstance(prop, Mapping) and prop.get("x-dynamic-size"):
                value = table.get(key, prop.get("default"))
                if isinstance(value, str) and pattern_matches(IDENT, value):
                    out.append((name, key, value))
    return out


def dynamic_size_names(nodes: Mapping[str, Any], ops: Mapping[str, OpDef]) -> dict[str, str]:
    """Run-time size name -> the first node naming it."""
    out: dict[str, str] = {}
    for node, _, value in dynamic_size_params(nodes, ops):
        out.setdefault(value, node)
    return out


def is_size_schema(prop: Any) -> bool:
    """Whether an op parameter schema is a size (marked ``"x-size": true``)."""
    return isinstance(prop, Mapping) and (bool(prop.get("x-size")) or
                                          any(is_size_schema(p) for p in prop.get("anyOf", ())))


def schema_diagnostics(data: Any, locations: Locations, schema: Mapping[str, Any] | None = None,
                       ops: Mapping[str, OpDef] | None = None) -> list[Diagnostic]:
    """Every JSON Schema violation of ``data`` as a human-readable Diagnostic.

    The node schema's per-op ``if/then`` branches (``$defs.node.allOf``) are not run for
    every node against every op: each node is validated against its own op's branch only,
    which gives the same errors in time linear in the number of nodes, independent of the
    number of registered ops. Without ``schema``, the schema of ``ops`` (default: every
    registered op) and its validators are built once per set of ops (:func:`_validators`);
    a ``schema`` passed in is validated with validators built for this call."""
    ops = {o.name: o for o in registry.all_ops()} if ops is None else ops
    if schema is None:
        outer_validator, validators = _validators(_OpsKey(ops.values()))
    else:
        outer, per_op = _dispatch_node_branches(schema)
        outer_validator, validators = SpecValidator(outer), {op: SpecValidator(b) for op, b in per_op.items()}
    out: list[Diagnostic] = []
    for err in outer_validator.iter_errors(data):
        out += _from_error(err, data, locations, ops)
    for where, node in blocks.node_tables(data):      # the model's nodes and every block's
        op = node.get("op") if isinstance(node, dict) else None
        if not isinstance(op, str) or op not in validators:
            continue
        for err in validators[op].iter_errors(node):
            err.path.extendleft(reversed(where))   # located in the whole spec
            out += _from_error(err, data, locations, ops)
    return out


class _OpsKey:
    """The ops a schema is built from, as a cache key compared by identity (an OpDef holds
    dicts, so it does not hash). Holding the ops keeps their ids from being reused while a
    cache entry lives: a test that registers an op of its own gets its own entry."""

    __slots__ = ("ops", "_ids")

    def __init__(self, ops: Iterable[OpDef]):
        self.ops = tuple(ops)
        self._ids = tuple(map(id, self.ops))

    def __hash__(self) -> int:
        return hash(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _OpsKey) and self._ids == other._ids


@functools.lru_cache(maxsize=8)
def _validators(key: _OpsKey) -> tuple[Any, dict[str, Any]]:
    """The validator of the spec schema over ``key.ops`` without the node's per-op branches,
    and op name -> the validator of that op's branch: built once per set of ops (building
    the schema was about a third of a spec's load time). The schema lives only inside these
    validators, which never modify it; ``spec_schema()`` still gives callers a fresh copy."""
    outer, per_op = _dispatch_node_branches(spec_schema(list(key.ops)))
    return SpecValidator(outer), {op: SpecValidator(branch) for op, branch in per_op.items()}


def _dispatch_node_branches(schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], dict[str, dict]]:
    """``schema`` without the node's per-op branches, and op name -> that op's branch as a
    schema of one node (sharing ``$defs``)."""
    defs = schema.get("$defs") or {}
    node = defs.get("node")
    if not isinstance(node, Mapping) or "allOf" not in node:
        return schema, {}
    per_op: dict[str, dict] = {}
    for branch in node["allOf"]:
        const = branch.get("if", {}).get("properties", {}).get("op", {}).get("const")
        if const is None:                    # not a dispatch branch: keep the general path
            return schema, {}
        per_op[const] = {"$defs": defs, "type": "object", **branch["then"]}
    outer = dict(schema)
    outer["$defs"] = {**defs, "node": {k: v for k, v in node.items() if k != "allOf"}}
    return outer, per_op


def _diag(locations: Locations, keypath: tuple, message: str, hint: str | None = None,
          severity: str = "error") -> Diagnostic:
    loc = locations.get(keypath)
    return Diagnostic(message, file=loc.file, line=loc.line, col=loc.col, keypath=tuple(keypath), hint=hint,
                      severity=severity)


def _node_op(data: Any, path: tuple) -> str | None:
    """The op name of the node ``path`` is in, when path is inside model.nodes.<name>
    (or blocks.<block>.nodes.<name>)."""
    if len(path) >= 5 and path[0] == "blocks" and path[2] == "nodes" and isinstance(data, dict):
        node = ((data.get("blocks") or {}).get(path[1]) or {}).get("nodes", {}).get(path[3])
        return node.get("op") if isinstance(node, dict) and isinstance(node.get("op"), str) else None
    if len(path) >= 3 and path[0] == "model" and path[1] == "nodes":
        node = data.get("model", {}).get("nodes", {}).get(path[2]) if isinstance(data, dict) else None
        if isinstance(node, dict) and isinstance(node.get("op"), str):
            return node["op"]
    return None


def _from_error(err: ValidationError, data: Any, locs: Locations, ops: Mapping[str, OpDef]) -> list[Diagnostic]:
    path = tuple(err.absolute_path)
    v = err.validator
    inst = err.instance
    schema_path = list(err.relative_schema_path)

    if "propertyNames" in schema_path:
        return [_diag(locs, path + (inst,), f"{inst!r} is not a valid name",
                      "names use letters, digits and '_' and do not start with a digit")]

    if v == "additionalProperties" and isinstance(inst, dict) and err.schema.get("x-optimizer"):
        return _optimizer_options(err, path, inst, locs)

    if v == "additionalProperties" and isinstance(inst, dict):
        return _unknown_keys(err, path, inst, data, locs, ops)

    if v == "required":
        return [_missing_key(err, path, data, locs, ops)]

    if v == "enum":
        return [_not_one_of(err, path, inst, locs, ops)]

    if v == "type":
        want = _types(err.schema)
        return [_diag(locs, path, f"expected {_join_or([_TYPE_WORDS.get(t, t) for t in want])}, "
                                  f"got {_describe(inst)}")]

    if v in ("anyOf", "oneOf"):
        # A branch of the right type that failed a constraint is the interesting one.
        deeper = [c for c in err.context if c.validator not in ("type", "anyOf", "oneOf")]
        if deeper:
            best = min(deeper, key=lambda c: len(c.relative_path))
            return _from_error(best, data, locs, ops)
        want = []
        for sub in err.validator_value:
            want += [_TYPE_WORDS.get(t, t) for t in _types(sub)]
        if want:
            return [_diag(locs, path, f"expected {_join_or(want)}, got {_describe(inst)}")]
        return [_diag(locs, path, err.message)]

    return [_constraint(err, path, inst, locs)]


# The wording of one kind of schema error each, for :func:`_from_error`.

def _unknown_keys(err: ValidationError, path: tuple, inst: dict, data: Any, locs: Locations,
                  ops: Mapping[str, OpDef]) -> list[Diagnostic]:
    allowed = list(err.schema.get("properties", {}))
    patterns = list(err.schema.get("patternProperties", {}))
    unknown = [k for k in inst if k not in allowed and not any(re.search(p, k) for p in patterns)]
    op = _node_op(data, path)
    out = []
    for k in unknown:
        kp = path + (k,)
        if op and len(path) == 4 and path[3] == "inputs":
            msg = f"op '{op}' has no input port '{k}'"
            hint = did_you_mean(k, allowed) or (f"input ports: {', '.join(allowed)}" if allowed
                                                else f"op '{op}' takes no inputs")
        elif op and len(path) == 4 and path[3] == "output":
            msg = f"op '{op}' has no output '{k}'"
            hint = did_you_mean(k, allowed) or f"outputs: {', '.join(allowed)}"
        elif op and len(path) == 3:
            msg = f"unknown key '{k}' for op '{op}'"
            if k in ("input", "inputs") and op in ops and not ops[op].inputs:
                msg = f"op '{op}' takes no inputs"
            hint = did_you_mean(k, allowed) or f"{op} accepts: {', '.join(sorted(allowed))}"
        else:
            msg = f"unknown key '{k}'"
            where = f"[{format_keypath(path)}]" if path else "the top level"
            hint = did_you_mean(k, allowed) or (f"allowed in {where}: {', '.join(allowed)}" if allowed else None)
        out.append(_diag(locs, kp, msg, hint))
    return out


def _missing_key(err: ValidationError, path: tuple, data: Any, locs: Locations,
                 ops: Mapping[str, OpDef]) -> Diagnostic:
    m = re.match(r"'(.+)' is a required property", err.message)
    name = m.group(1) if m else str(err.validator_value)
    op = _node_op(data, path)
    if path[:2] == ("model", "nodes") and len(path) == 3:
        if name == "op":
            return _diag(locs, path, f"node '{path[2]}' has no 'op'",
                         "add op = \"<name>\"; registered ops: " + ", ".join(sorted(ops)))
        return _diag(locs, path, f"op '{op}' needs parameter '{name}'", _param_doc(ops, op, name))
    where = f"[{format_keypath(path)}]" if path else "the spec"
    return _diag(locs, path, f"missing required key '{name}' in {where}")


def _not_one_of(err: ValidationError, path: tuple, inst: Any, locs: Locations,
                ops: Mapping[str, OpDef]) -> Diagnostic:
    if path[:2] == ("model", "nodes") and len(path) == 4 and path[3] == "op":
        return _diag(locs, path, f"unknown op '{inst}'",
                     did_you_mean(inst, ops) or "registered ops: " + ", ".join(sorted(ops)))
    choices = list(err.validator_value)
    hint = did_you_mean(inst, [str(c) for c in choices]) if isinstance(inst, str) else None
    if path[:2] == ("compile", "rewrites"):
        known = "known rewrites: " + ", ".join(REWRITES)
        return _diag(locs, path, f"unknown rewrite {inst!r}", f"{hint} ({known})" if hint else known)
    return _diag(locs, path, f"{inst!r} is not one of {', '.join(repr(c) for c in choices)}", hint)


def _constraint(err: ValidationError, path: tuple, inst: Any, locs: Locations) -> Diagnostic:
    """A value of the right type that breaks a bound, a length, uniqueness, a pattern or a
    constant."""
    v = err.validator
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        rel = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[v]
        return _diag(locs, path, f"{inst!r} is out of range: must be {rel} {err.validator_value}",
                     err.schema.get("x-hint"))

    if v in ("minItems", "maxItems"):
        n = err.validator_value
        lo = err.schema.get("minItems")
        hi = err.schema.get("maxItems")
        want = f"exactly {lo}" if lo == hi else (f"at least {lo}" if v == "minItems" else f"at most {hi}")
        return _diag(locs, path, f"expected {want} item{'s' if n != 1 else ''}, got {len(inst)}")

    if v == "minLength":
        return _diag(locs, path, "must not be empty")

    if v == "minProperties":
        return _diag(locs, path, "must not be empty")

    if v == "uniqueItems":
        dup = next((x for i, x in enumerate(inst) if x in inst[:i]), None)
        return _diag(locs, path, f"{dup!r} is listed twice" if dup is not None else "has duplicate entries")

    if v == "pattern":
        if err.validator_value == REF_PATTERN:
            return _diag(locs, path, f"{inst!r} is not a tensor reference",
                         "write a model input or node name, or node.port")
        if err.validator_value == IDENT:
            return _diag(locs, path, f"{inst!r} is not a valid name",
                         "names use letters, digits and '_' and do not start with a digit")
        return _diag(locs, path, f"{inst!r} does not match {err.validator_value}")

    if v == "const":
        return _diag(locs, path, f"expected {err.validator_value!r}, got {_describe(inst)}")

    return _diag(locs, path, err.message)


def _optimizer_options(err: ValidationError, path: tuple, inst: dict, locs: Locations) -> list[Diagnostic]:
    """An option the named optimizer does not take (``momentum`` with adam). Keys that no
    optimizer takes are left to the table's own ``additionalProperties`` error."""
    name = err.schema["x-optimizer"]
    takes = [k for k in err.schema.get("properties", {}) if k not in ("name", "lr")]
    out = []
    for k in inst:
        users = [o.name for o in OPTIMIZERS.values() if k in o.options]
        if k in err.schema.get("properties", {}) or not users:
            continue
        out.append(_diag(locs, path + (k,), f"optimizer '{name}' does not take '{k}'",
                         f"'{k}' is an option of {_join_or(users)}; {name} takes: {', '.join(takes)}"))
    return out


def _param_doc(ops: Mapping[str, OpDef], op: str | None, name: str) -> str | None:
    if op in ops:
        desc = ops[op].params.get(name, {}).get("description")
        return f"{name}: {desc}" if desc else None
    return None
