"""The op registry: one entry per op, registered by name.

An op is the unit of the compiler; it bundles in one place:

- ``params``: the JSON Schema of its parameters (merged into the spec schema, so editors
  complete them and jsonschema validates them);
- ``inputs`` / ``outputs``: its port names (the first output is the default port, the one a
  bare ``"node"`` reference means);
- ``infer``: its shape rule ``(input shapes, params) -> output shapes``;
- ``module``: the ``nn.Module`` class generated code instantiates, and ``init_args`` that turns
  (input shapes, params) into that class's constructor keyword arguments (plain literals, so
  the generated ``__init__`` reads like hand-written code);
- ``symmetries``: what it guarantees (checked by property tests, issue 3);
- its docstring (the module class's) with shapes, units, errors and the paper equation.

Sizes in params may be written as numbers or as expressions over ``[dims]`` (``"K"``,
``"2*D"``); graph/ resolves every schema property marked ``"x-size": true`` to an int before
``infer`` or ``init_args`` see it.

Two more markers (helpers below):

- ``"x-schedule": true`` (:func:`schedulable`): the param is a number or the name of a
  ``[schedules]`` entry. graph/ passes the schedule's value at step 0 to ``infer`` /
  ``init_args``; the generated module's ``set_schedules(sched)`` assigns the current value to
  the module attribute of the *same name* as the param (``self.masking.ratio = ...``), which
  the trainer calls before every training forward and evaluation with ``[eval] schedules``
  overrides. A module with such a param must read that attribute at every forward.
- ``"x-dynamic-size": true`` (:func:`dynamic_size`): the param names a size known only at
  run time that the op introduces (random_masking's kept-patch count ``L``); signatures of
  node outputs may use that name like the batch ``B``, and the shape rule returns it as a
  free symbol (``Dim.of("L")``).

Calling convention of generated code: ``out = self.node(a)`` for one input,
``self.node(inputs=a, slots=b)`` (keywords, port names) for several; one output returns a
tensor, several return a tuple in ``outputs`` order.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ocdsl.shapes import Shape

__all__ = [
    "Port", "Symmetry", "OpDef", "register", "get", "names", "all_ops",
    "size", "sizes", "number", "integer", "boolean", "enum", "schedulable", "dynamic_size",
    "UnknownOp", "NAME_PATTERN", "param_type",
]

#: An identifier: a [schedules] entry or a dynamic size name.
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


@dataclass(frozen=True)
class Port:
    """An input port. ``signature`` documents the expected layout ("B N D")."""

    name: str
    signature: str = ""
    optional: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Symmetry:
    """A symmetry the op guarantees (checked by ocdsl/invariance as property tests).

    kind: permutation_equivariance | permutation_invariance | translation_equivariance |
    translation_invariance. ``transform`` maps input port -> axis letter of that port's
    signature that is permuted/shifted; ``output`` maps output port -> the matching axis
    (None for invariance).
    """

    kind: str
    transform: Mapping[str, str]
    output: Mapping[str, str | None]
    doc: str = ""


@dataclass(frozen=True)
class OpDef:
    name: str
    module: type
    inputs: tuple[Port, ...]
    outputs: tuple[str, ...]
    params: Mapping[str, Any]
    infer: Callable[[dict[str, Shape], dict[str, Any]], dict[str, Shape]]
    init_args: Callable[[dict[str, Shape], dict[str, Any]], dict[str, Any]]
    required: tuple[str, ...] = ()
    symmetries: tuple[Symmetry, ...] = ()
    version: int = 1
    # False where torch.compile measured slower than eager on the CPU (docs/results.md).
    compile_on_cpu: bool = True
    # True where torch.compile needs one eager forward first to capture a single graph
    # (transformers 5 Segformer installs its output hooks lazily: docs/results.md).
    warmup_before_compile: bool = False
    summary: str = ""

    @property
    def doc(self) -> str:
        return (self.module.__doc__ or "").strip()

    def params_schema(self) -> dict[str, Any]:
        """JSON Schema of one node of this op (its params plus the common node keys)."""
        return {
            "type": "object",
            "properties": dict(self.params),
            "required": list(self.required),
        }


class UnknownOp(KeyError):
    pass


_REGISTRY: dict[str, OpDef] = {}


def constructor_defaults(module: type) -> dict[str, Any]:
    """The defaults of ``module``'s constructor arguments (None defaults left out: they
    mean "derived from other arguments"), tuples as lists (JSON)."""
    out = {}
    for name, p in inspect.signature(module.__init__).parameters.items():
        if p.default is not inspect.Parameter.empty and p.default is not None:
            out[name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out


def _with_defaults(op: OpDef) -> OpDef:
    """``op`` with each parameter's schema ``default`` taken from the constructor argument of
    the same name: the constructor's signature is the one place a default is written.
    Raises ValueError where a schema states another default than the constructor."""
    params = dict(op.params)
    for name, default in constructor_defaults(op.module).items():
        prop = params.get(name)
        if not isinstance(prop, Mapping):
            continue
        if "default" in prop and prop["default"] != default:
            raise ValueError(f"op {op.name!r}: parameter {name!r} defaults to {prop['default']!r} in its "
                             f"schema but to {default!r} in {op.module.__name__}(): write it once, in the "
                             f"constructor")
        params[name] = {**prop, "default": default}
    defaults = {k: p["default"] for k, p in params.items() if isinstance(p, Mapping) and "default" in p}
    return dataclasses.replace(op, params=params, infer=_filled(op.infer, defaults),
                               init_args=_filled(op.init_args, defaults))


def _filled(rule: Callable[[dict, dict], Any], defaults: Mapping[str, Any]) -> Callable[[dict, dict], Any]:
    """``rule(in_shapes, params)`` called with every parameter the node leaves out set to its
    schema default (a fresh copy each call), so an op's shape rule and ``init_args`` read
    ``params[name]`` and never restate a default."""
    @functools.wraps(rule)
    def with_defaults(in_shapes: dict, params: dict) -> Any:
        return rule(in_shapes, {**copy.deepcopy(dict(defaults)), **params})
    return with_defaults


def register(op: OpDef) -> OpDef:
    """Add ``op`` to the registry (its parameter defaults from its constructor, see
    :func:`constructor_defaults`). Raises ValueError for a second op of the same name."""
    if op.name in _REGISTRY and _REGISTRY[op.name].module is not op.module:
        raise ValueError(f"op {op.name!r} registered twice")
    op = _with_defaults(op)
    _REGISTRY[op.name] = op
    return op


def _load_all() -> None:
    # Importing the package registers every op family (ocdsl/ops/__init__.py).
    import ocdsl.ops  # noqa: F401


def get(name: str) -> OpDef:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownOp(name) from None


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def all_ops() -> list[OpDef]:
    _load_all()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


# ---- schema helpers: parameters are described as data ------------------------------------

def size(description: str, **extra) -> dict:
    """A positive size: an int, or an expression over [dims] such as "K" or "2*D"."""
    return {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}],
            "x-size": True, "description": description, **extra}


def sizes(description: str, **extra) -> dict:
    """A list of sizes (e.g. conv channels)."""
    return {"type": "array", "items": size("a size"), "minItems": 1,
            "description": description, **extra}


def number(description: str, **extra) -> dict:
    return {"type": "number", "description": description, **extra}


def integer(description: str, **extra) -> dict:
    return {"type": "integer", "description": description, **extra}


def boolean(description: str, **extra) -> dict:
    return {"type": "boolean", "description": description, **extra}


def enum(description: str, choices, **extra) -> dict:
    return {"enum": list(choices), "description": description, **extra}


def schedulable(description: str, **number_schema) -> dict:
    """A number (``number_schema`` bounds it, e.g. ``minimum=0``) or the name of a
    ``[schedules]`` entry read at every training step (see the module docstring)."""
    default = number_schema.pop("default", None)
    out = {"anyOf": [{"type": "number", **number_schema},
                     {"type": "string", "pattern": NAME_PATTERN}],
           "x-schedule": True,
           "description": description + " A number, or the name of a [schedules] entry "
                                        "(set before every training step)."}
    if default is not None:
        out["default"] = default
    return out


def dynamic_size(description: str, default: str) -> dict:
    """The name of a size the op introduces that is known only at run time (see the module
    docstring); output signatures may use it like the batch ``B``."""
    return {"type": "string", "pattern": NAME_PATTERN, "x-dynamic-size": True,
            "default": default, "description": description}


def param_type(prop: Mapping[str, Any]) -> str:
    """A parameter schema as a short type for people: ``size`` (an int or a [dims]
    expression), ``list[size]``, ``number | schedule``, ``one of 'a', 'b'``, ``bool`` ..."""
    if prop.get("x-size") or any(p.get("x-size") for p in prop.get("anyOf", ()) if isinstance(p, Mapping)):
        return "size"
    if prop.get("x-schedule"):
        return "number | schedule"
    if prop.get("x-dynamic-size"):
        return "name (run-time size)"
    if "enum" in prop:
        return "one of " + ", ".join(repr(c) for c in prop["enum"])
    if "const" in prop:
        return repr(prop["const"])
    kind = prop.get("type")
    if kind == "array":
        items = prop.get("items")
        return f"list[{param_type(items) if isinstance(items, Mapping) else 'any'}]"
    if kind == "object":
        values = prop.get("additionalProperties")
        return f"table of {param_type(values)}" if isinstance(values, Mapping) else "table"
    if isinstance(kind, list):
        return " | ".join({"boolean": "bool", "integer": "int", "string": "str"}.get(k, k) for k in kind)
    if "anyOf" in prop:
        return " | ".join(param_type(p) for p in prop["anyOf"] if isinstance(p, Mapping))
    return {"boolean": "bool", "integer": "int", "string": "str"}.get(kind, kind or "any")
