"""What the TOML and YAML readers of ocdsl/spec/source.py share: the nesting bounds, the
located error, the deep-nesting error and the scanning of quoted strings in raw text (the
bounds are checked on the text before a parser that recurses sees it)."""

from __future__ import annotations

from ocdsl.errors import Diagnostic, SpecError

__all__ = ["MAX_DEPTH", "MAX_ALIAS_NODES"]

#: How deep tables and lists may nest (the shipped specs nest 5 deep).
MAX_DEPTH = 32
#: How many nodes YAML aliases may stand for, all together (a spec has a few hundred).
MAX_ALIAS_NODES = 10_000


def _error(message: str, file: str, line: int = 0, col: int = 0, keypath: tuple = (),
           hint: str | None = None) -> SpecError:
    return SpecError(Diagnostic(message, file=file, line=line, col=col, keypath=tuple(keypath), hint=hint))


def _too_deep(file: str, line: int, col: int, keypath: tuple = ()) -> SpecError:
    return _error(f"nested more than {MAX_DEPTH} levels deep", file, line, col, keypath=keypath,
                  hint="a spec's tables and lists nest a few levels; is this the file you meant?")


def _escaped(text: str, k: int, start: int) -> bool:
    """Whether the character at ``k`` follows an odd number of backslashes (from ``start``)."""
    b = k - 1
    while b >= start and text[b] == "\\":
        b -= 1
    return (k - 1 - b) % 2 == 1


def _single_quote_end(text: str, j: int) -> int:
    """Index of the quote closing a single-quoted YAML scalar whose text starts at ``j``
    (``''`` is an escaped quote), or len(text)."""
    while True:
        k = text.find("'", j)
        if k < 0:
            return len(text)
        if text[k + 1:k + 2] == "'":
            j = k + 2
            continue
        return k


def _double_quote_end(text: str, j: int) -> int:
    """Index of the quote closing a double-quoted scalar starting at ``j`` (backslash
    escapes), or len(text)."""
    while True:
        k = text.find('"', j)
        if k < 0:
            return len(text)
        if _escaped(text, k, j):
            j = k + 1
            continue
        return k
