"""Tensor plumbing ops: ``rearrange`` and ``reduce`` (einops patterns with a shape rule),
``split`` and ``concat`` (two parts along one axis)."""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import einops
import torch
from torch import nn

from ocdsl.ops.registry import OpDef, Port, enum, integer, register, size, sizes
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["Rearrange", "Reduce", "Split", "Concat", "parse_pattern", "rearrange_shape", "REDUCTIONS"]

ELLIPSIS = "..."
_TOKEN = re.compile(r"\.\.\.|\(|\)|[A-Za-z_][A-Za-z0-9_]*|\d+|\S")

# One axis of a pattern side: a tuple of atoms (names, int literals or "..." inside a
# group); a bare name is a 1-tuple, "(h w)" is ("h", "w"), "()" is the empty group (size 1),
# and a bare "..." (any number of axes) is the string "...".
Axis = tuple[str | int, ...] | str


def _atoms(side: list[Axis]) -> list[str | int]:
    return [a for ax in side for a in ((ax,) if ax == ELLIPSIS else ax)]


def _parse_side(text: str, pattern: str) -> list[Axis]:
    axes: list[Axis] = []
    group: list[str | int] | None = None
    for tok in _TOKEN.findall(text):
        if tok == "(":
            if group is not None:
                raise ShapeError(f"pattern {pattern!r}: expected no nested parentheses, got '(('")
            group = []
        elif tok == ")":
            if group is None:
                raise ShapeError(f"pattern {pattern!r}: expected '(' before ')', got a lone ')'")
            axes.append(tuple(group))
            group = None
        elif tok == ELLIPSIS or tok.isidentifier() or tok.isdigit():
            atom: str | int = int(tok) if tok.isdigit() else tok
            if group is None:
                axes.append(ELLIPSIS if atom == ELLIPSIS else (atom,))
            else:
                group.append(atom)
        else:
            raise ShapeError(f"pattern {pattern!r}: expected axis names, '(', ')' or '...', "
                             f"got {tok!r}")
    if group is not None:
        raise ShapeError(f"pattern {pattern!r}: expected ')' to close the group, got end of text")
    return axes


def parse_pattern(pattern: str, reduction: bool = False) -> tuple[list[Axis], list[Axis]]:
    """``"b c h w -> b (h w) c"`` -> ``([("b",), ("c",), ("h",), ("w",)],
    [("b",), ("h", "w"), ("c",)])``. Raises ShapeError for a malformed pattern.

    With ``reduction`` (an ``einops.reduce`` pattern) the right side may leave out axes of
    the left side (those are reduced), and a left-side ``...`` may be absent on the right."""
    if pattern.count("->") != 1:
        raise ShapeError(f"pattern {pattern!r}: expected exactly one '->', "
                         f"got {pattern.count('->')}")
    left_text, right_text = pattern.split("->")
    left, right = _parse_side(left_text, pattern), _parse_side(right_text, pattern)

    def names(side: list[Axis]) -> list[str]:
        return [a for a in _atoms(side) if isinstance(a, str) and a != ELLIPSIS]

    for side, label in ((left, "left"), (right, "right")):
        ns = names(side)
        dup = sorted({n for n in ns if ns.count(n) > 1})
        if dup:
            raise ShapeError(f"pattern {pattern!r}: expected each axis name once on the {label} "
                             f"side, got {', '.join(dup)} repeated")
        n_ell = sum(a == ELLIPSIS for a in _atoms(side))
        if n_ell > 1:
            raise ShapeError(f"pattern {pattern!r}: expected at most one '...' per side, "
                             f"got {n_ell}")
    has_ell = [ELLIPSIS in _atoms(side) for side in (left, right)]
    if reduction:
        extra = sorted(set(names(right)) - set(names(left)))
        if extra:
            raise ShapeError(f"pattern {pattern!r}: expected the right side's axes to be axes of the "
                             f"left side (a reduction only removes axes), got {', '.join(extra)} "
                             f"only on the right")
        if has_ell[1] and not has_ell[0]:
            raise ShapeError(f"pattern {pattern!r}: expected '...' on the left where the right has it")
        return left, right
    if set(names(left)) != set(names(right)):
        raise ShapeError(f"pattern {pattern!r}: expected the same axis names on both sides, got "
                         f"{sorted(names(left))} -> {sorted(names(right))}")
    if has_ell[0] != has_ell[1]:
        raise ShapeError(f"pattern {pattern!r}: expected '...' on both sides or neither")
    return left, right


