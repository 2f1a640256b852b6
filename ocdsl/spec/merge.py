"""``extends`` (a spec built on another) and command-line overrides (``--set key.path=value``).

A spec may say ``extends = "../slot_attention.toml"`` (a path relative to its own file; a
list of paths is merged left to right; chains are allowed, cycles are an error). The parent
is deep-merged under the child: tables merge key by key, arrays and scalars are replaced
whole. Locations follow the values: a key the child sets points into the child's file.

A spec that extends others may drop keys it inherits: ``unset = ["data.digits"]`` (dotted
key paths, as ``--set`` writes them, naming table keys). The order is: the parents are
merged, then the ``unset`` keys are removed from that merged base, then the spec's own
tables are merged on top; so ``unset`` only ever concerns inherited keys, and a table both
unset and written in the spec is replaced whole instead of merged key by key. A path the
base does not have is an error at the entry (a typo would otherwise silently keep the key).

Overrides are ``key.path=value`` strings applied after ``extends`` and before validation.
The value is read as a TOML value (``10``, ``1e-3``, ``"text"``, ``[1, 2]``,
``{name = "adam"}``); anything that is not valid TOML is taken as a plain string, so
``data.dataset=multi_dsprites`` works without quotes. List entries are addressed by index:
``eval.datasets.0.path=...`` or ``eval.datasets[0].path=...``.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ocdsl.errors import Diagnostic, SpecError, format_keypath
from ocdsl.spec.model import OVERRIDE_FILE, Location, Locations
from ocdsl.spec.source import MAX_DEPTH, Source, check_toml_nesting, read_source

__all__ = ["Merged", "load_merged", "resolve_extends", "deep_merge", "unset_keys", "parse_keypath",
           "parse_override", "apply_overrides", "OVERRIDE_FILE"]


@dataclass
class Merged:
    """The merged raw spec: data, key locations, and every file that went into it (root first)."""

    file: str
    data: dict[str, Any]
    locations: Locations
    files: list[str] = field(default_factory=list)


def load_merged(path: str | Path, overrides: Sequence[str] | None = None, *, file: str | None = None) -> Merged:
    """Read the spec at ``path``, resolve its ``extends`` chain and apply ``overrides``."""
    merged = resolve_extends(read_source(path, file))
    apply_overrides(merged.data, merged.locations, overrides or ())
    return merged


def resolve_extends(src: Source, base_dir: str | Path | None = None, _stack: tuple = ()) -> Merged:
    """Merge ``src`` over the spec(s) it extends, recursively, after dropping the keys its
    ``unset`` lists from the merged parents (:func:`unset_keys`).

    Paths in ``extends`` are relative to the folder of ``src.file`` (or ``base_dir`` when
    given, for text not read from a file). Raises SpecError for a missing parent, a cycle,
    an ``extends`` that is not a path, an ``unset`` without ``extends``, or a bad ``unset``.
    """
    here = Path(base_dir) if base_dir is not None else Path(src.file).parent
    me = _identity(src.file)
    stack = _stack + (me,)
    data = dict(src.data)
    locs = src.locations
    ext = data.pop("extends", None)
    unset = data.pop("unset", None)
    files = [src.file]
    if ext is None:
        if unset is not None:
            loc = locs.get(("unset",))
            raise SpecError(Diagnostic("'unset' removes keys a spec inherits, but this spec extends nothing",
                                       file=loc.file, line=loc.line, col=loc.col, keypath=("unset",),
                                       hint="add extends = \"<base spec>\", or delete the keys themselves"))
        return Merged(src.file, data, locs, files)
    kp = ("extends",)
    loc = locs.get(kp)
    parents = [ext] if isinstance(ext, str) else ext
    if not isinstance(parents, list) or not parents or not all(isinstance(p, str) and p for p in parents):
        raise SpecError(Diagnostic("'extends' must be a path (or a list of paths) to another spec",
                                   file=loc.file, line=loc.line, col=loc.col, keypath=kp))
    base_data: dict[str, Any] = {}
    base_locs = Locations(src.file)
    for i, rel in enumerate(parents):
        kpi = kp if isinstance(ext, str) else kp + (i,)
        li = locs.get(kpi)
        target = here / rel
        shown = os.path.normpath(os.path.join(os.path.dirname(src.file), rel)) if base_dir is None else str(target)
        ident = _identity(str(target))
        if ident in stack:
            names = [os.path.basename(s) for s in stack[stack.index(ident):]] + [os.path.basename(ident)]
            raise SpecError(Diagnostic(f"'extends' cycle: {' -> '.join(names)}", file=li.file, line=li.line,
                                       col=li.col, keypath=kpi,
                                       hint="a spec cannot extend itself, directly or through others"))
        if not target.is_file():
            raise SpecError(Diagnostic(f"'extends': no such file '{rel}'", file=li.file, line=li.line, col=li.col,
                                       keypath=kpi, hint=f"the path is relative to this spec's folder: "
                                                         f"looked for {shown}"))
        parent = resolve_extends(read_source(target, shown), None, stack)
        base_data, base_locs = deep_merge(base_data, base_locs, parent.data, parent.locations)
        files += parent.files
    if unset is not None:
        base_data = unset_keys(base_data, base_locs, unset, locs)
    data, locs = deep_merge(base_data, base_locs, data, locs)
    locs.default_file = src.file
    return Merged(src.file, data, locs, files)


def unset_keys(base: dict, base_locs: Locations, unset: Any, locs: Locations) -> dict:
    """``base`` (the merged parents) without the keys ``unset`` lists, dotted paths such as
    ``"data.digits"``; ``base`` is not modified (the tables on each path are copied) and the
    removed keys' locations are dropped from ``base_locs``. ``locs`` locates the ``unset``
    entries. Raises SpecError (every bad entry at once, each at its entry) for an ``unset``
    that is not a list of key paths, a malformed path, a path into a list, or a key the
    base does not have (with a did-you-mean among the keys beside it)."""
    kp = ("unset",)
    if not isinstance(unset, list) or not all(isinstance(t, str) for t in unset):
        loc = locs.get(kp)
        raise SpecError(Diagnostic("'unset' must be a list of key paths", file=loc.file, line=loc.line,
                                   col=loc.col, keypath=kp, hint='for example: unset = ["data.digits"]'))
    diags: list[Diagnostic] = []
    paths: list[tuple] = []
    for i, text in enumerate(unset):  # every entry is judged against the whole base
        try:
            path = parse_keypath(text)
            missing = _missing_key(base, path)
        except _KeyPathError as e:
            loc = locs.get(kp + (i,))
            diags.append(Diagnostic(f"'unset' entry '{text}': {e.message}", file=loc.file, line=loc.line,
                                    col=loc.col, keypath=kp + (i,), hint=e.hint))
            continue
        if missing is not None:
            loc = locs.get(kp + (i,))
            first, hint = missing
            gap = "" if first == format_keypath(path) else f" (it has no '{first}')"
            diags.append(Diagnostic(f"'unset': the base spec has no key '{text}'{gap}", file=loc.file,
                                    line=loc.line, col=loc.col, keypath=kp + (i,), hint=hint))
            continue
        paths.append(path)
    if diags:
        raise SpecError(diags)
    for path in paths:
        if _missing_key(base, path) is None:  # not inside a table an earlier entry removed
            base = _without(base, path)
            base_locs.remove_under(path)
    return base


def _missing_key(base: dict, path: tuple) -> tuple[str, str] | None:
    """None when ``base`` has the table key ``path``; else (the first key on the path that
    is missing, as ``a.b``; a hint: the closest key beside it, or the keys there). Raises
    _KeyPathError for a path through a list or a value."""
    cur: Any = base
    for depth, seg in enumerate(path):
        where = format_keypath(path[:depth]) or "the base spec"
        if isinstance(cur, list):
            raise _KeyPathError(f"{where} is a list: 'unset' removes table keys, not list entries",
                                f"set {where} to the list you want")
        if not isinstance(cur, dict):
            raise _KeyPathError(f"{where} is {_kind(cur)}, it has no key '{seg}'", f"unset {where} itself")
        if isinstance(seg, int):
            raise _KeyPathError(f"{where} is a table, not a list")
        if seg not in cur:
            near = difflib.get_close_matches(str(seg), sorted(map(str, cur)), n=1, cutoff=0.6)
            keys = ", ".join(sorted(map(str, cur)))
            hint = (f"did you mean '{format_keypath(path[:depth] + (near[0],))}'?" if near
                    else f"{where} has: {keys}" if keys else f"{where} is empty")
            return format_keypath(path[:depth + 1]), hint
        cur = cur[seg]
    return None


def _without(table: dict, path: tuple) -> dict:
    """A copy of ``table`` without the key at ``path`` (which exists); the tables on the
    path are copied, nothing else."""
    out = dict(table)
    if len(path) == 1:
        del out[path[0]]
    else:
        out[path[0]] = _without(table[path[0]], path[1:])
    return out


def _identity(file: str) -> str:
    try:
        return str(Path(file).resolve())
    except OSError:  # pragma: no cover
        return file


def _replaced_whole(kp: tuple, base: dict, over: dict) -> bool:
    """A model or block node table whose ``op`` changes."""
    node = (len(kp) == 3 and kp[:2] == ("model", "nodes")) or (
        len(kp) == 4 and kp[0] == "blocks" and kp[2] == "nodes")
    return node and "op" in over and over["op"] != base.get("op")


def deep_merge(base: dict, base_locs: Locations, over: dict, over_locs: Locations,
               ) -> tuple[dict, Locations]:
    """``over`` merged onto ``base`` (neither is modified): tables merge recursively, anything
    else in ``over`` replaces. A model or block node whose ``op`` changes is replaced whole
    (another op takes other params: a variant swapping Segformer for a U-Net must not inherit
    ``variant = "b0"``). Returns the merged data and locations."""
    locs = base_locs.copy()
    over_items = list(over_locs.items())
    over_values = list(over_locs._values.items())

    def copy_under(kp: tuple) -> None:
        n = len(kp)
        for k, v in over_items:
            if k[:n] == kp:
                locs.set(k, v)
        for k, v in over_values:
            if k[:n] == kp:
                locs.set_value(k, v)

    def merge(a: dict, b: dict, path: tuple) -> dict:
        out = dict(a)
        for key, bv in b.items():
            kp = path + (key,)
            av = out.get(key)
            if isinstance(av, dict) and isinstance(bv, dict) and not _replaced_whole(kp, av, bv):
                if kp in over_locs:
                    locs.set(kp, over_locs.get(kp))
                out[key] = merge(av, bv, kp)
            else:
                locs.remove_under(kp)
                copy_under(kp)
                out[key] = bv
        return out

    return merge(base, over, ()), locs


# ---- overrides ------------------------------------------------------------------------------

_SEGMENT = re.compile(r'\s*(?:(?P<bare>[A-Za-z0-9_-]+)|"(?P<dq>[^"\\]*)"|\'(?P<sq>[^\']*)\')\s*')
_INDEX = re.compile(r"\[\s*(?P<idx>\d+)\s*\]")


def _override_error(text: str, message: str, hint: str | None = None) -> SpecError:
    return SpecError(Diagnostic(f"bad override '{text}': {message}", file=OVERRIDE_FILE, hint=hint))


class _KeyPathError(ValueError):
    """A malformed key path: ``message`` (and a ``hint``), worded by the caller's context."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def parse_keypath(key: str) -> tuple[str | int, ...]:
    """``"eval.datasets[0].path"`` -> ``("eval", "datasets", 0, "path")``: bare words, quoted
    strings, ``[N]`` list indices. Raises ``ValueError`` (``_KeyPathError``, with a hint)
    for an empty or malformed path, or one more than MAX_DEPTH keys long."""
    if not key.strip():
        raise _KeyPathError("the key path is empty")
    path: list[str | int] = []
    i = 0
    while i < len(key):
        m = _SEGMENT.match(key, i)
        if not m or m.end() == i:
            raise _KeyPathError(f"cannot read the key path at {key[i:]!r}",
                                "write dotted names such as model.nodes.encoder.kernel")
        seg = m.group("bare")
        if seg is None:
            seg = m.group("dq") if m.group("dq") is not None else m.group("sq")
        path.append(seg)
        i = m.end()
        while True:
            mi = _INDEX.match(key, i)
            if not mi:
                break
            path.append(int(mi.group("idx")))
            i = mi.end()
        if i < len(key):
            if key[i] != ".":
                raise _KeyPathError(f"unexpected {key[i]!r} in the key path")
            i += 1
            if i >= len(key) or not key[i:].strip():
                raise _KeyPathError("the key path ends with '.'")
    if len(path) > MAX_DEPTH:
        raise _KeyPathError(f"the key path is more than {MAX_DEPTH} keys long")
    return tuple(path)


