"""Shape signatures: einops-style axis lists such as ``"B K (H W) D"`` (``grammar/shape.lark``).

A signature has one token per axis: a name (a ``[dims]`` entry, or the free batch size
``B``), a positive integer literal, or a parenthesised group whose size is the product of
its members (``(H W)``; ``()`` is an axis of size 1). :func:`parse_signature` returns a
:class:`~ocdsl.spec.model.Signature`; which names are allowed is checked by validate.
"""

from __future__ import annotations

import re

from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ocdsl.errors import Diagnostic, SpecError
from ocdsl.spec.grammars import parser
from ocdsl.spec.model import Signature

__all__ = ["parse_signature"]


@v_args(inline=True)
class _Build(Transformer):
    def __init__(self):
        super().__init__()
        self.bad: list[tuple[str, Token]] = []

    def name(self, tok: Token):
        return (str(tok),)

    def int(self, tok: Token):
        if int(tok) < 1:
            self.bad.append((f"size {tok} must be positive", tok))
        return (int(tok),)

    def group(self, *members):
        return tuple(m[0] for m in members)

    def start(self, *axes):
        return tuple(axes)


def parse_signature(text: str, *, file: str = "<signature>", line: int = 0, col: int = 0,
                    keypath: tuple = (), exact: bool = True) -> Signature:
    """Parse ``"B K (H W) D"`` into a Signature with groups
    ``(("B",), ("K",), ("H", "W"), ("D",))``.

    ``file``/``line``/``col`` locate the first character of ``text`` in the spec (0 when
    unknown; with ``exact=False`` they are only the key's position). Raises SpecError on a malformed signature (unbalanced or nested parentheses,
    a character other than names, integers, spaces and parentheses, a zero size, no axes).
    """

    def err(message: str, tcol: int = 0, hint: str | None = None) -> SpecError:
        c = (col or 1) + tcol - 1 if (line and tcol and exact) else col
        msg = f"bad shape signature {text!r}: {message}"
        if tcol:
            msg += f" (column {tcol})"
        return SpecError(Diagnostic(msg, file=file, line=line, col=c, keypath=tuple(keypath), hint=hint))

    if not isinstance(text, str):
        raise err(f"expected a string such as 'B K D', got {type(text).__name__}")
    if "\n" in text:
        raise err("a signature is one line")
    glued = re.search(r"(?<![A-Za-z0-9_])[0-9]+[A-Za-z_]", text)
    if glued:
        raise err(f"{glued.group()!r}: a name cannot start with a digit", glued.start() + 1,
                  "separate axes with spaces: '3 H', not '3H'")
    try:
        tree = parser("shape.lark").parse(text)
    except UnexpectedCharacters as e:
        ch = text[e.pos_in_stream] if 0 <= e.pos_in_stream < len(text) else "?"
        hint = None
        if ch == "(":
            hint = "groups cannot be nested: write (H W C), not ((H W) C)"
        elif ch in ",x*":
            hint = "separate axes with spaces: 'B K D'; a group is '(H W)'"
        elif ch == ".":
            hint = "'...' (ellipsis) is not supported; name every axis"
        raise err(f"unexpected character {ch!r}", e.column, hint) from None
    except UnexpectedToken as e:
        if e.token.type == "$END":
            raise err("missing ')'", len(text) + 1) from None
        if str(e.token) == ")":
            raise err("unmatched ')'", e.column) from None
        hint = "groups cannot be nested: write (H W C), not ((H W) C)" if str(e.token) == "(" else None
        raise err(f"unexpected {str(e.token)!r}", e.column, hint) from None
    except UnexpectedInput as e:  # pragma: no cover - defensive
        raise err("syntax error", getattr(e, "column", 0)) from None
    build = _Build()
    groups = build.transform(tree)
    if build.bad:
        message, tok = build.bad[0]
        raise err(message, tok.column)
    if not groups:
        raise err("no axes", hint="write one name or number per axis, e.g. 'B 3 H W'")
    return Signature(text, groups)
