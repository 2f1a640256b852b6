"""Helpers shared by the op families: shape checks with expected/got text, activations.

Not an op family (registers nothing). Imports only torch and ocdsl.shapes.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = [
    "ACTIVATIONS", "ELEMENTWISE", "activation", "expect_rank", "expect_dim", "as_list", "size_list",
    "optional_shape",
]

ACTIVATIONS = ("relu", "leaky_relu", "gelu", "celu", "silu", "none")
#: every element-wise function :func:`activation` builds: the hidden-layer activations and
#: the squashing outputs (the ``activation`` op offers these)
ELEMENTWISE = ACTIVATIONS + ("sigmoid", "tanh")


def activation(name: str) -> nn.Module:
    """``"relu"`` -> ``nn.ReLU()``; ``"sigmoid"`` -> ``nn.Sigmoid()``; ``"none"`` ->
    ``nn.Identity()`` (one of :data:`ELEMENTWISE`; raises ValueError for another name)."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU()            # negative slope 0.01 (PyTorch's and Keras' default)
    if name == "gelu":
        return nn.GELU()
    if name == "celu":
        return nn.CELU()
    if name == "silu":
        return nn.SiLU()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}, expected one of {', '.join(ELEMENTWISE)}")


def expect_rank(port: str, got: Shape, signature: str, *, at_least: bool = False) -> None:
    """Raise unless ``got`` has as many axes as ``signature`` ("B C H W") names."""
    n = len(signature.split())
    ok = len(got) >= n if at_least else len(got) == n
    if not ok:
        more = "at least " if at_least else ""
        raise ShapeError(
            f"input '{port}': expected {more}{n} axes ({', '.join(signature.split())}), "
            f"got {len(got)} axes {fmt_shape(got)}")


def expect_dim(what: str, expected: Any, got: Any, *, context: str = "") -> None:
    """Raise ``ShapeError("<what>: expected 64, got 32 (<context>)")`` when they differ."""
    if Dim.of(expected) != Dim.of(got):
        tail = f" ({context})" if context else ""
        raise ShapeError(f"{what}: expected {expected}, got {got}{tail}")


def as_list(value: Any, n: int, name: str) -> list:
    """An int (repeated ``n`` times) or a list of length ``n``."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ShapeError(f"'{name}': expected {n} values (one per layer), got {len(value)}: "
                             f"{list(value)}")
        return list(value)
    return [value] * n


def size_list(values: Sequence[Any], name: str) -> list[int]:
    """Resolved sizes as plain ints (graph/ has already turned "K" into 4)."""
    out = []
    for v in values:
        if isinstance(v, Dim):
            v = v.value
        if isinstance(v, bool) or not isinstance(v, int):
            raise ShapeError(f"'{name}': expected resolved integer sizes, got {list(values)}")
        out.append(int(v))
    return out


def optional_shape(in_shapes: dict, port: str) -> Shape | None:
    """The shape at an optional port, or None where it is not connected."""
    s = in_shapes.get(port)
    return None if s is None else tuple(Dim.of(d) for d in s)
