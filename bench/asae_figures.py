"""The attentive sequential auto-encoder's evaluation figures and numbers (issue 12, item 6),
from a run of specs/asae.toml (or a variant):

- ``canvas_steps.png``: for the first test scenes, the canvas after every step with that
  step's read/write window drawn on it, each pixel's step (the write segmentation) and the
  true digits;
- ``step_errors.png``: the reconstruction error (MSE per pixel) after every step;
- on stdout (and ``asae_eval.json``): ARI-FG of the write segmentation (each pixel to the
  step whose write added the most ink there), the final canvas's MSE per pixel, the error
  per step.

    python bench/asae_figures.py specs/asae.toml runs/asae/<timestamp> [--size 500]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ocdsl.data import make_dataset
from ocdsl.metrics import evaluate
from ocdsl.pipeline import build
from ocdsl.train.checkpoint import load_checkpoint, load_model_state
from ocdsl.viz.sequential import save_canvas_steps, save_step_errors, window_box, write_segmentation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("run")
    ap.add_argument("--size", type=int, default=500, help="test scenes (default 500)")
    ap.add_argument("--node", default="draw", help="the repeat node (default draw)")
    ap.add_argument("--rows", type=int, default=6)
    args = ap.parse_args()
    c = build(args.spec)
    spec = c.spec
    model = c.instantiate(torch_compile=False)
    state, path = load_checkpoint(Path(args.run), spec=spec)
    load_model_state(model, state["model"], path)
    model.eval()
    ds = make_dataset(spec.data["data"], "test", spec.path.parent, size=args.size, spec_file=str(spec.path))
    loader = torch.utils.data.DataLoader(ds, batch_size=50)
    n = args.node
    glimpse = spec.dims.get("N")
    aris, finals, per_step, shown = [], [], [], None
    with torch.no_grad():
        for batch in loader:
            image, labels = batch["image"], batch["mask"]
            out = model(image)
            canvases, writes = out[f"{n}.canvas"], out[f"{n}.write"]
            seg_scores = writes.amax(dim=2)                                    # b t h w
            aris.append(evaluate(["ari_fg"], seg_scores, labels)["ari_fg"])
            err = (canvases - image[:, None]).pow(2).flatten(2).mean(2)      # b t
            per_step.append(torch.cat([image.pow(2).flatten(1).mean(1, keepdim=True), err], 1))
            finals.append(err[:, -1])
            if shown is None:
                k = args.rows
                boxes = window_box(out[f"{n}.window"][:k], image.shape[-2], image.shape[-1], glimpse)
                shown = (image[:k], canvases[:k], boxes, write_segmentation(writes[:k]), labels[:k])
    ari = torch.cat(aris)
    result = {"step": int(state["step"]), "images": int(ari.numel()),
              "ari_fg_write_segmentation": float(ari.nanmean()),
              "mse_per_pixel_final_canvas": float(torch.cat(finals).mean()),
              "mse_per_pixel_per_step": [float(v) for v in torch.cat(per_step).mean(0)]}
    out_dir = Path(args.run) / "figures"
    save_canvas_steps(out_dir / "canvas_steps.png", *shown)
    save_step_errors(out_dir / "step_errors.png", result["mse_per_pixel_per_step"])
    (Path(args.run) / "asae_eval.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
