"""Hungarian matching of two sets per image, outside autograd and outside the compiled forward.

One place for the assignment every matched loss uses: the object losses of contrastive slot
attention (the two views' slots, :func:`ocdsl.losses.functions.match_views`) and Slot
Attention's set prediction (predicted and true objects,
:func:`ocdsl.losses.functions.hungarian_huber`). The assignment is scipy's
``linear_sum_assignment`` (Crouse 2016, a shortest-augmenting-path Hungarian algorithm),
run on the CPU for the whole batch, one image after another, on a detached copy of the
cost: the loss then gathers the matched entries of the cost *with* their gradient, so the
matching itself is a constant of the step (as in the authors' code of both papers).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["hungarian"]


def hungarian(cost: torch.Tensor, *, maximize: bool = False) -> torch.Tensor:
    """For each image, the assignment of rows to distinct columns of minimal total cost
    (maximal with ``maximize``).

    Shapes:
        cost: b n m with n <= m (any float dtype, any device; read without gradient)
        -> b n int64 on ``cost``'s device: row i of image b is matched to column
           ``out[b, i]``.

    Raises:
        ValueError: ``cost`` is not 3-D, has more rows than columns, or is not finite.
    """
    from scipy.optimize import linear_sum_assignment          # lazy: keeps `import ocdsl` fast

    if cost.dim() != 3 or cost.shape[1] > cost.shape[2]:
        raise ValueError(f"hungarian: expected a cost (b, n, m) with n <= m, got {tuple(cost.shape)}")
    c = cost.detach().to("cpu", torch.float64).numpy()
    if not np.isfinite(c).all():
        raise ValueError("hungarian: the cost is not finite (NaN or inf)")
    cols = [linear_sum_assignment(ci, maximize=maximize)[1] for ci in c]
    n = cost.shape[1]
    out = np.stack(cols) if cols else np.zeros((0, n), np.int64)
    return torch.as_tensor(out, dtype=torch.long, device=cost.device)
