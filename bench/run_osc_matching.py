"""Benchmark (not a timed test): what the Hungarian matching of contrastive slot attention
(specs/osc_contrastive.toml) costs against the model's forward pass, in one process.

Three zero-argument calls on the same random batch of ``2 * batch`` views, alternated in
rounds (bench/_timing.py): the model's forward (no grad), ``match_views`` alone (cosine
similarities, copy to numpy, scipy's ``linear_sum_assignment`` per image) on the object
projections of view 1 and 2, and the whole object loss (``ctr_all``: matching + NT-Xent).
Reported: each median and the ratios matching / forward and ctr_all / forward. The absolute
times are this machine's; on a shared machine compare only the ratios.

    python bench/run_osc_matching.py                       # the spec's batch (32 images, 64 views)
    python bench/run_osc_matching.py --batch 64 --set dims.D=256 --json out.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _timing import alternate, matching_bench, matching_report  # noqa: E402

from ocdsl.losses import functions as fn  # noqa: E402


def main(argv=None) -> dict:
    args, spec, b, model = matching_bench(__doc__.splitlines()[0],
                                          str(REPO / "specs" / "osc_contrastive.toml"), argv)
    shape = [d.value for d in spec.inputs["image"].resolve(spec.dims)[1:]]
    x = torch.randn(2 * b, *shape)
    with torch.no_grad():
        proj = model(x)["object_proj"]
    z1, z2 = fn.view(proj, 1), fn.view(proj, 2)

    def forward():
        with torch.no_grad():
            model(x)

    res = alternate({"forward": forward, "match_views": lambda: fn.match_views(z1, z2),
                     "ctr_all": lambda: fn.ctr_all(z1, z2, 0.1)},
                    rounds=args.rounds, steps_per_round=args.steps_per_round)
    return matching_report(res, spec, args, header=f"{b} images ({2 * b} views)", match="match_views",
                           loss="ctr_all", loss_label="ctr_all", images=b, views=2 * b, slots=int(z1.shape[1]))


if __name__ == "__main__":
    main()
