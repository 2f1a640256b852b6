"""Validation of a merged spec: JSON Schema first, then the checks a schema cannot express.

Every problem is collected (schema and semantic alike) and reported together, each at the
line and column of the key (or the character inside an expression or signature) it is
about, with a did-you-mean hint where one helps.

Checked here: the schema (types, unknown keys, unknown ops, per-op parameters); [dims]
(expressions over earlier dims, evaluated to positive integers); signatures of model inputs
and node outputs (syntax, names are dims or ``B``); size parameters of nodes; every
expression in [losses], [schedules] and the optimizer's ``lr`` (syntax, functions, arity,
names, ``node.port`` against the op's outputs); cycles among losses and schedules;
``train.loss``, phases, ``eval.masks``/``eval.reconstruction``/``eval.attention``/
``eval.input_mask``, ``eval.schedules``, ``eval.success`` (``<metric> <op> <number>`` over
[eval] metrics), the outputs each of ``eval.metrics`` needs (ocdsl/catalog.py), the options
of each optimizer (``momentum`` is sgd's), invariance nodes, ``[compile] rewrites`` (known rewrite names; the hint
lists them). Schedulable op parameters
(``"x-schedule"``) must name a [schedules] entry; ``epoch`` in an expression needs
``train.steps_per_epoch`` or ``train.epoch_size``; run-time sizes named by ops
(``"x-dynamic-size"``, e.g. random_masking's ``kept = "L"``) may appear in node output
signatures, not in model inputs or [dims].
Not checked here (graph/ does it): node input references, unused nodes, graph cycles, shapes.
"""

from __future__ import annotations

import functools
import keyword
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import networkx as nx
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from ocdsl.errors import Diagnostic, SpecError, did_you_mean, format_keypath
from ocdsl.ops import registry
from ocdsl.ops.registry import OpDef
from ocdsl.spec import expr as E
from ocdsl.spec.bounds import number_problems, size_problem
from ocdsl.spec.merge import OVERRIDE_FILE
from ocdsl.catalog import METRICS
from ocdsl.spec.config import EVAL_OUTPUTS, OPTIMIZERS, optimizer_spec
from ocdsl.spec.model import BATCH, Locations, Signature
from ocdsl.spec.schema import IDENT, REF_PATTERN, REWRITES, spec_schema
from ocdsl.spec.shape import parse_signature

__all__ = ["Checked", "validate", "check", "schema_diagnostics", "is_size_schema", "Threshold", "parse_threshold",
           "pattern_matches", "SpecValidator"]

STEP = "step"
EPOCH = "epoch"   # step / train.steps_per_epoch, or step * batch_size / train.epoch_size
PHASE_STEP = "phase_step"    # steps completed in the current phase (or run of phases sharing a clock)
PHASE_STEPS = "phase_steps"  # that phase's (or clock's) length in steps
TOTAL_STEPS = "total_steps"  # the run's length in steps (after --steps N): N
#: Attributes of the generated nn.Module (ocdsl.codegen.emit) and of nn.Module itself that a
#: node, which becomes ``self.<node>``, must not replace.
MODULE_MEMBERS = frozenset({"forward", "losses", "schedules", "set_schedules", "SPEC_NAME", "SPEC_HASH", "INPUTS",
                            "LOSS", "DIMS", "NODES", "training", "to", "train", "eval", "parameters",
                            "state_dict", "load_state_dict", "modules", "children", "apply", "compile",
                            "register_buffer", "register_module", "add_module", "cuda", "cpu", "float",
                            "double", "half", "type", "zero_grad", "requires_grad_", "named_parameters",
                            "named_modules", "named_children", "named_buffers", "buffers", "extra_repr"})
RESERVED = {STEP: "the training step", EPOCH: "the training epoch",
            PHASE_STEP: "steps done in the current training phase",
            PHASE_STEPS: "the current training phase's length",
            TOTAL_STEPS: "the training run's length in steps"}


@dataclass
class Checked:
    """What validation found and parsed, so load() does not parse twice."""

    dims: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, Signature] = field(default_factory=dict)
    outputs: dict[str, dict[str | None, Signature]] = field(default_factory=dict)  # None: bare `output = "..."`
    losses: dict[str, E.Expr] = field(default_factory=dict)
    schedules: dict[str, E.Expr] = field(default_factory=dict)
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    dynamic: dict[str, str] = field(default_factory=dict)  # run-time size name -> node naming it


def check(data: Mapping[str, Any], locations: Locations, ops: Iterable[OpDef] | None = None) -> Checked:
    """Like :func:`validate`, but raises SpecError listing every error found."""
    result = validate(data, locations, ops)
    if result.errors:
        raise SpecError(result.errors + result.warnings)
    return result


