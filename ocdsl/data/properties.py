"""Per-object property vectors: the targets of set prediction (Locatello et al. 2020, Sec. 4.2).

Each object of an image is one vector ``[coordinates, one-hot class of each categorical
attribute, real-object flag]``, and an image's objects are stacked and padded with zero
vectors (flag 0) to a fixed number of objects: ``properties`` float32 ``n O P`` in [0, 1].
The official Slot Attention code lays CLEVR out this way (google-research/google-research
slot_attention/data.py @ 0c1bbe5, ``preprocess_clevr``: 3-D coordinates mapped from
[-3, 3] to [0, 1], one-hot size (2), material (2), shape (3), colour (8), then 1, padded
to 10 objects: P = 19).

A dataset that has such targets says so with a :class:`PropertyLayout` in its registry entry
(``DatasetInfo.properties``); the generator or reader puts the vectors in the per-image
factors as ``properties``, and a model input named ``properties`` (``"B O P"``) receives them
(ocdsl/train/stream.py, ``collate``). The AP metrics read the layout
(:meth:`PropertyLayout.metric_args`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

__all__ = ["PropertyLayout"]


@dataclass(frozen=True)
class PropertyLayout:
    """Where each property sits in an object's vector.

    - ``coords``: names of the continuous coordinates, first in the vector, each in [0, 1];
    - ``classes``: ``(attribute, value names)`` of each categorical attribute, one-hot, in
      this order after the coordinates;
    - ``coord_scale``: distance units per coordinate unit, for the AP distance thresholds
      (CLEVR: 6, the [-3, 3] scene the [0, 1] coordinates were mapped from);
    - ``objects``: objects per image (the vectors are padded to this many).

    The last entry of the vector is the real-object flag (1 = an object, 0 = padding).
    """

    coords: tuple[str, ...]
    classes: tuple[tuple[str, tuple[str, ...]], ...]
    coord_scale: float
    objects: int

    @property
    def size(self) -> int:
        """P, the length of one object's vector."""
        return len(self.coords) + sum(len(v) for _, v in self.classes) + 1

    def metric_args(self) -> dict:
        """``{"coords": number of coordinates, "classes": (values of each attribute, ...),
        "coord_scale": ...}``: what :func:`ocdsl.metrics.set_ap.average_precision` needs to
        read a vector."""
        return {"coords": len(self.coords), "classes": tuple(len(v) for _, v in self.classes),
                "coord_scale": float(self.coord_scale)}

    def encode(self, coords: np.ndarray, classes: Mapping[str, np.ndarray], present: np.ndarray) -> np.ndarray:
        """The vectors of ``n`` images of up to ``objects`` objects each.

        Args:
            coords: ``n o c`` coordinates in [0, 1] (c = ``len(coords)``).
            classes: attribute -> ``n o`` int class index in [0, number of values), one
                entry per attribute of ``classes``.
            present: ``n o`` bool, the objects that are there (others become zero vectors).

        Returns:
            float32 ``n objects P``; absent objects and the padding are all zeros.

        Raises:
            ValueError: more than ``objects`` objects, a missing attribute, or a class index
            out of range.
        """
        coords = np.asarray(coords, dtype=np.float32)
        n, o = coords.shape[:2]
        if o > self.objects:
            raise ValueError(f"{o} objects per image, the layout holds {self.objects}")
        parts = [coords]
        for name, values in self.classes:
            if name not in classes:
                raise ValueError(f"no '{name}' class for the property vectors (given: {', '.join(classes)})")
            idx = np.asarray(classes[name], dtype=np.int64)
            ok = (idx >= 0) & (idx < len(values))
            if not ok[present].all():
                raise ValueError(f"'{name}' class index outside 0..{len(values) - 1}")
            parts.append(np.eye(len(values), dtype=np.float32)[np.where(ok, idx, 0)])
        parts.append(np.ones((n, o, 1), np.float32))
        vec = np.concatenate(parts, axis=-1) * np.asarray(present, dtype=np.float32)[..., None]
        out = np.zeros((n, self.objects, self.size), np.float32)
        out[:, :o] = vec
        return out
