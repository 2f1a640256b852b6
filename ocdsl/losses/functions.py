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


def _masks_bkhw(name: str, masks: torch.Tensor) -> torch.Tensor:
    """Soft masks ``b k h w`` (a ``b k 1 h w`` stack is squeezed)."""
    if masks.dim() == 5 and masks.shape[2] == 1:
        masks = masks[:, :, 0]
    if masks.dim() != 4:
        raise ValueError(f"{name}: expected masks (b, k, h, w), got {tuple(masks.shape)}")
    return masks


@_fn("pixel_entropy", 1)
def pixel_entropy(masks: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of the entropy of the slot distribution at each pixel.

    ``masks`` b k h w (or b k 1 h w), a softmax over k. Vikström & Ilin 2022, Eq. 5:
    ``-sum_k m_k log(m_k + 1e-8)`` averaged over b, h, w. Minimising it makes every pixel
    belong to one slot (crisp masks). Returns a scalar."""
    m = _masks_bkhw("pixel_entropy", masks)
    return -(m * torch.log(m + 1e-8)).sum(dim=1).mean()


@_fn("object_entropy", 1)
def object_entropy(masks: torch.Tensor) -> torch.Tensor:
    """Entropy of each image's mean mask over the slots, averaged over images.

    ``masks`` b k h w (or b k 1 h w). Vikström & Ilin 2022, Eq. 6: ``mbar_k = mean_{h,w}
    m_k`` (the share of the image slot k covers), ``-sum_k mbar_k log(mbar_k + 1e-8)``
    averaged over b. Returns a scalar."""
    m = _masks_bkhw("object_entropy", masks).mean(dim=(2, 3))       # (b, k)
    return -(m * torch.log(m + 1e-8)).sum(dim=1).mean()


def get(name: str) -> Function:
    return FUNCTIONS[name]


def names() -> list[str]:
    return sorted(FUNCTIONS)
