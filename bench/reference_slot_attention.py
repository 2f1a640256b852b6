"""Hand-written reference Slot Attention autoencoder (Locatello et al., NeurIPS 2020).

Architecture = the paper's Multi-dSprites / Tetrominoes model (docs/papers.md, Slot Attention):

  encoder   4 x Conv(32, 5x5, pad 2, ReLU) -> soft position embedding (added) -> flatten
            -> LayerNorm -> Linear(32) ReLU Linear(32)
  slots     Slot Attention, K=4 slots of size 64, T=3 iterations, bias-free q/k/v,
            softmax over slots, +eps 1e-8, weighted mean, GRUCell(64),
            residual MLP 64 -> 128 (ReLU) -> 64 on LayerNorm(slots);
            slots_0 = mu + exp(log_sigma) * N(0, 1), mu / log_sigma learned [1, 1, 64]
  decoder   broadcast each slot to 35x35 -> soft position embedding (added)
            -> 3 x Conv(32, 5x5, pad 2, ReLU) -> Conv(4, 3x3, pad 1) = RGB + alpha logit
  output    alphas softmaxed over slots, recon = sum_k alpha_k * rgb_k; MSE loss on images in
            [-1, 1]; Adam.

Self-contained (torch + einops only): also used as the hand-written baseline that ocdsl's
generated model is benchmarked against.

Training-only option (does not change the architecture or the forward values):
  implicit_grad=True detaches the slots before the last iteration (Chang et al., 2022,
  "Object Representations as Fixed Points"), i.e. gradients flow only through the final
  iteration.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

__all__ = [
    "SoftPositionEmbed",
    "SlotAttention",
    "SlotAttentionAutoEncoder",
    "build_model",
    "train_step",
    "lr_at",
    "DEFAULTS",
]

DEFAULTS = dict(
    resolution=(35, 35),
    in_channels=3,
    num_slots=4,
    slot_size=64,
    mlp_hidden=128,
    hid=32,  # encoder / decoder channels
    iters=3,
    eps=1e-8,
    ln_eps=1e-5,  # PyTorch default; the official (Keras) code uses 1e-3
    implicit_grad=False,
    keras_init=False,  # glorot-uniform weights, zero biases, orthogonal GRU recurrent weights
    slot_init="gaussian",  # "learned": fixed learnable per-slot initial slots (ISA/SAVi)
    straight_through=False,  # BO-QSA: detached last iteration, identity gradient to the init
)


def build_grid(h: int, w: int) -> torch.Tensor:
    """[1, h, w, 4] grid of [y, x, 1 - y, 1 - x] on linspace(0, 1)."""
    ys = torch.linspace(0.0, 1.0, h)
    xs = torch.linspace(0.0, 1.0, w)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([yy, xx, 1.0 - yy, 1.0 - xx], dim=-1)
    return grid.unsqueeze(0)


class SoftPositionEmbed(nn.Module):
    """Adds Linear(4 -> C, bias) of the [y, x, 1-y, 1-x] grid to a [B, C, H, W] feature map."""

    def __init__(self, channels: int, resolution: tuple[int, int]):
        super().__init__()
        self.proj = nn.Linear(4, channels)
        self.register_buffer("grid", build_grid(*resolution), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = rearrange(self.proj(self.grid), "1 h w c -> 1 c h w")
        return x + pos


class SlotAttention(nn.Module):
    def __init__(
        self,
        num_slots: int,
        slot_size: int,
        input_size: int,
        mlp_hidden: int,
        iters: int = 3,
        eps: float = 1e-8,
        ln_eps: float = 1e-5,
        implicit_grad: bool = False,
        slot_init: str = "gaussian",
        straight_through: bool = False,
    ):
        super().__init__()
        self.num_slots = num_slots
        self.slot_init = slot_init
        self.straight_through = straight_through
        self.slot_size = slot_size
        self.iters = iters
        self.eps = eps
        self.implicit_grad = implicit_grad
        self.scale = slot_size**-0.5

        self.norm_inputs = nn.LayerNorm(input_size, eps=ln_eps)
        self.norm_slots = nn.LayerNorm(slot_size, eps=ln_eps)
        self.norm_mlp = nn.LayerNorm(slot_size, eps=ln_eps)
        self.to_q = nn.Linear(slot_size, slot_size, bias=False)
        self.to_k = nn.Linear(input_size, slot_size, bias=False)
        self.to_v = nn.Linear(input_size, slot_size, bias=False)
        self.gru = nn.GRUCell(slot_size, slot_size)
        self.mlp = nn.Sequential(
            nn.Linear(slot_size, mlp_hidden), nn.ReLU(), nn.Linear(mlp_hidden, slot_size)
        )
        if slot_init == "gaussian":
            self.slots_mu = nn.Parameter(torch.empty(1, 1, slot_size))
            self.slots_log_sigma = nn.Parameter(torch.empty(1, 1, slot_size))
            # glorot-uniform on a [1, 1, D] variable (the official code's initialiser)
            limit = math.sqrt(6.0 / (1 + slot_size))
            nn.init.uniform_(self.slots_mu, -limit, limit)
            nn.init.uniform_(self.slots_log_sigma, -limit, limit)
        else:  # ISA/SAVi ParamStateInit: K x D, N(0, 1), no sampling
            self.slots_init = nn.Parameter(torch.randn(1, num_slots, slot_size))

    def step(self, slots, k, v):
        b, n_slots, d = slots.shape
        q = self.to_q(self.norm_slots(slots))  # [B, K, D]
        logits = torch.einsum("bnd,bkd->bkn", k, q) * self.scale  # [B, K, N]
        attn = logits.softmax(dim=1) + self.eps  # softmax over slots
        weights = attn / attn.sum(dim=-1, keepdim=True)  # weighted mean over inputs
        updates = torch.einsum("bkn,bnd->bkd", weights, v)
        slots = self.gru(updates.reshape(-1, d), slots.reshape(-1, d)).reshape(b, n_slots, d)
        slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn

    def forward(self, inputs: torch.Tensor, num_slots: int | None = None, iters: int | None = None):
        b = inputs.shape[0]
        n_slots = num_slots or self.num_slots
        iters = iters or self.iters
        inputs = self.norm_inputs(inputs)
        k = self.to_k(inputs)
        v = self.to_v(inputs)
        if self.slot_init == "learned":
            slots = self.slots_init.expand(b, -1, -1)
        else:
            mu = self.slots_mu.expand(b, n_slots, -1)
            sigma = self.slots_log_sigma.exp().expand(b, n_slots, -1)
            slots = mu + sigma * torch.randn_like(mu)
        init = slots
        attn = None
        for i in range(iters):
            if self.implicit_grad and i == iters - 1:
                slots = slots.detach()
            if self.straight_through and i == iters - 1:  # BO-QSA
                slots = slots.detach() + init - init.detach()
            slots, attn = self.step(slots, k, v)
        return slots, attn


class SlotAttentionAutoEncoder(nn.Module):
    def __init__(
        self,
        resolution=(35, 35),
        in_channels=3,
        num_slots=4,
        slot_size=64,
        mlp_hidden=128,
        hid=32,
        iters=3,
        eps=1e-8,
        ln_eps=1e-5,
        implicit_grad=False,
        keras_init=False,
        slot_init="gaussian",
        straight_through=False,
    ):
        super().__init__()
        self.resolution = tuple(resolution)
        self.num_slots = num_slots
        h, w = self.resolution

        enc = []
        c = in_channels
        for _ in range(4):
            enc += [nn.Conv2d(c, hid, 5, padding=2), nn.ReLU()]
            c = hid
        self.encoder = nn.Sequential(*enc)
        self.encoder_pos = SoftPositionEmbed(hid, self.resolution)
        self.norm = nn.LayerNorm(hid, eps=ln_eps)
        self.mlp = nn.Sequential(nn.Linear(hid, hid), nn.ReLU(), nn.Linear(hid, hid))

        self.slot_attention = SlotAttention(
            num_slots, slot_size, hid, mlp_hidden, iters, eps, ln_eps, implicit_grad,
            slot_init, straight_through
        )

        self.decoder_pos = SoftPositionEmbed(slot_size, self.resolution)
        dec = []
        c = slot_size
        for _ in range(3):
            dec += [nn.Conv2d(c, hid, 5, padding=2), nn.ReLU()]
            c = hid
        dec += [nn.Conv2d(hid, in_channels + 1, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

        if keras_init:
            self._keras_init()

    def _keras_init(self):
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GRUCell):
                d = m.hidden_size
                for g in range(3):
                    nn.init.xavier_uniform_(m.weight_ih[g * d : (g + 1) * d])
                    nn.init.orthogonal_(m.weight_hh[g * d : (g + 1) * d])
                nn.init.zeros_(m.bias_ih)
                nn.init.zeros_(m.bias_hh)

    def forward(self, image: torch.Tensor, iters: int | None = None) -> dict[str, torch.Tensor]:
        b, c, h, w = image.shape
        x = self.encoder(image)
        x = self.encoder_pos(x)
        x = rearrange(x, "b c h w -> b (h w) c")
        x = self.mlp(self.norm(x))

        slots, attn = self.slot_attention(x, iters=iters)  # [B, K, D], [B, K, N]
        k = slots.shape[1]

        z = repeat(slots, "b k d -> (b k) d h w", h=h, w=w)
        z = self.decoder_pos(z)
        out = self.decoder(z)
        out = rearrange(out, "(b k) c h w -> b k c h w", b=b, k=k)
        rgb, alpha_logits = out[:, :, :c], out[:, :, c:]
        alphas = alpha_logits.softmax(dim=1)  # over slots
        recon = (rgb * alphas).sum(dim=1)
        return {
            "recon": recon,  # [B, 3, H, W]
            "masks": alphas.squeeze(2),  # [B, K, H, W]
            "slots": slots,  # [B, K, D]
            "rgb": rgb,  # [B, K, 3, H, W]
            "attn": rearrange(attn, "b k (h w) -> b k h w", h=h, w=w),
        }


def build_model(**overrides) -> SlotAttentionAutoEncoder:
    cfg = dict(DEFAULTS)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise TypeError(f"unknown options: {sorted(unknown)}")
    cfg.update(overrides)
    return SlotAttentionAutoEncoder(**cfg)


def lr_at(step: int, base_lr: float = 4e-4, warmup: int = 10_000, decay: float = 100_000.0,
          cosine_total: int | None = None, final_frac: float = 0.0) -> float:
    """Learning rate at `step` (0-based).

    Paper: base_lr * min(1, step / warmup) * 0.5 ** (step / decay).
    With cosine_total: linear warm-up then cosine from base_lr down to final_frac * base_lr at
    step cosine_total (the exponential decay is then not used).
    """
    w = min(1.0, step / warmup) if warmup > 0 else 1.0
    if cosine_total is None:
        return base_lr * w * 0.5 ** (step / decay)
    t = min(1.0, max(0.0, (step - warmup) / max(1, cosine_total - warmup)))
    return base_lr * w * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * t)))


def train_step(model: nn.Module, opt: torch.optim.Optimizer, batch: torch.Tensor,
               clip: float | None = None, lr: float | None = None) -> float:
    """One Adam step on `batch` ([B, 3, H, W] in [-1, 1]); returns the MSE loss."""
    if lr is not None:
        for g in opt.param_groups:
            g["lr"] = lr
    model.train()
    out = model(batch)
    loss = F.mse_loss(out["recon"], batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return float(loss.detach())
