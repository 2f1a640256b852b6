"""An op parameter's default is written once, in its module's constructor signature: the
registry copies it into the schema and fills it into ``params`` before the op's shape rule
and ``init_args`` run (ocdsl/ops/registry.py), so no op restates it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from torch import nn

import ocdsl.ops  # noqa: F401  (registers every op)
from ocdsl.ops import registry
from ocdsl.ops.registry import OpDef, all_ops, number

OPS_DIR = Path(registry.__file__).parent


class _Scaled(nn.Module):
    def __init__(self, factor: float = 2.5):
        super().__init__()
        self.factor = factor


def test_init_args_and_shape_rule_see_the_constructor_default():
    """A node that leaves a parameter out gets the constructor's default in ``params``; a
    node that sets it gets its own value; the caller's dict is not changed."""
    seen = []
    op = registry._with_defaults(OpDef(
        name="_scaled", module=_Scaled, inputs=(), outputs=("out",),
        params={"factor": number("a factor")},
        infer=lambda shapes, params: seen.append(("infer", params["factor"])) or {},
        init_args=lambda shapes, params: {"factor": params["factor"]}))
    assert op.params["factor"]["default"] == 2.5
    given: dict = {}
    assert op.init_args({}, given) == {"factor": 2.5} and given == {}
    assert op.init_args({}, {"factor": 0.5}) == {"factor": 0.5}
    op.infer({}, {})
    assert seen == [("infer", 2.5)]


class _Expr(str):
    """A fallback that is an expression, not a literal (not compared)."""


def _restated(path: Path, defaults: dict[str, list]) -> list[tuple[int, str, object]]:
    """``params.get("name", <fallback>)`` calls in ``path`` for a parameter that has a schema
    default: (line, name, fallback value, or the fallback's source where it is not a
    literal). The registry fills the default first, so each is a second statement of it."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "params"
                and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in defaults):
            try:
                fallback = ast.literal_eval(node.args[1])
            except ValueError:
                fallback = _Expr(ast.unparse(node.args[1]))
            out.append((node.lineno, node.args[0].value, fallback))
    return out


def _defaults_by_file() -> dict[Path, dict[str, list]]:
    """Each op source file -> parameter name -> the schema defaults of that name among the
    ops whose shape rule or init_args live there."""
    out: dict[Path, dict[str, list]] = {}
    for op in all_ops():
        for fn in (op.infer, op.init_args):
            names = out.setdefault(Path(inspect.getsourcefile(inspect.unwrap(fn))), {})
            for k, p in op.params.items():
                if "default" in p:
                    names.setdefault(k, []).append(p["default"])
    return out


def _same(a, b) -> bool:
    """Equal as JSON values (a tuple fallback equals a list default; 1 == 1.0)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def test_no_op_restates_a_parameter_default_differently():
    """Anywhere a fallback is still written beside ``params.get``, it is the constructor's
    default (a different one would contradict the schema the user reads)."""
    wrong = [f"{path.name}:{line}: params.get({name!r}, {fallback!r}), default {defaults[name]}"
             for path, defaults in sorted(_defaults_by_file().items())
             for line, name, fallback in _restated(path, defaults)
             if not isinstance(fallback, _Expr) and fallback is not None
             and not any(_same(fallback, d) for d in defaults[name])]
    assert not wrong, "defaults restated differently from the constructor's:\n" + "\n".join(wrong)


# every op module reads params[name]; a module listed here would be exempt
_STILL_RESTATING: tuple[str, ...] = ()


def test_no_op_module_states_a_default_beside_the_constructor():
    restated = [f"{path.name}:{line}: params.get({name!r}, {fallback!r})"
                for path, defaults in sorted(_defaults_by_file().items())
                if path.name not in _STILL_RESTATING
                for line, name, fallback in _restated(path, defaults)]
    assert len(_defaults_by_file()) > 15
    assert not restated, "write params[name]: the registry fills the default\n" + "\n".join(restated)


@pytest.mark.parametrize("name", ["soft_argmax", "latent_split", "reduce", "split", "concat"])
def test_the_ops_that_restated_defaults_take_them_from_the_constructor(name):
    op = registry.get(name)
    ctor = registry.constructor_defaults(op.module)
    defaulted = {k: p["default"] for k, p in op.params.items() if "default" in p}
    assert defaulted and all(defaulted[k] == ctor[k] for k in defaulted if k in ctor)