def validate(data: Mapping[str, Any], locations: Locations, ops: Iterable[OpDef] | None = None) -> Checked:
    """Check a merged spec (plain data + locations). Returns a :class:`Checked` holding the
    evaluated dims, parsed signatures and expressions, and every error and warning."""
    ops = list(registry.all_ops() if ops is None else ops)
    v = _Validator(data, locations, {o.name: o for o in ops})
    v.run()
    errors = _dedupe(v.errors)
    return Checked(v.dims, v.inputs, v.outputs, v.losses, v.schedules, errors, _dedupe(v.warnings),
                   v.dynamic)


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen, out = set(), []
    for d in diags:
        key = (d.file, d.line, d.col, d.keypath, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


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
    number of registered ops."""
    schema = spec_schema(None if ops is None else list(ops.values())) if schema is None else schema
    ops = {o.name: o for o in registry.all_ops()} if ops is None else ops
    outer, per_op = _dispatch_node_branches(schema)
    out: list[Diagnostic] = []
    for err in SpecValidator(outer).iter_errors(data):
        out += _from_error(err, data, locations, ops)
    nodes = data.get("model", {}).get("nodes") if isinstance(data, dict) and isinstance(data.get("model"), dict) else None
    validators = {op: SpecValidator(branch) for op, branch in per_op.items()}
    for name, node in (nodes.items() if isinstance(nodes, dict) else ()):
        op = node.get("op") if isinstance(node, dict) else None
        if not isinstance(op, str) or op not in validators:
            continue
        for err in validators[op].iter_errors(node):
            err.path.extendleft(reversed(("model", "nodes", name)))   # located in the whole spec
            out += _from_error(err, data, locations, ops)
    return out


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
    """The op name of the node ``path`` is in, when path is inside model.nodes.<name>."""
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

    if v == "required":
        m = re.match(r"'(.+)' is a required property", err.message)
        name = m.group(1) if m else str(err.validator_value)
        op = _node_op(data, path)
        if path[:2] == ("model", "nodes") and len(path) == 3:
            if name == "op":
                return [_diag(locs, path, f"node '{path[2]}' has no 'op'",
                              "add op = \"<name>\"; registered ops: " + ", ".join(sorted(ops)))]
            return [_diag(locs, path, f"op '{op}' needs parameter '{name}'", _param_doc(ops, op, name))]
        where = f"[{format_keypath(path)}]" if path else "the spec"
        return [_diag(locs, path, f"missing required key '{name}' in {where}")]

    if v == "enum":
        if path[:2] == ("model", "nodes") and len(path) == 4 and path[3] == "op":
            return [_diag(locs, path, f"unknown op '{inst}'",
                          did_you_mean(inst, ops) or "registered ops: " + ", ".join(sorted(ops)))]
        choices = list(err.validator_value)
        hint = did_you_mean(inst, [str(c) for c in choices]) if isinstance(inst, str) else None
        if path[:2] == ("compile", "rewrites"):
            known = "known rewrites: " + ", ".join(REWRITES)
            return [_diag(locs, path, f"unknown rewrite {inst!r}", f"{hint} ({known})" if hint else known)]
        return [_diag(locs, path, f"{inst!r} is not one of {', '.join(repr(c) for c in choices)}", hint)]

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

    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        rel = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[v]
        return [_diag(locs, path, f"{inst!r} is out of range: must be {rel} {err.validator_value}",
                      err.schema.get("x-hint"))]

    if v in ("minItems", "maxItems"):
        n = err.validator_value
        lo = err.schema.get("minItems")
        hi = err.schema.get("maxItems")
        want = f"exactly {lo}" if lo == hi else (f"at least {lo}" if v == "minItems" else f"at most {hi}")
        return [_diag(locs, path, f"expected {want} item{'s' if n != 1 else ''}, got {len(inst)}")]

    if v == "minLength":
        return [_diag(locs, path, "must not be empty")]

    if v == "minProperties":
        return [_diag(locs, path, "must not be empty")]

    if v == "uniqueItems":
        dup = next((x for i, x in enumerate(inst) if x in inst[:i]), None)
        return [_diag(locs, path, f"{dup!r} is listed twice" if dup is not None else "has duplicate entries")]

    if v == "pattern":
        if err.validator_value == REF_PATTERN:
            return [_diag(locs, path, f"{inst!r} is not a tensor reference",
                          "write a model input or node name, or node.port")]
        if err.validator_value == IDENT:
            return [_diag(locs, path, f"{inst!r} is not a valid name",
                          "names use letters, digits and '_' and do not start with a digit")]
        return [_diag(locs, path, f"{inst!r} does not match {err.validator_value}")]

    if v == "const":
        return [_diag(locs, path, f"expected {err.validator_value!r}, got {_describe(inst)}")]

    return [_diag(locs, path, err.message)]


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


# ---- semantic checks ------------------------------------------------------------------------

def _table(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


class _Validator:
    def __init__(self, data: Mapping[str, Any], locs: Locations, ops: Mapping[str, OpDef]):
        self.data = data if isinstance(data, dict) else {}
        self.locs = locs
        self.ops = ops
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.dims: dict[str, int] = {}
        self.inputs: dict[str, Signature] = {}
        self.outputs: dict[str, dict[str | None, Signature]] = {}
        self.losses: dict[str, E.Expr] = {}
        self.schedules: dict[str, E.Expr] = {}
        model = _table(self.data.get("model"))
        self.dim_names = list(_table(self.data.get("dims")))
        self.input_names = list(_table(model.get("inputs")))
        self.node_tables = {k: v for k, v in _table(model.get("nodes")).items()}
        self.loss_names = list(_table(self.data.get("losses")))
        self.schedule_names = list(_table(self.data.get("schedules")))
        self.dynamic: dict[str, str] = dynamic_size_names(self.node_tables, ops)
        train = _table(self.data.get("train"))
        self.has_epoch = "steps_per_epoch" in train or "epoch_size" in train

    # -- helpers
    def error(self, keypath: tuple, message: str, hint: str | None = None) -> None:
        self.errors.append(_diag(self.locs, keypath, message, hint))

    def error_at(self, node: Any, keypath: tuple, message: str, hint: str | None = None) -> None:
        """An error at an expression node's own position."""
        loc = self.locs.get(keypath)
        line = getattr(node, "line", 0) or loc.line
        col = getattr(node, "col", 0) or loc.col
        self.errors.append(Diagnostic(message, file=loc.file, line=line, col=col, keypath=tuple(keypath), hint=hint))

    def where(self, keypath: tuple) -> dict:
        """parse()/parse_signature() keywords that place a string value in the file."""
        vloc = self.locs.value(keypath)
        if vloc is not None:
            return {"file": vloc.file, "line": vloc.line, "col": vloc.col, "keypath": keypath, "exact": True}
        loc = self.locs.get(keypath)
        return {"file": loc.file, "line": loc.line, "col": loc.col, "keypath": keypath, "exact": False}

    def parse_expr(self, text: Any, keypath: tuple) -> E.Expr | None:
        if isinstance(text, bool):
            return None
        if isinstance(text, (int, float)):
            return E.Num(text)
        if not isinstance(text, str):
            return None
        try:
            return E.parse(text, **self.where(keypath))
        except SpecError as e:
            self.errors += e.diagnostics
            return None

    def parse_sig(self, text: Any, keypath: tuple, dynamic: bool = False) -> Signature | None:
        """Parse a signature; its names must be dims or ``B`` (and, with ``dynamic``, run-time
        sizes that ops name)."""
        if not isinstance(text, str):
            return None
        try:
            sig = parse_signature(text, **self.where(keypath))
        except SpecError as e:
            self.errors += e.diagnostics
            return None
        known = set(self.dim_names) | {BATCH} | (set(self.dynamic) if dynamic else set())
        w = self.where(keypath)
        for name in dict.fromkeys(sig.names):
            if name not in known and name in self.dynamic:
                self.error(keypath, f"'{name}' is a size known only at run time (named by node "
                                    f"'{self.dynamic[name]}'); it cannot be used here",
                           "run-time sizes may appear only in node output signatures")
            elif name not in known:
                m = re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text)
                col = w["col"] + m.start() if (m and w["exact"]) else w["col"]
                self.errors.append(Diagnostic(
                    f"unknown size '{name}' in signature {text!r}", file=w["file"], line=w["line"], col=col,
                    keypath=keypath,
                    hint=did_you_mean(name, known) or f"define it in [dims] (known: {', '.join(sorted(known))})"))
        return sig

    def opdef(self, node: str) -> OpDef | None:
        t = self.node_tables.get(node)
        op = t.get("op") if isinstance(t, dict) else None
        return self.ops.get(op) if isinstance(op, str) else None

    # -- the checks
    def run(self) -> None:
        self.errors += schema_diagnostics(self.data, self.locs, spec_schema(list(self.ops.values())), self.ops)
        self.errors += [_diag(self.locs, kp, m, h) for kp, m, h in number_problems(self.data)]
        self.check_names()
        self.check_dims()
        self.check_inputs()
        self.check_nodes()
        self.check_expressions()
        self.check_train()
        self.check_eval()
        self.check_invariances()

    def check_names(self) -> None:
        kinds = [("dim", ("dims",), self.dim_names), ("schedule", ("schedules",), self.schedule_names),
                 ("loss", ("losses",), self.loss_names), ("model input", ("model", "inputs"), self.input_names),
                 ("node", ("model", "nodes"), list(self.node_tables))]
        first: dict[str, str] = {}
        for kind, base, names in kinds:
            for name in names:
                if kind == "node" and (keyword.iskeyword(name) or name in MODULE_MEMBERS):
                    what = "a Python keyword" if keyword.iskeyword(name) else "a member of the generated module"
                    self.error(base + (name,), f"node name '{name}' is {what}",
                               f"a node becomes the attribute self.<name> of the generated module; rename it "
                               f"(e.g. '{name}_')")
                elif name in RESERVED:
                    self.error(base + (name,), f"'{name}' is reserved ({RESERVED[name]}) and cannot name a {kind}")
                elif name in first:
                    self.error(base + (name,), f"'{name}' is both a {first[name]} and a {kind}",
                               "every name in dims, schedules, losses, model inputs and nodes must be unique")
                else:
                    first[name] = kind
        for node, key, name in dynamic_size_params(self.node_tables, self.ops):
            if self.dynamic.get(name, node) != node:
                self.error(("model", "nodes", node, key),
                           f"nodes '{self.dynamic[name]}' and '{node}' both name their run-time size "
                           f"'{name}'", f"give each its own name (e.g. {key} = \"{name}2\")")
        for name, node in self.dynamic.items():
            if name in first or name == BATCH:
                what = "the batch size" if name == BATCH else f"a {first[name]}"
                self.error(("model", "nodes", node), f"node '{node}' names its run-time size "
                                                     f"'{name}', which is already {what}",
                           "choose another name (e.g. kept = \"L\")")
        train = _table(self.data.get("train"))
        if "steps_per_epoch" in train and "epoch_size" in train:
            self.error(("train", "epoch_size"), "give either train.steps_per_epoch or train.epoch_size, not both",
                       "epoch = step / steps_per_epoch, or step * batch_size / epoch_size (images)")

    def check_dims(self) -> None:
        dims = _table(self.data.get("dims"))
        failed: set[str] = set()
        for name, value in dims.items():
            kp = ("dims", name)
            if isinstance(value, bool):
                failed.add(name)
                continue
            if isinstance(value, int):
                if 1 <= value and not size_problem(value, f"dim '{name}'"):
                    self.dims[name] = value
                else:  # the schema reports a non-positive dim
                    failed.add(name)
                    if value >= 1:
                        self.error(kp, size_problem(value, f"dim '{name}'"))
                continue
            expr = self.parse_expr(value, kp) if isinstance(value, str) else None
            if expr is None:
                failed.add(name)
                continue
            ok = True
            for node in E.walk(expr):
                if isinstance(node, E.Attr):
                    self.error_at(node, kp, f"dim '{name}' cannot use the node output '{node.text}'",
                                  "dims are sizes computed from other dims")
                    ok = False
                elif isinstance(node, E.Name) and node.id not in self.dims:
                    ok = False
                    if node.id in failed:
                        continue
                    if node.id in dims:
                        self.error_at(node, kp, f"dim '{node.id}' is used before it is defined",
                                      f"dims are evaluated in order: move '{node.id}' above '{name}'")
                    elif node.id == STEP:
                        self.error_at(node, kp, f"dim '{name}' cannot depend on '{STEP}'",
                                      "use a schedule for values that change during training")
                    else:
                        self.error_at(node, kp, f"unknown name '{node.id}' in dim '{name}'",
                                      did_you_mean(node.id, dims) or "a dim may use only the dims above it")
            if not ok:
                failed.add(name)
                continue
            size = self.eval_size(expr, value, kp, f"dim '{name}'")
            if size is None:
                failed.add(name)
            else:
                self.dims[name] = size

    def eval_size(self, expr: E.Expr, text: str, kp: tuple, what: str) -> int | None:
        w = self.where(kp)
        try:
            out = E.evaluate(expr, self.dims, file=w["file"], keypath=kp)
        except SpecError as e:
            self.errors += e.diagnostics
            return None
        if isinstance(out, float) and out.is_integer():
            out = int(out)
        if isinstance(out, bool) or not isinstance(out, int):
            self.error(kp, f"{what} = {text!r} evaluates to {out!r}, not a whole number",
                       "use // for integer division" if "/" in text else None)
            return None
        if out < 1:
            self.error(kp, f"{what} = {text!r} evaluates to {out}; a size must be positive")
            return None
        if size_problem(out, what):
            self.error(kp, size_problem(out, what) + f" ({text!r})")
            return None
        return out

    def check_inputs(self) -> None:
        for name, text in _table(_table(self.data.get("model")).get("inputs")).items():
            sig = self.parse_sig(text, ("model", "inputs", name))
            if sig is not None:
                self.inputs[name] = sig

    def check_nodes(self) -> None:
        for name, table in self.node_tables.items():
            if not isinstance(table, dict):
                continue
            kp = ("model", "nodes", name)
            opdef = self.opdef(name)
            if "input" in table and "inputs" in table:
                self.error(kp + ("inputs",), "give either 'input' or 'inputs', not both",
                           "'input = \"x\"' feeds the op's first port; 'inputs = { port = \"x\" }' names ports")
            out = table.get("output")
            sigs: dict[str | None, Signature] = {}
            if isinstance(out, str):
                sig = self.parse_sig(out, kp + ("output",), dynamic=True)
                if sig is not None:
                    sigs[None] = sig
            elif isinstance(out, dict):
                for port, text in out.items():
                    sig = self.parse_sig(text, kp + ("output", port), dynamic=True)
                    if sig is not None:
                        sigs[port] = sig
            self.outputs[name] = sigs
            share = table.get("share")
            if isinstance(share, str):
                if share == name:
                    self.error(kp + ("share",), f"node '{name}' cannot share weights with itself")
                elif share not in self.node_tables:
                    self.error(kp + ("share",), f"'share' names no node '{share}'",
                               did_you_mean(share, self.node_tables))
                else:
                    other = self.node_tables[share]
                    if isinstance(other, dict) and other.get("op") != table.get("op"):
                        self.error(kp + ("share",), f"node '{name}' ({table.get('op')}) cannot share weights "
                                                    f"with '{share}' ({other.get('op')}): the ops differ")
            if opdef is not None:
                self.check_sizes(name, table, opdef)
                self.check_scheduled(name, table, opdef)

    def check_scheduled(self, name: str, table: dict, opdef: OpDef) -> None:
        """A schedulable parameter given as a string must name a [schedules] entry."""
        for key, prop in opdef.params.items():
            value = table.get(key)
            if is_schedule_schema(prop) and isinstance(value, str) and value not in self.schedule_names:
                self.error(("model", "nodes", name, key),
                           f"'{key}' names no schedule '{value}'",
                           did_you_mean(value, self.schedule_names)
                           or f"write a number, or the name of a [schedules] entry"
                              + (f" ({', '.join(self.schedule_names)})" if self.schedule_names else ""))

    def check_sizes(self, name: str, table: dict, opdef: OpDef) -> None:
        for key, prop in opdef.params.items():
            if key not in table:
                continue
            value = table[key]
            kp = ("model", "nodes", name, key)
            if is_size_schema(prop) and isinstance(value, str):
                self.check_size_expr(value, kp, f"{key}")
            elif isinstance(value, Mapping) and is_size_schema(prop.get("additionalProperties")):
                for sub, item in value.items():
                    if isinstance(item, str):
                        self.check_size_expr(item, kp + (sub,), f"{key}.{sub}")
            elif isinstance(value, list) and is_size_schema(prop.get("items")):
                for i, item in enumerate(value):
                    if isinstance(item, str):
                        self.check_size_expr(item, kp + (i,), f"{key}[{i}]")

    def check_size_expr(self, text: str, kp: tuple, what: str) -> None:
        expr = self.parse_expr(text, kp)
        if expr is None:
            return
        ok = True
        for node in E.walk(expr):
            if isinstance(node, E.Attr):
                self.error_at(node, kp, f"a size cannot use the node output '{node.text}'")
                ok = False
            elif isinstance(node, E.Name) and node.id not in self.dims:
                ok = False
                if node.id not in self.dim_names:
                    self.error_at(node, kp, f"unknown size '{node.id}' in {what} = {text!r}",
                                  did_you_mean(node.id, self.dim_names) or "sizes are expressions over [dims]")
        if ok:
            self.eval_size(expr, text, kp, what)

    # -- losses, schedules, learning rates
    def check_expressions(self) -> None:
        for name, text in _table(self.data.get("schedules")).items():
            kp = ("schedules", name)
            expr = self.parse_expr(text, kp)
            if expr is not None:
                self.check_refs(expr, kp, "schedule", f"schedule '{name}'")
                self.schedules[name] = expr
        for name, text in _table(self.data.get("losses")).items():
            kp = ("losses", name)
            expr = self.parse_expr(text, kp)
            if expr is not None:
                self.check_refs(expr, kp, "loss", f"loss '{name}'")
                self.losses[name] = expr
        train = _table(self.data.get("train"))
        self.check_lr(train.get("optimizer"), ("train", "optimizer"))
        phases = train.get("phases")
        if isinstance(phases, list):
            for i, ph in enumerate(phases):
                if isinstance(ph, dict):
                    self.check_lr(ph.get("optimizer"), ("train", "phases", i, "optimizer"))
        self.check_cycles()

    def check_lr(self, opt: Any, kp: tuple) -> None:
        if isinstance(opt, dict) and isinstance(opt.get("lr"), str):
            expr = self.parse_expr(opt["lr"], kp + ("lr",))
            if expr is not None:
                self.check_refs(expr, kp + ("lr",), "schedule", "the learning rate")

    def check_refs(self, expr: E.Expr, kp: tuple, context: str, what: str) -> None:
        """Names of ``expr`` allowed in ``context`` ("loss" or "schedule")."""
        numeric = [STEP] + ([EPOCH] if self.has_epoch else []) + self.dim_names + self.schedule_names
        if context == "schedule":
            numeric += [PHASE_STEP, PHASE_STEPS, TOTAL_STEPS]
        allowed = numeric + (self.loss_names + self.input_names + list(self.node_tables) if context == "loss" else [])
        for node in E.walk(expr):
            if isinstance(node, E.Name):
                n = node.id
                if n in allowed:
                    continue
                if n in (PHASE_STEP, PHASE_STEPS):
                    self.error_at(node, kp, f"'{n}' in {what}: only [schedules] see the phase clock",
                                  f"define a schedule (e.g. warm = \"min(1, {PHASE_STEP} / 1000)\") and use it here")
                elif n == TOTAL_STEPS:
                    self.error_at(node, kp, f"'{n}' in {what}: only [schedules] see the run's length",
                                  f"define a schedule (e.g. progress = \"step / {TOTAL_STEPS}\") and use it here")
                elif n == EPOCH:
                    self.error_at(node, kp, f"'{EPOCH}' in {what} needs the length of an epoch",
                                  "set train.steps_per_epoch (steps) or train.epoch_size (images; "
                                  "epoch = step * batch_size / epoch_size)")
                elif context == "schedule" and (n in self.loss_names or n in self.input_names or n in self.node_tables):
                    kind = "loss" if n in self.loss_names else ("model input" if n in self.input_names else "node")
                    self.error_at(node, kp, f"{what} cannot use the {kind} '{n}'",
                                  "schedules are numbers computed from step, dims and other schedules")
                else:
                    self.error_at(node, kp, f"unknown name '{n}' in {what}",
                                  did_you_mean(n, allowed) or _known(context, allowed))
            elif isinstance(node, E.Attr):
                if context == "schedule":
                    self.error_at(node, kp, f"{what} cannot use the node output '{node.text}'",
                                  "schedules are numbers computed from step, dims and other schedules")
                    continue
                self.check_port_ref(node.node, node.port, node.text, kp, node)

    def check_port_ref(self, node: str, port: str | None, text: str, kp: tuple, at: Any = None) -> None:
        """``node`` (``.port``) must name a node (and one of its op's outputs)."""
        report = (lambda m, h=None: self.error_at(at, kp, m, h)) if at is not None else \
            (lambda m, h=None: self.error(kp, m, h))
        if node in self.input_names:
            if port is not None:
                report(f"'{text}': model input '{node}' has no ports")
            return
        if node not in self.node_tables:
            report(f"unknown node '{node}' in '{text}'",
                   did_you_mean(node, list(self.node_tables) + self.input_names)
                   or "nodes: " + ", ".join(self.node_tables))
            return
        opdef = self.opdef(node)
        if port is not None and opdef is not None and port not in opdef.outputs:
            report(f"'{text}': node '{node}' ({opdef.name}) has no output '{port}'",
                   did_you_mean(port, opdef.outputs) or f"outputs: {', '.join(opdef.outputs)}")

    def check_cycles(self) -> None:
        G = nx.DiGraph()
        kinds = {}
        for table, exprs in (("schedules", self.schedules), ("losses", self.losses)):
            for name, expr in exprs.items():
                G.add_node(name)
                kinds[name] = table
                for n in E.names(expr):
                    if n in self.schedules or n in self.losses:
                        G.add_edge(name, n)
        for comp in nx.strongly_connected_components(G):
            if len(comp) == 1:
                (n,) = comp
                if not G.has_edge(n, n):
                    continue
                cycle = [n, n]
            else:
                order = {n: i for i, n in enumerate(G.nodes)}
                start = min(comp, key=order.get)
                edges = nx.find_cycle(G.subgraph(comp), source=start)
                cycle = [edges[0][0]] + [e[1] for e in edges]
            cycle = self.from_most_derived(cycle, kinds)
            first = cycle[0]
            self.error((kinds[first], first), f"{kinds[first]} refer to each other in a cycle: "
                                              f"{' -> '.join(cycle)}",
                       "a loss or schedule cannot depend on itself")

    def from_most_derived(self, cycle: list[str], kinds: dict[str, str]) -> list[str]:
        """``cycle`` (first == last) rotated to start at the member set last: an override,
        else one in the spec's own file rather than a spec it extends. A variant that closes
        a cycle is told so at its own line, not at the base's."""
        members = cycle[:-1]

        def rank(name: str) -> int:
            f = self.locs.get((kinds[name], name)).file
            return 0 if f.startswith(OVERRIDE_FILE) else (1 if f == self.locs.default_file else 2)

        i = min(range(len(members)), key=lambda j: rank(members[j]))
        return members[i:] + members[:i] + [members[i]]

    # -- train / eval / invariances
    def check_train(self) -> None:
        train = self.data.get("train")
        if not isinstance(train, dict):
            return
        loss = train.get("loss")
        if isinstance(loss, str):
            if loss not in self.loss_names:
                self.error(("train", "loss"), f"train.loss names no loss '{loss}'",
                           did_you_mean(loss, self.loss_names) or
                           (f"losses: {', '.join(self.loss_names)}" if self.loss_names else "define it in [losses]"))
        phases = train.get("phases")
        phases = phases if isinstance(phases, list) else []
        if loss is None and self.loss_names and not (phases and all(isinstance(p, dict) and "loss" in p for p in phases)):
            self.error(("train",), "train.loss is missing: which loss does training minimise?",
                       f"add loss = \"{self.loss_names[0]}\" to [train]")
        if phases and "steps" in train:
            self.warnings.append(_diag(self.locs, ("train", "steps"),
                                       "train.steps is ignored: the phases' steps are used", severity="warning"))
        names_seen: dict[str, int] = {}
        clocks: list[str | None] = []
        for i, ph in enumerate(phases):
            if not isinstance(ph, dict):
                clocks.append(None)
                continue
            kp = ("train", "phases", i)
            pname = ph.get("name", f"phase{i + 1}")
            if isinstance(pname, str):
                if pname in names_seen:
                    self.error(kp + ("name",), f"two phases are named '{pname}'",
                               f"phase {names_seen[pname] + 1} already is; phase names must be unique")
                names_seen.setdefault(pname, i)
            clock = ph.get("clock")
            clock = clock if isinstance(clock, str) else None
            if clock is not None and clock in clocks and clocks[-1] != clock:
                self.error(kp + ("clock",), f"clock '{clock}' is shared by phases that are not consecutive",
                           "a clock spans a run of consecutive phases; give this phase its own clock")
            clocks.append(clock)
            if ph.get("fresh_optimizer") is False and i == 0:
                self.error(kp + ("fresh_optimizer",), "the first phase has no previous optimizer to keep",
                           "drop fresh_optimizer = false from the first phase")
            elif ph.get("fresh_optimizer") is False and isinstance(phases[i - 1], dict):
                self.check_kept_optimizer(train, phases[i - 1], ph, i)
            if "trainable" in ph and "frozen" in ph:
                self.error(kp + ("frozen",), "give either trainable or frozen, not both",
                           "trainable lists what trains (every other node is frozen); frozen lists what does not")
            pl = ph.get("loss")
            if isinstance(pl, str) and pl not in self.loss_names:
                self.error(kp + ("loss",), f"phase loss names no loss '{pl}'", did_you_mean(pl, self.loss_names))
            seen: dict[str, str] = {}
            for key in ("trainable", "frozen"):
                names = ph.get(key)
                if not isinstance(names, list):
                    continue
                for j, n in enumerate(names):
                    if not isinstance(n, str):
                        continue
                    if n not in self.node_tables:
                        self.error(kp + (key, j), f"{key}: no node '{n}'", did_you_mean(n, self.node_tables))
                    elif n in seen and seen[n] != key:
                        self.error(kp + (key, j), f"node '{n}' is both trainable and frozen")
                    seen[n] = key

    def check_kept_optimizer(self, train: dict, before: dict, ph: dict, i: int) -> None:
        """Phase ``i`` keeps the optimizer of phase ``i - 1``: same optimizer settings (as
        typed, defaults filled in) and the same frozen nodes."""
        def frozen(p: dict) -> frozenset:
            if isinstance(p.get("trainable"), list):
                return frozenset(self.node_tables) - frozenset(p["trainable"])
            return frozenset(p["frozen"]) if isinstance(p.get("frozen"), list) else frozenset()

        def optimizer(p: dict) -> Any:
            table = p.get("optimizer", train.get("optimizer"))
            try:
                return optimizer_spec(table, ())
            except (TypeError, ValueError, KeyError):
                return None  # the schema reports a malformed table
        prev, this = before.get("name", f"phase{i}"), ph.get("name", f"phase{i + 1}")
        hint = "drop fresh_optimizer = false (a new optimizer), or train the same nodes with the same optimizer"
        if optimizer(before) != optimizer(ph):
            self.error(("train", "phases", i, "fresh_optimizer"),
                       f"phase '{this}' keeps the optimizer of '{prev}' but sets another optimizer", hint)
        elif frozen(before) != frozen(ph):
            self.error(("train", "phases", i, "fresh_optimizer"),
                       f"phase '{this}' keeps the optimizer of '{prev}' but trains other nodes", hint)

    def check_eval(self) -> None:
        ev = _table(self.data.get("eval"))
        for name in _table(ev.get("schedules")):
            if name not in self.schedule_names:
                self.error(("eval", "schedules", name), f"eval.schedules names no schedule '{name}'",
                           did_you_mean(name, self.schedule_names) or "define it in [schedules]")
        for key in EVAL_OUTPUTS:
            ref = ev.get(key)
            if isinstance(ref, str) and pattern_matches(REF_PATTERN, ref):
                node, _, port = ref.partition(".")
                if node in self.input_names:
                    self.error(("eval", key), f"eval.{key} must be a node output, not the model input '{node}'")
                else:
                    self.check_port_ref(node, port or None, ref, ("eval", key))
        self.check_success(ev)
        self.check_metric_outputs(ev)
        taken = {"test": None}  # the [data] test split is evaluated as "test"
        datasets = ev.get("datasets")
        for i, entry in enumerate(datasets if isinstance(datasets, list) else []):
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name in taken:
                self.error(("eval", "datasets", i, "name"), f"two evaluation datasets are named '{name}'",
                           "the test split of [data] is 'test'" if taken[name] is None
                           else "give each [[eval.datasets]] entry its own name")
            taken.setdefault(name, i)

    def check_metric_outputs(self, ev: dict) -> None:
        """Each metric's needed outputs are named: masks by eval.masks, the reconstruction
        by eval.reconstruction (ocdsl/catalog.py says which metric needs which)."""
        metrics = ev.get("metrics")
        for i, name in enumerate(metrics if isinstance(metrics, list) else []):
            info = METRICS.get(name) if isinstance(name, str) else None
            for need, key in (("masks", "masks"), ("recon", "reconstruction")):
                if info is not None and need in info.needs and not ev.get(key):
                    self.error(("eval", "metrics", i), f"metric '{name}' needs eval.{key}",
                               f"set eval.{key} to the output holding the {key}")

    def check_success(self, ev: dict) -> None:
        text = ev.get("success")
        if not isinstance(text, str) or not text.strip():
            return  # the schema reports other types
        metrics = ev.get("metrics")
        metrics = [m for m in metrics if isinstance(m, str)] if isinstance(metrics, list) else []
        try:
            parse_threshold(text, metrics=metrics, **self.where(("eval", "success")))
        except SpecError as e:
            self.errors += e.diagnostics

    def check_invariances(self) -> None:
        invs = self.data.get("invariances")
        if not isinstance(invs, list):
            return
        for i, inv in enumerate(invs):
            if not isinstance(inv, dict):
                continue
            node = inv.get("node")
            if not isinstance(node, str):
                continue
            kp = ("invariances", i)
            if node not in self.node_tables:
                self.error(kp + ("node",), f"no node '{node}'", did_you_mean(node, self.node_tables))
                continue
            port = inv.get("port")
            opdef = self.opdef(node)
            if isinstance(port, str) and opdef is not None and port not in opdef.outputs:
                self.error(kp + ("port",), f"node '{node}' ({opdef.name}) has no output '{port}'",
                           did_you_mean(port, opdef.outputs) or f"outputs: {', '.join(opdef.outputs)}")


