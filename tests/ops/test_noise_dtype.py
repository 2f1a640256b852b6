"""Sampling noise is drawn in fp32 under bf16 autocast (a bf16 draw has 8 bits of
mantissa), and in the inputs' precision when that is higher."""

from __future__ import annotations

import pytest
import torch

from ocdsl.ops.slot_attention import SlotAttention


@pytest.mark.parametrize("dtype, autocast, want", [
    (torch.bfloat16, True, torch.float32),
    (torch.float32, False, torch.float32),
    (torch.float64, False, torch.float64),
])
def test_slot_noise_dtype(monkeypatch, dtype, autocast, want):
    drawn = []
    randn = torch.randn

    def spy(*args, **kw):
        out = randn(*args, **kw)
        drawn.append(out.dtype)
        return out

    sa = SlotAttention(in_features=8, num_slots=3, slot_size=8, iterations=1).to(
        torch.float64 if dtype == torch.float64 else torch.float32)
    x = torch.rand(2, 5, 8, dtype=dtype)
    monkeypatch.setattr(torch, "randn", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        slots, _ = sa(x)
    assert drawn == [want]
    assert torch.isfinite(slots.float()).all()
