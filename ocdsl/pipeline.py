"""The compiler pipeline in one place: spec -> graph -> source -> module.

Used by the public API (``ocdsl.compile``), the CLI and the tests, so every entry point
runs the same passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from ocdsl.codegen import generate_source, import_generated, instantiate, should_compile, write_source
from ocdsl.codegen.load import default_cache_dir
from ocdsl.graph import analyse
from ocdsl.spec import load
from ocdsl.spec.model import Spec

__all__ = ["Compiled", "build", "compiled_path"]


def compiled_path(spec: Spec, root: Path | str = "compiled") -> Path:
    """Where ``ocdsl compile`` writes a spec's module: ``compiled/<spec file stem>.py``."""
    return Path(root) / f"{spec.path.stem}.py"


@dataclass
class Compiled:
    spec: Spec
    graph: nx.MultiDiGraph
    source: str
    path: Path | None = None

    def write(self, path: Path | str) -> Path:
        self.path = write_source(self.source, Path(path))
        return self.path

    def instantiate(self, *, device: str = "cpu", torch_compile: bool | str = "auto"):
        if self.path is None:
            self.write(default_cache_dir() / f"{self.spec.path.stem}_{self.spec.source_hash[:12]}.py")
        model = instantiate(import_generated(self.path), self.spec, device)
        if should_compile(self.graph, device, torch_compile):
            model.compile()
        return model

    def will_compile(self, device: str, torch_compile: bool | str) -> bool:
        return should_compile(self.graph, device, torch_compile)


def build(spec_or_path: Spec | str | Path, *, overrides: list[str] | None = None,
          out: Path | str | None = None) -> Compiled:
    """Load (if given a path), check the graph and shapes, and generate the source.
    With ``out``, also write the source there."""
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load(spec_or_path, overrides)
    G = analyse(spec)
    c = Compiled(spec, G, generate_source(spec, G, source_name=_display_path(spec.path)))
    if out is not None:
        c.write(out)
    return c


def _display_path(path: Path) -> str:
    """The spec path as written in generated headers: relative to the cwd when inside it,
    so the same spec yields the same bytes on every machine."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return Path(path).name