_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True)
class Threshold:
    """``[eval] success = "<metric> <op> <number>"``, e.g. ``ari_fg >= 0.9``: what a run must
    reach (on every evaluated dataset) to count as a success."""

    metric: str
    op: str
    value: float

    def passes(self, v: Any) -> bool:
        """True when ``v`` is a finite number meeting the threshold (None / NaN never pass)."""
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return bool(_COMPARE[self.op](float(v), self.value))

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse_threshold(text: str, *, metrics: Iterable[str] | None = None, file: str = "<spec>", line: int = 0,
                    col: int = 0, keypath: tuple = ("eval", "success"), exact: bool = True) -> Threshold:
    """Parse ``eval.success`` with the expression grammar (never Python's ``eval``) and accept
    only ``<metric> <op> <number>`` (op one of ``< <= > >= == !=``; the number may be
    negative). With ``metrics`` (the spec's ``[eval] metrics``) the metric must be one of
    them. Raises SpecError located at the offending part of the text."""
    try:
        expr = E.parse(text, file=file, line=line, col=col, keypath=keypath, exact=exact)
    except SpecError as e:
        raise SpecError(e.diagnostics) from None
    where = (line, col)

    def err(node: Any, message: str, hint: str | None = None) -> SpecError:
        ln = (getattr(node, "line", 0) or where[0]) if exact else where[0]
        cl = (getattr(node, "col", 0) or where[1]) if exact else where[1]
        return SpecError(Diagnostic(message, file=file, line=ln, col=cl, keypath=tuple(keypath), hint=hint))

    shape_hint = "write '<metric> <op> <number>', e.g. 'ari_fg >= 0.9' (op: < <= > >= == !=)"
    if not isinstance(expr, E.Compare):
        raise err(expr, f"success must compare one metric with a number, got {text!r}", shape_hint)
    left, right = expr.left, expr.right
    if not isinstance(left, E.Name):
        raise err(left, f"success: the left side must be a metric name, got {E.unparse(left)!r}", shape_hint)
    number = right
    sign = 1.0
    if isinstance(number, E.Unary) and isinstance(number.operand, E.Num):
        sign = -1.0 if number.op == "-" else 1.0
        number = number.operand
    if not isinstance(number, E.Num):
        raise err(right, f"success: the right side must be a number, got {E.unparse(right)!r}", shape_hint)
    if metrics is not None:
        metrics = list(metrics)
        if left.id not in metrics:
            hint = did_you_mean(left.id, metrics) or (
                f"[eval] metrics computes: {', '.join(metrics)}" if metrics else "list it in [eval] metrics")
            what = "is not among [eval] metrics" if metrics else "needs [eval] metrics to list it"
            raise err(left, f"success: unknown metric '{left.id}' (it {what})", hint)
    return Threshold(left.id, expr.op, sign * float(number.value))


def _known(context: str, allowed: list[str]) -> str:
    if context == "schedule":
        return "a schedule may use step, [dims] and other [schedules]"
    return "known names: " + ", ".join(sorted(allowed)) if len(allowed) <= 20 else \
        "a loss may use step, dims, schedules, losses, model inputs and nodes"
