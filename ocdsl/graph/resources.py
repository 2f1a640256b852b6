"""Resource estimate of a spec before anything is allocated: parameters, the memory of one
training step, and the memory of the evaluation data.

How (fp32, at ``train.batch_size``):

- **Parameters**: every op node's module is built on PyTorch's ``meta`` device (tensors
  with shapes and no storage) from the same constructor arguments codegen writes, and its
  parameters are counted. A module whose constructor computes from real values (the folded
  spatial broadcast decoder derives its border classes from the sizes) is built without
  its exact rewrite (rewrites never change parameters, docs/architecture.md), and on the
  CPU when those parameters are small (< :data:`CPU_FALLBACK_BYTES`), then moved to meta.
- **One training step**: parameters + the optimizer state (Adam/AdamW 2 per parameter, SGD
  with momentum 1) + the input batch + the larger of the activations and the parameters'
  gradients (the backward pass creates gradients as it frees activations). Activations are
  measured by running the model's forward and its losses on meta tensors of the batch's
  shapes, in graph order, under ``torch.autograd.graph.saved_tensors_hooks``: every tensor
  autograd saves for the backward pass, and every node output (the generated forward
  returns them all), counted once per storage, plus twice the largest of them (the
  gradients the backward pass holds while it differentiates through it). Nothing is allocated: meta tensors carry
  shapes only. A node whose forward cannot run on meta tensors (data-dependent code such
  as Hungarian matching) counts its outputs only, and the estimate says it is partial.
- **Data**: what evaluation keeps per image (one float64 per metric and image, twice while
  concatenating) plus images read into memory from files (``[data] path``,
  ``[[eval.datasets]] path``: ``size`` images, else the file's size).

``check_memory`` refuses a spec whose estimate exceeds the limit (``--max-memory``, else the
machine's memory: the cgroup limit where one is set, else physical memory), naming the key
that drives the largest part (``train.batch_size`` for activations, the node with the
most parameters, ``eval.test_size`` for data). docs/internals.md, "Resource estimate",
compares the estimate with the profiler's measured peak for each shipped spec.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from ocdsl.errors import Diagnostic
from ocdsl.spec.model import Spec

__all__ = ["Estimate", "meta_modules", "parameter_counts", "estimate", "check_memory", "machine_memory",
           "parse_memory", "format_bytes", "CPU_FALLBACK_BYTES"]

CPU_FALLBACK_BYTES = 256 * 2 ** 20
FLOAT_BYTES = 4
#: Optimizer state per parameter, in parameters (ocdsl/train/optim.py's optimizers).
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sgd": 0, "rmsprop": 1, "adagrad": 1}
#: Above this many bytes of node outputs the forward is not run on meta tensors: the
#: estimate is then a lower bound (the outputs), and far beyond any machine anyway.
META_FORWARD_LIMIT = 2 ** 50
#: The backward pass holds, beside the saved activations, the gradient of the activation it
#: is differentiating through and of that op's input: counted as twice the largest one.
BACKWARD_TRANSIENT = 2


@dataclass(frozen=True)
class Estimate:
    """Bytes of each part (fp32) and what drives it. ``partial``: nodes whose forward could
    not run on meta tensors (only their outputs are counted)."""

    parameters: int
    param_bytes: int
    state_bytes: int              # optimizer state
    grad_bytes: int               # parameter gradients
    input_bytes: int
    activation_bytes: int
    data_bytes: int
    batch_size: int
    largest_node: str | None = None
    data_driver: tuple = ()
    partial: tuple[str, ...] = field(default=())

    @property
    def step_bytes(self) -> int:
        """Memory of one training step: parameters, optimizer state, the input batch, and
        the larger of the activations and the gradients (the backward pass frees activations
        as it creates gradients)."""
        return self.param_bytes + self.state_bytes + self.input_bytes + max(self.activation_bytes,
                                                                             self.grad_bytes)

    @property
    def total_bytes(self) -> int:
        return self.step_bytes + self.data_bytes

    def describe(self) -> str:
        """``1.23 M parameters, 45.6 MB per training step (batch 8), 0.1 MB of evaluation data``."""
        text = (f"{self.parameters / 1e6:.2f} M parameters, {format_bytes(self.step_bytes)} per training step "
                f"(batch {self.batch_size}), {format_bytes(self.data_bytes)} of evaluation data")
        if self.partial:
            text += f" (activations of {', '.join(self.partial)} not measured: at least this much)"
        return text


def format_bytes(n: float) -> str:
    """``n`` bytes in MB (10**6), GB or TB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e6:.1f} MB"


