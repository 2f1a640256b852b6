"""The canonical npz layout (the real-dataset samples in ../shared/data, and ocdsl exports).

Keys:

- ``image`` uint8 [N, H, W, C], 0..255;
- ``mask``: either the DeepMind K-mask stack uint8 [N, K, H, W, 1] with values 0/255 and
  slot 0 = background (docs/formats.md, The real samples beside the checkout), or an integer label
  map [N, H, W] (0 = background), as :func:`ocdsl.data.tetrominoes.generate` returns;
- any other array with leading dimension N (``visibility`` [N, K], ``x``, ``shape``, ...)
  is a per-image factor.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ocdsl.errors import Diagnostic, UserError

from .masks import masks_to_labels

__all__ = ["read_npz", "write_npz"]


def _bad(path: Path, why: str) -> UserError:
    return UserError(
        Diagnostic(
            f"cannot read {path}: {why}",
            file=str(path),
            hint="expected an .npz with `image` uint8 [N,H,W,C] and `mask` "
            "[N,K,H,W,1] (0/255, slot 0 = background) or [N,H,W] labels",
        )
    )


def read_npz(path: str | Path, *, limit: int | None = None) -> dict[str, np.ndarray]:
    """Load an npz in the canonical layout.

    Returns ``image`` uint8 [N, H, W, C], ``label`` uint8/int64 [N, H, W] (0 =
    background) and every other [N, ...] array as a factor. ``limit`` keeps the first
    ``limit`` images. A corrupt or malformed file raises :class:`UserError` naming it.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as err:
        raise _bad(path, f"{type(err).__name__}: {err}") from err
    for key in ("image", "mask"):
        if key not in arrays:
            raise _bad(path, f"no '{key}' array (arrays: {sorted(arrays)})")
    image, mask = arrays.pop("image"), arrays.pop("mask")
    if image.ndim != 4:
        raise _bad(path, f"'image' has shape {image.shape}, expected [N, H, W, C]")
    n, h, w = image.shape[:3]
    if mask.ndim == 5 and mask.shape[0] == n and mask.shape[2:4] == (h, w):
        label = masks_to_labels(mask)
    elif mask.ndim == 3 and mask.shape == (n, h, w):
        label = mask
    else:
        raise _bad(path, f"'mask' has shape {mask.shape}, expected [{n}, K, {h}, {w}, 1] "
                         f"or [{n}, {h}, {w}]")
    out = {"image": image, "label": label}
    out.update({k: v for k, v in arrays.items() if v.ndim >= 1 and v.shape[0] == n})
    if limit is not None:
        out = {k: v[:limit] for k, v in out.items()}
    return out


def write_npz(path: str | Path, image: np.ndarray, mask: np.ndarray, **factors: np.ndarray) -> None:
    """Write the canonical layout (compressed). ``mask`` is a K-stack or a label map."""
    np.savez_compressed(path, image=np.asarray(image), mask=np.asarray(mask),
                        **{k: np.asarray(v) for k, v in factors.items()})
