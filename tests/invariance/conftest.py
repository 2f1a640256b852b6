"""Fixtures for the symmetry checks: one thread (the machine is shared), a fixed seed.

Example counts: ``CI_EXAMPLES`` per property in the default run (the whole folder stays
well under two minutes on two busy cores); tests marked ``slow`` use ``SLOW_EXAMPLES``
(run them with ``pytest -m slow tests/invariance``).
"""

import pytest
import torch

CI_EXAMPLES = 8
SLOW_EXAMPLES = 150


@pytest.fixture(autouse=True)
def _seed_and_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
