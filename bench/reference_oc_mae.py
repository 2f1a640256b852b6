"""Hand-written reference object-centric MAE (Vikström & Ilin, NeurIPS 2022 workshop).

Architecture = the paper's Tetrominoes model (docs/papers.md, Object-centric MAE, Table 7):

  encoder   Conv2d(3, 192, kernel = stride = 5) patch embedding, fixed 2-D sin-cos position
            embedding on the 7x7 patches; per-sample random masking keeps floor(N (1 - r))
            patches (MAE: argsort of uniform noise); K = 4 class tokens (N(0, 0.002^2))
            prepended; 4 pre-LN blocks (192 wide, 4 heads, mlp_ratio 2, GELU, qkv bias,
            scaled_dot_product_attention); final LayerNorm
  objects   logits = Z C^T / sqrt(192), softmax over the K tokens (Eq. 1),
            w = a / (sum_patches a + 1e-8), slot_k = sum_i w_ik z_i (Eq. 2)
  broadcast per slot and kept patch [slot_k ; log a_ik] -> Linear(193 -> 128); mask tokens
            (N(0, 0.02^2)) at the dropped patches; unshuffle; fixed sin-cos decoder embedding
  decoder   2 pre-LN blocks per slot (128 wide, 4 heads, mlp_ratio 2), LayerNorm,
            Linear(128 -> 5 * 5 * 4), unpatchify to RGB + alpha per slot
  output    alphas softmaxed over the slots, recon = sum_k m_k x_k (Eq. 3)
  losses    MSE on [-1, 1] images (Eq. 4) + w_pixel * pixel entropy (Eq. 5) + w_object *
            entropy of the mean masks (Eq. 6) (Eq. 7); AdamW, weight decay on matrices only.
  init      Linear xavier-uniform, zero bias; patch kernel xavier-uniform as a matrix.

Self-contained (torch + einops only): the hand-written baseline that the model ocdsl
generates from specs/oc_mae.toml is benchmarked against (bench/run_oc_mae.py). It is written
the straightforward way (the broadcast concatenation is materialised; masking always
shuffles, also at ratio 0). ``load_ocdsl_state`` copies the weights of the generated model,
so the two can be compared output for output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

__all__ = ["ObjectCentricMAE", "build_model", "losses", "make_optimizer", "train_step",
           "load_ocdsl_state", "DEFAULTS"]

DEFAULTS = dict(resolution=35, channels=3, patch=5, num_slots=4, dim=192, depth=4, heads=4,
                dec_dim=128, dec_depth=2, dec_heads=4, mlp_ratio=2.0)


def sincos_table(dim: int, grid: int) -> torch.Tensor:
    """[grid * grid, dim]: patch (row, col) -> [sin/cos of col ; sin/cos of row] (MAE)."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64),
                                torch.arange(grid, dtype=torch.float64), indexing="ij")

    def one(pos):
        ang = pos.reshape(-1, 1) * omega
        return torch.cat([ang.sin(), ang.cos()], dim=1)

    return torch.cat([one(cols), one(rows)], dim=1).float()


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
        self.fc2 = nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x):
        q, k, v = rearrange(self.qkv(self.norm1(x)), "b n (t h e) -> t b h n e", t=3, h=self.heads)
        x = x + self.proj(rearrange(F.scaled_dot_product_attention(q, k, v), "b h n e -> b n (h e)"))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ObjectCentricMAE(nn.Module):
    def __init__(self, resolution=35, channels=3, patch=5, num_slots=4, dim=192, depth=4, heads=4,
                 dec_dim=128, dec_depth=2, dec_heads=4, mlp_ratio=2.0):
        super().__init__()
        self.res, self.patch, self.k, self.dim = resolution, patch, num_slots, dim
        grid = resolution // patch
        self.patch_embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.register_buffer("pos_embed", sincos_table(dim, grid), persistent=False)
        self.cls_tokens = nn.Parameter(torch.randn(1, num_slots, dim) * 0.002)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.decoder_embed = nn.Linear(dim + 1, dec_dim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, dec_dim) * 0.02)
        self.register_buffer("decoder_pos_embed", sincos_table(dec_dim, grid), persistent=False)
        self.decoder_blocks = nn.ModuleList(Block(dec_dim, dec_heads, mlp_ratio) for _ in range(dec_depth))
        self.decoder_norm = nn.LayerNorm(dec_dim)
        self.decoder_pred = nn.Linear(dec_dim, patch * patch * (channels + 1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(dim, -1))

    def random_masking(self, x, ratio):
        b, n, d = x.shape
        keep = max(1, math.floor(n * (1 - ratio) + 1e-9))
        ids_shuffle = torch.rand(b, n, device=x.device).argsort(dim=1)
        ids_restore = ids_shuffle.argsort(dim=1)
        kept = torch.gather(x, 1, repeat(ids_shuffle[:, :keep], "b l -> b l d", d=d))
        mask = (ids_restore >= keep).float()
        return kept, mask, ids_restore

    def forward(self, imgs, mask_ratio=0.75, noise=0.0):
        b = imgs.shape[0]
        x = rearrange(self.patch_embed(imgs), "b d h w -> b (h w) d") + self.pos_embed
        x, mask, ids_restore = self.random_masking(x, mask_ratio)
        cls = self.cls_tokens.expand(b, -1, -1)
        if noise > 0 and self.training:
            cls = cls + noise * torch.randn_like(cls)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        cls, z = x[:, :self.k], x[:, self.k:]                          # (b, k, d), (b, l, d)
        # object function (Eq. 1-2)
        log_attn = (z @ cls.transpose(1, 2) * self.dim ** -0.5).log_softmax(dim=-1)  # (b, l, k)
        attn = log_attn.exp()
        w = attn / (attn.sum(dim=1, keepdim=True) + 1e-8)
        slots = w.transpose(1, 2) @ z                                  # (b, k, d)
        # broadcast module
        l, n = z.shape[1], ids_restore.shape[1]
        y = torch.cat([repeat(slots, "b k d -> b k l d", l=l),
                       rearrange(log_attn, "b l k -> b k l 1")], dim=-1)
        y = self.decoder_embed(y)                                      # (b, k, l, e)
        y = torch.cat([y, self.mask_token[None].expand(b, self.k, n - l, -1)], dim=2)
        y = torch.gather(y, 2, repeat(ids_restore, "b n -> b k n e", k=self.k, e=y.shape[-1]))
        y = rearrange(y + self.decoder_pos_embed, "b k n e -> (b k) n e")
        for blk in self.decoder_blocks:
            y = blk(y)
        y = self.decoder_pred(self.decoder_norm(y))                    # ((b k), n, p p 4)
        y = rearrange(y, "(b k) (h w) (p q c) -> b k c (h p) (w q)", b=b, h=self.res // self.patch,
                      p=self.patch, q=self.patch)
        rgb, alpha = y[:, :, :-1], y[:, :, -1:]
        masks = alpha.softmax(dim=1)
        recon = (masks * rgb).sum(dim=1)
        return {"recon": recon, "masks": masks[:, :, 0], "rgb": rgb, "slots": slots,
                "mask": mask}


def build_model(**overrides) -> ObjectCentricMAE:
    return ObjectCentricMAE(**{**DEFAULTS, **overrides})


def losses(out: dict, imgs: torch.Tensor, w_pixel: float, w_object: float) -> torch.Tensor:
    m = out["masks"]
    rec = F.mse_loss(out["recon"], imgs)
    pix = -(m * torch.log(m + 1e-8)).sum(dim=1).mean()
    mm = m.mean(dim=(2, 3))
    obj = -(mm * torch.log(mm + 1e-8)).sum(dim=1).mean()
    return rec + w_pixel * pix + w_object * obj


def make_optimizer(model: nn.Module, lr: float = 5e-4, weight_decay: float = 0.05):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def train_step(model, opt, imgs, mask_ratio=0.75, w_pixel=1e-4, w_object=1e-4) -> float:
    loss = losses(model(imgs, mask_ratio), imgs, w_pixel, w_object)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


_PREFIXES = [("patches.proj.", "patch_embed."), ("cls.tokens", "cls_tokens"),
             ("encoder.blocks.", "blocks."), ("encoder.norm.", "norm."),
             ("broadcast.embed.", "decoder_embed."), ("broadcast.mask_token", "mask_token"),
             ("decoder.blocks.", "decoder_blocks."), ("decoder.norm.", "decoder_norm."),
             ("decoder.head.", "decoder_pred.")]


def load_ocdsl_state(model: ObjectCentricMAE, state: dict) -> None:
    """Copy the weights of ocdsl's generated OcMaeModel (its state_dict) into ``model``."""
    out = {}
    for key, value in state.items():
        for a, b in _PREFIXES:
            if key.startswith(a):
                out[b + key[len(a):]] = value
                break
        else:
            raise KeyError(f"no reference parameter for {key}")
    out["mask_token"] = out["mask_token"].reshape(1, 1, -1)
    model.load_state_dict(out)
