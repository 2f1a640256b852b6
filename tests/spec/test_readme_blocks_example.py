"""The README's example of a user-defined iterative block (section Blocks and loops)
validates, compiles to a for loop and computes what the README says: a running sum
``h <- h + W x`` over T steps with one set of weights."""

import re
from pathlib import Path

import torch

from ocdsl.pipeline import build
from ocdsl.spec import loads

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text()
    section = text[text.index("### Blocks and loops"):]
    section = section[: section.index("\n## ")]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.S)
    assert blocks, "README section 'Blocks and loops' has no TOML example"
    return blocks[0]


def test_readme_blocks_example_runs_as_documented(tmp_path):
    c = build(loads(_example(), file=str(tmp_path / "readme_example.toml")))
    assert "for _ in range(self.loop.times):" in c.source
    model = c.instantiate(torch_compile=False)
    T, D = c.spec.dims["T"], c.spec.dims["D"]
    x = torch.randn(3, D)
    out = model(x)
    step = model.loop.update(x)                       # W x, the same weights at every step
    assert out["loop.h"].shape == (3, T, D)
    for t in range(T):
        torch.testing.assert_close(out["loop.h"][:, t], (t + 1) * step)
    torch.testing.assert_close(out["loop.final_h"], T * step)
