"""The transforms a symmetry check applies, what each output is expected to do, and the
comparison with its tolerance.

Transforms act on *sites* (a tensor fed to the model or op: a model input, an input port,
an initial state) along named axes:

- :class:`Permutation` reorders one axis (``x.index_select(axis, perm)``);
- :class:`Shift` translates one or two axes by whole pixels. Content that would leave the
  frame must not exist: before a shift, a band of ``margin`` pixels along each shifted axis
  is set to the site's *fill* value (0 for images and features, ``-1e4`` for logits: no
  attention mass, exp underflows to exactly 0), in the reference run too, so the
  reference and the shifted input hold the same content.

Each compared output has an :class:`Expect`: ``same`` (invariant), ``permute`` (the same
permutation along its axis), ``shift`` (the same shift along its axes; positions the
shift brought in from outside the frame are not compared) or ``coords`` (coordinates
whose last axis holds (x, y, ...); a component moves by the shift times the units per
pixel).

Coordinate units (the vocabulary of ``Symmetry.output`` values such as ``"x normalized"``):

- ``pixels``: one unit per pixel;
- ``normalized``: [-1, 1] from the first to the last pixel centre, ``2 / (n - 1)`` per
  pixel (Eq. 12-13 of AST-Seg, ``align_corners=True``);
- ``normalized_edges``: [-1, 1] from edge to edge, ``2 / n`` per pixel
  (``align_corners=False``);
- ``normalized_padded``: [-1, 1] from one pixel before the first pixel centre to one
  after the last, ``2 / (n + 1)`` per pixel (DRAW's grid centre g~, Gregor et al. 2015
  Eq. 22-23; ASAE Eq. 7).

A *coordinate site* is an input whose last axis holds such coordinates (a DRAW window):
in the transformed run its components move by the shift (:func:`move_coords`), so an op
that reads an image at given coordinates can be checked for reading the same content
after both moved.

Component ``x`` is index 0 of the last axis and moves with the shifted axis that is last
in the input (w); ``y`` is index 1 and moves with the one before it (h).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = [
    "PERMUTATION_KINDS", "TRANSLATION_KINDS", "KINDS", "Tolerance", "default_tolerance", "Permutation", "Shift", "Expect", "Deviation",
    "UNITS", "COMPONENTS", "unit_per_pixel", "parse_coords", "permute", "shift", "fill_border",
    "apply_to_site", "move_coords", "expected_output", "deviation",
]

PERMUTATION_KINDS = ("permutation_equivariance", "permutation_invariance")
TRANSLATION_KINDS = ("translation_equivariance", "translation_invariance")
KINDS = PERMUTATION_KINDS + TRANSLATION_KINDS
UNITS = ("pixels", "normalized", "normalized_edges", "normalized_padded")
COMPONENTS = ("x", "y", "z")


# ---- tolerance ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tolerance:
    """An element passes when ``|got - expected| <= atol + rtol * |expected|`` (the rule
    of ``torch.isclose``)."""

    atol: float
    rtol: float

    def __str__(self) -> str:
        return f"{self.atol:g} + {self.rtol:g}*|expected|"


# Defaults per dtype: rounding differences of reordered sums (softmax over a permuted axis,
# a weighted mean in another order) are a few ulp of the values, and values are O(1).
_DEFAULTS = {
    torch.float64: Tolerance(1e-10, 1e-8),
    torch.float32: Tolerance(1e-5, 1e-5),
    torch.float16: Tolerance(1e-3, 1e-3),
    torch.bfloat16: Tolerance(1e-2, 1.6e-2),
}


def default_tolerance(dtype: torch.dtype, atol: float | None = None) -> Tolerance:
    """The default tolerance of ``dtype`` (float32: ``1e-5 + 1e-5*|expected|``; float64:
    ``1e-10 + 1e-8*|expected|``; float16: 1e-3 both; bfloat16: 1e-2 + 1.6e-2). ``atol``
    (a spec's ``tolerance``) replaces the absolute part."""
    base = _DEFAULTS.get(dtype, _DEFAULTS[torch.float32])
    return base if atol is None else Tolerance(float(atol), base.rtol)


# ---- transforms ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Permutation:
    """``perm[i]`` = which old position lands at position i (``x.index_select(axis, perm)``)."""

    perm: tuple[int, ...]
    axis: str = ""

    def describe(self) -> str:
        n = len(self.perm)
        if n <= 16:
            return f"permutation of {self.axis} (size {n}): {list(self.perm)}"
        return f"permutation of {self.axis} (size {n}), as cycles: {self.cycles()}"

    def cycles(self, limit: int = 240) -> str:
        """Cycle notation of the moved positions, ``(0 5)(7 9 8)``; ``identity`` if none."""
        seen, parts = set(), []
        for start in range(len(self.perm)):
            if start in seen or self.perm[start] == start:
                continue
            cyc, i = [], start
            while i not in seen:
                seen.add(i)
                cyc.append(i)
                i = self.perm[i]
            parts.append("(" + " ".join(map(str, cyc)) + ")")
        text = "".join(parts) or "identity"
        return text if len(text) <= limit else text[:limit] + f"... ({len(parts)} cycles)"


@dataclass(frozen=True)
class Shift:
    """Shift by ``offsets[i]`` pixels along the i-th shifted axis (positive: toward higher
    indices), after blanking ``margins[i]`` pixels at both ends of that axis."""

    offsets: tuple[int, ...]
    margins: tuple[int, ...]
    axes: tuple[str, ...] = ()
    sizes: tuple[int, ...] = ()

    def describe(self) -> str:
        parts = ", ".join(f"{o:+d} px along {a} (size {s}, border {m} px blanked)"
                          for a, o, m, s in zip(self.axes, self.offsets, self.margins,
                                                self.sizes))
        return f"shift by {parts}"


def permute(x: torch.Tensor, axis: int, perm: Sequence[int]) -> torch.Tensor:
    return x.index_select(axis, torch.as_tensor(list(perm), device=x.device, dtype=torch.long))


def _slices(n: int, offset: int) -> tuple[slice, slice]:
    """(source, destination) slices of a shift by ``offset`` along an axis of ``n``."""
    if offset >= 0:
        return slice(0, max(n - offset, 0)), slice(min(offset, n), n)
    return slice(min(-offset, n), n), slice(0, max(n + offset, 0))


def shift(x: torch.Tensor, axes: Sequence[int], offsets: Sequence[int],
          fill: float = 0.0) -> torch.Tensor:
    """``x`` moved by ``offsets`` pixels along ``axes``; what enters the frame is ``fill``,
    what leaves it is dropped."""
    out = torch.full_like(x, fill)
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    for a, o in zip(axes, offsets):
        src[a], dst[a] = _slices(x.shape[a], int(o))
    out[tuple(dst)] = x[tuple(src)]
    return out


def shifted_valid(x: torch.Tensor, axes: Sequence[int], offsets: Sequence[int]) -> torch.Tensor:
    """True where ``shift(x, axes, offsets)`` holds moved content (not fill)."""
    valid = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
    dst = [slice(None)] * x.ndim
    for a, o in zip(axes, offsets):
        dst[a] = _slices(x.shape[a], int(o))[1]
    valid[tuple(dst)] = True
    return valid


def fill_border(x: torch.Tensor, axes: Sequence[int], margins: Sequence[int],
                fill: float) -> torch.Tensor:
    """``x`` with ``margins[i]`` pixels at both ends of ``axes[i]`` set to ``fill``."""
    out = x.clone()
    for a, m in zip(axes, margins):
        if m <= 0:
            continue
        n = x.shape[a]
        idx = [slice(None)] * x.ndim
        idx[a] = slice(0, min(m, n))
        out[tuple(idx)] = fill
        idx[a] = slice(max(n - m, 0), n)
        out[tuple(idx)] = fill
    return out


def apply_to_site(x: torch.Tensor, axes: Sequence[int], transform: Permutation | Shift,
                  moved: bool, fill: float = 0.0) -> torch.Tensor:
    """The value fed at a site: in the reference run (``moved=False``) the input as drawn
    (borders blanked for a shift), in the transformed run its permutation / shift."""
    if isinstance(transform, Permutation):
        return permute(x, axes[0], transform.perm) if moved else x
    base = fill_border(x, axes, transform.margins, fill)
    return shift(base, axes, transform.offsets, fill) if moved else base


def move_coords(x: torch.Tensor, components: Sequence[int], scales: Sequence[float],
                offsets: Sequence[int]) -> torch.Tensor:
    """``x`` (``... D``, coordinates in its last axis) with component ``components[i]``
    moved by ``offsets[i] * scales[i]`` (a shift of ``offsets[i]`` pixels along the i-th
    shifted axis, ``scales[i]`` units per pixel); ``-1`` = no component moves."""
    out = x.clone()
    for c, s, o in zip(components, scales, offsets):
        if c >= 0:
            out[..., c] = out[..., c] + o * s
    return out


# ---- expectations --------------------------------------------------------------------------

def unit_per_pixel(units: str, n: int) -> float:
    """Output units one pixel is worth along an axis of ``n`` pixels."""
    if units == "pixels":
        return 1.0
    if units == "normalized":
        return 2.0 / (n - 1) if n > 1 else math.nan
    if units == "normalized_edges":
        return 2.0 / n
    if units == "normalized_padded":
        return 2.0 / (n + 1)
    raise ValueError(f"unknown units {units!r}, expected one of {', '.join(UNITS)}")


def parse_coords(text: str) -> tuple[int, str] | None:
    """``"x normalized"`` -> ``(0, "normalized")``; None when ``text`` is not a coordinate
    spec (e.g. an axis letter)."""
    parts = str(text).split()
    if len(parts) == 2 and parts[0] in COMPONENTS and parts[1] in UNITS:
        return COMPONENTS.index(parts[0]), parts[1]
    return None


@dataclass(frozen=True)
class Expect:
    """What output ``key`` does under the transform.

    action: ``same`` | ``permute`` (``axes``: its axes of the permuted name) | ``shift`` (``axes``: one output
    axis per shifted input axis, in the same order) | ``coords`` (``components[i]``: the
    component of the last axis moved by the i-th shifted axis, -1 = none; ``scales[i]``:
    output units per pixel of that axis).
    """

    key: str
    action: str
    axes: tuple[int, ...] = ()
    components: tuple[int, ...] = ()
    scales: tuple[float, ...] = ()
    why: str = ""

    def describe(self) -> str:
        if self.action == "same":
            return f"{self.key} unchanged"
        if self.action == "permute":
            return f"{self.key} permuted along axis {', '.join(map(str, self.axes))}"
        if self.action == "shift":
            return f"{self.key} shifted along axes {list(self.axes)}"
        moves = ", ".join(f"{COMPONENTS[c]} += {s:.4g}/px" for c, s in
                          zip(self.components, self.scales) if c >= 0)
        return f"{self.key} coordinates move ({moves})"


def expected_output(base: torch.Tensor, e: Expect, transform: Permutation | Shift
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(expected value of the transformed run, mask of compared elements or None = all)."""
    if e.action == "same":
        return base, None
    if e.action == "permute":
        assert isinstance(transform, Permutation)
        out = base
        for a in e.axes:                       # e.g. a K x K slot-to-slot matrix: both axes
            out = permute(out, a, transform.perm)
        return out, None
    assert isinstance(transform, Shift)
    if e.action == "shift":
        return (shift(base, e.axes, transform.offsets, 0.0),
                shifted_valid(base, e.axes, transform.offsets))
    if e.action == "coords":
        return move_coords(base, e.components, e.scales, transform.offsets), None
    raise ValueError(f"unknown expectation {e.action!r}")


@dataclass(frozen=True)
class Deviation:
    """The worst element of one comparison."""

    key: str
    max_abs: float                  # largest |got - expected| over compared elements
    passed: bool
    index: tuple[int, ...] = ()     # where the worst violation (or the largest deviation) is
    got: float = 0.0
    expected: float = 0.0

    def describe(self, tol: Tolerance) -> str:
        idx = ", ".join(map(str, self.index))
        return (f"{self.key}[{idx}]: got {self.got:.6g}, expected {self.expected:.6g} "
                f"(|diff| {self.max_abs:.3g} > tolerance {tol})" if not self.passed else
                f"{self.key}: largest |diff| {self.max_abs:.3g}")


def deviation(key: str, got: torch.Tensor, expected: torch.Tensor, tol: Tolerance,
              mask: torch.Tensor | None = None) -> Deviation:
    if tuple(got.shape) != tuple(expected.shape):
        return Deviation(key, math.inf, False, (), math.nan, math.nan)
    g, x = got.detach().double(), expected.detach().double()
    close = torch.isclose(g, x, rtol=tol.rtol, atol=tol.atol, equal_nan=True)
    diff = (g - x).abs()
    diff = torch.where(torch.isnan(diff) & ~close, torch.full_like(diff, math.inf), diff)
    diff = torch.where(close & ~torch.isfinite(diff), torch.zeros_like(diff), diff)
    if mask is not None:
        close = close | ~mask
        diff = torch.where(mask, diff, torch.zeros_like(diff))
    if diff.numel() == 0:
        return Deviation(key, 0.0, True)
    passed = bool(close.all())
    if passed:
        flat = int(diff.argmax())
    else:
        excess = torch.where(close, torch.full_like(diff, -math.inf), diff)
        flat = int(excess.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
    return Deviation(key, float(diff.max()), passed, index, float(g[index]), float(x[index]))