def rearrange_shape(pattern: str, in_shape: Shape,
                    axes: Mapping[str, int] | None = None, reduction: bool = False) -> Shape:
    """The output shape of ``einops.rearrange(x, pattern, **axes)`` for ``x`` of ``in_shape``
    (of ``einops.reduce`` with ``reduction``).

    The left side's names are bound to the input's sizes (a group ``(h w)`` on the left is
    split, with all but one of its sizes given in ``axes``); the right side's groups
    multiply. Sizes stay symbolic where they are (``B`` -> ``B``; ``(b k)`` -> ``B*4``).
    A reduction drops the left-side axes the right side does not name.
    """
    left, right = parse_pattern(pattern, reduction)
    in_shape = tuple(Dim.of(d) for d in in_shape)
    bound: dict[str, Dim] = {k: Dim.of(v) for k, v in (axes or {}).items()}
    ell_dims: tuple[Dim, ...] = ()
    has_ell = ELLIPSIS in left
    if any(ax != ELLIPSIS and ELLIPSIS in ax for ax in left):
        raise ShapeError(f"pattern {pattern!r}: expected '...' outside parentheses on the left")
    n_fixed = len(left) - has_ell
    lhs = pattern.split("->")[0].strip()
    if (has_ell and len(in_shape) < n_fixed) or (not has_ell and len(in_shape) != n_fixed):
        more = "at least " if has_ell else ""
        raise ShapeError(f"pattern {pattern!r}: expected an input with {more}{n_fixed} axes "
                         f"({lhs}), got {len(in_shape)} axes {fmt_shape(in_shape)}")
    # Pair each left axis with its input dim(s).
    pairs: list[tuple[Axis, Dim]] = []
    i = 0
    for ax in left:
        if ax == ELLIPSIS:
            n_ell = len(in_shape) - n_fixed
            ell_dims = in_shape[i:i + n_ell]
            i += n_ell
        else:
            pairs.append((ax, in_shape[i]))
            i += 1
    for ax, d in pairs:
        unknown = [a for a in ax if isinstance(a, str) and a not in bound]
        known = Dim.of(1)
        for a in ax:
            if isinstance(a, int):
                known = known * a
            elif a in bound:
                known = known * bound[a]
        if len(unknown) > 1:
            raise ShapeError(f"pattern {pattern!r}: expected sizes for all but one of "
                             f"({' '.join(map(str, ax))}) in 'axes', got none for "
                             f"{', '.join(unknown)}")
        if unknown:
            try:
                bound[unknown[0]] = d // known
            except ShapeError:
                raise ShapeError(f"pattern {pattern!r}: expected axis ({' '.join(map(str, ax))}) "
                                 f"to be divisible by {known}, got {d}") from None
        elif known != d:
            raise ShapeError(f"pattern {pattern!r}: expected axis ({' '.join(map(str, ax))}) "
                             f"= {known}, got {d}")
    out: list[Dim] = []
    for ax in right:
        if ax == ELLIPSIS:
            out.extend(ell_dims)
            continue
        prod = Dim.of(1)
        for a in ax:
            if a == ELLIPSIS:
                for d in ell_dims:
                    prod = prod * d
            elif isinstance(a, int):
                prod = prod * a
            else:
                prod = prod * bound[a]
        out.append(prod)
    return tuple(out)


