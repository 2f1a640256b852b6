"""The TOML reader of spec files: data from :mod:`tomllib`, key positions from a small
scanner of the text (table headers, arrays of tables, dotted keys, inline tables, arrays,
multi-line strings); nesting is bounded on the text first, since tomllib recurses. See
ocdsl/spec/source.py for the data model and the bounds."""

from __future__ import annotations

import bisect
import re
import tomllib
from typing import Any

from ocdsl.errors import SpecError
from ocdsl.spec.model import Location, Locations
from ocdsl.spec.source_common import MAX_DEPTH, _double_quote_end, _error, _escaped, _too_deep

__all__ = ["parse_toml", "check_toml_nesting"]


_TOML_POS = re.compile(r"^(?P<msg>.*?)\s*\((?:at line (?P<line>\d+), column (?P<col>\d+)|at end of document)\)\s*$",
                       re.S)


def parse_toml(text: str, file: str = "<spec>") -> tuple[dict[str, Any], Locations]:
    """TOML ``text`` -> (data, locations). Raises SpecError at the position of a syntax error,
    and at the bracket that nests arrays and inline tables more than :data:`MAX_DEPTH` deep."""
    check_toml_nesting(text, file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _toml_error(text, file, str(e)) from None
    locs = Locations(file)
    locs.set((), Location(file, 0, 0))
    try:
        _TomlScanner(text, file, locs).run()
    except _ScanError:  # pragma: no cover - tomllib accepted the text; locations are best effort
        pass
    return data, locs


def check_toml_nesting(text: str, file: str) -> None:
    """Raise SpecError at the first ``[``, ``{`` or key ``.`` past which tables and arrays
    would nest more than MAX_DEPTH deep, outside strings and comments: brackets and braces
    count one level each, and so does each ``.`` of a dotted key or header (``[a.b.c]``,
    ``a.b.c = 1``; a run of dots ends at ``=``, ``,``, a bracket or a line end, so a
    number's one dot counts at most once). One pass, no recursion: tomllib recurses per
    level and takes quadratic time over the parts of a dotted key."""
    depth, dots, i, n = 0, 0, 0, len(text)

    def fail(at: int) -> SpecError:
        k = text.rfind("\n", 0, at) + 1
        return _too_deep(file, text.count("\n", 0, at) + 1, at - k + 1)

    while True:
        m = _TOML_MARKS.search(text, i)
        if m is None:
            return
        i = m.start()
        c = text[i]
        if c in "=,\n[]{}":
            dots = 0
        if c == ".":
            dots += 1
            if depth + dots + 1 > MAX_DEPTH:
                raise fail(i)
        elif c == "#":
            j = text.find("\n", i)
            if j < 0:
                return
            i = j
            continue
        elif c in "\"'":
            q3 = text[i:i + 3]
            if q3 in ('"""', "'''"):
                j = i + 3
                while True:
                    k = text.find(q3, j)
                    if k < 0:
                        return  # unterminated: tomllib reports it
                    if q3 == '"""' and _escaped(text, k, j):
                        j = k + 1
                        continue
                    break
                i = k + 3
                continue
            k = _double_quote_end(text, i + 1) if c == '"' else text.find("'", i + 1)
            eol = text.find("\n", i + 1)
            i = min(x for x in (k, eol, n) if x >= 0) + 1
            continue
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise fail(i)
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1


_TOML_MARKS = re.compile(r"[\[\]{}#'\".=,\n]")


def _toml_error(text: str, file: str, raw: str) -> SpecError:
    m = _TOML_POS.match(raw)
    msg = m.group("msg") if m else raw
    line = int(m.group("line")) if m and m.group("line") else 0
    col = int(m.group("col")) if m and m.group("col") else 0
    hint = None
    if not line or msg.startswith(("Cannot overwrite", "Cannot declare")):
        # tomllib gives no (or a poor) position for some errors; our scanner can often do better.
        try:
            _TomlScanner(text, file, Locations(file), strict=True).run()
        except _ScanError as se:
            line, col = se.line, se.col
            msg = se.message if se.message else msg
        if not line:
            lines = text.split("\n")
            line, col = len(lines), len(lines[-1]) + 1
    lines = text.split("\n")
    if msg == "Invalid value" and 0 < line <= len(lines):
        rest = lines[line - 1][col - 1:] if col else ""
        if rest[:1].isalpha() or rest[:1] == "_":
            word = re.match(r"[\w.+-]*", rest).group()
            hint = f"strings need quotes: \"{word}\""
    if msg.startswith("Illegal character") and "\\n" in msg:
        msg = "unterminated string: a line break inside quotes"
        hint = 'close the quote, or use """...""" for text over several lines'
    msg = msg[:1].lower() + msg[1:]
    return _error(f"malformed TOML: {msg}", file, line, col, hint=hint)


class _ScanError(Exception):
    def __init__(self, message: str, line: int, col: int):
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_WS = " \t"


class _TomlScanner:
    """Records the location of every key (and of single-line string values) of a TOML text.

    Works on text tomllib already accepted, so it can be lenient; with ``strict`` it also
    reports a duplicate key and an unterminated string (tomllib places those "at end of
    document").
    """

    def __init__(self, text: str, file: str, locs: Locations, strict: bool = False):
        self.s = text
        self.n = len(text)
        self.i = 0
        self.file = file
        self.locs = locs
        self.strict = strict
        self.starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self.aot: dict[tuple, int] = {}
        self.assigned: set[tuple] = set()

    # -- helpers
    def pos(self, i: int) -> tuple[int, int]:
        k = bisect.bisect_right(self.starts, i) - 1
        return k + 1, i - self.starts[k] + 1

    def loc(self, i: int) -> Location:
        line, col = self.pos(i)
        return Location(self.file, line, col)

    def fail(self, message: str, i: int):
        line, col = self.pos(min(i, self.n))
        raise _ScanError(message, line, col)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < self.n else ""

    def skip_ws(self) -> None:
        while self.i < self.n and self.s[self.i] in _WS:
            self.i += 1

    def skip_comment(self) -> None:
        if self.peek() == "#":
            j = self.s.find("\n", self.i)
            self.i = self.n if j < 0 else j

    def skip_all(self) -> None:
        """Whitespace, newlines and comments (inside arrays)."""
        while self.i < self.n:
            c = self.s[self.i]
            if c in _WS or c in "\r\n":
                self.i += 1
            elif c == "#":
                self.skip_comment()
            else:
                return

    # -- keys
    def key(self) -> tuple[str, int]:
        """One key part at self.i -> (text, start index)."""
        start = self.i
        c = self.peek()
        if c == '"' or c == "'":
            end = self._string_end(self.i, c)
            raw = self.s[self.i:end]
            self.i = end
            try:
                return tomllib.loads(f"k = {raw}")["k"], start
            except tomllib.TOMLDecodeError:  # pragma: no cover
                return raw.strip(c), start
        m = _BARE_KEY.match(self.s, self.i)
        if not m:
            self.fail("expected a key", self.i)
        self.i = m.end()
        return m.group(), start

    def dotted_key(self) -> list[tuple[str, int]]:
        parts = [self.key()]
        while True:
            self.skip_ws()
            if self.peek() != ".":
                return parts
            self.i += 1
            self.skip_ws()
            parts.append(self.key())

    # -- strings
    def _string_end(self, i: int, q: str) -> int:
        """Index just past the single-line string starting at i (quote q)."""
        j = i + 1
        while j < self.n:
            c = self.s[j]
            if c == "\\" and q == '"':
                j += 2
                continue
            if c == q:
                return j + 1
            if c == "\n":
                break
            j += 1
        self.fail("unterminated string", i)

    def _multiline_end(self, i: int, q3: str) -> int:
        j = i + 3
        while True:
            k = self.s.find(q3, j)
            if k < 0:
                self.fail("unterminated multi-line string", i)
            if q3 == '"""':
                b = k - 1
                nb = 0
                while b >= j and self.s[b] == "\\":
                    nb += 1
                    b -= 1
                if nb % 2:
                    j = k + 1
                    continue
            end = k + 3
            extra = 0
            while end < self.n and self.s[end] == q3[0] and extra < 2:
                end += 1
                extra += 1
            return end

    # -- values
    def value(self, path: tuple) -> None:
        c = self.peek()
        start = self.i
        if self.s.startswith('"""', self.i) or self.s.startswith("'''", self.i):
            self.i = self._multiline_end(self.i, self.s[self.i:self.i + 3])
        elif c == '"' or c == "'":
            self.i = self._string_end(self.i, c)
            content = self.s[start + 1:self.i - 1]
            if c == "'" or "\\" not in content:
                self.locs.set_value(path, self.loc(start + 1))
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            j = self.i
            while j < self.n and self.s[j] not in ",]}#\n":
                j += 1
            if j == self.i:
                self.fail("expected a value", self.i)
            self.i = j

    def array(self, path: tuple) -> None:
        self.i += 1  # [
        idx = 0
        while True:
            self.skip_all()
            if self.i >= self.n:
                self.fail("unterminated array", self.i)
            if self.peek() == "]":
                self.i += 1
                return
            self.locs.set(path + (idx,), self.loc(self.i))
            self.value(path + (idx,))
            idx += 1
            self.skip_all()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "]":
                self.fail("expected ',' or ']'", self.i)

    def inline_table(self, path: tuple) -> None:
        self.i += 1  # {
        while True:
            self.skip_all()
            if self.i >= self.n:
                self.fail("unterminated inline table", self.i)
            if self.peek() == "}":
                self.i += 1
                return
            self.keyval(path)
            self.skip_all()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "}":
                self.fail("expected ',' or '}'", self.i)

    def keyval(self, table: tuple) -> None:
        parts = self.dotted_key()
        path = table
        for k, (name, at) in enumerate(parts):
            path = path + (name,)
            if k == len(parts) - 1:
                if self.strict and path in self.assigned:
                    self.fail(f"key '{name}' is defined twice", at)
                self.assigned.add(path)
                self.locs.set(path, self.loc(at))
            elif path not in self.locs:
                self.locs.set(path, self.loc(at))
        self.skip_ws()
        if self.peek() != "=":
            self.fail("expected '='", self.i)
        self.i += 1
        self.skip_ws()
        self.value(path)

    # -- tables
    def header(self) -> tuple:
        double = self.s.startswith("[[", self.i)
        at = self.i
        self.i += 2 if double else 1
        self.skip_ws()
        parts = self.dotted_key()
        self.skip_ws()
        close = "]]" if double else "]"
        if not self.s.startswith(close, self.i):
            self.fail(f"expected '{close}'", self.i)
        self.i += len(close)
        resolved: tuple = ()
        for k, (name, kat) in enumerate(parts):
            resolved = resolved + (name,)
            last = k == len(parts) - 1
            if last and not double:
                self.locs.set(resolved, self.loc(kat))  # the explicit header wins
            elif resolved not in self.locs:
                self.locs.set(resolved, self.loc(kat))
            if last and double:
                count = self.aot.get(resolved, 0)
                self.aot[resolved] = count + 1
                resolved = resolved + (count,)
                self.locs.set(resolved, self.loc(at))
            elif resolved in self.aot:
                resolved = resolved + (self.aot[resolved] - 1,)
        if self.strict and not double:
            if resolved in self.assigned:
                self.fail(f"table [{'.'.join(p for p, _ in parts)}] is defined twice", at)
            self.assigned.add(resolved)
        return resolved

    def run(self) -> None:
        table: tuple = ()
        while True:
            self.skip_all()
            if self.i >= self.n:
                return
            if self.peek() == "[":
                table = self.header()
            else:
                self.keyval(table)
            self.skip_ws()
            self.skip_comment()
            if self.i < self.n and self.peek() not in "\r\n":
                self.fail("expected the end of the line", self.i)
