"""Linear probe of object properties from slot features (contrastive slot attention, Table 3
protocol), a dataset-level metric.

Questions: "is there a (size, colour, shape) object in the image?", one binary question per
combination of the attribute values the data holds, answered from the generator's (or the
file's) per-object factors (:func:`questions`; the attributes are
:func:`ocdsl.attributes.object_attributes`, shared with the set-prediction targets).
Features: the model's per-slot features ``b k d`` max-pooled over the slots. The probe: one L2-regularised logistic regression per
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

from ocdsl.attributes import HUE_BINS, SCALE_SPLIT, object_attributes

__all__ = ["object_attributes", "questions", "probe_ap", "HUE_BINS", "SCALE_SPLIT"]


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
