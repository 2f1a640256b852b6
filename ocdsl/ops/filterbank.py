"""DRAW's Gaussian attention: ``gaussian_read`` and ``gaussian_write`` (the attentive
sequential auto-encoder's read and write, Çetin & Cinbiş 2022, Eq. 7-12).

A window is 5 numbers per image, ``(g~x, g~y, log sigma^2, log delta~, log gamma)``
(Gregor et al., DRAW, ICML 2015, Eq. 21). :func:`gaussian_filterbank` turns them into two
banks of N one-dimensional Gaussian filters, ``F_X`` over the columns and ``F_Y`` over the
rows; the read is ``gamma F_Y x F_X^T`` (an N x N glimpse) and the write
``(1/gamma) F_Y^T w F_X`` (an N x N patch placed back on the canvas). Both are linear in the
image / patch, differentiable in the window, and apply to every channel alike.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ocdsl.ops._common import expect_rank, size_list
from ocdsl.ops.registry import OpDef, Port, Symmetry, enum, number, register, size, sizes
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["gaussian_filterbank", "grid_centre", "window_inside", "GaussianRead", "GaussianWrite",
           "WINDOW_SIZE", "INDEX_ORIGINS"]

#: Numbers per window: (g~x, g~y, log sigma^2, log delta~, log gamma).
WINDOW_SIZE = 5

#: Where pixel and filter indices start: 1 (the paper's geometry: g~ = 0 is the image
#: centre for any stride, the filter grid is symmetric about g) or 0 (ericjang/draw's
#: draw.py ``filterbank``: ``tf.range(A)`` and ``tf.range(N)``, which put the grid's mean
#: ``delta - 1`` pixels off the centre).
INDEX_ORIGINS = (1, 0)


def _check_args(window: torch.Tensor, height: int, width: int, size: int, index_origin: int) -> None:
    if window.shape[-1] != WINDOW_SIZE:
        raise ValueError(f"window: expected a last axis of {WINDOW_SIZE} "
                         f"(g~x, g~y, log sigma^2, log delta~, log gamma), got {tuple(window.shape)}")
    if size < 2:
        raise ValueError(f"size: expected N >= 2 filters per axis (Eq. 8 divides by N - 1), got {size}")
    if height < 1 or width < 1:
        raise ValueError(f"height, width: expected positive image sizes, got {height} x {width}")
    if index_origin not in INDEX_ORIGINS:
        raise ValueError(f"index_origin: expected 0 or 1, got {index_origin}")


def grid_centre(g_tilde: torch.Tensor, n_pixels: int) -> torch.Tensor:
    """The grid centre in pixels from its normalised coordinate (ASAE Eq. 7; DRAW Eq. 22-23):
    ``g = (n + 1) / 2 * (g~ + 1)``.

    One pixel of shift is ``2 / (n + 1)`` in g~ (the unit ``normalized_padded`` of the
    symmetry checks, ocdsl/invariance/transforms.py): g~ = -1 and +1 sit one pixel before
    the first and one after the last pixel centre (pixels at 1 .. n).

    Shapes: g_tilde: ``...`` (unconstrained) -> ``...`` pixels.
    """
    return (n_pixels + 1) / 2 * (g_tilde + 1)


def gaussian_filterbank(window: torch.Tensor, height: int, width: int, size: int, *,
                        eps: float = 1e-8, index_origin: int = 1
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The N x W and N x H Gaussian filterbanks of a window (DRAW Eq. 19-26; ASAE Eq. 7-10).

    With ``A = width``, ``B = height`` and indices ``i = o .. o + N - 1``, ``a = o .. o + A - 1``
    (``o = index_origin``)::

        Eq. 7 / DRAW 22-23   g_X = (A + 1) / 2 * (g~x + 1),  g_Y = (B + 1) / 2 * (g~y + 1)
        Eq. 8 / DRAW 24      delta = (max(A, B) - 1) / (N - 1) * exp(log delta~)
        Eq. 9                sigma^2 = exp(log sigma^2),  gamma = exp(log gamma)
        DRAW 19-20           mu_X(i) = g_X + (i - N / 2 - 0.5) delta      (mu_Y alike)
        Eq. 10 / DRAW 25-26  F_X[i, a] = exp(-(a - mu_X(i))^2 / (2 sigma^2)) / Z_X(i)
                             Z_X(i) = max(sum_a exp(...), eps)            (F_Y alike)

    Args:
        window: ``... 5``, (g~x, g~y, log sigma^2, log delta~, log gamma), unconstrained.
            g~ = -1 / +1 put the centre half a pixel outside the first / last pixel (with
            ``index_origin = 1``); delta~ = 1 spreads the N filters over the whole image.
        height, width: the image size B x A in pixels.
        size: N, the glimpse side (filters per axis), >= 2.
        eps: the floor of each filter's normaliser Z (a filter far outside the image is
            ~0, not NaN).
        index_origin: 1 (default) or 0; see :data:`INDEX_ORIGINS`.

    Shapes:
        window: ... 5
        -> filters_x: ... N W    each row sums to 1 (unless its mass is below eps)
        -> filters_y: ... N H
        -> gamma:     ...        the intensity exp(log gamma) > 0

    Units:
        g, mu and delta are in pixels (pixel centres at integer coordinates from
        ``index_origin``); sigma^2 in squared pixels.

    Raises:
        ValueError: ``window``'s last axis is not 5, ``size`` < 2, a non-positive image
        size, or an ``index_origin`` other than 0 or 1.

    Source:
        Gregor et al., "DRAW: A Recurrent Neural Network For Image Generation", ICML 2015,
        Eq. 19-26; Çetin & Cinbiş, "Attentive sequential auto-encoding towards unsupervised
        object-centric scene modeling", 2022, Eq. 7-10 (the same parameterisation).
    """
    _check_args(window, height, width, size, index_origin)
    gx_, gy_, log_sigma2, log_delta_, log_gamma = window.unbind(-1)              # ... each
    gx = grid_centre(gx_, width)                                                 # Eq. 7
    gy = grid_centre(gy_, height)                                                # Eq. 7
    delta = (max(height, width) - 1) / (size - 1) * log_delta_.exp()            # Eq. 8
    sigma2 = log_sigma2.exp()                                                    # Eq. 9
    gamma = log_gamma.exp()                                                      # Eq. 9
    i = torch.arange(size, device=window.device, dtype=window.dtype) + index_origin
    offset = i - size / 2 - 0.5                                                  # N
    mu_x = gx[..., None] + offset * delta[..., None]                             # ... N
    mu_y = gy[..., None] + offset * delta[..., None]                             # ... N

    def bank(mu: torch.Tensor, n_pixels: int) -> torch.Tensor:                   # ... N P
        a = torch.arange(n_pixels, device=window.device, dtype=window.dtype) + index_origin
        f = torch.exp(-(a - mu[..., None]) ** 2 / (2 * sigma2[..., None, None]))  # Eq. 10
        return f / f.sum(dim=-1, keepdim=True).clamp_min(eps)

    return bank(mu_x, width), bank(mu_y, height), gamma


