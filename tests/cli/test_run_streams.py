"""`ocdsl run`: the model is built under the run's "init" seed, not the raw train.seed."""

from __future__ import annotations

import torch

from ocdsl.cli import main
from tests.graph.test_graph import TINY, write


def test_the_model_is_built_under_the_init_seed(tmp_path, monkeypatch):
    import ocdsl.train
    from ocdsl.pipeline import build
    from ocdsl.train.rng import INIT, derive_seed

    seen = {}

    def fake_train(spec, model, **kw):
        seen["weights"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return {"status": "completed"}

    monkeypatch.setattr(ocdsl.train, "train", fake_train)
    p = write(tmp_path, TINY)
    overrides = ["train.seed=4", "dims.H=35", "dims.W=35"]
    assert main(["run", str(p), "--no-progress", "--no-compile", "--out", str(tmp_path / "r"),
                 *[a for o in overrides for a in ("--set", o)]]) == 0

    def weights(seed):
        torch.manual_seed(seed)
        m = build(p, overrides=overrides).instantiate(torch_compile=False)
        return m.state_dict()

    want, raw = weights(derive_seed(4, INIT)), weights(4)
    assert all(torch.equal(seen["weights"][k], want[k]) for k in want)
    assert not all(torch.equal(seen["weights"][k], raw[k]) for k in raw)
