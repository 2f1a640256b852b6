"""Check the symmetries an op declares in its registry entry (``OpDef.symmetries``).

Each op with symmetries needs an *example*: a strategy of tiny instances (parameters and
input tensors), the signature of each output (the registry names output ports, not their
layout) and the fill value of each input (what "nothing here" is: 0 for images and
features, -1e4 for logits). ``EXAMPLES`` holds them; an op added later registers its own
with :func:`register_example` (tests/invariance checks every op with symmetries has one).

How a :class:`~ocdsl.ops.registry.Symmetry` is read:

- ``transform``: input port -> axis letter(s) of that port's signature that are permuted
  (one letter) or shifted (one letter, or two such as ``"H W"``); ports not named are
  left alone;
- ``output``: output port -> what it does: ``None`` = unchanged; axis letter(s) = that
  axis is permuted / shifted with the input; for ``translation_equivariance`` a coordinate
  spec ``"<x|y|z> <pixels|normalized|normalized_edges>"`` = that component of the last axis
  moves by the shift in those units (ocdsl.invariance.transforms). Output ports not named
  are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from hypothesis import strategies as st

from ocdsl.invariance import strategies as S
from ocdsl.invariance.search import Outcome, Property, Result, search
from ocdsl.invariance.transforms import (TRANSLATION_KINDS, Expect, Permutation, Shift,
                                         Tolerance, apply_to_site,
                                         default_tolerance, deviation, expected_output,
                                         move_coords, parse_coords, unit_per_pixel)
from ocdsl.ops.registry import OpDef, Symmetry
from ocdsl.shapes import Dim

__all__ = ["OpInstance", "OpExample", "EXAMPLES", "register_example", "op_properties",
           "check_op", "call_op"]



@dataclass(frozen=True)
class OpInstance:
    """One tiny instance of an op: its (resolved) params and its input tensors."""

    params: dict[str, Any]
    inputs: dict[str, torch.Tensor]
    weight_seed: int = 0


@dataclass(frozen=True)
class OpExample:
    """``instances(dtype)`` -> strategy of OpInstance; ``outputs``: output port ->
    signature (``"B K D"``); ``fills``: input port -> fill value for shifts (default 0);
    ``inside``: coordinate input port -> ``fn(value, inputs, module, margins) -> value``,
    which moves the coordinates where the shift keeps what they address inside the frame
    (``margins``: component -> pixels to stay clear of the edges; ``inputs``: the op's
    inputs by port; ``module``: the op's module). It runs on the value in both runs of a
    check, as the blanked border does on a shifted image. ``atol``: the absolute tolerance
    in float32 where the op is more sensitive to rounding than the default allows (None:
    the default)."""

    instances: Callable[[torch.dtype], Any]
    outputs: Mapping[str, str]
    fills: Mapping[str, float] = field(default_factory=dict)
    inside: Mapping[str, Callable[..., torch.Tensor]] = field(default_factory=dict)
    atol: float | None = None


EXAMPLES: dict[str, OpExample] = {}


def register_example(op_name: str, example: OpExample) -> OpExample:
    EXAMPLES[op_name] = example
    return example


# ---- the examples of the shipped ops -------------------------------------------------------

@st.composite
def _slot_attention(draw, dtype):
    b, n, din = draw(S.batch_sizes(3)), draw(st.integers(1, 8)), draw(st.integers(1, 6))
    k, d = draw(st.integers(1, 5)), draw(st.integers(2, 8))
    params = {"num_slots": k, "slot_size": d, "mlp_hidden": draw(st.integers(1, 8)),
              "iterations": draw(st.integers(1, 4))}
    inputs = {"inputs": draw(S.inputs_bnd(b, n, din, dtype)),
              "slots": draw(S.slots_bkd(b, k, d, dtype))}
    return OpInstance(params, inputs, draw(S.seeds()))


@st.composite
def _alpha_composite(draw, dtype):
    b, k, c = draw(S.batch_sizes(2)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    inputs = {"rgb": draw(S.rgb_bkchw(b, k, c, h, w, dtype)),
              "alpha_logits": draw(S.alpha_bk1hw(b, k, h, w, dtype))}
    return OpInstance({}, inputs, 0)


@st.composite
def _spatial_broadcast_decoder(draw, dtype):
    b, k, d = draw(S.batch_sizes(2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    channels = draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))
    params = {"resolution": [h, w], "channels": channels,
              "kernel": draw(st.sampled_from([1, 3])), "out_kernel": draw(st.sampled_from([1, 3])),
              "out_channels": draw(st.integers(2, 4))}
    return OpInstance(params, {"slots": draw(S.slots_bkd(b, k, d, dtype))}, draw(S.seeds()))


@st.composite
def _soft_argmax(draw, dtype):
    b, k, c = draw(S.batch_sizes(2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(2, 9)), draw(st.integers(2, 9))
    params = {"temperature": draw(st.sampled_from([1.0, 0.5]))}
    inputs = {"logits": draw(S.heatmaps_bkhw(b, k, h, w, dtype)),
              "features": draw(S.features_bchw(b, c, h, w, dtype))}
    return OpInstance(params, inputs, 0)


register_example("slot_attention", OpExample(
    _slot_attention, {"slots": "B K D", "attention": "B K N"}))
register_example("alpha_composite", OpExample(
    _alpha_composite, {"image": "B C H W", "masks": "B K H W"}))
register_example("spatial_broadcast_decoder", OpExample(
    _spatial_broadcast_decoder, {"rgb": "B K C H W", "alpha_logits": "B K 1 H W"}))
register_example("soft_argmax", OpExample(
    _soft_argmax, {"coords": "B K 2", "features": "B K C", "attention": "B K H W"},
    fills={"logits": -1e4, "features": 0.0}))


@st.composite
def _transformer_encoder(draw, dtype):
    b, n, k = draw(S.batch_sizes(2)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    # d >= 4: a LayerNorm over 1 or 2 features is (nearly) a sign function, whose rounding
    # flips would swamp any tolerance
    heads, d = draw(st.sampled_from([1, 2])), draw(st.sampled_from([4, 6, 8]))
    params = {"depth": draw(st.integers(1, 2)), "heads": heads,
              "mlp_ratio": draw(st.sampled_from([1.0, 2.0]))}
    inputs = {"tokens": draw(S.inputs_bnd(b, n, d, dtype)), "cls": draw(S.slots_bkd(b, k, d, dtype))}
    return OpInstance(params, inputs, draw(S.seeds()))


@st.composite
def _vit_decoder(draw, dtype):
    b, k, n = draw(S.batch_sizes(2)), draw(st.integers(1, 4)), draw(st.integers(1, 6))
    heads, d = draw(st.sampled_from([1, 2])), draw(st.sampled_from([4, 6, 8]))   # see above
    params = {"depth": draw(st.integers(1, 2)), "heads": heads, "mlp_ratio": 2.0,
              "out_features": draw(st.integers(1, 5))}
    return OpInstance(params, {"x": draw(S.tensors((b, k, n, d), dtype))}, draw(S.seeds()))


@st.composite
def _object_function(draw, dtype):
    b, n, k, d = (draw(S.batch_sizes(2)), draw(st.integers(1, 8)), draw(st.integers(1, 5)),
                  draw(st.integers(1, 8)))
    inputs = {"tokens": draw(S.inputs_bnd(b, n, d, dtype)), "cls": draw(S.slots_bkd(b, k, d, dtype))}
    return OpInstance({}, inputs, 0)


@st.composite
def _broadcast_unshuffle(draw, dtype):
    b, k, d, e = (draw(S.batch_sizes(2)), draw(st.integers(1, 4)), draw(st.integers(1, 6)),
                  draw(st.integers(1, 6)))
    n = draw(st.integers(1, 8))
    kept = draw(st.integers(1, n))
    g = torch.Generator().manual_seed(draw(S.seeds()))
    ids = torch.stack([torch.randperm(n, generator=g) for _ in range(b)])   # (b, n)
    inputs = {"slots": draw(S.slots_bkd(b, k, d, dtype)),
              "log_attention": draw(S.tensors((b, k, kept), dtype)),
              "ids_restore": ids}
    return OpInstance({"dim": e}, inputs, draw(S.seeds()))


@st.composite
def _unpatchify(draw, dtype):
    b, k, p = draw(S.batch_sizes(2)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    gh, gw, c = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(2, 4))
    params = {"patch": p, "resolution": [gh * p, gw * p]}
    return OpInstance(params, {"x": draw(S.tensors((b, k, gh * gw, p * p * c), dtype))}, 0)


register_example("transformer_encoder", OpExample(
    _transformer_encoder, {"tokens": "B N D", "cls": "B K D"}))
register_example("vit_decoder", OpExample(_vit_decoder, {"out": "B K N F"}))
register_example("object_function", OpExample(
    _object_function, {"slots": "B K D", "attention": "B K N", "log_attention": "B K N"}))
register_example("broadcast_unshuffle", OpExample(
    _broadcast_unshuffle, {"tokens": "B K N E", "attention": "B K N"}))
register_example("unpatchify", OpExample(
    _unpatchify, {"rgb": "B K C H W", "alpha_logits": "B K 1 H W"}))


# AST-Seg rendering (ocdsl/ops/glimpse.py, occlusion_composite)

@st.composite
def _latent_split(draw, dtype):
    b, k, z = draw(S.batch_sizes(2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    scaling = draw(st.sampled_from(["isotropic", "anisotropic"]))
    d = 3 + (1 if scaling == "isotropic" else 2) + z
    params = {"scaling": scaling, "what": z}
    return OpInstance(params, {"input": draw(S.tensors((b, k, d), dtype, scale=2.0))}, 0)


@st.composite
def _glimpse_generator(draw, dtype):
    b, k, z = draw(S.batch_sizes(2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    g = draw(st.sampled_from([4, 8]))
    channels = draw(st.lists(st.integers(1, 6), min_size=g.bit_length() - 2,
                             max_size=g.bit_length() - 2))
    params = {"size": g, "channels": channels}
    return OpInstance(params, {"what": draw(S.slots_bkd(b, k, z, dtype))}, draw(S.seeds()))


@st.composite
def _spatial_transformer(draw, dtype):
    b, k, c = draw(S.batch_sizes(2)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    g, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    scale = 1.0 + draw(S.tensors((b, k, 2), dtype)).abs()          # s >= 1
    inputs = {"glimpses": draw(S.tensors((b, k, c, g, g), dtype)),
              "position": draw(S.tensors((b, k, 2), dtype, scale=0.5)), "scale": scale}
    return OpInstance({"resolution": [h, w]}, inputs, 0)


@st.composite
def _occlusion_composite(draw, dtype):
    b, k = draw(S.batch_sizes(2)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    layers = draw(S.tensors((b, k, 4, h, w), dtype, scale=3.0))
    masks = layers[:, :, 3].sigmoid()
    layers[:, :, 3] = torch.where(masks < 0.2, torch.zeros_like(masks), masks)  # exact zeros
    inputs = {"layers": layers, "log_alpha": draw(S.tensors((b, k), dtype, scale=4.0)) + 11.0,
              "background": draw(S.images_bchw(b, 3, h, w, dtype))}
    return OpInstance({}, inputs, 0)


register_example("latent_split", OpExample(
    _latent_split, {"position": "B K 2", "scale": "B K 2", "alpha": "B K", "log_alpha": "B K",
                    "what": "B K Z", "boxes": "B K 4"}))
register_example("glimpse_generator", OpExample(_glimpse_generator, {"glimpses": "B K C G G"}))
register_example("spatial_transformer", OpExample(_spatial_transformer, {"layers": "B K C H W"}))
register_example("occlusion_composite", OpExample(
    _occlusion_composite, {"image": "B C H W", "weights": "B J H W", "segmentation": "B H W"}))


# AST-Seg latent refinement (ocdsl/ops/refinement.py). Dropout 0.1 stays on in the params:
# the check runs modules in eval mode, where it is off (a training-mode dropout mask would
# break the symmetry). width >= 4: see _transformer_encoder.

@st.composite
def _transformer_refinement(draw, dtype):
    b, k, d = draw(S.batch_sizes(2)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
    heads = draw(st.sampled_from([1, 2]))
    params = {"layers": draw(st.integers(0, 2)), "width": draw(st.sampled_from([4, 8])),
              "heads": heads, "feedforward": draw(st.integers(1, 8)), "dropout": 0.1}
    return OpInstance(params, {"input": draw(S.slots_bkd(b, k, d, dtype))}, draw(S.seeds()))


register_example("transformer_refinement", OpExample(_transformer_refinement, {"out": "B K D"}))


# ---- running an op -------------------------------------------------------------------------

def call_op(opdef: OpDef, module: torch.nn.Module, inputs: Mapping[str, torch.Tensor]
            ) -> dict[str, torch.Tensor]:
    """Call ``module`` the way generated code does; outputs as a dict by port name."""
    if len(opdef.inputs) == 1:
        out = module(inputs[opdef.inputs[0].name])
    else:
        out = module(**{p.name: inputs[p.name] for p in opdef.inputs if p.name in inputs})
    if len(opdef.outputs) == 1:
        out = (out,)
    return dict(zip(opdef.outputs, out))


def _axes_of(signature: str, letters: list[str], what: str) -> tuple[int, ...]:
    names = signature.split()
    missing = [a for a in letters if a not in names]
    if missing:
        raise ValueError(f"{what}: axis {' '.join(missing)} not in its signature {signature!r}")
    return tuple(names.index(a) for a in letters)


@dataclass(frozen=True)
class _OpCase:
    instance: OpInstance
    transform: Permutation | Shift


def _symmetry_label(sym: Symmetry) -> str:
    axes = sorted({a for v in sym.transform.values() if parse_coords(v) is None for a in v.split()})
    return f"{sym.kind} {' '.join(axes)}"


def op_properties(opdef: OpDef, *, module: Callable[..., torch.nn.Module] | None = None,
                  dtype: torch.dtype = torch.float32, tolerance: Tolerance | None = None,
                  max_shift: int | None = None, example: OpExample | None = None
                  ) -> list[Property]:
    """One Property per symmetry of ``opdef``. ``module`` replaces the op's module class
    (a factory called with the op's ``init_args``), e.g. to prove a broken variant fails."""
    ex = example or EXAMPLES.get(opdef.name)
    if ex is None:
        raise KeyError(f"op {opdef.name!r} declares symmetries but ocdsl.invariance has no "
                       f"example for it; add one with register_example()")
    factory = module or opdef.module
    tol = tolerance or default_tolerance(dtype, ex.atol if dtype == torch.float32 else None)
    ports = {p.name: p for p in opdef.inputs}
    return [_op_property(opdef, sym, ex, factory, dtype, tol, ports, max_shift)
            for sym in opdef.symmetries]


def _coord_sites(sym: Symmetry, opdef: OpDef) -> dict[str, tuple[int, str]]:
    """The symmetry's coordinate inputs: port -> (component, units), e.g. a DRAW window's
    ``"x normalized_padded"``."""
    out = {port: c for port, v in sym.transform.items() if (c := parse_coords(v)) is not None}
    if out and sum(1 for v in sym.transform.values() if parse_coords(v) is None) == 0:
        raise ValueError(f"{opdef.name}: a symmetry that moves coordinates must also shift an axis")
    return out


def _conditioned(ex: OpExample, coords: Mapping[str, tuple[int, str]], feed: dict,
                 mod: torch.nn.Module, transform, sizes: tuple[int, ...], moved: bool) -> dict:
    """``feed`` with each coordinate input pulled inside the frame (``ex.inside``) and, in
    the transformed run, moved by the shift."""
    out = dict(feed)
    for port, (comp, units) in coords.items():
        x = out[port]
        if port in ex.inside:
            x = ex.inside[port](x, feed, mod, {comp: transform.margins[0]})
        if moved:
            x = move_coords(x, (comp,), (unit_per_pixel(units, sizes[0]),), transform.offsets)
        out[port] = x
    return out


def _op_expects(opdef: OpDef, sym: Symmetry, ex: OpExample, n_axes: int, transform) -> list[Expect]:
    """What each output the symmetry names must do under ``transform``."""
    translation = sym.kind in TRANSLATION_KINDS
    out = []
    for port, spec in sym.output.items():
        if spec is None or sym.kind.endswith("invariance"):
            out.append(Expect(port, "same"))
            continue
        coords_out = parse_coords(spec) if translation else None
        if coords_out is not None:
            comp, units = coords_out
            comps = (comp,) if n_axes == 1 else tuple(range(n_axes - 1, -1, -1))
            scales = tuple(unit_per_pixel(units, n) for n in transform.sizes)
            out.append(Expect(port, "coords", components=comps, scales=scales))
            continue
        axes = _axes_of(ex.outputs[port], spec.split(), f"{opdef.name} output '{port}'")
        out.append(Expect(port, "shift" if translation else "permute", axes))
    return out


def _op_property(opdef, sym, ex, factory, dtype, tol, ports, max_shift) -> Property:
    translation = sym.kind in TRANSLATION_KINDS
    coords = _coord_sites(sym, opdef) if translation else {}
    letters = {port: axis.split() for port, axis in sym.transform.items() if port not in coords}
    first_port, first_letters = next(iter(letters.items()))
    site_axes = {port: _axes_of(ports[port].signature, ls, f"{opdef.name} input '{port}'")
                 for port, ls in letters.items()}
    if coords and len(first_letters) != 1:
        raise ValueError(f"{opdef.name}: coordinate inputs move with one shifted axis per symmetry")

    def sizes_of(inst: OpInstance) -> tuple[int, ...]:
        x = inst.inputs[first_port]
        return tuple(int(x.shape[a]) for a in site_axes[first_port])

    @st.composite
    def cases(draw):
        inst = draw(ex.instances(dtype))
        sizes = sizes_of(inst)
        if translation:
            transform = draw(S.shifts(sizes, first_letters, max_shift))
        else:
            transform = draw(S.permutations_of(sizes[0], first_letters[0]))
        return _OpCase(inst, transform)

    def run(inst: OpInstance, transform, moved: bool, seed: int) -> dict[str, torch.Tensor]:
        feed = dict(inst.inputs)
        for port, axes in site_axes.items():
            if port in feed:
                feed[port] = apply_to_site(feed[port], axes, transform, moved,
                                           ex.fills.get(port, 0.0))
        in_shapes = {p: tuple(Dim.of(int(s)) for s in t.shape) for p, t in feed.items()}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(inst.weight_seed)
            mod = factory(**opdef.init_args(in_shapes, inst.params)).to(dtype).eval()
            torch.manual_seed(seed)
            with torch.no_grad():
                feed = _conditioned(ex, coords, feed, mod, transform, sizes_of(inst), moved)
                return call_op(opdef, mod, feed)

    def evaluate(case: _OpCase) -> Outcome:
        inst, transform = case.instance, case.transform
        base = run(inst, transform, False, 0)
        moved = run(inst, transform, True, 0)
        devs = []
        for e in _op_expects(opdef, sym, ex, len(first_letters), transform):
            exp, mask = expected_output(base[e.key], e, transform)
            devs.append(deviation(e.key, moved[e.key], exp, tol, mask))
        return Outcome(devs)

    def describe(case: _OpCase) -> list[str]:
        inst, transform = case.instance, case.transform
        shapes = ", ".join(f"{p} {tuple(t.shape)}" for p, t in inst.inputs.items())
        sites = ", ".join([f"{p} ({ports[p].signature})" for p in site_axes]
                          + [f"{p} (coordinates {sym.transform[p]})" for p in coords])
        return [f"op {opdef.name} with params {inst.params}",
                f"inputs: {shapes} (values from seeds; weights seed {inst.weight_seed})",
                f"{transform.describe()}, applied to {sites}"]

    compared = []
    for port, spec in sym.output.items():
        compared.append(f"{port}: {'unchanged' if spec is None else spec}")
    return Property(name=_symmetry_label(sym), node=opdef.name, strategy=cases(),
                    evaluate=evaluate, describe=describe, tolerance=tol,
                    notes=(sym.doc,) if sym.doc else (), compared=tuple(compared))


def check_op(op: str | OpDef, *, examples: int = 20, module=None,
             dtype: torch.dtype = torch.float32, tolerance: Tolerance | None = None,
             seed: int = 0, max_shift: int | None = None) -> list[Result]:
    """Check every symmetry ``op`` declares; one Result per symmetry."""
    from ocdsl.ops import get
    opdef = get(op) if isinstance(op, str) else op
    return [search(p, examples, seed=seed)
            for p in op_properties(opdef, module=module, dtype=dtype, tolerance=tolerance,
                                   max_shift=max_shift)]


@st.composite
def _cross_attention(draw, dtype):
    b, n, k = draw(S.batch_sizes(2)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    heads, d = draw(st.sampled_from([1, 2])), draw(st.sampled_from([4, 6, 8]))   # d >= 4: see above
    params = {"layers": draw(st.integers(1, 2)), "heads": heads, "mlp_hidden": draw(st.integers(1, 8))}
    inputs = {"queries": draw(S.slots_bkd(b, k, d, dtype)), "features": draw(S.inputs_bnd(b, n, d, dtype))}
    return OpInstance(params, inputs, draw(S.seeds()))


register_example("cross_attention", OpExample(
    _cross_attention, {"queries": "B K D", "attention": "B K N"}))


# DRAW's Gaussian read (ocdsl/ops/filterbank.py): the window is a coordinate input, pulled
# inside the frame by window_inside (filters whose mass leaves the frame change their
# normaliser, Eq. 10, so the read is equivariant only away from the border). A wide blanked
# border leaves room only for narrow filters (sigma down to ~0.08 px), whose weights change
# by ~2e-5 relative when float32 rounds the moved centre (~5e-7 px): atol 1e-4 in float32;
# float64 holds to 1e-12 (tests/invariance).

@st.composite
def _gaussian_read(draw, dtype):
    b, c = draw(S.batch_sizes(2)), draw(st.integers(1, 3))
    h, w, n = draw(st.integers(5, 16)), draw(st.integers(5, 16)), draw(st.integers(2, 6))
    params = {"size": n, "index_origin": draw(st.sampled_from([1, 0]))}
    inputs = {"image": draw(S.images_bchw(b, c, h, w, dtype)),
              "window": draw(S.tensors((b, 5), dtype, scale=0.5))}
    return OpInstance(params, inputs, 0)


def _read_window_inside(window: torch.Tensor, inputs: Mapping[str, torch.Tensor],
                        module: torch.nn.Module, margins: Mapping[int, int]) -> torch.Tensor:
    from ocdsl.ops.filterbank import window_inside
    h, w = inputs["image"].shape[-2:]
    return window_inside(window, int(h), int(w), module.size, index_origin=module.index_origin,
                         margins=(margins.get(0, 0), margins.get(1, 0)))


register_example("gaussian_read", OpExample(
    _gaussian_read, {"glimpse": "B C N N"}, inside={"window": _read_window_inside}, atol=1e-4))