def parse_memory(text: str) -> int:
    """``"4GB"``, ``"512 MB"``, ``"2GiB"``, ``"1e9"`` -> bytes. Raises ValueError."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]i?b?|b)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"not a memory size: {text!r} (write e.g. 4GB, 512MB, 2GiB)")
    unit = (m.group(2) or "b").lower().rstrip("b") or "b"
    scale = {"b": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
             "ki": 2 ** 10, "mi": 2 ** 20, "gi": 2 ** 30, "ti": 2 ** 40}[unit]
    value = int(float(m.group(1)) * scale)
    if value < 1:
        raise ValueError(f"not a memory size: {text!r}")
    return value


def machine_memory() -> int:
    """Bytes this process may use: the cgroup (v2, else v1) memory limit where one is set,
    else the machine's physical memory."""
    phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(f).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < phys:
            return int(text)
    return phys


# ---- modules on the meta device ---------------------------------------------------------------

def _kwargs(data: dict, rewritten: bool = True) -> dict:
    kw = dict(data["opdef"].init_args(data["in_shapes"], data["params"]))
    if rewritten:
        kw.update(data.get("init_overrides") or {})
    return kw


def _build_meta(data: dict):
    """The node's module on the meta device (see the module docstring for the fallbacks)."""
    import torch

    cls = data["opdef"].module
    with torch.random.fork_rng(devices=[]):  # analysis leaves the global RNG where it was
        return _build_meta_rng(cls, data)


def _build_meta_rng(cls, data: dict):
    import torch

    try:
        with torch.device("meta"):
            return cls(**_kwargs(data))
    except (NotImplementedError, RuntimeError):
        with torch.device("meta"):
            plain = cls(**_kwargs(data, rewritten=False))
        if not data.get("init_overrides"):
            return plain
        size = sum(p.numel() * p.element_size() for p in plain.parameters())
        if size > CPU_FALLBACK_BYTES:
            return plain
        return cls(**_kwargs(data)).to("meta")


def meta_modules(G: nx.MultiDiGraph) -> dict[str, Any]:
    """Node name -> its module on the meta device (a node sharing weights gets the module
    it shares). Cached on the graph (``G.graph["meta_modules"]``); a node whose rewrite
    changed since (``init_overrides``) is built again."""
    cache = G.graph.setdefault("meta_modules", {})
    out: dict[str, Any] = {}
    order = [n for n in nx.topological_sort(G) if G.nodes[n]["kind"] == "op"]
    for n in order:
        data = G.nodes[n]
        if data["node"].shared_with:
            continue
        key = repr(sorted((data.get("init_overrides") or {}).items()))
        if n not in cache or cache[n][0] != key:
            block = _block_graph(G, data)
            cache[n] = (key, _block_meta(block) if block is not None else _build_meta(data))
        out[n] = cache[n][1]
    for n in order:
        shared = G.nodes[n]["node"].shared_with
        if shared:
            out[n] = out[shared]
    return out


def _block_graph(G: nx.MultiDiGraph, data: dict) -> nx.MultiDiGraph | None:
    """The analysed graph of the block a node calls (used like an op, or run by ``repeat``),
    or None for a node of an op."""
    from ocdsl.spec.blocks import REPEAT

    node = data["node"]
    name = node.params.get("block") if node.op == REPEAT else node.op
    found = (G.graph.get("blocks") or {}).get(name)
    return None if found is None else found[1]


def _block_meta(block: nx.MultiDiGraph):
    """A block's nodes' modules on the meta device, as one module (its parameters are the
    block's; its forward does not run, so the activation estimate counts the block's
    outputs only)."""
    from torch import nn

    return nn.ModuleList(list(meta_modules(block).values()))  # node names may clash with ModuleDict's


def parameter_counts(G: nx.MultiDiGraph) -> dict[str, int]:
    """Node name -> number of parameters of its module (0 for a node sharing another's)."""
    mods = meta_modules(G)
    return {n: (0 if G.nodes[n]["node"].shared_with else sum(p.numel() for p in m.parameters()))
            for n, m in mods.items()}


