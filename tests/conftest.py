"""Fixtures shared by the test folders."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run the test on one torch thread (tiny models: threads only add overhead), then
    restore the previous count."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
