"""The Slot Attention module (Locatello et al., NeurIPS 2020, Algorithm 1)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ocdsl.ops._common import expect_rank, optional_shape
from ocdsl.ops.registry import (OpDef, Port, Symmetry, boolean, enum, integer, number, register,
                                size)
from ocdsl.shapes import Dim, Shape, ShapeError, fmt_shape

__all__ = ["SlotAttention", "SLOT_INITS"]

#: Initial-slot schemes: the paper's shared Gaussian, or K learned slots (ParamStateInit).
SLOT_INITS = ("gaussian", "learned")


class SlotAttention(nn.Module):
    """Slot Attention: K slots compete for N input features over T rounds of attention,
    each followed by a GRU update and a residual MLP.

    Algorithm 1 of the paper, one line of ``forward`` per line of the algorithm::

        l.1   slots = mu + exp(log_sigma) * randn        b k d    (or the `slots` input)
        l.3   inputs = LayerNorm(inputs)                 b n din
              k, v = k(inputs), v(inputs)                b n d    (bias-free projections)
        l.4   for t in 1..T:
        l.5     slots_prev = slots                       b k d
        l.6     slots = LayerNorm(slots)                 b k d
        l.7     attn = softmax(k q(slots)^T / sqrt(d),   b k n    softmax over SLOTS (axis k):
                               axis="slots")                      slots compete for inputs
        l.8     updates = WeightedMean(attn + eps, v)    b k d    attn renormalised over n
        l.9     slots = GRU(state=slots_prev, updates)   b k d
        l.10    slots += MLP(LayerNorm(slots))           b k d    d -> mlp_hidden (ReLU) -> d

    Args:
        in_features (`int`):
            Size ``Din`` of each input feature.
        num_slots (`int`):
            Number of slots ``K`` drawn when no initial slots are given.
        slot_size (`int`):
            Slot size ``D`` (also the size of q, k, v). Paper: 64.
        mlp_hidden (`int`, *optional*, defaults to ``2 * slot_size``):
            Hidden size of the residual slot MLP. Paper: 128.
        iterations (`int`, *optional*, defaults to 3):
            Number of attention rounds ``T``.
        epsilon (`float`, *optional*, defaults to 1e-8):
            Added to the attention before the weighted mean (Alg. 1 l.8), so an input no
            slot wins still gives every slot a finite mean.
        ln_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the three LayerNorms. PyTorch's default; the official Keras code uses
            Keras' default 1e-3 (set ``ln_eps = 1e-3`` to match it).
        implicit_grad (`bool`, *optional*, defaults to `False`):
            Detach the slots before the last iteration, so gradients flow through one
            iteration only (first-order implicit differentiation, Chang et al. 2022,
            "Object Representations as Fixed Points"). The value of the output is unchanged;
            the learned ``mu`` / ``log_sigma`` then receive no gradient.
        slot_init (`str`, *optional*, defaults to `"gaussian"`):
            How the initial slots are made when no ``slots`` input is given.
            `"gaussian"` (the paper, Alg. 1 l.1): every slot is drawn from one shared learned
            Gaussian, ``mu + exp(log_sigma) * randn``; the slots start exchangeable and a run
            must break the symmetry itself, which on small budgets takes a seed-dependent
            500 to over 5000 steps. `"learned"`: K fixed learnable initial slots (a ``K x D``
            parameter ``slots_init``, N(0, 1) init, no sampling), as in SAVi / Invariant Slot
            Attention's ``ParamStateInit`` (google-research/slot-attention-video and
            invariant_slot_attention, their Tetrominoes baseline) and BO-QSA's learnable
            queries (Jia et al., ICLR 2023): the symmetry is broken from step 0, at the cost
            of a fixed K and of slots that are no longer exchangeable in distribution.
        straight_through (`bool`, *optional*, defaults to `False`):
            BO-QSA's bi-level optimisation (Jia et al., ICLR 2023, Sec. 3.2, Eq. 5): before
            the last iteration the slots are replaced by ``slots.detach() + init -
            init.detach()``: the value is the detached iterate, the gradient reaches the
            initial slots (the queries) directly, as a straight-through estimator. Unlike
            ``implicit_grad`` the initial slots keep a gradient.
        heads (`int`, *optional*, defaults to 1):
            Attention heads: q, k and v are split into ``heads`` parts of ``D / heads``
            features, each head's logits are scaled by ``sqrt(D / heads)`` and softmaxed over
            the slots separately (slots compete per head), and the heads' weighted means are
            concatenated into the D-dimensional update. The ``attention`` output is the mean
            of the heads' attention. ``heads = 1`` is Algorithm 1 exactly.
        init (`str`, *optional*, defaults to `"torch"`):
            `"torch"`: PyTorch default init of Linear / GRUCell. `"keras"`: the official
            code's Keras defaults (glorot-uniform Linear and GRU input kernels, orthogonal GRU
            recurrent kernel, zero biases). ``mu`` and ``log_sigma`` are glorot-uniform over
            shape [1, 1, D] (bound sqrt(6 / (1 + D))) in both modes, as in the official code.
        fuse_kv (`bool`, *optional*, defaults to `False`):
            Compute k and v as one matmul with the stacked weight ``[W_k; W_v]`` (``2D x
            Din``), then split: one pass over the ``b n din`` inputs instead of two, forward
            and backward. Same parameters (``to_k``, ``to_v``), values and gradients. Turned
            on by the compiler rewrite ``fuse_kv`` (ocdsl/graph/rewrites.py).
        no_grad_detached (`bool`, *optional*, defaults to `False`):
            With ``implicit_grad`` or ``straight_through``, run the iterations before the
            last under ``torch.no_grad()``: their result is detached before the last
            iteration, so no gradient ever flows through them and recording them for
            autograd only costs time and memory. Same values and gradients. Turned on by the
            compiler rewrite ``no_grad_detached``.

    Shapes:
        inputs:    b n din                      input features (e.g. n = h * w)
        slots:     b k d      (optional)        initial slots; replaces the l.1 sample
        -> slots:     b k d                     slots after T iterations
        -> attention: b k n                     softmax over k of the LAST iteration (l.7),
                                                before + eps and renormalisation over n;
                                                sums to 1 over k at each input position

    Symmetries:
        Permutation-equivariant in the initial slots (k) for both outputs, permutation-
        invariant in the inputs' order (n) for the slots and equivariant for the attention.
        With randomly drawn slots these hold in distribution only; property checks pass
        ``slots`` explicitly (or fix the seed).

    Raises:
        ShapeError (shape rule): ``inputs`` not 3-D, or ``slots`` not ``(B, num_slots,
        slot_size)``, with expected and actual shapes.

    Source:
        Locatello et al., "Object-Centric Learning with Slot Attention", NeurIPS 2020,
        Sec. 2.1, Eq. 1-2 and Algorithm 1; App. E.1 for sizes (D = 64, MLP 128, T = 3,
        eps = 1e-8). Heads: multi-head attention (Vaswani et al., NeurIPS 2017, Sec. 3.2.2)
        with Slot Attention's softmax over the slots in each head.
    """

    def __init__(self, in_features: int, num_slots: int, slot_size: int,
                 mlp_hidden: int | None = None, iterations: int = 3, epsilon: float = 1e-8,
                 ln_eps: float = 1e-5, implicit_grad: bool = False, init: str = "torch",
                 slot_init: str = "gaussian", straight_through: bool = False, heads: int = 1,
                 fuse_kv: bool = False, no_grad_detached: bool = False):
        super().__init__()
        self.fuse_kv = bool(fuse_kv)
        self.no_grad_detached = bool(no_grad_detached)
        if init not in ("torch", "keras"):
            raise ValueError(f"unknown init {init!r}, expected 'torch' or 'keras'")
        if implicit_grad and straight_through:
            raise ValueError("implicit_grad and straight_through exclude each other")
        if slot_init not in SLOT_INITS:
            raise ValueError(f"unknown slot_init {slot_init!r}, expected one of {SLOT_INITS}")
        if heads < 1 or slot_size % heads:
            raise ValueError(f"heads: expected a positive divisor of slot_size {slot_size}, got {heads}")
        hidden = 2 * slot_size if mlp_hidden is None else mlp_hidden
        self.num_slots = num_slots
        self.slot_size = slot_size
        self.iterations = iterations
        self.epsilon = epsilon
        self.implicit_grad = implicit_grad
        self.slot_init = slot_init
        self.straight_through = straight_through
        self.heads = heads
        self.scale = (slot_size // heads) ** -0.5
        self.norm_inputs = nn.LayerNorm(in_features, eps=ln_eps)
        self.norm_slots = nn.LayerNorm(slot_size, eps=ln_eps)
        self.norm_mlp = nn.LayerNorm(slot_size, eps=ln_eps)
        self.to_q = nn.Linear(slot_size, slot_size, bias=False)
        self.to_k = nn.Linear(in_features, slot_size, bias=False)
        self.to_v = nn.Linear(in_features, slot_size, bias=False)
        self.gru = nn.GRUCell(slot_size, slot_size)
        self.mlp = nn.Sequential(nn.Linear(slot_size, hidden), nn.ReLU(),
                                 nn.Linear(hidden, slot_size))
        if slot_init == "gaussian":
            self.slots_mu = nn.Parameter(torch.empty(1, 1, slot_size))
            self.slots_log_sigma = nn.Parameter(torch.empty(1, 1, slot_size))
            bound = math.sqrt(6.0 / (1 + slot_size))  # Keras glorot-uniform on shape [1, 1, D]
            nn.init.uniform_(self.slots_mu, -bound, bound)
            nn.init.uniform_(self.slots_log_sigma, -bound, bound)
        else:  # "learned": ParamStateInit, N(0, 1)
            self.slots_init = nn.Parameter(torch.randn(1, num_slots, slot_size))
        if init == "keras":
            for lin in (self.to_q, self.to_k, self.to_v, self.mlp[0], self.mlp[2]):
                nn.init.xavier_uniform_(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
            nn.init.xavier_uniform_(self.gru.weight_ih)
            nn.init.orthogonal_(self.gru.weight_hh)
            nn.init.zeros_(self.gru.bias_ih)
            nn.init.zeros_(self.gru.bias_hh)

    def step(self, slots: torch.Tensor, k: torch.Tensor,
             v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One iteration (Alg. 1 l.5-10). Returns the new slots and the l.7 attention."""
        b, n_slots, d = slots.shape
        slots_prev = slots                                           # l.5  (B, K, D)
        q = self.to_q(self.norm_slots(slots)) * self.scale           # l.6  (B, K, D)
        if self.heads == 1:
            logits = torch.einsum("bnd,bkd->bkn", k, q)              # l.7  (B, K, N)
            attn = logits.softmax(dim=1)                             # l.7  over slots: compete
            weights = attn + self.epsilon                            # l.8  (B, K, N)
            weights = weights / weights.sum(dim=-1, keepdim=True)    # l.8  mean over inputs
            updates = torch.einsum("bkn,bnd->bkd", weights, v)       # l.8  (B, K, D)
        else:
            updates, attn = self.multi_head(q, k, v)                 # l.7-8 (B, K, D), (B, K, N)
        slots = self.gru(updates.reshape(b * n_slots, d),            # l.9  ((B K), D)
                         slots_prev.reshape(b * n_slots, d))
        slots = slots.reshape(b, n_slots, d)                         #      (B, K, D)
        slots = slots + self.mlp(self.norm_mlp(slots))               # l.10 (B, K, D)
        return slots, attn

    def multi_head(self, q: torch.Tensor, k: torch.Tensor,
                   v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Alg. 1 l.7-8 with ``heads`` heads: q (B, K, D) already scaled, k and v (B, N, D).
        Returns the concatenated updates (B, K, D) and the heads' mean attention (B, K, N)."""
        h = self.heads
        qh = q.unflatten(-1, (h, -1))                                # (B, K, h, D/h)
        kh, vh = k.unflatten(-1, (h, -1)), v.unflatten(-1, (h, -1))  # (B, N, h, D/h)
        logits = torch.einsum("bnhd,bkhd->bhkn", kh, qh)             # l.7  (B, h, K, N)
        attn = logits.softmax(dim=2)                                 # l.7  over slots, per head
        weights = attn + self.epsilon
        weights = weights / weights.sum(dim=-1, keepdim=True)        # l.8  (B, h, K, N)
        updates = torch.einsum("bhkn,bnhd->bkhd", weights, vh)       # l.8  (B, K, h, D/h)
        return updates.flatten(-2), attn.mean(dim=1)                 # (B, K, D), (B, K, N)

    def forward(self, inputs: torch.Tensor, slots: torch.Tensor | None = None,
                num_slots: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` (B, N, Din), optional initial ``slots`` (B, K, D); ``num_slots``
        overrides K for the random initialisation (e.g. more slots at test time).
        Returns ``(slots (B, K, D), attention (B, K, N))``."""
        b = inputs.shape[0]
        if slots is None and self.slot_init == "learned":            # l.1 (ParamStateInit)
            if num_slots not in (None, self.num_slots):
                raise ValueError(f"slot_init = 'learned' has exactly {self.num_slots} slots; "
                                 f"num_slots = {num_slots} needs slot_init = 'gaussian'")
            slots = self.slots_init.expand(b, -1, -1).to(inputs.dtype)
        elif slots is None:                                          # l.1
            n_slots = self.num_slots if num_slots is None else num_slots
            noise = torch.randn(b, n_slots, self.slot_size, device=inputs.device,  # fp32 under bf16 autocast
                                dtype=torch.promote_types(inputs.dtype, torch.float32))  # (B, K, D)
            slots = self.slots_mu + self.slots_log_sigma.exp() * noise
        inputs = self.norm_inputs(inputs)                            # l.3  (B, N, Din)
        if self.fuse_kv:                                             # rewrite fuse_kv: one matmul
            w = torch.cat([self.to_k.weight, self.to_v.weight])      #      (2 D, Din)
            k, v = nn.functional.linear(inputs, w).chunk(2, dim=-1)  #      (B, N, D) each
        else:
            k = self.to_k(inputs)                                    #      (B, N, D)
            v = self.to_v(inputs)                                    #      (B, N, D)
        init = slots
        attn = inputs.new_empty(0)
        detach_last = self.implicit_grad or self.straight_through
        for t in range(self.iterations):                             # l.4
            if self.implicit_grad and t == self.iterations - 1:
                slots = slots.detach()                               # Chang et al. 2022
            elif self.straight_through and t == self.iterations - 1:
                slots = slots.detach() + init - init.detach()        # BO-QSA Eq. 5
            dead = self.no_grad_detached and detach_last and t < self.iterations - 1
            with torch.set_grad_enabled(torch.is_grad_enabled() and not dead):
                slots, attn = self.step(slots, k, v)                 # rewrite no_grad_detached
        return slots, attn                                           # (B, K, D), (B, K, N)


def _check(in_shapes: dict[str, Shape], params: dict[str, Any]) -> tuple[Dim, Dim, Dim]:
    x = in_shapes["inputs"]
    expect_rank("inputs", x, "B N D")
    num_slots, slot_size = int(params["num_slots"]), int(params["slot_size"])
    init = optional_shape(in_shapes, "slots")
    if init is not None:
        expected = (x[0], Dim.of(num_slots), Dim.of(slot_size))
        if len(init) != 3 or tuple(init) != expected:
            raise ShapeError(f"input 'slots': expected (b, k, d) = {fmt_shape(expected)}, "
                             f"got {fmt_shape(init)}")
    if params.get("implicit_grad") and params.get("straight_through"):
        raise ShapeError("'implicit_grad' and 'straight_through' exclude each other: both change "
                         "the gradient of the last iteration (set one)")
    for name in ("num_slots", "slot_size", "iterations"):
        if name in params and int(params[name]) < 1:
            raise ShapeError(f"'{name}': expected a positive integer, got {params[name]}")
    heads = int(params["heads"])
    if int(params["slot_size"]) % heads:
        raise ShapeError(f"'heads': expected a divisor of slot_size {params['slot_size']} (each head "
                         f"gets slot_size / heads features), got {heads}")
    return x[0], x[1], x[2]


def _infer(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Shape]:
    b, n, _ = _check(in_shapes, params)
    k, d = Dim.of(int(params["num_slots"])), Dim.of(int(params["slot_size"]))
    return {"slots": (b, k, d), "attention": (b, k, n)}


def _init_args(in_shapes: dict[str, Shape], params: dict[str, Any]) -> dict[str, Any]:
    _, _, din = _check(in_shapes, params)
    slot_size = int(params["slot_size"])
    return {
        "in_features": din.value,
        "num_slots": int(params["num_slots"]),
        "slot_size": slot_size,
        "mlp_hidden": int(params.get("mlp_hidden", 2 * slot_size)),
        "iterations": int(params["iterations"]),
        "epsilon": float(params["epsilon"]),
        "ln_eps": float(params["ln_eps"]),
        "implicit_grad": bool(params["implicit_grad"]),
        "init": params["init"],
        "slot_init": params["slot_init"],
        "straight_through": bool(params["straight_through"]),
        **({"heads": int(params["heads"])} if int(params["heads"]) != 1 else {}),
    }


register(OpDef(
    name="slot_attention",
    module=SlotAttention,
    inputs=(
        Port("inputs", "B N D", doc="input features, e.g. the flattened CNN feature map"),
        Port("slots", "B K D", optional=True,
             doc="initial slots; when absent, sampled from N(mu, exp(log_sigma)^2)"),
    ),
    outputs=("slots", "attention"),
    params={
        "num_slots": size("number of slots K"),
        "slot_size": size("slot size D (also the q/k/v size); paper: 64"),
        "mlp_hidden": size("hidden size of the residual slot MLP; default 2 * slot_size "
                           "(paper: 128)"),
        "iterations": integer("attention iterations T (Alg. 1 l.4)", minimum=1),
        "epsilon": number("added to the attention before the weighted mean (Alg. 1 l.8)",
                          minimum=0),
        "ln_eps": number("LayerNorm epsilon; 1e-5 is PyTorch's default, the official Keras "
                         "code uses 1e-3", exclusiveMinimum=0),
        "implicit_grad": boolean("detach the slots before the last iteration (implicit "
                                 "differentiation, Chang et al. 2022)"),
        "slot_init": enum("initial slots: 'gaussian' (the paper: one shared learned Gaussian, "
                          "sampled) or 'learned' (K fixed learnable slots, N(0, 1) init, no "
                          "noise: SAVi / ISA ParamStateInit, BO-QSA queries)",
                          list(SLOT_INITS)),
        "straight_through": boolean("BO-QSA (Jia et al. 2023): detach the slots before the last "
                                    "iteration and pass the gradient straight to the initial "
                                    "slots"),
        "heads": integer("attention heads; each gets slot_size / heads features and its own "
                         "softmax over the slots (1 = Algorithm 1)", minimum=1),
        "init": enum("parameter init: PyTorch defaults ('torch') or the official code's Keras "
                     "defaults ('keras': glorot / orthogonal, zero biases)",
                     ["torch", "keras"]),
    },
    infer=_infer,
    init_args=_init_args,
    required=("num_slots", "slot_size"),
    symmetries=(
        Symmetry("permutation_equivariance", {"slots": "K"},
                 {"slots": "K", "attention": "K"},
                 doc="permuting the initial slots permutes the output slots and attention "
                     "rows (needs the `slots` input, or a fixed seed)"),
        Symmetry("permutation_invariance", {"inputs": "N"}, {"slots": None},
                 doc="the slots do not depend on the order of the inputs"),
        Symmetry("permutation_equivariance", {"inputs": "N"}, {"attention": "N"},
                 doc="permuting the inputs permutes the attention columns"),
    ),
    summary="Slot Attention (Locatello et al. 2020, Alg. 1)",
))