# ---- the estimate -----------------------------------------------------------------------------

def _numel(shape, batch: int) -> int:
    n = 1
    for d in shape:
        n *= d.value if d.is_concrete else batch ** len(d.symbols) * d.coeff
    return n


def estimate(spec: Spec, G: nx.MultiDiGraph, batch_size: int | None = None) -> Estimate:
    """The :class:`Estimate` of ``spec`` (its checked graph ``G``) at ``batch_size``
    (default ``train.batch_size``)."""
    batch = int(batch_size or spec.train.batch_size)
    counts = parameter_counts(G)
    n_params = sum(counts.values())
    opt = _optimizer_slots(spec)
    input_bytes = sum(_numel(d["out_shapes"]["out"], batch) * FLOAT_BYTES
                      for _, d in G.nodes(data=True) if d["kind"] == "input")
    outputs = sum(_numel(s, batch) * FLOAT_BYTES for _, d in G.nodes(data=True) if d["kind"] == "op"
                  for s in d["out_shapes"].values())
    if outputs > META_FORWARD_LIMIT:
        activations, partial = outputs, ("the model",)
    else:
        activations, partial = _meta_activations(spec, G, batch)
    data_bytes, driver = _data_bytes(spec)
    largest = max(counts, key=counts.get) if counts and max(counts.values()) > 0 else None
    pb = n_params * FLOAT_BYTES
    return Estimate(n_params, pb, pb * opt, pb, input_bytes, activations, data_bytes, batch, largest, driver,
                    partial)


def _optimizer_slots(spec: Spec) -> int:
    opts = [spec.train.optimizer] + [p.optimizer for p in spec.train.phases]
    best = 0
    for o in opts:
        slots = OPTIMIZER_SLOTS.get(o.name, 2)
        if o.name == "sgd" and getattr(o, "momentum", 0):
            slots = 1
        best = max(best, slots)
    return best


def _meta_activations(spec: Spec, G: nx.MultiDiGraph, batch: int) -> tuple[int, tuple[str, ...]]:
    """Bytes of the tensors alive at the end of a training forward (saved for backward, and
    every node output), from a forward on meta tensors; and the nodes that could not run."""
    import torch

    from ocdsl.graph.build import output_key

    mods = meta_modules(G)
    params = {p.untyped_storage()._cdata for m in mods.values() for p in m.parameters()}
    live: dict[int, int] = {}

    def keep(t):
        if isinstance(t, torch.Tensor):
            st = t.untyped_storage()
            if st._cdata not in params:
                live[st._cdata] = st.nbytes()
        return t

    values: dict[tuple[str, str], Any] = {}
    env: dict[str, Any] = {}
    partial = []
    with torch.random.fork_rng(devices=[]), torch.device("meta"), \
            torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        for n in nx.topological_sort(G):
            data = G.nodes[n]
            if data["kind"] == "input":
                values[(n, "out")] = env[n] = torch.empty(
                    [d.value if d.is_concrete else batch for d in data["out_shapes"]["out"]])
                continue
            outs = _run_node(data, mods[n], values, G, n, batch)
            if outs is None:
                partial.append(n)
                outs = {p: torch.empty([d.value if d.is_concrete else batch for d in s])
                        for p, s in data["out_shapes"].items()}
            for port, t in outs.items():
                values[(n, port)] = t
                env[output_key(n, port, data["opdef"].outputs)] = t
                keep(t)
        _meta_losses(spec, env, G)
    largest = max(live.values(), default=0)
    return sum(live.values()) + BACKWARD_TRANSIENT * largest, tuple(partial)


def _run_node(data: dict, module, values: dict, G: nx.MultiDiGraph, n: str, batch: int) -> dict | None:
    """The node's outputs (port -> meta tensor) from its module, or None when its forward
    cannot run on meta tensors or gives other shapes than inferred."""
    opdef = data["opdef"]
    edges = {d["dst_port"]: values[(u, d["src_port"])] for u, _, d in G.in_edges(n, data=True)}
    module.train()
    for key, sched in (data.get("scheduled") or {}).items():
        setattr(module, key, data["params"][key])
    try:
        if len(opdef.inputs) == 1:
            res = module(edges[opdef.inputs[0].name])
        else:
            res = module(**{p.name: edges.get(p.name) for p in opdef.inputs if p.name in edges or not p.optional})
    except Exception:  # noqa: BLE001 - data-dependent code cannot run on meta tensors
        return None
    res = res if isinstance(res, tuple) else (res,)
    if len(res) != len(opdef.outputs):
        return None
    return dict(zip(opdef.outputs, res))


