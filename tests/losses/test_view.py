"""view(x, i): one view of the views stacked along the batch."""

import pytest
import torch

from ocdsl.losses import functions as fn


def test_view_takes_the_ith_chunk_of_the_batch():
    x = torch.arange(12).reshape(6, 2)
    assert torch.equal(fn.view(x, 1), x[:3]) and torch.equal(fn.view(x, 2), x[3:])
    assert torch.equal(fn.view(x, 3, 3), x[4:])
    with pytest.raises(ValueError, match="1..2"):
        fn.view(x, 0)
    with pytest.raises(ValueError, match="multiple of 4"):
        fn.view(x, 1, 4)
    assert fn.get("view").min_args == 2 and fn.get("view").max_args == 3