def parse_override(text: str) -> tuple[tuple[str | int, ...], Any]:
    """``"train.optimizer.lr=1e-3"`` -> ``(("train", "optimizer", "lr"), 0.001)``.

    Key segments are bare words, quoted strings, or ``[N]`` list indices (an all-digit bare
    segment is also an index when it lands on a list). The value is a TOML value, or the
    raw text as a string when it is not one. Raises SpecError (file ``--set``) for a missing
    ``=``, an empty or malformed key path, or a key path or value nested more than
    MAX_DEPTH deep.
    """
    if not isinstance(text, str) or "=" not in text:
        raise _override_error(str(text), "expected KEY.PATH=VALUE", "for example: --set train.steps=10")
    key, _, raw = text.partition("=")
    if not key.strip():
        raise _override_error(text, "the key path before '=' is empty", "for example: --set train.steps=10")
    try:
        path = parse_keypath(key)
    except _KeyPathError as e:
        raise _override_error(text, e.message, e.hint) from None
    raw = raw.strip()
    try:
        check_toml_nesting(raw, OVERRIDE_FILE)
    except SpecError:
        raise _override_error(text, f"the value nests more than {MAX_DEPTH} levels deep") from None
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


def apply_overrides(data: dict, locs: Locations, overrides: Sequence[str]) -> None:
    """Apply ``key.path=value`` overrides to ``data`` in place; each key set gets the location
    ``Location("--set <text>")``. Missing tables on the way are created. Raises SpecError
    naming the override when the path runs into a scalar or past the end of a list."""
    if isinstance(overrides, str):
        overrides = [overrides]
    diags: list[Diagnostic] = []
    for text in overrides:
        try:
            _apply_one(data, locs, text)
        except SpecError as e:
            diags += e.diagnostics
    if diags:
        raise SpecError(diags)


