"""Bounds on the numbers a spec may write, checked before anything is computed from them.

A spec's numbers become tensor sizes, loop counts and allocations. Python integers have no
limit, and TOML and YAML accept ``inf`` and ``nan``, so without bounds ``H = 2**70`` or a
batch of ``10**9`` images reach torch, which fails inside an allocation (or overflows a
64-bit size) with a traceback. These limits are far beyond any real model and far below
what breaks the machinery; the memory estimate (``ocdsl/graph/resources.py``) then judges
what the machine can hold.

- :data:`MAX_INT`: any integer in the spec (``|n| <= 2**53``: exact as a float as well).
- :data:`MAX_SIZE`: a ``[dims]`` entry, an op's size parameter, the number of images of an
  evaluation set (``2**24``).
- :data:`MAX_BATCH`: a batch size (``2**20``); :data:`MAX_COUNT`: any other count (``2**31 - 1``).
- non-finite floats (``inf``, ``nan``) anywhere in the spec are errors.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

__all__ = ["MAX_INT", "MAX_SIZE", "MAX_BATCH", "MAX_COUNT", "number_problems", "size_problem"]

#: Largest magnitude of an integer written anywhere in a spec.
MAX_INT = 2 ** 53
#: Largest tensor size: a [dims] entry or an op's size parameter (a side, channels, slots).
MAX_SIZE = 2 ** 24
#: Largest count of steps or examples (schema ``maximum`` of every positive integer).
MAX_COUNT = 2 ** 31 - 1
#: Largest batch (train.batch_size, eval.batch_size).
MAX_BATCH = 2 ** 20


def _walk(data: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every scalar leaf of ``data`` with its key path (iterative: any depth the parser
    allowed)."""
    stack = [(path, data)]
    while stack:
        p, v = stack.pop()
        if isinstance(v, Mapping):
            stack += [(p + (k,), x) for k, x in reversed(list(v.items()))]
        elif isinstance(v, list):
            stack += [(p + (i,), x) for i, x in reversed(list(enumerate(v)))]
        else:
            yield p, v


def number_problems(data: Any) -> list[tuple[tuple, str, str]]:
    """``(keypath, message, hint)`` for every integer beyond :data:`MAX_INT` and every
    non-finite float (``inf``, ``nan``) in ``data`` (the merged spec)."""
    out = []
    for kp, v in _walk(data):
        if isinstance(v, bool):
            continue
        if isinstance(v, int) and abs(v) > MAX_INT:
            out.append((kp, f"integer {_short(v)} is too large (the limit is 2**53)",
                        "no size, count or seed in a spec comes near this; is it a typo?"))
        elif isinstance(v, float) and not math.isfinite(v):
            out.append((kp, f"{v} is not a finite number", "write a finite number"))
    return out


def size_problem(value: int, what: str) -> str | None:
    """A message when the size ``value`` of ``what`` exceeds :data:`MAX_SIZE`, else None."""
    if value > MAX_SIZE:
        return f"{what} = {_short(value)} is too large: a size is at most 2**24 = {MAX_SIZE}"
    return None


def _short(v: int) -> str:
    """``v`` as digits, or as ``~2**n`` when it has more than 30 digits."""
    return str(v) if v.bit_length() < 100 else f"~2**{v.bit_length() - 1}"
