"""Per-object categorical attributes from a dataset's per-object factors, numpy only.

One definition shared by the two places that ask "what kind of object is this": the linear
probe's questions (ocdsl/metrics/probe.py, contrastive slot attention) and the property
targets of set prediction (ocdsl/data/properties.py). It lives outside both packages
because data/ and metrics/ are leaves that must not import each other
(docs/architecture.md, Import direction); it imports nothing from ocdsl.

Attributes: ``size`` (a ``size`` factor as stored, else ``scale > SCALE_SPLIT``), ``colour``
(an integer ``color`` as stored, an RGB one binned by hue into :data:`HUE_BINS` sectors),
``material`` (where given) and ``shape``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = ["HUE_BINS", "SCALE_SPLIT", "HUE_NAMES", "hue_bins", "object_attributes"]

#: colours given as RGB are binned by hue into this many equal sectors, centred on red,
#: yellow, green, cyan, blue and magenta (:data:`HUE_NAMES`)
HUE_BINS = 6
HUE_NAMES = ("red", "yellow", "green", "cyan", "blue", "magenta")
#: objects given a continuous ``scale`` (dSprites' grid linspace(0.5, 1, 6)) are "small" up to
#: this scale, "large" above
SCALE_SPLIT = 0.75


def hue_bins(rgb: np.ndarray) -> np.ndarray:
    """``... 3`` RGB in [0, 1] -> ``...`` int hue sector in [0, HUE_BINS) (sector 0 is centred
    on red; a grey has hue 0)."""
    mx, mn = rgb.max(-1), rgb.min(-1)
    d = np.where(mx > mn, mx - mn, 1.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    h = np.where(mx == r, ((g - b) / d) % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4)) / 6
    return np.floor(h * HUE_BINS + 0.5).astype(np.int64) % HUE_BINS


def object_attributes(factors: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-object categorical attributes from per-image factors (``n k`` / ``n k c`` arrays).

    Returns ``(present, attrs)``: ``present`` bool ``n k`` (an object is there: ``shape > 0``,
    and ``visibility > 0`` where given); ``attrs`` name -> int ``n k``: ``size`` (a ``size``
    factor as stored, else ``scale > SCALE_SPLIT``), ``colour`` (an integer ``color`` as
    stored, an RGB one binned by hue, :data:`HUE_BINS`), ``material`` (where given), ``shape``
    (as stored: 1, 2, 3 ... for Multi-dSprites, 0 = none).

    Raises ValueError: no ``shape`` factor (nothing says where the objects are)."""
    f = {k: np.asarray(v) for k, v in factors.items()}
    if "shape" not in f:
        raise ValueError(f"probe: the data has no per-object 'shape' factor (factors: {', '.join(sorted(f)) or 'none'})")
    shape = np.rint(f["shape"]).astype(np.int64)
    present = shape > 0
    if "visibility" in f:
        present &= f["visibility"] > 0
    attrs: dict[str, np.ndarray] = {}
    if "size" in f:
        attrs["size"] = np.rint(f["size"]).astype(np.int64)
    elif "scale" in f:
        attrs["size"] = (f["scale"] > SCALE_SPLIT).astype(np.int64)
    if "color" in f:
        c = f["color"]
        attrs["colour"] = hue_bins(c.astype(np.float64)) if c.ndim == shape.ndim + 1 else np.rint(c).astype(np.int64)
    if "material" in f:
        attrs["material"] = np.rint(f["material"]).astype(np.int64)
    attrs["shape"] = shape
    return present, attrs
