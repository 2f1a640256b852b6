"""An installed wheel carries the grammar and works outside the repository."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{r.stdout}\n{r.stderr}")
    (whl,) = out.glob("ocdsl-*.whl")
    return whl


def test_wheel_contains_grammar_and_every_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ocdsl/grammar/expr.lark" in names
    assert "ocdsl/grammar/shape.lark" in names
    for pkg in sorted(p.parent.relative_to(REPO) for p in (REPO / "ocdsl").rglob("__init__.py")):
        assert f"{pkg.as_posix()}/__init__.py" in names, f"{pkg} missing from the wheel"


def test_installed_copy_parses_and_compiles_outside_the_repo(wheel, tmp_path):
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    code = (
        "import ocdsl, sys;"
        f"assert ocdsl.__file__.startswith({str(site)!r}), ocdsl.__file__;"
        "from ocdsl.spec import expr;"
        "print(expr.parse('min(1, step / 10) ** 2'));"
        f"ocdsl.compile({str(REPO / 'specs' / 'slot_attention.toml')!r}, torch_compile=False, out={str(tmp_path / 'm.py')!r})"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.py").exists()