def window_inside(window: torch.Tensor, height: int, width: int, size: int, *,
                  margins: tuple[int, int] = (0, 0), index_origin: int = 1,
                  tails: float = 6.0) -> torch.Tensor:
    """A window near ``window`` whose N x N filters keep ``tails`` standard deviations from
    the first pixel outside an ``height x width`` frame, even after the window moves by up
    to ``margins = (mx, my)`` pixels.

    Translation equivariance of the filterbank holds only for such windows: a filter that
    reaches past the frame loses part of its mass, and its normaliser Z (Eq. 10) changes
    when the window moves. The symmetry checks pull a drawn (or a localizer's) window inside
    with this before shifting; sigma and the stride shrink as needed (the stride never
    grows), and the centre is clamped. With ``tails = 6`` a pixel outside the frame weighs
    under 1.6e-8 of the filter's nearest pixel inside.

    Shapes: window: ``... 5`` -> ``... 5`` (log gamma unchanged).

    Raises:
        ValueError: as :func:`gaussian_filterbank`.

    Source: the geometry of DRAW Eq. 19-24 (Gregor et al. 2015), ASAE Eq. 7-10.
    """
    _check_args(window, height, width, size, index_origin)
    gx_, gy_, log_sigma2, log_delta_, log_gamma = window.unbind(-1)
    # After a move by up to m pixels, a filter centre mu must be `reach` from the first pixel
    # outside the frame: at least 1 (mu on a pixel centre of the frame, so the nearest pixel
    # is inside) and sqrt((tails sigma)^2 + 1/4) (an outside pixel's weight is under
    # exp(-tails^2 / 2) of the nearest pixel's, which is within 1/2 pixel). `room`: the
    # reach the frame allows from its middle, >= 1 for m <= (n - 1) / 2.
    room = max(1.0, min((n + 1) / 2 - m for n, m in ((width, margins[0]), (height, margins[1]))))
    tail = max(room / 2, 1.0)
    sigma = (log_sigma2 / 2).exp().clamp(max=(tail ** 2 - 0.25) ** 0.5 / tails)
    scale = (max(height, width) - 1) / (size - 1)                         # Eq. 8
    first, last = index_origin - size / 2 - 0.5, index_origin + size / 2 - 1.5   # mu - g, in strides
    delta = (scale * log_delta_.exp()).clamp(
        min=1e-4, max=max((room - tail) / max(-first, last), 1e-4))
    reach = ((tails * sigma) ** 2 + 0.25).sqrt().clamp_min(1.0)

    def centre(g_: torch.Tensor, n: int, m: int) -> torch.Tensor:
        lo = index_origin - 1 + m + reach - first * delta
        hi = index_origin + n - m - reach - last * delta
        g = grid_centre(g_, n).maximum(lo).minimum(hi.maximum(lo))
        return 2 * g / (n + 1) - 1                                       # Eq. 7 inverted

    return torch.stack([centre(gx_, width, margins[0]), centre(gy_, height, margins[1]),
                        2 * sigma.log(), (delta / scale).log(), log_gamma], -1)


