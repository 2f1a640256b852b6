"""Symbolic tensor shapes used by shape inference.

A :class:`Dim` is an integer times a product of free symbols: ``B``, ``4``, ``B*K`` or
``1225`` (``(H W)`` with H = W = 35 folds to a number). Sizes from ``[dims]`` are numbers by
the time a shape reaches an op; only truly free sizes (the batch ``B``) stay symbolic.
A :data:`Shape` is a tuple of Dims. This module imports nothing from ocdsl: spec/, graph/
and ops/ all use it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Union

__all__ = ["Dim", "Shape", "ShapeError", "dim", "shape", "fmt_shape", "concrete"]


class ShapeError(ValueError):
    """A shape rule cannot be satisfied. The message says expected vs got; graph/ adds
    the node name and spec location before showing it to the user."""


@dataclass(frozen=True, order=True)
class Dim:
    coeff: int = 1
    symbols: tuple[str, ...] = ()

    @staticmethod
    def of(x: "DimLike") -> "Dim":
        if isinstance(x, Dim):
            return x
        if isinstance(x, bool):
            raise TypeError("a bool is not a size")
        if isinstance(x, int):
            return Dim(int(x), ())
        if isinstance(x, str):
            return Dim(1, (x,))
        raise TypeError(f"not a size: {x!r}")

    @property
    def is_concrete(self) -> bool:
        return not self.symbols

    @property
    def value(self) -> int:
        if self.symbols:
            raise ShapeError(f"size {self} is symbolic, a number is needed here")
        return self.coeff

    def __mul__(self, other: "DimLike") -> "Dim":
        o = Dim.of(other)
        return Dim(self.coeff * o.coeff, tuple(sorted(self.symbols + o.symbols)))

    __rmul__ = __mul__

    def __floordiv__(self, other: "DimLike") -> "Dim":
        o = Dim.of(other)
        left = Counter(self.symbols)
        left.subtract(o.symbols)
        if any(v < 0 for v in left.values()) or self.coeff % o.coeff:
            raise ShapeError(f"{self} is not divisible by {o}")
        return Dim(self.coeff // o.coeff, tuple(sorted(left.elements())))

    def __str__(self) -> str:
        if not self.symbols:
            return str(self.coeff)
        body = "*".join(self.symbols)
        return body if self.coeff == 1 else f"{self.coeff}*{body}"

    __repr__ = __str__


DimLike = Union[Dim, int, str]
Shape = tuple[Dim, ...]


def dim(x: DimLike) -> Dim:
    return Dim.of(x)


def shape(*xs: DimLike) -> Shape:
    """``shape("B", 4, 64)`` -> ``(B, 4, 64)``."""
    return tuple(Dim.of(x) for x in xs)


def fmt_shape(s: Iterable[Dim]) -> str:
    return "(" + ", ".join(str(d) for d in s) + ")"


def concrete(s: Shape, what: str = "shape") -> tuple[int, ...]:
    """All sizes as ints, or ShapeError naming ``what``."""
    try:
        return tuple(d.value for d in s)
    except ShapeError as e:
        raise ShapeError(f"{what} {fmt_shape(s)}: {e}") from None
