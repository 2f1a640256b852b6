"""Deliberately broken modules: each breaks one declared symmetry, and the checks must
catch it (a check that cannot fail proves nothing)."""

from __future__ import annotations

import torch
from torch import nn

from ocdsl.ops.decoders import SpatialBroadcastDecoder
from ocdsl.ops.slot_attention import SlotAttention
from ocdsl.ops.soft_argmax import SoftArgmax

MAX_SLOTS = 16


class SlotAttentionWithSlotOffsets(SlotAttention):
    """Adds a learned offset per slot index to the initial slots: slot k is no longer
    exchangeable with slot j, so permuting the initial slots does not permute the output."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.slot_offsets = nn.Parameter(torch.randn(1, MAX_SLOTS, self.slot_size))

    def forward(self, inputs, slots=None, num_slots=None):
        if slots is not None:
            slots = slots + self.slot_offsets[:, : slots.shape[1]]
        return super().forward(inputs, slots=slots, num_slots=num_slots)


class SoftArgmaxOffByOne(SoftArgmax):
    """Coordinate grid ``2 * (i / n - 0.5)``: divides by n instead of n - 1, so a one-pixel
    shift moves the output by 2/n, not 2/(n-1) (and the grid no longer ends at +1)."""

    def grid(self, n, like):
        i = torch.arange(n, device=like.device, dtype=like.dtype)
        return 2.0 * (i / n - 0.5)


class DecoderWithSlotIndex(SpatialBroadcastDecoder):
    """Adds an embedding of the slot's index before decoding: slots are no longer decoded
    independently of their position in the list."""

    def __init__(self, slot_size, *args, **kwargs):
        super().__init__(slot_size, *args, **kwargs)
        self.index_embedding = nn.Parameter(torch.randn(MAX_SLOTS, slot_size))

    def forward(self, slots):
        return super().forward(slots + self.index_embedding[: slots.shape[1]])


def swap_module(compiled, model: nn.Module, name: str, cls: type) -> nn.Module:
    """Replace node ``name`` of ``model`` by ``cls`` built with the same constructor
    arguments as the generated code uses, holding the same weights (plus its own extra
    ones, freshly initialised)."""
    data = compiled.graph.nodes[name]
    new = cls(**data["opdef"].init_args(data["in_shapes"], data["params"]))
    new.load_state_dict(getattr(model, name).state_dict(), strict=False)
    setattr(model, name, new)
    return new
