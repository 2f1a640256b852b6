"""Locating and compiling the lark grammars (``grammar/*.lark``).

The grammars live in the repository's top-level ``grammar/`` folder, which is shipped as
the data package ``ocdsl.grammar`` (pyproject.toml ``package-dir``). An installed wheel finds
them through ``importlib.resources``; an editable install or a plain checkout falls back to
``<repo>/grammar/`` next to the ``ocdsl`` package.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from lark import Lark

__all__ = ["grammar_text", "parser"]

_REPO_GRAMMAR = Path(__file__).resolve().parents[2] / "grammar"


def grammar_text(name: str) -> str:
    """Text of grammar file ``name`` (``"expr.lark"``), from the installed package data or
    from the repository checkout."""
    try:
        res = resources.files("ocdsl.grammar").joinpath(name)
        if res.is_file():
            return res.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, TypeError):
        pass
    path = _REPO_GRAMMAR / name
    if not path.is_file():
        raise FileNotFoundError(f"grammar {name!r} not found in package ocdsl.grammar nor in {path.parent}")
    return path.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def parser(name: str) -> Lark:
    """A cached LALR parser for grammar file ``name``."""
    return Lark(grammar_text(name), parser="lalr", lexer="contextual")  # optional [x] -> None (lark 1.x default)