def _check_window(shape: Shape, port: str, batch: Dim) -> None:
    expect_rank(port, shape, "B 5")
    if Dim.of(shape[-1]) != Dim.of(WINDOW_SIZE) or Dim.of(shape[0]) != Dim.of(batch):
        raise ShapeError(f"input '{port}': expected (b, 5) = {fmt_shape((batch, WINDOW_SIZE))} "
                         f"(g~x, g~y, log sigma^2, log delta~, log gamma), got {fmt_shape(shape)}")


class GaussianRead(nn.Module):
    """DRAW read with attention: an N x N glimpse of every channel through a window's
    Gaussian filterbank, ``glimpse = gamma F_Y x F_X^T`` (ASAE Eq. 11; DRAW Eq. 27).

    Args:
        size (`int`):
            N, the glimpse side (filters per axis), >= 2. ASAE's MNIST-Scenes setting
            names a 25 x 25 Gaussian grid (Sec. 4) while its region autoencoder (Table 1)
            takes 32 x 32: a spec states which it follows.
        eps (`float`, *optional*, defaults to 1e-8):
            Floor of each filter's normaliser.
        index_origin (`int`, *optional*, defaults to 1):
            1 = the paper's symmetric grid, 0 = ericjang/draw's indexing
            (:func:`gaussian_filterbank`).

    Shapes:
        image:  b c h w    any range; every channel is read with the same filters
        window: b 5        (g~x, g~y, log sigma^2, log delta~, log gamma)
        -> glimpse: b c N N    row j, column i = gamma * sum_ab F_Y[j, b] x[b, a] F_X[i, a]

    Symmetries:
        Linear in ``image``. Translation equivariance: shifting the image by (u, v) pixels
        and the window centre by the same amount (g~x += 2u / (w + 1), g~y += 2v / (h + 1))
        gives the same glimpse, as long as the filters' mass stays inside the frame before
        and after (:func:`window_inside`). Declared in the registry and checked by
        ``ocdsl check`` (ocdsl/invariance); tested in float64 at 1e-9.

    Raises:
        ShapeError (shape rule): ``image`` not 4-D, ``window`` not (b, 5), or N < 2.

    Source:
        Çetin & Cinbiş 2022, Eq. 11 (colour images: per channel); Gregor et al., DRAW,
        ICML 2015, Eq. 27.
    """

    def __init__(self, size: int, eps: float = 1e-8, index_origin: int = 1):
        super().__init__()
        self.size = int(size)
        self.eps = float(eps)
        self.index_origin = int(index_origin)

    def forward(self, image: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        fx, fy, gamma = gaussian_filterbank(window, h, w, self.size, eps=self.eps,
                                            index_origin=self.index_origin)   # b N w, b N h, b
        glimpse = torch.einsum("bjy,bcyx,bix->bcji", fy, image, fx)           # Eq. 11 (b, c, N, N)
        return gamma[:, None, None, None] * glimpse

    def extra_repr(self) -> str:
        return f"size={self.size}, index_origin={self.index_origin}"


class GaussianWrite(nn.Module):
    """DRAW write with attention: an N x N patch of every channel placed on an h x w canvas
    through a window's filterbank, ``canvas = (1/gamma) F_Y^T patch F_X`` (ASAE Eq. 12;
    DRAW Eq. 29). The result is the step's contribution; the caller adds it to the canvas
    (Eq. 6).

    Args:
        resolution (`list[int]`):
            The canvas size ``[h, w]``.
        eps (`float`, *optional*, defaults to 1e-8):
            Floor of each filter's normaliser.
        index_origin (`int`, *optional*, defaults to 1):
            As in ``gaussian_read``; read and write of one window must use the same.

    Shapes:
        patch:  b c N N    N >= 2
        window: b 5
        -> canvas: b c h w

    Symmetries:
        Linear in ``patch``; the adjoint of the read up to gamma^2:
        ``<read(x), p> = gamma^2 <x, write(p)>`` for every image x and patch p (tested).

    Raises:
        ShapeError (shape rule): ``patch`` not 4-D or not square, N < 2, ``window`` not
        (b, 5), or ``resolution`` not two positive sizes.

    Source:
        Çetin & Cinbiş 2022, Eq. 12; Gregor et al., DRAW, ICML 2015, Eq. 29.
    """

    def __init__(self, resolution: Sequence[int], eps: float = 1e-8, index_origin: int = 1):
        super().__init__()
        self.resolution = [int(r) for r in resolution]
        self.eps = float(eps)
        self.index_origin = int(index_origin)

    def forward(self, patch: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        fx, fy, gamma = gaussian_filterbank(window, h, w, patch.shape[-1], eps=self.eps,
                                            index_origin=self.index_origin)   # b N w, b N h, b
        canvas = torch.einsum("bjy,bcji,bix->bcyx", fy, patch, fx)            # Eq. 12 (b, c, h, w)
        return canvas / gamma[:, None, None, None]

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, index_origin={self.index_origin}"


def _read_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    image = in_shapes["image"]
    expect_rank("image", image, "B C H W")
    _check_window(in_shapes["window"], "window", image[0])
    n = int(params["size"])
    if n < 2:
        raise ShapeError(f"'size': expected N >= 2 filters per axis (Eq. 8 divides by N - 1), got {n}")
    return {"glimpse": (image[0], image[1], Dim.of(n), Dim.of(n))}


def _read_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _read_infer(in_shapes, params)
    return {"size": int(params["size"]), "eps": float(params["eps"]),
            "index_origin": int(params["index_origin"])}


def _write_infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    patch = in_shapes["patch"]
    expect_rank("patch", patch, "B C N N")
    if Dim.of(patch[2]) != Dim.of(patch[3]):
        raise ShapeError(f"input 'patch': expected a square N x N patch, got {fmt_shape(patch)}")
    if not Dim.of(patch[3]).is_concrete or Dim.of(patch[3]).value < 2:
        raise ShapeError(f"input 'patch': expected N >= 2 (Eq. 8 divides by N - 1), got {fmt_shape(patch)}")
    _check_window(in_shapes["window"], "window", patch[0])
    h, w = size_list(params["resolution"], "resolution")
    return {"canvas": (patch[0], patch[1], Dim.of(h), Dim.of(w))}


def _write_init(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _write_infer(in_shapes, params)
    return {"resolution": size_list(params["resolution"], "resolution"),
            "eps": float(params["eps"]), "index_origin": int(params["index_origin"])}


_COMMON = {
    "eps": number("floor of each filter's normaliser Z (DRAW Eq. 25-26)", exclusiveMinimum=0,
                  default=1e-8),
    "index_origin": enum("1: pixel and filter indices start at 1 (the paper's symmetric grid); "
                         "0: ericjang/draw's indexing", list(INDEX_ORIGINS), default=1),
}

register(OpDef(
    name="gaussian_read",
    module=GaussianRead,
    inputs=(Port("image", "B C H W", doc="the image (or the error image x - c_t, Eq. 1)"),
            Port("window", "B 5", doc="(g~x, g~y, log sigma^2, log delta~, log gamma), e.g. a "
                                      "localization CNN's output")),
    outputs=("glimpse",),
    params={"size": size("N, the glimpse side (filters per axis, >= 2)"), **_COMMON},
    infer=_read_infer,
    init_args=_read_init,
    required=("size",),
    symmetries=(
        Symmetry("translation_equivariance", {"image": "W", "window": "x normalized_padded"},
                 {"glimpse": None},
                 doc="DRAW Eq. 19-22 / ASAE Eq. 7-10: shifting the image by u pixels along w and "
                     "the grid centre g~x by 2u/(w+1) leaves the glimpse unchanged (filters inside "
                     "the frame: ocdsl.ops.filterbank.window_inside)"),
        Symmetry("translation_equivariance", {"image": "H", "window": "y normalized_padded"},
                 {"glimpse": None},
                 doc="along h: the image by v pixels and g~y by 2v/(h+1)"),
    ),
    summary="DRAW Gaussian read: an N x N glimpse through a window's filterbank (Eq. 11)",
))

register(OpDef(
    name="gaussian_write",
    module=GaussianWrite,
    inputs=(Port("patch", "B C N N", doc="the decoded N x N patch"),
            Port("window", "B 5", doc="the window the patch was read through")),
    outputs=("canvas",),
    params={"resolution": sizes("the canvas size [H, W]", minItems=2, maxItems=2), **_COMMON},
    infer=_write_infer,
    init_args=_write_init,
    required=("resolution",),
    summary="DRAW Gaussian write: an N x N patch onto the canvas through a window (Eq. 12)",
))
