"""Summarise bench/recipe/logs/*.jsonl: steps, training seconds, ARI-FG at ~9 min and at the end."""
import glob, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))


# quiet-machine eager step time (s) by batch size, measured in this session (2 threads)
QUIET = {4: 0.045, 8: 0.085, 16: 0.178}


def summarize(path, t9=540.0):
    cfg, evals, done = None, [], None
    for line in open(path):
        r = json.loads(line)
        if "config" in r:
            cfg = r["config"]
        elif "ari_fg_real" in r:
            evals.append(r)
        elif "done" in r:
            done = r
    if not evals:
        return None
    # "~9 min" = the step a quiet machine reaches in 9 min (runs under contention are slower)
    s9 = t9 / QUIET[cfg["batch"]]
    at9 = min(evals, key=lambda e: abs(e["step"] - s9))
    end = evals[-1]
    best = max(evals, key=lambda e: e["ari_fg_real"])
    return dict(name=os.path.basename(path)[:-6], steps=end["step"], seconds=end["seconds"], wall=end["wall"],
                s9=at9["step"], t9=at9["seconds"], real9=at9["ari_fg_real"], gen9=at9["ari_fg_gen"],
                real=end["ari_fg_real"], gen=end["ari_fg_gen"], best_real=best["ari_fg_real"],
                quiet=end["step"] * QUIET[cfg["batch"]], done=done is not None, s_per_step=done and done["s_per_step"])


if __name__ == "__main__":
    paths = sys.argv[1:] or sorted(glob.glob(os.path.join(HERE, "logs", "*.jsonl")))
    print("| run | steps | train s (measured) | quiet est. s | step@~9min | ARI real/gen @~9min | ARI real/gen end | s/step |")
    print("|---|---|---|---|---|---|---|---|")
    for p in paths:
        s = summarize(p)
        if s:
            print(f"| {s['name']} | {s['steps']} | {s['seconds']} | {s['quiet']:.0f} | {s['s9']} | "
                  f"{s['real9']:.3f} / {s['gen9']:.3f} | {s['real']:.3f} / {s['gen']:.3f} | {s['s_per_step']} |")
