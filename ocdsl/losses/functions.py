"""Functions a spec expression may call (``mse(composite.image, image)``, ``min(1, step/1e4)``).

This table is the *only* set of callables reachable from spec text: the expression parser
rejects any other name, and generated code calls them as ``fn.<name>(...)`` with
``from ocdsl.losses import functions as fn``. Each works on Python numbers (schedules are
evaluated on ints and floats) and, where it makes sense, on tensors (losses).
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

__all__ = ["Function", "FUNCTIONS", "get", "names"]


@dataclass(frozen=True)
class Function:
    name: str
    impl: Callable[..., Any]
    min_args: int
    max_args: int
    doc: str


FUNCTIONS: dict[str, Function] = {}


def _fn(name: str, min_args: int, max_args: int | None = None):
    def deco(f):
        FUNCTIONS[name] = Function(name, f, min_args, min_args if max_args is None else max_args,
                                   (f.__doc__ or "").strip())
        globals()[name] = f
        return f
    return deco


def _is_tensor(*xs) -> bool:
    return any(isinstance(x, torch.Tensor) for x in xs)


# ---- scalar / elementwise math (schedules and loss weights) ------------------------------

@_fn("min", 2, 8)
def min_(*xs):
    """Smallest argument; elementwise for tensors."""
    if _is_tensor(*xs):
        out = torch.as_tensor(xs[0])
        for x in xs[1:]:
            out = torch.minimum(out, torch.as_tensor(x, dtype=out.dtype, device=out.device))
        return out
    return builtins.min(xs)


@_fn("max", 2, 8)
def max_(*xs):
    """Largest argument; elementwise for tensors."""
    if _is_tensor(*xs):
        out = torch.as_tensor(xs[0])
        for x in xs[1:]:
            out = torch.maximum(out, torch.as_tensor(x, dtype=out.dtype, device=out.device))
        return out
    return builtins.max(xs)


@_fn("clamp", 3)
def clamp(x, lo, hi):
    """``x`` limited to [lo, hi]."""
    if _is_tensor(x):
        return torch.clamp(x, lo, hi)
    return builtins.min(builtins.max(x, lo), hi)


def _unary(name: str, mf: Callable, tf: Callable, doc: str):
    def f(x):
        return tf(x) if _is_tensor(x) else mf(x)
    f.__doc__ = doc
    f.__name__ = name
    return _fn(name, 1)(f)


_unary("exp", math.exp, torch.exp, "e ** x.")
_unary("log", math.log, torch.log, "Natural logarithm.")
_unary("sqrt", math.sqrt, torch.sqrt, "Square root.")
_unary("cos", math.cos, torch.cos, "Cosine (radians).")
_unary("sin", math.sin, torch.sin, "Sine (radians).")
_unary("abs", builtins.abs, torch.abs, "Absolute value.")
_unary("floor", math.floor, torch.floor, "Largest integer <= x.")
_unary("ceil", math.ceil, torch.ceil, "Smallest integer >= x.")


@_fn("pi", 0)
def pi():
    """The constant pi."""
    return math.pi


# ---- reductions and losses on tensors -----------------------------------------------------

@_fn("mean", 1)
def mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over every element."""
    return x.mean()


@_fn("sum", 1)
def sum_(x: torch.Tensor) -> torch.Tensor:
    """Sum over every element."""
    return x.sum()


@_fn("mse", 2)
def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element: mean((pred - target)^2). Shapes must match."""
    if pred.shape != target.shape:
        raise ValueError(f"mse: shapes differ, expected {tuple(target.shape)}, got {tuple(pred.shape)}")
    return F.mse_loss(pred, target)


@_fn("l1", 2)
def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over every element."""
    if pred.shape != target.shape:
        raise ValueError(f"l1: shapes differ, expected {tuple(target.shape)}, got {tuple(pred.shape)}")
    return F.l1_loss(pred, target)


def get(name: str) -> Function:
    return FUNCTIONS[name]


def names() -> list[str]:
    return sorted(FUNCTIONS)
