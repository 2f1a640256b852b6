"""Benchmark (not a timed test): what the Hungarian matching of Slot Attention's set
prediction (specs/slot_attention_set_prediction.toml) costs against the model's forward
pass, in one process.

Three zero-argument calls on one random batch, alternated in rounds (bench/_timing.py): the
model's forward (no grad), the matching alone (the pairwise Huber costs of the predicted
and true objects, then scipy's ``linear_sum_assignment`` per image,
``ocdsl.losses.matching.hungarian``) and the whole loss (``hungarian_huber``). The targets
are the generator's property vectors of real Multi-dSprites images. Reported: each median
and the ratios matching / forward and loss / forward; on a shared machine compare only the
ratios.

    python bench/run_set_matching.py                      # the spec's batch (32 images)
    python bench/run_set_matching.py --batch 512 --json out.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _timing import alternate, matching_bench, matching_report  # noqa: E402

from ocdsl.data.multi_dsprites import generate  # noqa: E402
from ocdsl.losses import functions as fn  # noqa: E402
from ocdsl.losses.matching import hungarian  # noqa: E402


def main(argv=None) -> dict:
    args, spec, b, model = matching_bench(__doc__.splitlines()[0],
                                          str(REPO / "specs" / "slot_attention_set_prediction.toml"), argv)
    data = generate(b, 0)
    image = torch.from_numpy(data["image"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    target = torch.from_numpy(data["properties"])
    feed = {"image": image, "properties": target}
    with torch.no_grad():
        pred = model(feed)["properties_pred"]
    padded = F.pad(target, (0, 0, 0, pred.shape[1] - target.shape[1]))

    def forward():
        with torch.no_grad():
            model(feed)

    res = alternate({"forward": forward, "matching": lambda: hungarian(fn.huber_costs(pred, padded)),
                     "hungarian_huber": lambda: fn.hungarian_huber(pred, target)},
                    rounds=args.rounds, steps_per_round=args.steps_per_round)
    return matching_report(res, spec, args, header=f"{b} images", match="matching", loss="hungarian_huber",
                           loss_label="loss", images=b, slots=int(pred.shape[1]))


if __name__ == "__main__":
    main()
