"""Segmentation IoU of per-slot attention maps binarised by Otsu's threshold (contrastive
slot attention, Table 2 protocol).

Each slot's map is binarised on its own: pixel in the slot's mask iff its value is strictly
above Otsu's threshold of that map (``skimage.filters.threshold_otsu``); a constant map gives
an empty mask. The binary masks may overlap or leave pixels uncovered (unlike an argmax).
The ground-truth objects (labels >= 1; the background is dropped) are Hungarian-matched to
the slots maximising the summed IoU (scipy's ``linear_sum_assignment``); the image's score is
the mean IoU over its objects (an object left without a slot, when there are more objects
than slots, counts 0), and an image without objects is NaN.

Source: Baldassarre & Azizpour 2022, Sec. 4.2 and Table 2 (the first slot-attention map,
upsampled to the image, Otsu per slot, Hungarian matching, background dropped, mean per
image then over images); Otsu, IEEE Trans. SMC 1979.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ocdsl.metrics._inputs import check_labels

__all__ = ["otsu_masks", "otsu_iou"]


def otsu_masks(maps: np.ndarray) -> np.ndarray:
    """``k h w`` float maps -> ``k h w`` bool: ``map > threshold_otsu(map)`` per slot; a
    constant map (no threshold) gives an empty mask."""
    from skimage.filters import threshold_otsu          # lazy: keeps `import ocdsl` fast

    out = np.zeros(maps.shape, dtype=bool)
    for j, m in enumerate(maps):
        if float(m.max()) > float(m.min()):
            out[j] = m > threshold_otsu(m)
    return out


def otsu_iou(maps: Tensor, labels: Tensor) -> Tensor:
    """Per-image Otsu IoU (module docstring).

    Args:
        maps: ``b k h w`` per-slot maps (e.g. attention upsampled to the image), floating.
        labels: ``b h w`` integer ground truth, 0 = background.

    Returns:
        ``(b,)`` float64 in [0, 1], NaN for an image without objects.

    Raises:
        ValueError / TypeError: ``maps`` not ``b k h w`` floating, or its ``b h w`` not the
        labels' (expected vs got); labels not integer or negative.
    """
    from scipy.optimize import linear_sum_assignment    # lazy

    if maps.dim() != 4 or not maps.is_floating_point():
        raise ValueError(f"otsu_iou: expected floating maps (b, k, h, w), got {tuple(maps.shape)} {maps.dtype}")
    check_labels(labels, "labels")
    if labels.shape != (maps.shape[0], *maps.shape[2:]):
        raise ValueError(f"otsu_iou: expected labels {(maps.shape[0], *maps.shape[2:])} (b h w of the maps), "
                         f"got {tuple(labels.shape)}")
    maps_np = maps.detach().float().cpu().numpy()
    labels_np = labels.detach().cpu().numpy()
    out = np.full(maps.shape[0], np.nan)
    for i in range(maps.shape[0]):
        objects = [t for t in np.unique(labels_np[i]) if t > 0]
        if not objects:
            continue
        pred = otsu_masks(maps_np[i]).reshape(maps.shape[1], -1)                    # (k, n)
        true = np.stack([labels_np[i].reshape(-1) == t for t in objects])          # (t, n)
        inter = pred.astype(np.float64) @ true.T.astype(np.float64)                 # (k, t)
        union = pred.sum(1)[:, None] + true.sum(1)[None, :] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        rows, cols = linear_sum_assignment(iou, maximize=True)
        out[i] = iou[rows, cols].sum() / len(objects)
    return torch.as_tensor(out, dtype=torch.float64)
