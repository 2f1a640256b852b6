"""Symmetries of the losses: contrastive slot attention's object loss is invariant to
permuting one view's slots (the Hungarian matching undoes it); a matching that ignores the
permutation is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ocdsl.errors import SpecError
from ocdsl.invariance import run_checks
from ocdsl.losses import functions as fn

SPEC = Path(__file__).parents[2] / "specs" / "osc_contrastive.toml"
SMALL = ["dims.D=16", "dims.P=16", "dims.Z=8"]     # 4 patches, tiny widths: fast


def _loss_result(results):
    return next(r for r in results if "losses" in r.property)


@pytest.mark.timeout(300)
def test_object_loss_is_invariant_to_permuting_one_view():
    r = _loss_result(run_checks(SPEC, examples=4, overrides=SMALL))
    assert r.passed and r.compared == ("loss object_loss: unchanged",)


@pytest.mark.timeout(300)
def test_a_matching_that_ignores_the_permutation_is_caught(monkeypatch):
    def identity(a, b):                                     # slot i of view 1 <-> slot i of view 2
        return torch.arange(a.shape[1]).expand(a.shape[0], -1)

    monkeypatch.setattr(fn, "match_views", identity)
    r = _loss_result(run_checks(SPEC, examples=8, overrides=SMALL))
    assert not r.passed and "permutation of K" in r.counterexample


def test_a_loss_declaration_is_resolved_with_located_errors():
    from ocdsl.invariance.declarations import resolve
    from ocdsl.pipeline import build

    bad = SMALL + ['invariances[2].losses=["object_los"]', "invariances[2].axis=Q", "invariances[2].view=3"]
    with pytest.raises(SpecError) as ei:
        resolve(build(SPEC, overrides=bad))
    text = ei.value.format()
    assert "no loss named 'object_los'" in text and "has no axis 'Q'" in text and "view 3 is not in 1..2" in text
    assert "--set invariances[2].view=3: error: [invariances[2].view]" in text    # located at the override
