"""Imports only point backwards along spec -> graph -> codegen -> train
(docs/architecture.md, Import direction).

Checks every ``import`` statement in ocdsl/, including imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "ocdsl"

# package -> ocdsl packages it must never import
FORBIDDEN = {
    "catalog": {"errors", "shapes", "spec", "graph", "codegen", "train", "pipeline", "invariance", "cli", "data",
                "metrics", "viz", "ops"},
    "attributes": {"errors", "shapes", "spec", "graph", "codegen", "train", "pipeline", "invariance", "cli",
                   "data", "metrics", "viz", "ops", "losses", "catalog", "tables"},
    "errors": {"spec", "graph", "codegen", "train", "pipeline", "invariance", "cli", "data", "metrics", "viz", "ops"},
    "tables": {"spec", "graph", "codegen", "train", "pipeline", "invariance", "cli", "data", "metrics", "viz", "ops",
               "errors", "shapes", "losses"},
    "shapes": {"spec", "graph", "codegen", "train", "pipeline", "invariance", "cli", "data", "metrics", "viz", "ops"},
    "ops": {"spec", "graph", "codegen", "train", "pipeline", "invariance", "cli", "data", "metrics", "viz"},
    "losses": {"spec", "graph", "codegen", "train", "pipeline", "invariance", "cli", "data", "metrics", "viz"},
    "spec": {"graph", "codegen", "train", "pipeline", "invariance", "cli", "data", "metrics", "viz"},
    "graph": {"codegen", "train", "pipeline", "invariance", "cli", "data", "metrics", "viz"},
    "codegen": {"train", "pipeline", "invariance", "cli", "data", "metrics", "viz"},
    "data": {"spec", "graph", "codegen", "train", "pipeline", "invariance", "cli", "metrics", "viz"},
    "metrics": {"spec", "graph", "codegen", "train", "pipeline", "invariance", "cli", "data", "viz"},
    "viz": {"codegen", "train", "pipeline", "invariance", "cli", "data"},
    "train": {"pipeline", "invariance", "cli"},
    "pipeline": {"train", "invariance", "cli"},
    "invariance": {"train", "cli"},
}


def _ocdsl_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for n in names:
            parts = n.split(".")
            if parts[0] == "ocdsl" and len(parts) > 1:
                out.add(parts[1])
    return out


def _package_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


FILES = sorted(p for p in PKG.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_backwards(path):
    pkg = _package_of(path)
    bad = _ocdsl_imports(path) & FORBIDDEN.get(pkg, set())
    assert not bad, f"ocdsl/{path.relative_to(PKG)} ({pkg}) imports {sorted(bad)}: against the pipeline direction"


def test_no_eval_or_exec_in_package():
    for path in FILES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec"}, f"{path}: {node.func.id}() call"
