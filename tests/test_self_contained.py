"""Nothing in the repository cites a document outside it.

The team's design, style, performance, paper-facts and data-format notes live outside the
checkout, where a reader of the repository cannot follow a link to them; what the code
relies on is stated in docs/ (architecture.md, papers.md, formats.md, results.md) and cited
from there. This test scans every tracked text file and fails, naming file:line, on a
markdown document that is not one of the repository's own, or on a path beside the
checkout that is not data. Paths to data files beside the checkout
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

#: a markdown document named anywhere in a line
DOCUMENT = re.compile(r"[\w./-]*?([\w-]+\.md)\b")
#: a path beside the checkout that is not data
OUTSIDE_PATH = re.compile(r"\.\./shared/(?!data\b)[\w.-]+")

#: generated from tracked sources that are scanned themselves
SKIP_DIRS = ("compiled/",)


def offending_lines(text: str, documents: set[str]) -> list[tuple[int, str]]:
    """(1-based line number, line) of every line of ``text`` that names a markdown document
    whose file name is not in ``documents`` (the repository's own), or a path beside the
    checkout other than ``../shared/data/...``."""
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1)
            if OUTSIDE_PATH.search(line)
            or any(m.group(1) not in documents for m in DOCUMENT.finditer(line))]


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
    ours = {"papers.md", "formats.md", "RESULTS.md", "README.md"}
    cited = ["Facts: ../shared/notes/FACTS.md §1.", "(TIMINGS.md: compare variants)",
             "Read ../shared/PLAN.md first", "see ../shared/notes/ for the design",
             "real source lines (GUIDE.md).", "tetrominoes/ORIGIN.md"]
    for line in cited:
        assert offending_lines(line, ours), line
    allowed = ['path = "../../shared/data/tetrominoes/tetrominoes_emorl_test10.npz"',
               "images in `../shared/data/tetrominoes/` (skipped where absent)",
               "docs/papers.md, Object-centric MAE", "bench/recipe/RESULTS.md", "docs/formats.md, EMORL HDF5"]
    for line in allowed:
        assert not offending_lines(line, ours), line


def test_no_tracked_file_cites_a_document_outside_the_repository():
    files = tracked_files()
    documents = {Path(rel).name for rel in files if rel.endswith(".md")}
    found = []
    for rel in files:
        if rel == THIS or rel.startswith(SKIP_DIRS):
            continue
        path = REPO / rel
        if not path.is_file():  # deleted in the working tree, or a submodule
            continue
        text = as_text(path.read_bytes())
        if text is None:
            continue
        found += [f"{rel}:{n}: {line}" for n, line in offending_lines(text, documents)]
    assert not found, (
        "these lines cite documents outside the repository; cite docs/architecture.md, "
        "docs/papers.md, docs/formats.md or docs/results.md instead:\n  " + "\n  ".join(found))
