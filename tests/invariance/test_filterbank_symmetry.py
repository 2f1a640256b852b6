"""Translation equivariance of DRAW's Gaussian filterbank (Gregor et al. 2015, Eq. 19-22;
ASAE Eq. 7-10): reading a shifted image through a window whose centre moved by the same
pixels gives the same glimpse, away from the border. Declared by the op (checked on tiny
instances) and in specs/asae.toml (checked by ``ocdsl check`` through the repeat loop);
an off-by-one grid centre (``n / 2`` for ``(n + 1) / 2`` in Eq. 7) is caught by both."""

from pathlib import Path

import pytest
import torch

import ocdsl.ops.filterbank as filterbank
from ocdsl.invariance import check, check_op, format_failures, run_checks
from ocdsl.invariance.declarations import resolve
from ocdsl.invariance.transforms import Tolerance
from ocdsl.pipeline import build

from .conftest import CI_EXAMPLES

ASAE = Path(__file__).resolve().parents[2] / "specs" / "asae.toml"
SMALL = ["dims.H=32", "dims.W=32", "dims.N=8", "dims.Z=8", "dims.T=2"]


def _off_by_one_centre(g_tilde, n_pixels):
    return n_pixels / 2 * (g_tilde + 1)          # Eq. 7 with n for n + 1


def test_window_inside_keeps_the_filters_in_the_frame():
    window = torch.randn(64, 5, dtype=torch.float64) * 2
    inside = filterbank.window_inside(window, 20, 30, 6, margins=(3, 2))
    for shift in (-3, 0, 3):       # moved by up to the margin along x: the mass stays inside
        moved = inside.clone()
        moved[:, 0] += 2 * shift / 31
        assert (_bank_on(moved, 30, 6).sum(-1) > 1 - 1e-7).all()
    assert (_bank_on(window, 30, 6).sum(-1) < 0.9).any()    # as drawn, some were not


def _bank_on(window, width, size):
    """Filters over columns -width .. 2 width (index 1 = the frame's first pixel), not
    normalised: the frame's share of each filter's mass."""
    gx = filterbank.grid_centre(window[:, 0], width)
    delta = (width - 1) / (size - 1) * window[:, 3].exp()      # max(h, w) = w here (h = 20)
    sigma2 = window[:, 2].exp()
    i = torch.arange(1, size + 1, dtype=window.dtype)
    mu = gx[:, None] + (i - size / 2 - 0.5) * delta[:, None]
    a = torch.arange(-width + 1, 2 * width + 1, dtype=window.dtype)
    f = torch.exp(-(a - mu[..., None]) ** 2 / (2 * sigma2[:, None, None]))
    f = f / f.sum(-1, keepdim=True)
    return f[..., width:]


def test_gaussian_read_symmetry_holds_in_float64():
    results = check_op("gaussian_read", examples=CI_EXAMPLES, dtype=torch.float64,
                       tolerance=Tolerance(1e-7, 0.0))
    assert [r.property for r in results] == ["translation_equivariance W", "translation_equivariance H"]
    assert all(r.passed for r in results), format_failures(results)


def test_an_off_by_one_centre_is_caught_by_the_op_check(monkeypatch):
    monkeypatch.setattr(filterbank, "grid_centre", _off_by_one_centre)
    results = check_op("gaussian_read", examples=CI_EXAMPLES)
    assert not any(r.passed for r in results)
    assert "window (coordinates x normalized_padded)" in results[0].counterexample


def test_asae_declares_the_filterbank_symmetry_inside_the_loop():
    (d,) = resolve(build(ASAE, overrides=SMALL))
    assert d.node == "draw.target" and d.names == ("H", "W")
    image, window = d.sites
    assert image.label == "draw.target.image" and image.axes == (2, 3)
    assert window.port == "window" and window.components == (1, 0)   # H moves g~y, W moves g~x
    assert window.scales == pytest.approx((2 / 33, 2 / 33))          # normalized_padded
    assert {e.key: e.action for e in d.expects} == {"draw.target": "same",
                                                    "draw.final_target": "same"}


def test_asae_filterbank_symmetry_passes_ocdsl_check():
    report = check(build(ASAE, overrides=SMALL), examples=CI_EXAMPLES)
    assert report.passed, str(report)


def test_an_off_by_one_centre_is_caught_in_asae(monkeypatch):
    monkeypatch.setattr(filterbank, "grid_centre", _off_by_one_centre)
    (r,) = run_checks(build(ASAE, overrides=SMALL), examples=CI_EXAMPLES)
    assert not r.passed
    assert "draw.target.window (coordinates)" in r.counterexample
    assert "at draw.target[" in r.counterexample


@pytest.mark.parametrize("node, message", [
    ("draw.nope", "no node 'nope' in block 'step' (in 'draw.nope')"),
    ("blank.where", "node 'blank' runs no block, so 'blank.where' names nothing"),
    ("drew.target", "no node 'drew' in the model"),
])
def test_a_bad_path_into_a_block_is_a_located_error(tmp_path, node, message):
    from ocdsl.errors import SpecError
    text = ASAE.read_text().replace('node = "draw.target"', f'node = "{node}"')
    p = tmp_path / "asae.toml"
    p.write_text(text)
    line = text[: text.index(f'node = "{node}"')].count("\n") + 1
    with pytest.raises(SpecError) as e:
        build(p)
    assert f"asae.toml:{line}:1: error: [invariances[0].node] {message}" in str(e.value)
