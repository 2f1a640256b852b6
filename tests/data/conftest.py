"""Locate ../shared/data (the real-dataset samples beside the repo checkout).

``OCDSL_SHARED_DATA`` overrides it; it may name the ``shared`` folder or its ``data``
subfolder. Tests that need the samples skip, saying why, when they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    env = os.environ.get("OCDSL_SHARED_DATA")
    roots = [Path(env)] if env else [_REPO / ".." / "shared"]
    for root in roots:
        for cand in (root, root / "data"):
            if (cand / "tetrominoes").is_dir():
                return cand.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        where = os.environ.get("OCDSL_SHARED_DATA") or str(_REPO / ".." / "shared")
        pytest.skip(f"real dataset samples not found at {where} (set OCDSL_SHARED_DATA)")
    return d


@pytest.fixture(scope="session")
def tetro_dir(shared_data: Path) -> Path:
    return shared_data / "tetrominoes"


@pytest.fixture(scope="session")
def tetro_npz(tetro_dir: Path):
    import numpy as np

    p = tetro_dir / "tetrominoes_emorl_test10.npz"
    if not p.exists():
        pytest.skip(f"{p} is missing")
    with np.load(p) as z:
        return {k: z[k] for k in z.files}
