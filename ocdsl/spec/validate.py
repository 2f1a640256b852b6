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
The checks of expressions are in validate_expr.py, those of [train], [eval] and
[[invariances]] in validate_run.py (mixins of the validator here).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ocdsl.errors import Diagnostic, SpecError, did_you_mean
from ocdsl.ops import registry
from ocdsl.ops.registry import OpDef
from ocdsl.spec import blocks
from ocdsl.spec import expr as E
from ocdsl.spec.bounds import number_problems, size_problem
from ocdsl.spec.model import BATCH, Locations, Signature
from ocdsl.spec.schema_errors import (SpecValidator, _diag, dynamic_size_names, dynamic_size_params,  # noqa: F401
                                      is_schedule_schema, is_size_schema, pattern_matches, schema_diagnostics)
from ocdsl.spec.shape import parse_signature
from ocdsl.spec.threshold import Threshold, parse_threshold  # noqa: F401
from ocdsl.spec.validate_expr import RESERVED, STEP, ExpressionChecks
from ocdsl.spec.validate_run import RunChecks, _table

__all__ = ["Checked", "validate", "check", "schema_diagnostics", "is_size_schema", "Threshold", "parse_threshold",
           "pattern_matches", "SpecValidator"]

#: Attributes of the generated nn.Module (ocdsl.codegen.emit) and of nn.Module itself that a
#: node, which becomes ``self.<node>``, must not replace.
MODULE_MEMBERS = frozenset({"forward", "losses", "schedules", "set_schedules", "SPEC_NAME", "SPEC_HASH", "INPUTS",
                            "LOSS", "DIMS", "NODES", "training", "to", "train", "eval", "parameters",
                            "state_dict", "load_state_dict", "modules", "children", "apply", "compile",
                            "register_buffer", "register_module", "add_module", "cuda", "cpu", "float",
                            "double", "half", "type", "zero_grad", "requires_grad_", "named_parameters",
                            "named_modules", "named_children", "named_buffers", "buffers", "extra_repr"})


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
    blocks: dict[str, tuple] = field(default_factory=dict)  # block -> (input signatures, node outputs)


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
                   v.dynamic, v.block_checked)


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen, out = set(), []
    for d in diags:
        key = (d.file, d.line, d.col, d.keypath, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


# ---- semantic checks ------------------------------------------------------------------------

class _Validator(ExpressionChecks, RunChecks):
    def __init__(self, data: Mapping[str, Any], locs: Locations, ops: Mapping[str, OpDef]):
        self.data = data if isinstance(data, dict) else {}
        self.locs = locs
        calls, self.repeat_ops = blocks.stub_ops(self.data)   # [blocks] used like ops
        self.ops = {**calls, **ops}
        self.block_checked: dict[str, tuple] = {}
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
        if op == blocks.REPEAT:
            return self.repeat_ops.get(t.get("block"))
        return self.ops.get(op) if isinstance(op, str) else None

    # -- the checks
    def run(self) -> None:
        self.errors += schema_diagnostics(self.data, self.locs, ops=self.ops)  # schema built once per op set
        self.errors += [_diag(self.locs, kp, m, h) for kp, m, h in number_problems(self.data)]
        self.check_names()
        blocks.scheduled_sizes(self)
        self.check_dims()
        self.check_inputs()
        self.check_nodes()
        blocks.check(self)
        self.check_expressions()
        self.check_train()
        self.check_eval()
        self.check_augment()
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
