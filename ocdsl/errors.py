"""User-facing errors.

Every mistake a user can make (a bad spec, a missing file, a bad override, a corrupt
checkpoint) is raised as a :class:`UserError` carrying one or more :class:`Diagnostic`.
The CLI prints each as ``path:line:col: error: message`` (plus ``hint: ...``), exits 2 and
never shows a traceback. Internal bugs are *not* UserErrors and keep their traceback.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

__all__ = ["Diagnostic", "UserError", "SpecError", "did_you_mean", "format_keypath", "shown"]


def shown(text: str) -> str:
    """``text`` as it may be printed: unchanged when every character is printable, else with
    line breaks, control and other unprintable characters escaped (``enc\\n``, ``a\\x00``),
    so a name from a spec cannot break or garble a message."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def format_keypath(keypath: Sequence[str | int]) -> str:
    """``("model", "nodes", "enc", "channels", 0)`` -> ``model.nodes.enc.channels[0]``."""
    out = ""
    for part in keypath:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + shown(part)
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A ``did you mean 'x'?`` hint for the closest of ``choices``, or None."""
    matches = difflib.get_close_matches(str(word), sorted(set(map(str, choices))), n=1, cutoff=0.6)
    return f"did you mean '{shown(matches[0])}'?" if matches else None


@dataclass(frozen=True)
class Diagnostic:
    """One problem at one place.

    ``file`` is the path as the user gave it; ``line`` and ``col`` are 1-based (0 when
    unknown, e.g. a whole-file problem); ``keypath`` is the spec key the problem is at.
    ``severity`` is "error" or "warning".
    """

    message: str
    file: str = "<spec>"
    line: int = 0
    col: int = 0
    keypath: tuple[str | int, ...] = ()
    hint: str | None = None
    severity: str = "error"

    def format(self) -> str:
        where = shown(self.file)
        if self.line:
            where += f":{self.line}:{self.col or 1}"
        key = f" [{format_keypath(self.keypath)}]" if self.keypath else ""
        text = f"{where}: {self.severity}:{key} {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def sort_key(self):
        return (self.file, self.line, self.col, self.message)


class UserError(Exception):
    """An error caused by user input; printed without a traceback, exit status 2."""

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic] | str):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics, file="ocdsl")]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = sorted(diagnostics, key=Diagnostic.sort_key)
        super().__init__(self.format())

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)


class SpecError(UserError):
    """A spec (or an override of it) is malformed, invalid or inconsistent."""
