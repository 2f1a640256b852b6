"""The YAML reader of spec files: PyYAML's *safe* composer (nothing in a spec is ever
executed), with the nesting depth and what aliases stand for bounded while composing, and
deep flow nesting refused on the text first. See ocdsl/spec/source.py for the data model and
the bounds."""

from __future__ import annotations

import re
from typing import Any

import yaml

from ocdsl.errors import SpecError
from ocdsl.spec.model import Location, Locations
from ocdsl.spec.source_common import (MAX_ALIAS_NODES, MAX_DEPTH, _double_quote_end, _error,
                                      _single_quote_end, _too_deep)

__all__ = ["parse_yaml"]


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
