"""``load(path)``: spec file -> validated :class:`~ocdsl.spec.model.Spec`.

read (TOML/YAML, with locations) -> ``extends`` -> overrides -> validate (schema + semantic
checks, all errors at once) -> build the Spec dataclass.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from ocdsl.errors import SpecError
from ocdsl.ops import registry
from ocdsl.spec import expr as E
from ocdsl.spec.blocks import REPEAT, build_blocks, stub_ops
from ocdsl.spec.config import build_sections
from ocdsl.spec.merge import Merged, apply_overrides, load_merged, resolve_extends
from ocdsl.spec.model import NodeSpec, Ref, Signature, Spec
from ocdsl.spec.source import parse_source
from ocdsl.spec.validate import Checked, check

__all__ = ["load", "loads", "build_spec", "source_hash", "spec_name", "NODE_KEYS"]

NODE_KEYS = ("op", "input", "inputs", "output", "share")


def load(path: str | Path, overrides: Sequence[str] | None = None) -> Spec:
    """Load, merge, override and validate the spec at ``path`` (``.toml``/``.yaml``/``.yml``).

    ``overrides`` are ``key.path=value`` strings (``--set`` on the command line), applied
    after ``extends``. Raises :class:`~ocdsl.errors.SpecError` listing every problem found
    (a missing file included: it is a UserError too).
    """
    merged = load_merged(path, overrides)
    return _finish(merged, Path(path))


def loads(text: str, fmt: str = "toml", *, file: str = "<string>", overrides: Sequence[str] | None = None,
          base_dir: str | Path | None = None) -> Spec:
    """Like :func:`load` for spec text; ``extends`` paths are relative to ``base_dir``
    (default: the current folder)."""
    src = parse_source(text, fmt, file)
    merged = resolve_extends(src, base_dir if base_dir is not None else Path.cwd())
    apply_overrides(merged.data, merged.locations, overrides or ())
    return _finish(merged, Path(file))


def source_hash(data: Any) -> str:
    """sha256 of the canonical JSON form of the merged spec (sorted keys)."""
    text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def spec_name(merged: Merged, path: Path) -> str:
    """``meta.name`` when the spec file itself (or an override) sets it, else the file stem.
    A name inherited through ``extends`` is not used: a variant is a different spec."""
    meta = merged.data.get("meta")
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(name, str) and name:
        where = merged.locations.get(("meta", "name")).file
        if where == merged.file or where.startswith("--set"):
            return name
    return path.stem


def _finish(merged: Merged, path: Path) -> Spec:
    checked = check(merged.data, merged.locations)
    return build_spec(merged, checked, path)


def build_spec(merged: Merged, checked: Checked, path: Path) -> Spec:
    """The Spec dataclass from validated data (``checked`` has no errors), with its typed
    sections (ocdsl/spec/config.py) built once."""
    data = merged.data
    calls, repeats = stub_ops(data)

    def make_node(name: str, table: dict, kp: tuple, sigs: dict) -> NodeSpec:
        op = repeats[table["block"]] if table["op"] == REPEAT else calls.get(table["op"]) or registry.get(table["op"])
        inputs: dict[str, Ref] = {}
        if "input" in table:
            inputs[op.inputs[0].name] = Ref.parse(table["input"], kp + ("input",))
        for port, text in (table.get("inputs") or {}).items():
            inputs[port] = Ref.parse(text, kp + ("inputs", port))
        outputs: dict[str, Signature] = {}
        for port, sig in sigs.items():
            outputs[op.outputs[0] if port is None else port] = sig
        params = {k: v for k, v in table.items() if k not in NODE_KEYS}
        if table["op"] == REPEAT and isinstance(params["times"], str) and params["times"] not in schedules:
            params["times"] = int(E.evaluate(E.parse(params["times"]), dict(checked.dims)))  # validated
        return NodeSpec(name=name, op=table["op"], inputs=inputs, params=params, outputs=outputs,
                        keypath=kp, shared_with=table.get("share"))

    schedules = {name: checked.schedules[name] for name in (data.get("schedules") or {})}
    nodes = {name: make_node(name, table, ("model", "nodes", name), checked.outputs.get(name, {}))
             for name, table in data["model"]["nodes"].items()}
    blocks = build_blocks(data, checked.blocks, make_node)
    losses = {name: checked.losses[name] for name in (data.get("losses") or {})}
    return Spec(
        path=path,
        name=spec_name(merged, path),
        data=data,
        locations=merged.locations,
        dims=dict(checked.dims),
        inputs=dict(checked.inputs),
        nodes=nodes,
        losses=losses,
        schedules=schedules,
        source_hash=source_hash(data),
        warnings=list(checked.warnings),
        dynamic_sizes=dict(checked.dynamic),
        sections=build_sections(data, list(losses)),
        blocks=blocks,
    )
