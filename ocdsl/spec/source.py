"""Reading a spec file (TOML or YAML) into plain data plus the source location of every key.

Both formats give the same data model: dicts, lists and scalars. Alongside it comes a
:class:`~ocdsl.spec.model.Locations` map from key path (``("model", "nodes", "enc",
"kernel")``, list entries by index: ``("eval", "datasets", 0, "path")``) to the 1-based line
and column of that key, and, for single-line string values, the position of the string's
first character (``Locations.value``), so an error inside an expression or a signature can
point at the exact character.

TOML values come from :mod:`tomllib`; the key positions come from a small scanner of the TOML
text (table headers, arrays of tables, dotted keys, inline tables, arrays, multi-line
strings; ocdsl/spec/source_toml.py). YAML goes through PyYAML's *safe* composer: nothing
in a spec is ever executed (ocdsl/spec/source_yaml.py). What both share is in
ocdsl/spec/source_common.py.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocdsl.spec.model import Locations
from ocdsl.spec.source_common import MAX_ALIAS_NODES, MAX_DEPTH, _error, _too_deep
from ocdsl.spec.source_toml import check_toml_nesting, parse_toml
from ocdsl.spec.source_yaml import parse_yaml

__all__ = ["Source", "read_source", "parse_source", "parse_toml", "parse_yaml", "FORMATS", "MAX_DEPTH",
           "MAX_ALIAS_NODES", "check_depth", "check_toml_nesting"]

FORMATS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


@dataclass
class Source:
    """One spec file as read: ``file`` is the path as the user gave it (used in messages)."""

    file: str
    text: str
    data: dict[str, Any]
    locations: Locations


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
