"""Linear probe of object properties from slot features (contrastive slot attention, Table 3
protocol), a dataset-level metric.

Questions: "is there a (size, colour, shape) object in the image?", one binary question per
combination of the attribute values the data holds, answered from the generator's (or the
file's) per-object factors (:func:`questions`). Features: the model's per-slot features
``b k d`` max-pooled over the slots. The probe: one L2-regularised logistic regression per
question (scikit-learn ``LogisticRegression``, C = 1) on standardised features, fitted on
the first half of the evaluated images and scored on the second half by average precision
(``average_precision_score``); the metric is the mean AP over the questions with both
answers among the training images and a positive among the scored ones.

Source: Baldassarre & Azizpour 2022, Sec. 4.3 and Table 3 (96 binary (size, colour,
material, shape) questions on CLEVR, max-pooled slot projections, a linear classifier,
average precision).
"""

from __future__ import annotations

import itertools
from typing import Mapping

import numpy as np

__all__ = ["object_attributes", "questions", "probe_ap", "HUE_BINS", "SCALE_SPLIT"]

#: colours given as RGB are binned by hue into this many equal sectors (red, yellow, green,
#: cyan, blue, magenta)
HUE_BINS = 6
#: objects given a continuous ``scale`` (dSprites' grid linspace(0.5, 1, 6)) are "small" up to
#: this scale, "large" above
SCALE_SPLIT = 0.75


def _hue_bins(rgb: np.ndarray) -> np.ndarray:
    """``... 3`` RGB in [0, 1] -> ``...`` int hue sector in [0, HUE_BINS)."""
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
    stored, an RGB one binned by hue, :data:`HUE_BINS`), ``material`` (where given), ``shape``.

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
        attrs["colour"] = _hue_bins(c.astype(np.float64)) if c.ndim == shape.ndim + 1 else np.rint(c).astype(np.int64)
    if "material" in f:
        attrs["material"] = np.rint(f["material"]).astype(np.int64)
    attrs["shape"] = shape
    return present, attrs


def questions(factors: Mapping[str, np.ndarray]) -> tuple[np.ndarray, list[tuple]]:
    """The binary questions: ``answers`` bool ``n q`` and their ``names`` (one tuple of
    ``(attribute, value)`` pairs each), one per combination of the attribute values seen on
    present objects (:func:`object_attributes`), in sorted order."""
    present, attrs = object_attributes(factors)
    names = list(attrs)
    values = [sorted(set(attrs[a][present].tolist())) for a in names]
    answers, labels = [], []
    for combo in itertools.product(*values):
        hit = present.copy()
        for a, v in zip(names, combo):
            hit &= attrs[a] == v
        answers.append(hit.any(axis=1))
        labels.append(tuple(zip(names, combo)))
    n = present.shape[0]
    return (np.stack(answers, axis=1) if answers else np.zeros((n, 0), bool)), labels


def probe_ap(features: np.ndarray, factors: Mapping[str, np.ndarray], *, seed: int = 0) -> dict[str, float]:
    """Mean average precision of linear probes answering :func:`questions` from ``features``.

    Args:
        features: ``n d`` one vector per image (slot features max-pooled over the slots).
        factors: per-image factors of the same ``n`` images.
        seed: the logistic regressions' random state.

    Returns:
        ``{"probe_ap": mean AP, "probe_questions": questions scored}``; the mean is NaN when no
        question can be scored.

    Raises:
        ValueError: ``features`` not 2-D or not one row per image of ``factors``; no ``shape``.
    """
    from sklearn.linear_model import LogisticRegression      # lazy: keeps `import ocdsl` fast
    from sklearn.metrics import average_precision_score

    x = np.asarray(features, dtype=np.float64)
    answers, _ = questions(factors)
    if x.ndim != 2 or x.shape[0] != answers.shape[0]:
        raise ValueError(f"probe: expected features (n, d) with n = {answers.shape[0]} images, got {x.shape}")
    half = x.shape[0] // 2
    mu, sd = x[:half].mean(0), x[:half].std(0) + 1e-6
    x = (x - mu) / sd
    aps = []
    for q in range(answers.shape[1]):
        ytr, yte = answers[:half, q], answers[half:, q]
        if ytr.all() or not ytr.any() or not yte.any():
            continue
        clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(x[:half], ytr)
        aps.append(average_precision_score(yte, clf.decision_function(x[half:])))
    return {"probe_ap": float(np.mean(aps)) if aps else float("nan"), "probe_questions": float(len(aps))}