def _apply_one(data: dict, locs: Locations, text: str) -> None:
    path, value = parse_override(text)
    if path[0] == "extends":
        raise _override_error(text, "'extends' cannot be overridden", "pass the other spec's path instead")
    if path[0] == "unset":
        raise _override_error(text, "'unset' cannot be overridden", "it belongs in a variant's file")
    loc = Location(f"{OVERRIDE_FILE} {text}")
    cur: Any = data
    for depth, seg in enumerate(path):
        last = depth == len(path) - 1
        where = format_keypath(path[:depth]) or "the spec"
        if isinstance(cur, list):
            if isinstance(seg, str) and seg.isdigit():
                seg = int(seg)
            if not isinstance(seg, int):
                raise _override_error(text, f"{where} is a list; index it with a number, e.g. {where}[0]")
            if seg >= len(cur):
                raise _override_error(text, f"{where} has {len(cur)} entr{'y' if len(cur) == 1 else 'ies'}, there is no [{seg}]")
        elif isinstance(cur, dict):
            if isinstance(seg, int):
                raise _override_error(text, f"{where} is a table, not a list")
        else:
            raise _override_error(text, f"{where} is {_kind(cur)}, it has no key '{seg}'",
                                  f"set {where} itself: --set {where}=...")
        kp = tuple(path[:depth + 1])
        if last:
            locs.remove_under(kp)
            locs.set(kp, loc)
            cur[seg] = value
        else:
            if isinstance(cur, dict) and seg not in cur:
                cur[seg] = {}
                locs.set(kp, loc)
            cur = cur[seg]


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return f"a {type(v).__name__}"
