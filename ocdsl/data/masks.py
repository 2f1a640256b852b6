"""Mask layout conversions.

The real datasets store one binary mask per slot (DeepMind canonical layout; docs/formats.md,
DeepMind multi-object TFRecords and EMORL HDF5): ``mask`` [..., K, H, W, 1] (or
[..., K, H, W]) with values 0/255 (0/1 and float copies also accepted), where slot 0 is
the background (Objects Room: slot 0 is the sky, slots 1-3 floor/walls -- still
"slot 0 = label 0"). ocdsl uses an integer label map instead: label 0 = background,
label k = object slot k.

Conversion: ``label = argmax_k mask[k]`` over the raw values. Slots are exclusive in these
datasets (exactly one slot is on at each pixel); a pixel where no slot is on gets label 0
(argmax returns the first of equal maxima), two slots on at once -> the lower index wins,
and soft (resized) masks go to the strongest slot.
"""

from __future__ import annotations

import numpy as np

__all__ = ["masks_to_labels", "labels_to_masks"]


def masks_to_labels(masks: np.ndarray, *, slot_axis: int = -4) -> np.ndarray:
    """One-hot K-mask stack -> label map.

    ``masks``: [..., K, H, W, 1] (``slot_axis=-4``, the default) or [..., K, H, W] with
    ``slot_axis=-3``; any numeric dtype, "on" = the value > 0.
    Returns uint8 [..., H, W] (int64 when K > 256) with 0 = background / slot 0,
    k = slot k.
    """
    m = np.asarray(masks)
    if slot_axis == -4:
        if m.ndim < 4 or m.shape[-1] != 1:
            raise ValueError(f"expected masks [..., K, H, W, 1], got shape {m.shape}")
        m = m[..., 0]
        slot_axis = -3
    if m.ndim < 3:
        raise ValueError(f"expected masks [..., K, H, W], got shape {m.shape}")
    k = m.shape[slot_axis]
    labels = np.argmax(m, axis=slot_axis)
    return labels.astype(np.uint8 if k <= 256 else np.int64)


def labels_to_masks(labels: np.ndarray, num_slots: int) -> np.ndarray:
    """Label map [..., H, W] -> uint8 one-hot masks [..., K, H, W, 1] with values 0/255."""
    lab = np.asarray(labels)
    k = np.arange(num_slots).reshape((num_slots,) + (1,) * 2)
    out = (lab[..., None, :, :] == k).astype(np.uint8) * 255
    return out[..., None]
