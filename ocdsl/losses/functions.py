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

from ocdsl.losses.matching import hungarian

__all__ = ["Function", "FUNCTIONS", "get", "names", "match_views", "view", "huber_costs"]


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


def _same_shape(name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
    """The input check of the element-wise losses (``mse``, ``l1``, ``l1_squared``): ``pred``
    and ``target`` have one shape, any rank. They never broadcast: ``(b, 1)`` against
    ``(b, k)`` would average pairs nobody meant.

    Raises:
        ValueError: ``"<name>: shapes differ, expected <target's> (target), got <pred's>
        (pred)"``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"{name}: shapes differ, expected {tuple(target.shape)} (target), "
                         f"got {tuple(pred.shape)} (pred)")


@_fn("mse", 2)
def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element: mean((pred - target)^2). Shapes must match
    (ValueError otherwise)."""
    _same_shape("mse", pred, target)
    return F.mse_loss(pred, target)


@_fn("mse_over_time", 2)
def mse_over_time(canvases: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE over time (Çetin & Cinbiş 2022, Eq. 14): every step's canvas against the image,
    step s weighted by s^2, so late canvases count most and the first writes are free to
    cover a part of the scene.

    Eq. 14 sums ``||x - c_t||^2 (t - 1)^2`` over t with c_1 the first canvas (weight 0);
    here ``canvases[:, s - 1]`` is the canvas after step s = 1..T (the first canvas is not
    passed), so its weight is s^2. Departure, stated: the per-step errors are means over the
    pixels and the weighted sum is divided by sum_s s^2 (a weighted mean), so the loss keeps
    its scale when T grows during training (progressive T).

    Shapes:
        canvases: b t ...   (a repeat node's stacked canvas, e.g. ``draw.canvas``)
        target:   b ...     (the image)
        -> a scalar

    Raises:
        ValueError: ``canvases`` is not ``target``'s shape with a step axis at 1.
    """
    if canvases.dim() != target.dim() + 1 or canvases.shape[:1] + canvases.shape[2:] != target.shape:
        raise ValueError(f"mse_over_time: expected canvases (b, t, {', '.join(map(str, target.shape[1:]))}) "
                         f"for a target {tuple(target.shape)}, got {tuple(canvases.shape)}")
    t = canvases.shape[1]
    err = (canvases - target.unsqueeze(1)).pow(2).flatten(2).mean(dim=(0, 2))      # t
    w = torch.arange(1, t + 1, device=err.device, dtype=err.dtype) ** 2
    return (w * err).sum() / w.sum()


@_fn("l1", 2)
def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over every element: mean(|pred - target|). Shapes must match
    (ValueError otherwise)."""
    _same_shape("l1", pred, target)
    return F.l1_loss(pred, target)


@_fn("l1_squared", 2)
def l1_squared(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """AST-Seg's reconstruction loss: the squared L1 colour error of each pixel, averaged.

    ``pred``, ``target`` b c h w (same shape; images in [0, 1]). Sauvalle & de La Fortelle
    2023, Eq. 19-20::

        e(b, h, w) = sum_c |pred - target|          in [0, c] (0-3 for RGB)
        L_rec      = mean_{b,h,w} e^2

    Squaring the per-pixel L1 error (not each channel's) weighs badly reconstructed pixels
    more than an L1 loss would. [AST] MF_train.py L35-46 (``losses``). Returns a scalar.

    Raises:
        ValueError: the inputs are not 4-D or their shapes differ (expected vs got)."""
    if pred.dim() != 4:
        raise ValueError(f"l1_squared: expected pred (b, c, h, w), got {tuple(pred.shape)}")
    _same_shape("l1_squared", pred, target)
    return (pred - target).abs().sum(dim=1).square().mean()


def _masks_bkhw(name: str, masks: torch.Tensor) -> torch.Tensor:
    """Soft masks ``b k h w`` (a ``b k 1 h w`` stack is squeezed)."""
    if masks.dim() == 5 and masks.shape[2] == 1:
        masks = masks[:, :, 0]
    if masks.dim() != 4:
        raise ValueError(f"{name}: expected masks (b, k, h, w), got {tuple(masks.shape)}")
    return masks


def _pixel_plogp(name: str, masks: torch.Tensor, eps: float) -> torch.Tensor:
    """``sum_k m_k log(m_k + eps)`` at every pixel (minus the pixel entropy).

    ``masks`` b k h w (or b k 1 h w) -> b h w. ``eps`` keeps log finite where m_k = 0."""
    m = _masks_bkhw(name, masks)
    return (m * torch.log(m + eps)).sum(dim=1)                      # (b, h, w)


@_fn("pixel_entropy", 1)
def pixel_entropy(masks: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of the entropy of the slot distribution at each pixel.

    ``masks`` b k h w (or b k 1 h w), a softmax over k. Vikström & Ilin 2022, Eq. 5:
    ``-sum_k m_k log(m_k + 1e-8)`` averaged over b, h, w. Minimising it makes every pixel
    belong to one slot (crisp masks). Returns a scalar."""
    return -_pixel_plogp("pixel_entropy", masks, 1e-8).mean()


@_fn("pixel_entropy_squared", 1)
def pixel_entropy_squared(weights: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of the *squared* entropy of the layer weights at each pixel.

    ``weights`` b k h w (or b k 1 h w), each pixel a distribution over the k layers (AST-Seg:
    the K+1 compositing weights, background first). Sauvalle & de La Fortelle 2023, Eq. 21::

        L_pix = mean_{b,h,w} ( sum_k w_k log(w_k + 1e-20) )^2

    Squaring penalises pixels shared between layers much more than nearly crisp ones. The
    1e-20 is the authors' ([AST] MF_train.py L35-46, ``losses``); it keeps log finite where a
    weight is exactly 0 (1e-20 is a normal float32). Returns a scalar >= 0.

    Raises:
        ValueError: ``weights`` is not b k h w (or b k 1 h w) (expected vs got)."""
    return _pixel_plogp("pixel_entropy_squared", weights, 1e-20).square().mean()


@_fn("object_entropy", 1)
def object_entropy(masks: torch.Tensor) -> torch.Tensor:
    """Entropy of each image's mean mask over the slots, averaged over images.

    ``masks`` b k h w (or b k 1 h w). Vikström & Ilin 2022, Eq. 6: ``mbar_k = mean_{h,w}
    m_k`` (the share of the image slot k covers), ``-sum_k mbar_k log(mbar_k + 1e-8)``
    averaged over b. Returns a scalar."""
    m = _masks_bkhw("object_entropy", masks).mean(dim=(2, 3))       # (b, k)
    return -(m * torch.log(m + 1e-8)).sum(dim=1).mean()


# Constants of the background loss; [AST] = BrunoSauvalle/AST (AE-NE's standard values).
BG_PIXEL_SCALE = 255.0    # the loss works on 0-255 images (background/train.py L16-18)
BG_SMOOTH_L1_BETA = 3.0   # SmoothL1 beta on the 0-255 scale (train.py L23)
BG_MAX_ERROR = 3.0        # e = sum_c SmoothL1 / 255 is in [0, 3); error target e / 3 (L23-26)
BG_TAU = 0.25             # soft mask tanh(e / tau_1) (config.py L38 ``tau_1``; train.py L30)
BG_BETA = 6.0             # weight exp(-beta * pooled soft mask) (config.py L35 ``beta``; L31)
BG_R = 75                 # pooling radius w // r, kernel 2 (w // r) + 1 (config.py L36; L31-32)


def _check_background_inputs(background, error, image) -> None:
    if image.dim() != 4:
        raise ValueError(f"background_loss: expected image (b, c, h, w), got {tuple(image.shape)}")
    b, _, h, w = image.shape
    if background.shape != image.shape:
        raise ValueError(f"background_loss: expected background {tuple(image.shape)} (the image's "
                         f"shape), got {tuple(background.shape)}")
    if tuple(error.shape) != (b, 1, h, w):
        raise ValueError(f"background_loss: expected error {(b, 1, h, w)}, "
                         f"got {tuple(error.shape)}")


@_fn("background_loss", 3)
def background_loss(background: torch.Tensor, error: torch.Tensor,
                    image: torch.Tensor) -> torch.Tensor:
    """AST-Seg's background-model loss (from AE-NE): a robust reconstruction loss whose pixels
    are down-weighted where the error is large over a neighbourhood (objects), plus a
    regression of the predicted error map.

    ``background`` b 3 h w and ``image`` b 3 h w in [0, 1]; ``error`` b 1 h w in [0, 1] (the
    ``background_autoencoder`` outputs). As in the code, everything is computed on the 0-255
    scale (x = 255 image, b = 255 background; the error map is on [0, 1] there too)::

        e(p)   = sum_c SmoothL1_{beta=3}(x_c(p), b_c(p)) / 255          in [0, 3]
        r(p)   = SmoothL1_{beta=3/255}(error(p), stopgrad(e(p)) / 3)     error map -> e / 3
        m(p)   = tanh(e(p) / 0.25)                                       soft foreground mask
        a(p)   = mean of m over the (2 floor(w / 75) + 1)^2 window around p   (stride 1,
                 zero padding floor(w / 75) not counted: the window is cut at the borders)
        wt(p)  = exp(-6 a(p))                          no gradient; 1 on clean background
        L      = mean_{b,h,w} wt(p) (e(p) + r(p))

    SmoothL1_beta(u, v) = 0.5 (u - v)^2 / beta if |u - v| < beta, else |u - v| - beta / 2.
    The weights are not normalised (they are divided by b h w, not by their sum), so pixels
    of objects simply count less; wt and the target of r carry no gradient; the gradient
    reaches ``background`` through e and ``error`` through r. w is the image width (also for
    non-square images). Constants: ``BG_*`` in this module, each with its source line.

    Source: Sauvalle & de La Fortelle 2023 (background pretraining, AE-NE loss); [AST]
    background/train.py L16-37 (``background_loss``), background/config.py L35-38 (beta 6,
    r 75, tau_1 0.25). Returns a scalar.

    Raises:
        ValueError: image not 4-D, background not the image's shape, or error not b 1 h w
        (expected vs got)."""
    _check_background_inputs(background, error, image)
    w = image.shape[-1]
    x = BG_PIXEL_SCALE * image                                          # (b, 3, h, w) 0-255
    bg = BG_PIXEL_SCALE * background                                    # (b, 3, h, w) 0-255
    e = F.smooth_l1_loss(x, bg, reduction="none",
                         beta=BG_SMOOTH_L1_BETA).sum(dim=1) / BG_PIXEL_SCALE   # (b, h, w) 0-3
    r = F.smooth_l1_loss(error[:, 0], e.detach() / BG_MAX_ERROR, reduction="none",
                         beta=BG_SMOOTH_L1_BETA / BG_PIXEL_SCALE)       # (b, h, w)
    with torch.no_grad():
        soft = torch.tanh(e / BG_TAU)                                   # (b, h, w) in [0, 1)
        radius = w // BG_R
        pooled = F.avg_pool2d(soft[:, None], 2 * radius + 1, stride=1, padding=radius,
                              count_include_pad=False)[:, 0]            # (b, h, w)
        weights = torch.exp(-BG_BETA * pooled)                          # (b, h, w) in (e^-6, 1]
    return (weights * (e + r)).mean()


# ---- contrastive losses: global NT-Xent and objects matched across two views ---------------

@_fn("view", 2, 3)
def view(x: torch.Tensor, i: int, views: int = 2) -> torch.Tensor:
    """View ``i`` (1-based) of a tensor whose batch axis stacks ``views`` augmented views of
    each image (``[data] views``, ocdsl/data/views.py): ``(V b) ... -> b ...``, the i-th of V
    equal chunks of axis 0 (view 1 of every image first).

    ``view(slots, 2)`` is the second view's slots. Raises ValueError: ``i`` outside 1..V, or
    axis 0 not a multiple of V."""
    i, v = int(i), int(views)
    if not 1 <= i <= v:
        raise ValueError(f"view: expected a view number in 1..{v}, got {i}")
    n = x.shape[0]
    if n % v:
        raise ValueError(f"view: the batch axis ({n}) is not {v} stacked views (not a multiple of {v})")
    b = n // v
    return x[(i - 1) * b:i * b]


def _info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over ``... n d`` pairs (a[i], b[i]): 2n items per leading index, cosine / T,
    every other item a negative; the mean cross-entropy over the 2n items (and the leading
    axes)."""
    z = F.normalize(torch.cat([a, b], dim=-2), dim=-1)                   # ... 2n d
    n = a.shape[-2]
    sim = z @ z.transpose(-1, -2) / temperature                         # ... 2n 2n
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))                           # an item is not its own negative
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)   # i <-> i + n
    logits = sim.reshape(-1, 2 * n)
    return F.cross_entropy(logits, target.repeat(logits.shape[0] // (2 * n)))


def _check_pair(name: str, a: torch.Tensor, b: torch.Tensor, rank: int, temperature=None) -> None:
    axes = "b d" if rank == 2 else "b k d"
    if a.dim() != rank or a.shape != b.shape:
        raise ValueError(f"{name}: expected two ({axes}) tensors of the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if temperature is not None and not float(temperature) > 0:
        raise ValueError(f"{name}: expected a positive temperature, got {temperature}")


@_fn("nt_xent", 3)
def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (InfoNCE, SimCLR): the global contrastive loss between two views.

    ``z1``, ``z2`` b d: one representation per image and view; the positive of ``z1[i]`` is
    ``z2[i]``, the other 2b - 2 items of the batch are its negatives. Similarity = cosine /
    ``temperature``. Returns the mean over the 2b items of
    ``-log softmax(sim)[positive]`` (a scalar, in nats; log(2b - 1) for random features).

    Chen et al., SimCLR, ICML 2020, Eq. 1; Baldassarre & Azizpour 2022, Eq. 1 (temperature
    0.1). Raises ValueError: shapes not (b, d) alike, or a non-positive temperature."""
    _check_pair("nt_xent", z1, z2, 2, temperature)
    return _info_nce(z1, z2, float(temperature))


def match_views(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """For each image, the permutation of ``b``'s tokens that maximises the summed cosine
    similarity with ``a``'s (Hungarian matching, scipy's ``linear_sum_assignment``, on the
    CPU, without gradient).

    Shapes: a, b: b k d  ->  perm: b k (int64), so that ``b[i, perm[i, j]]`` is matched to
    ``a[i, j]``. Baldassarre & Azizpour 2022, Sec. 3.2."""
    with torch.no_grad():
        sim = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).transpose(-1, -2)
    return hungarian(sim, maximize=True)                                 # b k


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[i, idx[i, j]]`` for tokens ``x`` b k d and indices ``idx`` b k."""
    return torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))


def _matched(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``b``'s tokens reordered to match ``a``'s (:func:`match_views`), b k d."""
    return _take(b, match_views(a, b))


@_fn("ctr_all", 3)
def ctr_all(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """CTR-ALL: object tokens of two views, Hungarian-matched per image, then NT-Xent where
    every other token of the batch (both views) is a negative.

    ``a``, ``b`` b k d (object projections of view 1 and 2). Returns a scalar (nats).
    Baldassarre & Azizpour 2022, Eq. 2 with negatives from all images. Raises ValueError:
    shapes not (b, k, d) alike, or a non-positive temperature."""
    _check_pair("ctr_all", a, b, 3, temperature)
    m = _matched(a, b)
    return _info_nce(a.flatten(0, 1), m.flatten(0, 1), float(temperature))


@_fn("ctr_img", 3)
def ctr_img(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """CTR-IMG: as ``ctr_all``, but a token's negatives are only the other tokens of the same
    image (both views): NT-Xent over 2k items per image, averaged over the images.

    ``a``, ``b`` b k d. Returns a scalar (nats). Baldassarre & Azizpour 2022, Eq. 2 with
    negatives from the same image. Raises ValueError as ``ctr_all``."""
    _check_pair("ctr_img", a, b, 3, temperature)
    return _info_nce(a, _matched(a, b), float(temperature))


@_fn("cossim_matched", 4)
def cossim_matched(p1: torch.Tensor, p2: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """COSSIM: each view's predictions regress the other view's matched tokens, with a stop
    gradient on the targets, symmetrised.

    ``p1``, ``p2`` b k d: predictions of views 1 and 2; ``f1``, ``f2`` b k d: their tokens
    (the targets, detached). The views are matched on ``f1`` / ``f2`` (:func:`match_views`).
    Returns ``((1 - mean cos(p1, sg f2_matched)) / 2 + (1 - mean cos(p2, sg f1_matched)) / 2) / 2``,
    in [0, 1]. Baldassarre & Azizpour 2022, Eq. 3 (BYOL / SimSiam-style). Raises ValueError:
    shapes not (b, k, d) alike."""
    for x in (p2, f1, f2):
        _check_pair("cossim_matched", p1, x, 3)
    perm = match_views(f1, f2)                                   # f2[perm] <-> f1
    inv = torch.argsort(perm, dim=1)                             # f1[inv] <-> f2
    l12 = (1 - F.cosine_similarity(p1, _take(f2, perm).detach(), dim=-1).mean()) / 2
    l21 = (1 - F.cosine_similarity(p2, _take(f1, inv).detach(), dim=-1).mean()) / 2
    return (l12 + l21) / 2


# ---- set prediction: predicted and true objects matched per image -----------------------------

def huber_costs(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The Huber loss (delta 1) between every predicted and every true object, averaged over
    the property axis: ``pred`` b k p, ``target`` b o p -> b k o (with gradient)."""
    diff = pred[:, :, None, :] - target[:, None, :, :]                   # b k o p
    return F.huber_loss(diff, torch.zeros_like(diff), reduction="none", delta=1.0).mean(-1)


@_fn("hungarian_huber", 2)
def hungarian_huber(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Slot Attention's set-prediction loss: each image's predicted objects Hungarian-matched
    to its true objects, the Huber loss summed over the matched pairs, averaged over images.

    ``pred`` b k p: one property vector per slot (e.g. a sigmoid MLP's output); ``target`` b o
    p with o <= k: the true objects' vectors (ocdsl/data/properties.py), padding rows zero.
    The targets are padded with zero rows ("no object") to k, so every slot is matched; the
    cost of a pair is the Huber loss (delta 1) averaged over the p properties
    (:func:`huber_costs`); the matching (:func:`ocdsl.losses.matching.hungarian`, scipy,
    the whole batch, on a detached copy) minimises each image's summed cost, and the loss
    gathers the matched costs with their gradient::

        L = mean_b sum_i huber(pred[b, i], target[b, pi_b(i)])

    One cost for matching and loss, Huber on every entry (coordinates, one-hot classes and
    the object flag alike): google-research/google-research slot_attention/utils.py @
    0c1bbe5, ``hungarian_huber_loss`` (Locatello et al. 2020, Sec. 4.2). Returns a scalar
    >= 0, invariant to the order of the slots.

    Raises:
        ValueError: not two 3-D tensors with the same b and p, or more true objects than slots."""
    if pred.dim() != 3 or target.dim() != 3 or pred.shape[0] != target.shape[0] \
            or pred.shape[2] != target.shape[2] or target.shape[1] > pred.shape[1]:
        raise ValueError(f"hungarian_huber: expected pred (b, k, p) and target (b, o, p) with o <= k, "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    k, o = pred.shape[1], target.shape[1]
    target = F.pad(target.to(pred.dtype), (0, 0, 0, k - o))               # b k p: zero rows appended
    cost = huber_costs(pred, target)                                      # b k k
    match = hungarian(cost)                                               # slot i <-> object match[b, i]
    return cost.gather(2, match[..., None]).sum(dim=(1, 2)).mean()


def get(name: str) -> Function:
    return FUNCTIONS[name]


def names() -> list[str]:
    return sorted(FUNCTIONS)
