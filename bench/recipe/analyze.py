"""Per-image failure analysis of a saved checkpoint: python analyze.py logs/NAME.pt"""
import os, sys
import numpy as np, torch
from sklearn.metrics import adjusted_rand_score
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..")); sys.path.insert(0, os.path.join(HERE, "..", ".."))
from reference_slot_attention import build_model
from train import load_real, to_tensor
from ocdsl.data.tetrominoes import generate
torch.set_num_threads(2)
sd = torch.load(sys.argv[1])
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 3
m = build_model(); m.load_state_dict(sd); m.eval()
rx, ry = load_real()
g = generate(200, seed=10_007); gx, gy = to_tensor(g["image"]), g["mask"].astype(int)
for name, x, y in (("real", rx, ry), ("gen", gx, gy)):
    torch.manual_seed(1234)
    with torch.no_grad():
        out = m(x, iters=iters)
    p = out["masks"].argmax(1).numpy()
    aris, kinds = [], {}
    for pi, ti in zip(p, y):
        fg = ti != 0
        a = adjusted_rand_score(ti[fg], pi[fg]); aris.append(a)
        bgslot = np.bincount(pi[~fg], minlength=4).argmax()
        # majority slot per piece
        maj = [np.bincount(pi[ti == j], minlength=4).argmax() for j in (1, 2, 3)]
        purity = np.mean([np.mean(pi[ti == j] == mj) for j, mj in zip((1, 2, 3), maj)])
        if a > 0.95: k = "good"
        elif len(set(maj)) < 3: k = "merged" + ("+bg" if bgslot in maj else "")
        elif bgslot in maj: k = "piece=bg slot"
        else: k = f"impure({purity:.2f})"
        kinds[k] = kinds.get(k, 0) + 1
    aris = np.array(aris)
    print(name, "iters", iters, "mean ARI-FG %.4f" % aris.mean(), "median %.3f" % np.median(aris),
          "frac>0.95 %.2f" % (aris > 0.95).mean(), kinds, "mse %.4f" % float(((out['recon'] - x) ** 2).mean()))
    if name == "real": print("  per image", np.round(aris, 3))
