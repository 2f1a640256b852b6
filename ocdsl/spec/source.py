"""Reading a spec file (TOML or YAML) into plain data plus the source location of every key.

Both formats give the same data model: dicts, lists and scalars. Alongside it comes a
:class:`~ocdsl.spec.model.Locations` map from key path (``("model", "nodes", "enc",
"kernel")``, list entries by index: ``("eval", "datasets", 0, "path")``) to the 1-based line
and column of that key, and, for single-line string values, the position of the string's
first character (``Locations.value``), so an error inside an expression or a signature can
point at the exact character.

TOML values come from :mod:`tomllib`; the key positions come from a small scanner of the TOML
text here (table headers, arrays of tables, dotted keys, inline tables, arrays, multi-line
strings). YAML goes through PyYAML's *safe* composer: nothing in a spec is ever executed.

Bounds, so that no spec text can exhaust the machine: tables and lists nest at most
:data:`MAX_DEPTH` deep (TOML: checked on the text before :mod:`tomllib`, whose parser
recurses, and on the data, where dotted keys and headers nest without brackets; YAML: checked
while composing, PyYAML's composer recurses too); YAML aliases (``*name``, ``<<: *name``)
may together stand for at most :data:`MAX_ALIAS_NODES` nodes (a "billion laughs" file is
refused at the alias that crosses the bound, before anything is expanded). Each is a
located error. Deep YAML flow nesting (``[[[...]]]``) is refused on the text, before PyYAML's
scanner, which takes quadratic time over it.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ocdsl.errors import Diagnostic, SpecError
from ocdsl.spec.model import Location, Locations

__all__ = ["Source", "read_source", "parse_source", "parse_toml", "parse_yaml", "FORMATS", "MAX_DEPTH",
           "MAX_ALIAS_NODES", "check_depth", "check_toml_nesting"]

FORMATS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}
#: How deep tables and lists may nest (the shipped specs nest 5 deep).
MAX_DEPTH = 32
#: How many nodes YAML aliases may stand for, all together (a spec has a few hundred).
MAX_ALIAS_NODES = 10_000


@dataclass
class Source:
    """One spec file as read: ``file`` is the path as the user gave it (used in messages)."""

    file: str
    text: str
    data: dict[str, Any]
    locations: Locations


def _error(message: str, file: str, line: int = 0, col: int = 0, keypath: tuple = (),
           hint: str | None = None) -> SpecError:
    return SpecError(Diagnostic(message, file=file, line=line, col=col, keypath=tuple(keypath), hint=hint))


def read_source(path: str | Path, file: str | None = None) -> Source:
    """Read and parse the spec at ``path`` (``.toml``, ``.yaml`` or ``.yml``).

    ``file`` is the name used in messages (default: ``str(path)``). Raises SpecError for a
    missing or unreadable file, an unknown extension, or malformed TOML/YAML (with the line
    and column of the problem).
    """
    p = Path(path)
    file = str(path) if file is None else file
    fmt = FORMATS.get(p.suffix.lower())
    if not p.exists():
        raise _error("no such file", file, hint=None if p.parent.exists() else f"no such folder: {p.parent}")
    if p.is_dir():
        raise _error("is a folder, not a spec file", file)
    if fmt is None:
        raise _error(f"unknown spec format '{p.suffix}'", file, hint="a spec is a .toml, .yaml or .yml file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise _error(f"not UTF-8 text ({e.reason} at byte {e.start})", file) from None
    except OSError as e:
        raise _error(f"cannot read: {e.strerror or e}", file) from None
    return parse_source(text, fmt, file)


def parse_source(text: str, fmt: str, file: str = "<spec>") -> Source:
    """Parse spec ``text`` in format ``fmt`` (``"toml"`` or ``"yaml"``)."""
    if fmt == "toml":
        data, locs = parse_toml(text, file)
    elif fmt == "yaml":
        data, locs = parse_yaml(text, file)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    check_depth(data, locs)
    return Source(file, text, data, locs)


def _too_deep(file: str, line: int, col: int, keypath: tuple = ()) -> SpecError:
    return _error(f"nested more than {MAX_DEPTH} levels deep", file, line, col, keypath=keypath,
                  hint="a spec's tables and lists nest a few levels; is this the file you meant?")


def check_depth(data: Any, locations: Locations) -> None:
    """Raise SpecError (at the first key past the bound) when tables and lists in ``data``
    nest more than :data:`MAX_DEPTH` deep. Iterative: safe on any depth."""
    stack: list[tuple[Any, tuple]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            loc = locations.get(path)
            raise _too_deep(loc.file, loc.line, loc.col, path[:MAX_DEPTH + 1])
        if isinstance(value, dict):
            stack.extend((v, path + (k,)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, path + (i,)) for i, v in enumerate(value))


# ---- TOML -----------------------------------------------------------------------------------

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


def _escaped(text: str, k: int, start: int) -> bool:
    """Whether the character at ``k`` follows an odd number of backslashes (from ``start``)."""
    b = k - 1
    while b >= start and text[b] == "\\":
        b -= 1
    return (k - 1 - b) % 2 == 1


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


# ---- YAML -----------------------------------------------------------------------------------

def parse_yaml(text: str, file: str = "<spec>") -> tuple[dict[str, Any], Locations]:
    """YAML ``text`` -> (data, locations), with PyYAML's safe loader only. Mapping keys are
    taken as written (``on:`` is the key ``"on"``, not True); a duplicate key is an error."""
    _yaml_flow_depth(text, file)
    loader = _BoundedLoader(text, file)
    try:
        node = loader.get_single_node()
    except RecursionError:  # pragma: no cover - the depth bound keeps the composer far from it
        raise _too_deep(file, 0, 0) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = e.problem or e.context or "syntax error"
        if e.context and e.problem:
            msg = f"{e.problem} ({e.context})"
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        hint = "indent with spaces; tabs are not allowed in YAML" if "\t" in msg or "tab" in msg else None
        raise _error(f"malformed YAML: {msg}", file, line, col, hint=hint) from None
    except yaml.YAMLError as e:
        raise _error(f"malformed YAML: {e}", file) from None
    locs = Locations(file)
    locs.set((), Location(file, 0, 0))
    if node is None:
        loader.dispose()
        return {}, locs
    builder = _YamlBuilder(loader, text, file, locs)
    try:
        data = builder.build(node, ())
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        line = node.start_mark.line + 1
        raise _error("a spec must be a mapping of sections (meta, dims, model, ...) at the top level",
                     file, line, node.start_mark.column + 1)
    return data, locs


_YAML_MARKS = re.compile(r"[\[\]{}#'\"]")


def _yaml_flow_depth(text: str, file: str) -> None:
    """Raise SpecError at the first ``[`` or ``{`` that opens more than MAX_DEPTH flow
    collections, outside quoted scalars and comments. PyYAML's scanner looks up to 1024
    characters ahead at every flow opening (each may start a key), in quadratic time, before
    the composer sees a single node, so deep flow nesting is refused here, in one pass (a
    regex jumps between the characters that matter). A bracket inside a plain scalar counts
    too: only an unbalanced run of more than MAX_DEPTH of them could be refused by mistake."""
    depth, i = 0, 0
    while True:
        m = _YAML_MARKS.search(text, i)
        if m is None:
            return
        i = m.start()
        c = text[i]
        prev = text[i - 1] if i else "\n"
        if c == "#" and prev in " \t\n":
            j = text.find("\n", i)
            if j < 0:
                return
            i = j
            continue
        if c in "'\"":
            if prev in " \t\n[{,:-?":
                end = _single_quote_end(text, i + 1) if c == "'" else _double_quote_end(text, i + 1)
                i = end + 1
            else:
                i += 1
            continue
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                k = text.rfind("\n", 0, i) + 1
                raise _too_deep(file, text.count("\n", 0, i) + 1, i - k + 1)
        else:
            depth = max(0, depth - 1)
        i += 1


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


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with two bounds checked as the document is composed (the
    composer's ``compose_node`` hook): nesting depth (MAX_DEPTH), counting what aliases
    stand for, and the number of nodes aliases stand for in all (MAX_ALIAS_NODES). A
    recursive alias (``&a [*a]``) is an error too. Each error is at the alias or the node
    where the bound is crossed; no alias is expanded here."""

    def __init__(self, text: str, file: str):
        super().__init__(text)
        self.file = file
        self.depth = 0
        self.aliased = 0
        self.size: dict[int, int] = {}    # id(node) -> nodes it stands for (itself included)
        self.height: dict[int, int] = {}  # id(node) -> levels it spans (a scalar: 1)

    def _fail(self, message: str, mark, hint: str | None = None) -> SpecError:
        return _error(message, self.file, mark.line + 1, mark.column + 1, hint=hint)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:  # else PyYAML reports the undefined alias
                if id(target) not in self.size:
                    raise self._fail("malformed YAML: a recursive alias", event.start_mark,
                                     "an anchored node cannot contain an alias of itself")
                self.aliased += self.size[id(target)]
                if self.aliased > MAX_ALIAS_NODES:
                    raise self._fail(f"aliases stand for more than {MAX_ALIAS_NODES} values in all",
                                     event.start_mark, "a spec is small: write the values out, or use "
                                                       "`extends` to share a base spec")
                if self.depth + self.height[id(target)] > MAX_DEPTH:
                    raise _too_deep(self.file, event.start_mark.line + 1, event.start_mark.column + 1)
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise _too_deep(self.file, mark.line + 1, mark.column + 1)
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [c for pair in node.value for c in pair]
        else:
            children = []
        self.size[id(node)] = 1 + sum(self.size.get(id(c), 1) for c in children)
        self.height[id(node)] = 1 + max((self.height.get(id(c), 1) for c in children), default=0)
        return node


class _YamlBuilder:
    def __init__(self, loader: yaml.SafeLoader, text: str, file: str, locs: Locations):
        self.loader, self.text, self.file, self.locs = loader, text, file, locs
        self.active: set[int] = set()

    def loc(self, mark) -> Location:
        return Location(self.file, mark.line + 1, mark.column + 1)

    def build(self, node: yaml.Node, path: tuple) -> Any:
        if isinstance(node, yaml.ScalarNode):
            try:
                value = self.loader.construct_object(node, deep=True)
            except yaml.constructor.ConstructorError as e:
                m = e.problem_mark or node.start_mark
                raise _error(f"malformed YAML: {e.problem}", self.file, m.line + 1, m.column + 1,
                             keypath=path) from None
            if isinstance(value, str):
                self._value_loc(node, value, path)
            return value
        if id(node) in self.active:
            raise _error("malformed YAML: a recursive alias", self.file, node.start_mark.line + 1,
                         node.start_mark.column + 1, keypath=path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                out = []
                for idx, item in enumerate(node.value):
                    self.locs.set(path + (idx,), self.loc(item.start_mark))
                    out.append(self.build(item, path + (idx,)))
                return out
            if isinstance(node, yaml.MappingNode):
                try:
                    self.loader.flatten_mapping(node)
                except yaml.constructor.ConstructorError as e:
                    m = e.problem_mark or node.start_mark
                    raise _error(f"malformed YAML: {e.problem}", self.file, m.line + 1, m.column + 1,
                                 keypath=path) from None
                out: dict[str, Any] = {}
                for knode, vnode in node.value:
                    if not isinstance(knode, yaml.ScalarNode):
                        raise _error("malformed YAML: a key must be a plain name", self.file,
                                     knode.start_mark.line + 1, knode.start_mark.column + 1, keypath=path)
                    key = str(knode.value)
                    if key in out:
                        raise _error(f"malformed YAML: key '{key}' is defined twice", self.file,
                                     knode.start_mark.line + 1, knode.start_mark.column + 1, keypath=path + (key,))
                    self.locs.set(path + (key,), self.loc(knode.start_mark))
                    out[key] = self.build(vnode, path + (key,))
                return out
        finally:
            self.active.discard(id(node))
        raise _error(f"malformed YAML: unsupported node {node.tag}", self.file)  # pragma: no cover

    def _value_loc(self, node: yaml.ScalarNode, value: str, path: tuple) -> None:
        """Position of the first character of a single-line string whose text maps 1:1."""
        a, b = node.start_mark, node.end_mark
        if a.line != b.line or a.index is None or b.index is None:
            return
        raw = self.text[a.index:b.index]
        if node.style is None and raw == value:
            self.locs.set_value(path, self.loc(a))
        elif node.style in ("'", '"') and raw[1:-1] == value:
            self.locs.set_value(path, Location(self.file, a.line + 1, a.column + 2))
