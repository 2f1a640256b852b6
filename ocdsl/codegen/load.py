"""Write generated source to its file, import it from there, instantiate, torch.compile.

The module is imported from its real file (importlib), so tracebacks and torch.compile see
real source lines (docs/architecture.md, Conventions). ``torch_compile="auto"`` compiles
where it was measured to pay off: always on CUDA; on the CPU only when every op of the
model is marked ``compile_on_cpu`` (docs/results.md, The machines: compile made the Slot
Attention autoencoder 12-18 % faster per step there and Segformer 9-36 % slower).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import networkx as nx

from ocdsl.codegen.emit import class_name

__all__ = ["write_source", "import_generated", "instantiate", "should_compile", "default_cache_dir"]


def default_cache_dir() -> Path:
    root = os.environ.get("OCDSL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ocdsl")
    return Path(root) / "compiled"


def write_source(source: str, path: Path) -> Path:
    """Write ``source`` to ``path`` atomically, leaving the file untouched (mtime included)
    when its content is already identical."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == source:
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def import_generated(path: Path) -> ModuleType:
    """Import a generated file as a fresh module named after its content hash."""
    path = Path(path).resolve()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    mod_name = f"ocdsl_generated.{path.stem}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def should_compile(G: nx.MultiDiGraph, device: str, torch_compile: bool | str) -> bool:
    """Whether the model of graph ``G`` is ``torch.compile``d on ``device``.

    ``torch_compile``: True / False force it; ``"gpu"`` compiles on CUDA only; ``"auto"``
    compiles on CUDA, and on the CPU where every op of the graph is marked
    ``compile_on_cpu`` (measured to pay off there). Raises ValueError for anything else."""
    if torch_compile is True or torch_compile is False:
        return torch_compile
    if torch_compile not in ("auto", "gpu"):
        raise ValueError(f"torch_compile must be True, False, 'auto' or 'gpu', got {torch_compile!r}")
    if str(device).startswith("cuda"):
        return True
    if torch_compile == "gpu":
        return False
    return all(d["opdef"].compile_on_cpu for _, d in G.nodes(data=True) if d["kind"] == "op")


def instantiate(module: ModuleType, spec, device: str = "cpu"):
    cls = getattr(module, class_name(spec))
    return cls().to(device)
