"""Nothing in the repository cites a document outside it.

The team's design, style, performance, paper-facts and data-format notes live outside the
checkout, where a reader of the repository cannot follow a link to them; what the code
relies on is stated in docs/ (architecture.md, papers.md, formats.md, results.md) and cited
from there. This test scans every tracked text file and fails, naming file:line, on a
reference to one of those outside documents. Paths to data files beside the checkout
(``../shared/data/tetrominoes/*.npz``) are data, not documents, and are allowed.

``compiled/`` is skipped: it is generated from specs/ (which are scanned), and
tests/codegen/test_codegen.py keeps it equal to what the specs generate.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve().relative_to(REPO).as_posix()

#: the documents outside the repository, by name
OUTSIDE = re.compile(
    r"\b(?:DESIGN|STYLE|PERF_NOTES|REFERENCE|FORMATS|PROVENANCE)\.md\b"  # the notes, by file name
    r"|\bPERF_NOTES\b"                                                   # "PERF_NOTES puts the gain ..."
    r"|\bshared/papers\b"                                                # the papers folder
)

#: generated from tracked sources that are scanned themselves
SKIP_DIRS = ("compiled/",)


def offending_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) of every line of ``text`` that cites an outside document."""
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]


def as_text(data: bytes) -> str | None:
    """``data`` decoded as UTF-8, or None for a binary file."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of tracked files")
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def test_patterns_catch_citations_and_allow_data_paths():
    cited = ["Facts: ../shared/papers/REFERENCE.md §1.", "(PERF_NOTES.md: compare variants)",
             "PERF_NOTES puts the gain at about 12 %", "Read ../shared/DESIGN.md first",
             "real source lines (STYLE.md).", "(FORMATS.md §3)", "tetrominoes/PROVENANCE.md"]
    for line in cited:
        assert offending_lines(line), line
    allowed = ['path = "../../shared/data/tetrominoes/tetrominoes_emorl_test10.npz"',
               "images in `../shared/data/tetrominoes/` (skipped where absent)",
               "docs/papers.md, Object-centric MAE", "bench/recipe/RESULTS.md", "docs/formats.md, EMORL HDF5"]
    for line in allowed:
        assert not offending_lines(line), line


def test_no_tracked_file_cites_a_document_outside_the_repository():
    found = []
    for rel in tracked_files():
        if rel == THIS or rel.startswith(SKIP_DIRS):
            continue
        path = REPO / rel
        if not path.is_file():  # deleted in the working tree, or a submodule
            continue
        text = as_text(path.read_bytes())
        if text is None:
            continue
        found += [f"{rel}:{n}: {line}" for n, line in offending_lines(text)]
    assert not found, (
        "these lines cite documents outside the repository; cite docs/architecture.md, "
        "docs/papers.md, docs/formats.md or docs/results.md instead:\n  " + "\n  ".join(found))
