"""Fixtures for the spec front-end tests: tiny fake ops registered for the test only, so
these tests do not depend on the real op library."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ocdsl.ops import registry
from spec_toys import TOY_OPS, TOY_SPEC


@pytest.fixture(autouse=True)
def toy_ops():
    """Register the toy ops for one test and remove them afterwards."""
    added = []
    for op in TOY_OPS:
        if op.name not in registry._REGISTRY:
            registry.register(op)
            added.append(op.name)
    yield TOY_OPS
    for name in added:
        registry._REGISTRY.pop(name, None)


@pytest.fixture
def write(tmp_path: Path):
    """write(name, text) -> path of a file in a fresh temporary folder."""
    def _write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        return p
    return _write


@pytest.fixture
def toy_spec(write) -> Path:
    return write("toy.toml", TOY_SPEC)
