"""Recipe-search harness: train the hand-written Slot Attention (bench/reference_slot_attention.py)
on procedurally generated Tetrominoes for a fixed step count and/or wall-time budget, and
log ARI-FG on the 10 real DeepMind Tetrominoes images and on held-out generated images.

    .venv/bin/python bench/recipe/train.py --name base --batch 16 --lr 4e-4 --warmup 1000 \
        --time-budget 750 --eval-every 250

Every log line is JSON: step, seconds (training wall time since the first step, evaluation
excluded), wall (process wall time since start, everything included), loss (mean since the last
log line), lr, and at evaluation steps ari_fg_real / ari_fg_gen (+ mse_gen).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

T_PROCESS = time.time()

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import adjusted_rand_score

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, ROOT)

from reference_slot_attention import build_model, lr_at  # noqa: E402

REAL = "/work/shared/data/tetrominoes/tetrominoes_emorl_test10.npz"


def to_tensor(images_u8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images_u8)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def ari_fg(pred: np.ndarray, true: np.ndarray) -> float:
    """pred, true: int [N, H, W]; true 0 = background. Mean over images of ARI on fg pixels."""
    scores = []
    for p, t in zip(pred, true):
        fg = t != 0
        scores.append(adjusted_rand_score(t[fg], p[fg]))
    return float(np.mean(scores))


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: np.ndarray, iters=None, bs=100):
    model.eval()
    preds, mse = [], 0.0
    with torch.random.fork_rng():
        torch.manual_seed(1234)
        for i in range(0, len(images), bs):
            x = images[i : i + bs]
            out = model(x, iters=iters)
            preds.append(out["masks"].argmax(1).numpy())
            mse += F.mse_loss(out["recon"], x, reduction="sum").item()
    model.train()
    pred = np.concatenate(preds)
    return ari_fg(pred, labels), mse / images.numel()


def load_real():
    d = np.load(REAL)
    labels = d["mask"][..., 0].argmax(1)  # [10, 35, 35], 0 = background
    return to_tensor(d["image"]), labels


class Stream:
    """Training batches from ocdsl.data.tetrominoes.generate.

    mode 'fly': generate(batch, seed, start=step*batch) every step (about 1 ms for 16 images).
    mode 'pool': pre-generate `pool` images once, then sample random batches from them.
    """

    def __init__(self, batch, seed, mode="fly", pool=0):
        from ocdsl.data.tetrominoes import generate

        self.generate, self.batch, self.seed, self.mode = generate, batch, seed, mode
        self.rng = np.random.default_rng(seed)
        self.next_start = 0
        if mode == "pool":
            t = time.time()
            self.pool = to_tensor(generate(pool, seed=seed)["image"])
            print(f"# pool of {pool} generated in {time.time() - t:.1f}s", flush=True)

    def __next__(self):
        if self.mode == "pool":
            idx = torch.from_numpy(self.rng.integers(0, len(self.pool), self.batch))
            return self.pool[idx]
        d = self.generate(self.batch, seed=self.seed, start=self.next_start)
        self.next_start += self.batch
        return to_tensor(d["image"])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--seed", type=int, default=0, help="model / torch seed")
    ap.add_argument("--data-seed", type=int, default=None, help="default: same as --seed")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--decay", type=float, default=1e5, help="exponential half-life (steps)")
    ap.add_argument("--cosine-total", type=int, default=None,
                    help="cosine decay to final-frac*lr at this step (replaces exp decay)")
    ap.add_argument("--final-frac", type=float, default=0.0)
    ap.add_argument("--clip", type=float, default=None)
    ap.add_argument("--implicit-grad", action="store_true")
    ap.add_argument("--keras-init", action="store_true")
    ap.add_argument("--ln-eps", type=float, default=1e-5)
    ap.add_argument("--train-iters", type=int, default=3)
    ap.add_argument("--eval-iters", type=int, default=3)
    ap.add_argument("--adam-beta2", type=float, default=0.999)
    ap.add_argument("--slot-init", choices=["gaussian", "learned"], default="gaussian")
    ap.add_argument("--straight-through", action="store_true")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast forward")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--data", choices=["fly", "pool"], default="fly")
    ap.add_argument("--pool", type=int, default=20000)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--time-budget", type=float, default=750.0, help="training seconds")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--gen-test", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    data_seed = args.seed if args.data_seed is None else args.data_seed
    out_path = args.out or os.path.join(HERE, "logs", f"{args.name}.jsonl")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    fout = open(out_path, "w")

    def log(rec):
        line = json.dumps(rec)
        print(line, flush=True)
        fout.write(line + "\n")
        fout.flush()

    log({"config": vars(args)})

    from ocdsl.data.tetrominoes import generate

    real_x, real_y = load_real()
    g = generate(args.gen_test, seed=10_000 + 7)  # held-out: a seed never used for training
    gen_x, gen_y = to_tensor(g["image"]), np.asarray(g["mask"]).astype(np.int64)

    model = build_model(
        implicit_grad=args.implicit_grad, keras_init=args.keras_init, ln_eps=args.ln_eps,
        iters=args.train_iters, slot_init=args.slot_init,
        straight_through=args.straight_through,
    )
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-8,
                           betas=(0.9, args.adam_beta2))
    fwd = torch.compile(model) if args.compile else model
    stream = Stream(args.batch, data_seed, args.data, args.pool)

    def lr_fn(step):
        return lr_at(step, args.lr, args.warmup, args.decay, args.cosine_total, args.final_frac)

    def do_eval(step, t_train):
        t = time.time()
        ar, _ = evaluate(model, real_x, real_y, iters=args.eval_iters)
        ag, mse = evaluate(model, gen_x, gen_y, iters=args.eval_iters)
        log({"step": step, "seconds": round(t_train, 1), "wall": round(time.time() - T_PROCESS, 1),
             "ari_fg_real": round(ar, 4), "ari_fg_gen": round(ag, 4), "mse_gen": round(mse, 5),
             "eval_s": round(time.time() - t, 1)})

    step, t_train, losses, gnorms = 0, 0.0, [], []
    log({"startup_s": round(time.time() - T_PROCESS, 1)})
    while step < args.max_steps and t_train < args.time_budget:
        x = next(stream)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        t0 = time.time()
        lr = lr_fn(step)
        for grp in opt.param_groups:
            grp["lr"] = lr
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            out = fwd(x)
        loss = F.mse_loss(out["recon"].float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip or float("inf"))
        gnorms.append(float(gn))
        opt.step()
        losses.append(loss.item())
        t_train += time.time() - t0
        step += 1
        if not math.isfinite(losses[-1]):
            log({"step": step, "error": "non-finite loss"})
            break
        if step % args.log_every == 0:
            log({"step": step, "seconds": round(t_train, 1), "wall": round(time.time() - T_PROCESS, 1),
                 "loss": round(float(np.mean(losses)), 5), "lr": lr,
                 "gnorm": round(float(np.median(gnorms)), 3)})
            losses, gnorms = [], []
        if step % args.eval_every == 0:
            do_eval(step, t_train)
    if step % args.eval_every != 0:
        do_eval(step, t_train)
    torch.save(model.state_dict(), out_path[: -len(".jsonl")] + ".pt")
    log({"done": True, "steps": step, "seconds": round(t_train, 1),
         "wall": round(time.time() - T_PROCESS, 1), "s_per_step": round(t_train / max(1, step), 4)})
    fout.close()


if __name__ == "__main__":
    main()