class Rearrange(nn.Module):
    """``einops.rearrange`` as a module: reorder, merge and split axes by a named pattern.

    Args:
        pattern (`str`):
            An einops pattern, e.g. ``"b c h w -> b (h w) c"``.
        axes (`dict[str, int]`, *optional*, defaults to `None`):
            Sizes of axes that a left-side group splits, e.g. ``{"h": 8}`` for
            ``"b (h w) c -> b c h w"``.

    Shapes:
        x:   left side of ``pattern``     e.g. b c h w
        out: right side of ``pattern``    e.g. b (h w) c

    Raises:
        ShapeError (shape rule): a malformed pattern, an input whose number of axes differs
        from the left side's, or a group that does not divide its axis.
        einops.EinopsError (forward): the tensor does not match the pattern.

    Source:
        Rogozhnikov, "Einops: clear and reliable tensor manipulations with Einstein-like
        notation", ICLR 2022. Used for Slot Attention's flatten of the feature map
        (Locatello et al. 2020, App. E.1: "flatten spatial dimensions").
    """

    def __init__(self, pattern: str, axes: Mapping[str, int] | None = None):
        super().__init__()
        self.pattern = pattern
        self.axes = dict(axes or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return einops.rearrange(x, self.pattern, **self.axes)

    def extra_repr(self) -> str:
        return repr(self.pattern) + (f", axes={self.axes}" if self.axes else "")


def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    return {"out": rearrange_shape(params["pattern"], in_shapes["x"], params.get("axes"))}


#: ``axes = {h = 8}`` or ``{k = "K"}``: sizes of axes split out of a left-side group; each
#: value a size (an int or an expression over [dims], resolved by graph/).
_AXES = {"type": "object", "additionalProperties": size("an axis size"),
         "description": "sizes of axes split out of a left-side group: numbers or [dims] "
                        "expressions, e.g. {h = 8} or {k = \"K\"}"}


def _init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"pattern": params["pattern"]}
    if params.get("axes"):
        out["axes"] = {str(k): int(v) for k, v in params["axes"].items()}
    return out


register(OpDef(
    name="rearrange",
    module=Rearrange,
    inputs=(Port("x", "...", doc="any tensor matching the left side of the pattern"),),
    outputs=("out",),
    params={
        "pattern": {"type": "string", "pattern": "->",
                    "description": "einops pattern, e.g. 'b c h w -> b (h w) c'"},
        "axes": _AXES,
    },
    infer=_infer,
    init_args=_init_args,
    required=("pattern",),
    summary="einops.rearrange with a named pattern",
))


# ---- reduce ---------------------------------------------------------------------------------

REDUCTIONS = ("mean", "sum", "max", "min", "prod")