def _meta_losses(spec: Spec, env: dict, G: nx.MultiDiGraph) -> None:
    """Evaluate the losses on the meta outputs (saved tensors are recorded by the caller's
    hooks); a loss that cannot run on meta tensors (Hungarian matching) is skipped."""
    from ocdsl.spec import expr as E

    env = dict(env, **spec.dims, step=0, epoch=0.0)
    env.update(spec.schedule_values(0))
    for name, expr in spec.losses.items():
        try:
            env[name] = E.evaluate(expr, env)
        except Exception:  # noqa: BLE001 - e.g. scipy on meta tensors; its memory is small
            continue


def _data_bytes(spec: Spec) -> tuple[int, tuple]:
    """Bytes evaluation keeps in memory, and the key of the largest evaluation set."""
    ev = spec.eval_cfg
    per_image_metrics = 16 * max(1, len(ev.metrics))
    sets = [(("eval", "test_size"), ev.test_size, spec.data.get("data") or {}, ("data",))]
    for i, entry in enumerate(ev.datasets):
        sets.append((("eval", "datasets", i, "size"), entry.get("size"), entry, ("eval", "datasets", i)))
    total, best, driver = 0, -1, ()
    for key, size, cfg, kp in sets:
        n = int(size) if size else _default_count(spec, cfg, kp)
        per = per_image_metrics + (_file_image_bytes(spec) if cfg.get("path") else 0)
        b = n * per
        total += b
        if b > best:
            best, driver = b, (key if size or not cfg.get("path") else kp + ("path",))
    return total, driver


def _file_image_bytes(spec: Spec) -> int:
    """Bytes of one image and its mask read into memory (uint8 image, uint8 mask)."""
    sig = spec.inputs.get("image")
    if sig is None:
        return 0
    shape = [d.value for d in sig.resolve(spec.dims)[1:] if d.is_concrete]
    n = 1
    for d in shape:
        n *= d
    hw = shape[-1] * shape[-2] if len(shape) >= 2 else 1
    return n + hw


def _default_count(spec: Spec, cfg: dict, kp: tuple) -> int:
    """Images of an evaluation set without ``size``: a file's bytes over one image's (a
    file holds at most that many uncompressed), else 1000 (a generated split's default)."""
    if cfg.get("path"):
        try:
            size = spec.resolve_path(kp + ("path",)).stat().st_size
        except (OSError, KeyError, TypeError):
            return 0
        return size // max(1, _file_image_bytes(spec))
    return 1000


def check_memory(spec: Spec, est: Estimate, limit: int, source: str) -> list[Diagnostic]:
    """An error when ``est.total_bytes`` exceeds ``limit`` (bytes; ``source`` says where the
    limit comes from), at the key that drives the largest part."""
    if est.total_bytes <= limit:
        return []
    parts = {"activations": est.activation_bytes + est.input_bytes,
             "parameters": est.param_bytes + est.state_bytes + est.grad_bytes, "data": est.data_bytes}
    worst = max(parts, key=parts.get)
    if worst == "activations":
        kp = ("train", "batch_size") if ("train", "batch_size") in spec.locations else ("train",)
        hint = "lower train.batch_size or the sizes in [dims]"
    elif worst == "parameters":
        kp = ("model", "nodes", est.largest_node) if est.largest_node else ("dims",)
        hint = f"node '{est.largest_node}' has the most parameters: lower its sizes"
    else:
        kp = est.data_driver or ("eval",)
        hint = "evaluate on fewer images (eval.test_size, [[eval.datasets]] size)"
    msg = (f"the spec needs about {format_bytes(est.total_bytes)} ({est.describe()}), more than the "
           f"{format_bytes(limit)} {source}; most of it is {worst} ({format_bytes(parts[worst])})")
    return [spec.diag(kp, msg, hint)]
