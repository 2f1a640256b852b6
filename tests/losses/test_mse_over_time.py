"""mse_over_time (ASAE Eq. 14): step s weighs s^2, a weighted mean of per-step MSEs."""

from __future__ import annotations

import pytest
import torch

from ocdsl.losses import functions as fn


def test_weights_late_steps_by_s_squared():
    target = torch.zeros(2, 1, 4, 4)
    canvases = torch.zeros(2, 3, 1, 4, 4)
    canvases[:, 0] = 1.0          # step 1 wrong by 1 everywhere: mse 1, weight 1
    canvases[:, 2] = 2.0          # step 3 wrong by 2: mse 4, weight 9
    got = fn.mse_over_time(canvases, target)
    assert got.item() == pytest.approx((1 * 1 + 4 * 0 + 9 * 4) / (1 + 4 + 9))


def test_one_step_is_plain_mse():
    c, x = torch.rand(3, 1, 2, 5, 5), torch.rand(3, 2, 5, 5)
    torch.testing.assert_close(fn.mse_over_time(c, x), fn.mse(c[:, 0], x))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="expected canvases"):
        fn.mse_over_time(torch.rand(2, 3, 1, 4, 4), torch.rand(2, 1, 5, 4))
