"""Average precision of set prediction at distance thresholds (Locatello et al. 2020, Sec. 4.2,
Table 1; a dataset-level metric).

Every slot's prediction ``[coordinates, class scores of each attribute, confidence]`` (the
layout of ocdsl/data/properties.py) is a detection, ranked by its confidence (the last
entry) over the whole evaluated set. Going down the ranking, a detection of image b is a
true positive when

1. among the real objects of image b (flag > 0) whose every attribute equals the
   detection's argmax class, the nearest by Euclidean distance of the coordinates times
   ``coord_scale`` (CLEVR: 6, back to the [-3, 3] scene) is closer than the threshold (any
   distance for AP at infinity), and
2. that nearest object has not been detected by a higher-ranked detection;

otherwise it is a false positive (also when the nearest object is taken, even if another
matching object is free: the official rule). Precision and recall (over the real objects of
the set) along the ranking give the AP as in PASCAL VOC: precision made monotone from the
right, summed over the recall steps.

Source: google-research/google-research slot_attention/utils.py @ 0c1bbe5,
``average_precision_clevr`` and ``compute_average_precision`` (thresholds inf, 1, 0.5, 0.25,
0.125 in set_prediction/train.py). Departure, stated: equal confidences keep the slots'
order (a stable sort; the official reverses numpy's default sort, whose tie order is
unspecified).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["THRESHOLDS", "average_precision", "voc_average_precision"]

#: metric name -> distance threshold (None: any distance, "AP at infinity")
THRESHOLDS: dict[str, float | None] = {"ap_inf": None, "ap_1": 1.0, "ap_0_5": 0.5, "ap_0_25": 0.25,
                                       "ap_0_125": 0.125}


def _decode(x: np.ndarray, coords: int, classes: Sequence[int]):
    """``... p`` vectors -> coordinates ``... c``, argmax class of each attribute ``... g``,
    last entry ``...``."""
    parts, lo = [], coords
    for n in classes:
        parts.append(np.argmax(x[..., lo:lo + n], axis=-1))
        lo += n
    if lo + 1 != x.shape[-1]:
        raise ValueError(f"average_precision: the layout ({coords} coordinates, classes {tuple(classes)}, "
                         f"1 flag) has {lo + 1} entries, the vectors {x.shape[-1]}")
    cls = np.stack(parts, axis=-1) if parts else np.zeros(x.shape[:-1] + (0,), np.int64)
    return x[..., :coords], cls, x[..., -1]


def voc_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """PASCAL VOC's area under the precision-recall curve: the points ``(0, 0)`` and
    ``(1, 0)`` added at the ends, precision replaced by its maximum to the right, then
    ``sum (r[i+1] - r[i]) p[i+1]`` over the steps where recall changes."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    step = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[step + 1] - r[step]) * p[step + 1]))


def average_precision(predictions: np.ndarray, targets: np.ndarray, *, coords: int, classes: Sequence[int],
                      coord_scale: float, threshold: float | None = None) -> float:
    """AP of the predicted objects against the true ones at one distance threshold.

    Args:
        predictions: ``n k p``, one vector per slot (confidence last).
        targets: ``n o p``, the true objects (flag last: > 0 for a real object, 0 for padding).
        coords, classes, coord_scale: the layout (``PropertyLayout.metric_args()``).
        threshold: the distance below which a detection counts (strictly); None: any.

    Returns:
        The AP in [0, 1]; NaN when the targets hold no real object.

    Raises:
        ValueError: not 3-D, different n or p, or p not the layout's length.
    """
    pred, true = np.asarray(predictions, np.float64), np.asarray(targets, np.float64)
    if pred.ndim != 3 or true.ndim != 3 or pred.shape[0] != true.shape[0] or pred.shape[2] != true.shape[2]:
        raise ValueError(f"average_precision: expected predictions (n, k, p) and targets (n, o, p), "
                         f"got {pred.shape} and {true.shape}")
    n, k, _ = pred.shape
    pc, pa, conf = _decode(pred, coords, classes)
    tc, ta, flag = _decode(true, coords, classes)
    real = flag > 0
    total = int(real.sum())
    if total == 0:
        return float("nan")
    same = (pa[:, :, None, :] == ta[:, None, :, :]).all(-1) & real[:, None, :]          # n k o
    dist = np.linalg.norm((pc[:, :, None, :] - tc[:, None, :, :]) * coord_scale, axis=-1)
    dist = np.where(same, dist, np.inf)
    nearest, best = dist.argmin(-1), dist.min(-1)                                       # n k
    hit = np.isfinite(best) if threshold is None else best < threshold
    order = np.argsort(-conf.reshape(-1), kind="stable")
    detected = np.zeros(true.shape[:2], bool)
    tp = np.zeros(n * k)
    for rank, d in enumerate(order):
        b, s = divmod(int(d), k)
        if hit[b, s] and not detected[b, nearest[b, s]]:
            detected[b, nearest[b, s]] = True
            tp[rank] = 1.0
    found = np.cumsum(tp)
    return voc_average_precision(found / np.arange(1, n * k + 1), found / total)