class Reduce(nn.Module):
    """``einops.reduce`` as a module: reduce the axes a named pattern leaves out.

    Args:
        pattern (`str`):
            An einops pattern whose right side names a subset of the left side's axes, e.g.
            ``"b k d -> b d"`` (pool over the slots) or ``"b c h w -> b c"`` (global pool).
        reduction (`str`, *optional*, defaults to `"mean"`):
            `"mean"`, `"sum"`, `"max"`, `"min"` or `"prod"`.
        axes (`dict[str, int]`, *optional*, defaults to `None`):
            Sizes of axes that a left-side group splits, e.g. ``{"h": 8}``.

    Shapes:
        x:   left side of ``pattern``     e.g. b k d
        out: right side of ``pattern``    e.g. b d

    Raises:
        ShapeError (shape rule): a malformed pattern, an axis on the right that is not on the
        left, or an input whose number of axes differs from the left side's.
        einops.EinopsError (forward): the tensor does not match the pattern.

    Source:
        Rogozhnikov, "Einops", ICLR 2022 (``einops.reduce``). E.g. the global representation
        of contrastive slot attention is the mean of the slots (Baldassarre & Azizpour 2022,
        Sec. 3).
    """

    def __init__(self, pattern: str, reduction: str = "mean", axes: Mapping[str, int] | None = None):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}, expected one of {', '.join(REDUCTIONS)}")
        self.pattern = pattern
        self.reduction = reduction
        self.axes = dict(axes or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return einops.reduce(x, self.pattern, self.reduction, **self.axes)

    def extra_repr(self) -> str:
        return f"{self.pattern!r}, {self.reduction!r}" + (f", axes={self.axes}" if self.axes else "")


def _reduce_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    return {"out": rearrange_shape(params["pattern"], in_shapes["x"], params.get("axes"), reduction=True)}


def _reduce_init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    out = _init_args(in_shapes, params)
    out["reduction"] = params["reduction"]
    return out


register(OpDef(
    name="reduce",
    module=Reduce,
    inputs=(Port("x", "...", doc="any tensor matching the left side of the pattern"),),
    outputs=("out",),
    params={
        "pattern": {"type": "string", "pattern": "->",
                    "description": "einops pattern; the axes the right side leaves out are reduced, "
                                   "e.g. 'b k d -> b d'"},
        "reduction": enum("how the left-out axes are reduced", REDUCTIONS, default="mean"),
        "axes": _AXES,
    },
    infer=_reduce_infer,
    init_args=_reduce_init_args,
    required=("pattern",),
    summary="einops.reduce (mean / sum / max / min / prod) over the axes a pattern leaves out",
))


# ---- split / concat -------------------------------------------------------------------------

def _axis_index(axis: int, rank: int, port: str, got: Shape) -> int:
    """``axis`` (negative counts from the end) as an index into a ``rank``-axis shape."""
    if not -rank <= axis < rank:
        raise ShapeError(f"'axis': expected an axis of input '{port}' ({-rank} .. {rank - 1}), "
                         f"got {axis} for {rank} axes {fmt_shape(got)}")
    return axis % rank


class Split(nn.Module):
    """Split a tensor into two consecutive parts along one axis.

    ``first = x[..., :sizes[0], ...]``, ``second = x[..., sizes[0]:, ...]`` along ``axis``
    (views, no copy). AST-Seg splits the feature map's channels into K attention logit maps
    and the ``z_what + 1 + S`` feature maps they pool.

    Args:
        sizes (`list[int]`):
            Exactly two sizes ``[n1, n2]``; ``n1 + n2`` must equal the axis size.
        axis (`int`, *optional*, defaults to 1):
            The axis to split; negative counts from the end (-1 = last).

    Shapes:
        input: ... n ...        n = n1 + n2 at ``axis``
        -> first:  ... n1 ...
        -> second: ... n2 ...

    Raises:
        ShapeError (shape rule): ``sizes`` not two sizes, ``axis`` out of range, or
        ``n1 + n2`` not the axis size (expected vs got).

    Source:
        ``torch.split``. AST-Seg (Sauvalle & de La Fortelle, WACV 2023) Sec. 3: the first K
        channels are attention logits, the rest the feature map phi (official code
        MF_models_encoder.py, ``feature_and_attention_map[:, :k]`` / ``[:, k:]``).
    """

    def __init__(self, sizes: Sequence[int], axis: int = 1):
        super().__init__()
        if len(sizes) != 2:
            raise ValueError(f"split 'sizes': expected 2 sizes, got {list(sizes)}")
        self.sizes = [int(n) for n in sizes]
        self.axis = int(axis)

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first, second = torch.split(input, self.sizes, dim=self.axis)   # (.., n1, ..), (.., n2, ..)
        return first, second

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, axis={self.axis}"


def _split_check(in_shapes: dict[str, Shape], params: dict[str, Any]) -> tuple[Shape, int, list]:
    x = tuple(Dim.of(d) for d in in_shapes["input"])
    parts = list(params["sizes"])
    if len(parts) != 2:
        raise ShapeError(f"'sizes': expected exactly 2 sizes, got {len(parts)}: {parts}")
    parts = [Dim.of(n) for n in parts]
    if not x:
        raise ShapeError("input 'input': expected at least 1 axis, got a scalar ()")
    axis = _axis_index(int(params["axis"]), len(x), "input", x)
    total = Dim.of(parts[0].value + parts[1].value) if all(p.is_concrete for p in parts) \
        else None
    if total is None or total != x[axis]:
        raise ShapeError(f"input 'input': expected axis {axis} of size {parts[0]} + {parts[1]}"
                         f"{f' = {total}' if total is not None else ''} (the sizes), got "
                         f"{x[axis]} in {fmt_shape(x)}")
    return x, axis, parts


def _split_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    x, axis, (n1, n2) = _split_check(in_shapes, params)
    return {"first": x[:axis] + (n1,) + x[axis + 1:], "second": x[:axis] + (n2,) + x[axis + 1:]}


def _split_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _, _, parts = _split_check(in_shapes, params)
    return {"sizes": [p.value for p in parts], "axis": int(params["axis"])}


register(OpDef(
    name="split",
    module=Split,
    inputs=(Port("input", "...", doc="any tensor; the axis ``axis`` is split in two"),),
    outputs=("first", "second"),
    params={
        "sizes": sizes("the two part sizes [n1, n2] along the axis; n1 + n2 = its size",
                       minItems=2, maxItems=2),
        "axis": integer("the axis to split (negative counts from the end)"),
    },
    infer=_split_infer,
    init_args=_split_init,
    required=("sizes",),
    summary="split one axis into two consecutive parts (first, second)",
))


class Concat(nn.Module):
    """Concatenate two tensors along one axis: ``out = [first ; second]``.

    Args:
        axis (`int`, *optional*, defaults to -1):
            The axis to join; negative counts from the end. Every other axis must match.

    Shapes:
        first:  ... n1 ...
        second: ... n2 ...      same rank; every axis but ``axis`` equal to ``first``'s
        -> out: ... (n1 + n2) ...

    Raises:
        ShapeError (shape rule): different ranks, ``axis`` out of range, or another axis
        differing (expected vs got).

    Source:
        ``torch.cat``. AST-Seg (Sauvalle & de La Fortelle, WACV 2023) Sec. 3: the initial
        estimate of object k is ``[x0, y0, phi0]``, the soft-argmax coordinates followed by
        the pooled features (official code MF_models_encoder.py, position map concatenated
        before the feature maps).
    """

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = int(axis)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return torch.cat([first, second], dim=self.axis)             # (.., n1 + n2, ..)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


def _concat_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    a = tuple(Dim.of(d) for d in in_shapes["first"])
    b = tuple(Dim.of(d) for d in in_shapes["second"])
    if len(a) != len(b):
        raise ShapeError(f"input 'second': expected {len(a)} axes like input 'first' "
                         f"{fmt_shape(a)}, got {len(b)} axes {fmt_shape(b)}")
    if not a:
        raise ShapeError("input 'first': expected at least 1 axis, got a scalar ()")
    axis = _axis_index(int(params["axis"]), len(a), "first", a)
    expected = a[:axis] + (b[axis],) + a[axis + 1:]
    if b != expected:
        raise ShapeError(f"input 'second': expected {fmt_shape(expected)} (all axes but "
                         f"{axis} as in input 'first' {fmt_shape(a)}), got {fmt_shape(b)}")
    return {"out": a[:axis] + (_add(a[axis], b[axis], a, b),) + a[axis + 1:]}


def _add(x: Dim, y: Dim, a: Shape, b: Shape) -> Dim:
    """``x + y`` where a Dim can hold it: numbers, or multiples of the same symbols."""
    if x.symbols == y.symbols:
        return Dim(x.coeff + y.coeff, x.symbols)
    raise ShapeError(f"concat: expected sizes along the axis that add up to one size (numbers, "
                     f"or multiples of the same symbols), got {x} + {y} for {fmt_shape(a)} and "
                     f"{fmt_shape(b)}")


def _concat_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _concat_infer(in_shapes, params)
    return {"axis": int(params["axis"])}


register(OpDef(
    name="concat",
    module=Concat,
    inputs=(Port("first", "...", doc="the leading part"),
            Port("second", "...", doc="the trailing part; other axes as in first")),
    outputs=("out",),
    params={
        "axis": integer("the axis to join (negative counts from the end)"),
    },
    infer=_concat_infer,
    init_args=_concat_init,
    summary="concatenate two tensors along one axis",
))
