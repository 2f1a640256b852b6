"""Loss expressions typed and shape-checked before any tensor exists.

Every ``[losses]`` entry is an expression over model inputs, node outputs, other losses,
schedules, dims and ``step`` (ocdsl/spec/expr.py). This pass gives each sub-expression a
type, as shape inference gives each node its output shapes:

- a **number** (a literal, dim, schedule, ``step``; arithmetic on numbers), or
- a **tensor** with a symbolic shape (``(B, 3, 35, 35)``: the node's inferred output, the
  model input's signature), and the op nodes whose parameters it depends on.

Rules: arithmetic, comparisons and elementwise functions (``min``, ``exp``, ...) broadcast
their operands as torch does (aligned from the right, sizes equal or one of them 1);
``mean`` / ``sum`` reduce a tensor to a scalar; each loss function of
:data:`ocdsl.losses.functions.FUNCTIONS` has its rule in :data:`RULES` (``mse``: two tensors of
the same shape -> a scalar, ``pixel_entropy``: masks ``b k h w`` or ``b k 1 h w``, ...); a
conditional ``a if c else b`` needs a single truth value ``c`` and two branches of the same
kind and shape. A function without a rule (one added to FUNCTIONS later) is typed
"tensor of unknown shape" when a tensor reaches it, and checked no further.

Then each loss must be a scalar (a tensor of one element); a loss that depends on no
trainable parameter is a warning, and the loss training minimises (``train.loss``, each
phase's ``loss``) is an error when none of its parameters train (a constant loss has no
gradient: ``backward`` fails).

Errors are located at the sub-expression (file:line:col of the operator or call) with the
loss's key and a hint giving each operand's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import networkx as nx

from ocdsl.errors import Diagnostic, SpecError
from ocdsl.shapes import Dim, Shape, fmt_shape
from ocdsl.spec import expr as E
from ocdsl.spec.model import Spec

__all__ = ["LossType", "RULES", "loss_types", "check_losses"]


@dataclass(frozen=True)
class LossType:
    """The type of a loss sub-expression. ``shape`` is None for a number, or for a tensor of
    unknown shape when ``tensor`` is true; ``params``: op nodes with parameters it depends on."""

    tensor: bool
    shape: Shape | None = None
    params: frozenset[str] = frozenset()

    @property
    def is_scalar(self) -> bool:
        return self.tensor and self.shape is not None and all(d.is_concrete and d.value == 1 for d in self.shape)

    def describe(self) -> str:
        if not self.tensor:
            return "a number"
        return "a tensor of unknown shape" if self.shape is None else f"a tensor {fmt_shape(self.shape)}"


NUMBER = LossType(False)


class _Fail(Exception):
    def __init__(self, at: Any, message: str, hint: str | None = None):
        super().__init__(message)
        self.at, self.message, self.hint = at, message, hint


def _deps(*ts: LossType) -> frozenset[str]:
    return frozenset().union(*(t.params for t in ts))


def broadcast(a: Shape | None, b: Shape | None) -> Shape | None:
    """Torch's broadcast of two shapes (None: unknown); raises ValueError where they do not
    broadcast."""
    if a is None or b is None:
        return None
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else Dim(1)
        y = b[-i] if i <= len(b) else Dim(1)
        if x == y or y == Dim(1):
            out.append(x)
        elif x == Dim(1):
            out.append(y)
        else:
            raise ValueError(f"size {x} against {y}")
    return tuple(reversed(out))


def _elementwise(e: E.Expr, what: str, args: list[LossType], argx: tuple) -> LossType:
    tensors = [(t, x) for t, x in zip(args, argx) if t.tensor]
    if not tensors:
        return NUMBER
    shape = tensors[0][0].shape
    for t, x in tensors[1:]:
        try:
            shape = broadcast(shape, t.shape)
        except ValueError as err:
            raise _Fail(e, f"{what}: the operands' shapes do not broadcast ({err})", _operands(argx, args)) from None
    return LossType(True, shape, _deps(*args))


def _operands(argx: tuple, args: list[LossType]) -> str:
    return "; ".join(f"{E.unparse(x)!r} is {t.describe()}" for x, t in zip(argx, args))


def _need_tensors(e: E.Call, args: list[LossType], rank: tuple[int, ...] | None, same: bool,
                  count: int | None = None) -> None:
    """Arguments ``0 .. count-1`` are tensors (of a rank in ``rank``), of one shape when ``same``."""
    idx = range(len(args) if count is None else count)
    for i in idx:
        t = args[i]
        if not t.tensor:
            raise _Fail(e.args[i], f"{e.func}() needs a tensor, got {t.describe()} ({E.unparse(e.args[i])!r})",
                        "pass a model input or a node output")
        if rank and t.shape is not None and len(t.shape) not in rank:
            want = " or ".join(f"{r}-D" for r in rank)
            raise _Fail(e.args[i], f"{e.func}() needs a {want} tensor, got {t.describe()} "
                                   f"({E.unparse(e.args[i])!r})", _rule_doc(e.func))
    if same:
        shapes = [args[i].shape for i in idx]
        known = [s for s in shapes if s is not None]
        if any(s != known[0] for s in known):
            raise _Fail(e, f"{e.func}(): the operands' shapes differ",
                        _operands(tuple(e.args[i] for i in idx), [args[i] for i in idx]))


def _need_number(e: E.Call, args: list[LossType], i: int) -> None:
    if args[i].tensor:
        raise _Fail(e.args[i], f"{e.func}(): argument {i + 1} must be a number, got {args[i].describe()}",
                    _rule_doc(e.func))


def _rule_doc(name: str) -> str | None:
    from ocdsl.losses.functions import FUNCTIONS

    fn = FUNCTIONS.get(name)
    return f"{name}: {fn.doc.splitlines()[0]}" if fn and fn.doc else None


def _scalar(args: list[LossType]) -> LossType:
    return LossType(True, (), _deps(*args))


def _reduce(e, args):
    _need_tensors(e, args, None, False)
    return _scalar(args)


def _pair(rank):
    def rule(e, args):
        _need_tensors(e, args, rank, True, 2)
        return _scalar(args)
    return rule


def _masks(e, args):
    _need_tensors(e, args, (4, 5), False)
    s = args[0].shape
    if s is not None and len(s) == 5 and s[2] != Dim(1):
        raise _Fail(e.args[0], f"{e.func}() needs masks (b, k, h, w) or (b, k, 1, h, w), got {args[0].describe()}",
                    _rule_doc(e.func))
    return _scalar(args)


def _contrastive(rank):
    def rule(e, args):
        _need_tensors(e, args, (rank,), True, 2)
        _need_number(e, args, 2)
        return _scalar(args)
    return rule


def _four_tokens(e, args):
    _need_tensors(e, args, (3,), True, 4)
    return _scalar(args)


def _set_pair(e, args):
    """``hungarian_huber(pred b k p, target b o p)``: the same b and p, o <= k where known."""
    _need_tensors(e, args, (3,), False, 2)
    p, t = args[0].shape, args[1].shape
    if p is not None and t is not None:
        k, o = p[1], t[1]
        more = k.is_concrete and o.is_concrete and o.value > k.value
        if p[0] != t[0] or p[2] != t[2] or more:
            raise _Fail(e, f"{e.func}(): expected pred (b, k, p) and target (b, o, p) with o <= k",
                        _operands(e.args, args))
    return _scalar(args)


def _background(e, args):
    _need_tensors(e, args, (4,), False)
    bg, err, img = (a.shape for a in args)
    if bg is not None and img is not None and bg != img:
        raise _Fail(e, "background_loss(): the background must have the image's shape", _operands(e.args, args))
    if err is not None and img is not None and tuple(err) != (img[0], Dim(1), img[2], img[3]):
        raise _Fail(e.args[1], f"background_loss(): the error map must be (b, 1, h, w) = "
                               f"{fmt_shape((img[0], Dim(1), img[2], img[3]))}, got {args[1].describe()}")
    return _scalar(args)


def _number_only(e, args):
    return NUMBER


#: Type rule of each function of ocdsl.losses.functions.FUNCTIONS: (call, argument types)
#: -> result type; raises _Fail. Elementwise functions are typed by broadcasting.
RULES: dict[str, Callable[[E.Call, list[LossType]], LossType]] = {
    **{f: (lambda e, args: _elementwise(e, f"{e.func}()", args, e.args))
       for f in ("min", "max", "clamp", "exp", "log", "sqrt", "cos", "sin", "abs", "floor", "ceil")},
    "pi": _number_only,
    "mean": _reduce, "sum": _reduce,
    "mse": _pair(None), "l1": _pair(None), "l1_squared": _pair((4,)),
    "pixel_entropy": _masks, "pixel_entropy_squared": _masks, "object_entropy": _masks,
    "background_loss": _background,
    "nt_xent": _contrastive(2), "ctr_all": _contrastive(3), "ctr_img": _contrastive(3),
    "cossim_matched": _four_tokens,
    "hungarian_huber": _set_pair,
}


class _Typer:
    """Types the expressions of ``spec.losses`` over the shapes of the checked graph."""

    def __init__(self, spec: Spec, G: nx.MultiDiGraph, with_params: set[str]):
        self.spec, self.G = spec, G
        self.inputs = {n: d["out_shapes"]["out"] for n, d in G.nodes(data=True)
                       if d["kind"] == "input" and "out_shapes" in d}
        self.deps: dict[str, frozenset[str]] = {}
        for n, d in G.nodes(data=True):
            if d["kind"] == "op":
                self.deps[n] = frozenset(m for m in nx.ancestors(G, n) | {n} if m in with_params)
        self.types: dict[str, LossType] = {}
        self.failed: set[str] = set()

    def output(self, node: str, port: str | None, at: Any) -> LossType:
        data = self.G.nodes[node]
        if data["kind"] == "input":
            return LossType(True, self.inputs.get(node), frozenset())
        port = port or data["opdef"].outputs[0]
        shape = (data.get("out_shapes") or {}).get(port)
        return LossType(True, shape, self.deps.get(node, frozenset()))

    def loss(self, name: str) -> LossType | None:
        if name in self.types or name in self.failed:
            return self.types.get(name)
        self.failed.add(name)            # while typing it (validation rejected cycles)
        t = self.go(self.spec.losses[name])
        self.failed.discard(name)
        self.types[name] = t
        return t

    def go(self, e: E.Expr) -> LossType:
        if isinstance(e, E.Num):
            return NUMBER
        if isinstance(e, E.Name):
            if e.id in self.spec.losses:
                t = self.loss(e.id)
                if t is None:
                    raise _Fail(e, "")        # its own error is reported at its key
                return t
            if e.id in self.G and self.G.nodes[e.id]["kind"] in ("input", "op"):
                return self.output(e.id, None, e)
            return NUMBER                       # dim, schedule, step, epoch
        if isinstance(e, E.Attr):
            return self.output(e.node, e.port, e)
        if isinstance(e, E.Unary):
            return self.go(e.operand)
        if isinstance(e, (E.BinOp, E.Compare)):
            args = [self.go(e.left), self.go(e.right)]
            return _elementwise(e, f"{E.unparse(e)!r}", args, (e.left, e.right))
        if isinstance(e, E.IfElse):
            return self.conditional(e)
        if isinstance(e, E.Call):
            args = [self.go(a) for a in e.args]
            rule = RULES.get(e.func)
            if rule is not None:
                return rule(e, args)
            tensors = [a for a in args if a.tensor]
            return LossType(True, None, _deps(*args)) if tensors else NUMBER
        raise TypeError(f"not an expression node: {e!r}")

    def conditional(self, e: E.IfElse) -> LossType:
        test = self.go(e.test)
        if test.tensor and not test.is_scalar and test.shape is not None:
            raise _Fail(e.test, f"the condition {E.unparse(e.test)!r} is {test.describe()}, not a single truth value",
                        "compare numbers (step, schedules) or reduce the tensor with mean(...) first")
        body, orelse = self.go(e.body), self.go(e.orelse)
        if body.tensor != orelse.tensor:
            raise _Fail(e, f"the branches of {E.unparse(e)!r} differ in kind: {body.describe()} if the condition "
                           f"holds, {orelse.describe()} otherwise",
                        "give both branches the same kind, e.g. weight a loss with a schedule "
                        "(w * mse(...), w = \"1 if step < 1000 else 0\")")
        if body.tensor and body.shape is not None and orelse.shape is not None and body.shape != orelse.shape:
            raise _Fail(e, f"the branches of {E.unparse(e)!r} differ in shape: {fmt_shape(body.shape)} and "
                           f"{fmt_shape(orelse.shape)}")
        shape = body.shape if body.shape is not None else orelse.shape
        return LossType(body.tensor, shape, _deps(test, body, orelse))


def loss_types(spec: Spec, G: nx.MultiDiGraph, with_params: set[str]) -> tuple[dict[str, LossType], list[Diagnostic]]:
    """The type of every ``[losses]`` entry, and the errors found typing them (located at
    the sub-expression). ``with_params``: the op nodes that have parameters."""
    typer = _Typer(spec, G, with_params)
    diags = []
    for name in spec.losses:
        try:
            typer.loss(name)
        except _Fail as f:
            typer.failed.add(name)
            if f.message:
                diags.append(_at(spec, ("losses", name), f.at, f"loss '{name}': {f.message}", f.hint))
    return typer.types, diags


def _at(spec: Spec, kp: tuple, node: Any, message: str, hint: str | None = None,
        severity: str = "error") -> Diagnostic:
    loc = spec.locations.get(kp)
    return Diagnostic(message, file=loc.file, line=getattr(node, "line", 0) or loc.line,
                      col=getattr(node, "col", 0) or loc.col, keypath=tuple(kp), hint=hint, severity=severity)


def check_losses(spec: Spec, G: nx.MultiDiGraph, with_params: set[str]) -> list[Diagnostic]:
    """Type every loss (:func:`loss_types`); each must be a scalar; a loss depending on no
    trainable parameter is a warning, and the loss of a training phase whose parameters do
    not train (all frozen, or none) an error. Raises SpecError with every error; returns the
    warnings."""
    types, errors = loss_types(spec, G, with_params)
    warnings: list[Diagnostic] = []
    training = _training_losses(spec, set(with_params))
    for name, t in types.items():
        kp = ("losses", name)
        if t.tensor and t.shape is not None and not t.is_scalar:
            errors.append(spec.diag(kp, f"loss '{name}' is not a scalar: it is {t.describe()}",
                                    "reduce it to one number: mean(...) or sum(...)"))
            continue
        for where, trainable in training.get(name, ()):
            if not (t.params & trainable):
                what = "is a number" if not t.tensor else "depends on no trainable parameter"
                errors.append(spec.diag(where, f"the training loss '{name}' {what}{_trained_in(where)}: "
                                               f"it has no gradient to minimise",
                                        "build it from outputs of nodes with parameters, e.g. "
                                        "mse(decoder, image)"))
        if name not in training and not t.params:
            what = "is a constant" if not t.tensor else "depends on no trainable parameter"
            warnings.append(spec.diag(kp, f"loss '{name}' {what}: it trains nothing", severity="warning"))
    if errors:
        raise SpecError(errors)
    return warnings


def _trained_in(kp: tuple) -> str:
    return f" in phase {kp[2] + 1}" if len(kp) > 2 and kp[1] == "phases" else ""


def _training_losses(spec: Spec, with_params: set[str]) -> dict[str, list[tuple[tuple, set[str]]]]:
    """loss name -> [(key that names it for training, the nodes with parameters that train)]."""
    out: dict[str, list[tuple[tuple, set[str]]]] = {}
    train = spec.train
    if not train.phases:
        if train.loss in spec.losses:
            kp = ("train", "loss") if ("train", "loss") in spec.locations else ("losses", train.loss)
            out.setdefault(train.loss, []).append((kp, with_params))
        return out
    for ph in train.phases:
        if ph.loss not in spec.losses:
            continue
        if ph.trainable is not None:
            trains = {n for n in ph.trainable if n in with_params}
        else:
            trains = with_params - set(ph.frozen)
        kp = ph.keypath + ("loss",) if ph.keypath + ("loss",) in spec.locations else ph.keypath
        out.setdefault(ph.loss, []).append((kp, trains))
    return out
