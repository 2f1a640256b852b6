"""The catalogue of user errors (tests/bad_specs/) is data; this test walks it.

Each ``tests/bad_specs/<case>.toml`` / ``.yaml`` is a spec with a mistake and comment lines
saying what the error must contain:

    # expect: <substring of the formatted error>      (one or more; all must appear)
    # expect-line: N                                  (the error is reported at <file>:N:)
    # set: key.path=value                             (an override passed to load)

Each case goes through the whole front end (``ocdsl.pipeline.build``: load, validate, graph,
shape inference), so graph-level mistakes (undefined references, cycles, shape mismatches)
live in the same catalogue. Files whose name starts with ``_`` are helpers (e.g. the other half of an extends cycle).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ocdsl.errors import SpecError
from ocdsl.pipeline import build

CATALOGUE = Path(__file__).parent / "bad_specs"
CASES = sorted(p for p in CATALOGUE.iterdir()
               if p.suffix in (".toml", ".yaml", ".yml") and not p.name.startswith("_"))
_DIRECTIVE = re.compile(r"^#\s*(expect|expect-line|set):\s?(.*?)\s*$")


def directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"expect": [], "expect-line": [], "set": []}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _DIRECTIVE.match(line)
        if m:
            out[m.group(1)].append(m.group(2))
    return out


def test_catalogue_is_not_empty():
    assert len(CASES) >= 15


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_bad_spec(path: Path):
    d = directives(path)
    assert d["expect"], f"{path.name}: no '# expect:' line"
    with pytest.raises(SpecError) as ei:
        build(path, overrides=d["set"] or None)  # load + graph + shape inference
    text = ei.value.format()
    for want in d["expect"]:
        assert want in text, f"{path.name}: expected {want!r} in:\n{text}"
    for n in d["expect-line"]:
        assert f"{path}:{n}:" in text, f"{path.name}: expected the error at line {n}:\n{text}"
    assert "Traceback" not in text
