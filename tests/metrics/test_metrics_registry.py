"""MSE conventions, the METRICS registry, evaluate / concat / summarize."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from ocdsl.metrics import (DATASET_METRICS, METRICS, REQUIRES, ari_fg, concat, evaluate, miou_fg, mse,
                           summarize)


def batch(b=3, k=4, h=6, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.softmax(torch.randn(b, k, h, w, generator=g) * 3, dim=1)
    labels = torch.randint(0, 3, (b, h, w), generator=g)
    image = torch.rand(b, 3, h, w, generator=g)
    recon = torch.rand(b, 3, h, w, generator=g)
    return masks, labels, recon, image


def test_mse_conventions():
    image = torch.zeros(2, 3, 4, 4)
    recon = torch.zeros(2, 3, 4, 4)
    recon[0] = 0.5                                                 # 48 terms of 0.25
    recon[1, 0, 0, 0] = 1.0
    assert mse(recon, image).tolist() == [12.0, 1.0]               # ClevrTex: sum over c h w
    assert mse(recon, image, reduction="mean").tolist() == [0.25, 1 / 48]
    assert torch.allclose(mse(recon, image, reduction="mean") * 48, mse(recon, image))
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\)"):
        mse(recon[:, :1], image)
    with pytest.raises(ValueError, match="reduction"):
        mse(recon, image, reduction="none")


def test_registry_names_and_signature():
    assert {"ari", "ari_fg", "miou", "miou_fg", "mse"} <= set(METRICS)
    assert set(REQUIRES) == set(METRICS) | set(DATASET_METRICS)
    masks, labels, recon, image = batch()
    for name, fn in METRICS.items():
        out = fn(masks, labels, recon, image)
        assert out.shape == (3,) and out.dtype == torch.float64, name


def test_registry_is_the_catalogue_and_needs_are_exact():
    """One list of metrics: ocdsl/catalog.py (which the schema reads) has exactly the
    registered functions, and each function runs on its catalogued needs alone and fails
    without any one of them."""
    from ocdsl.catalog import METRIC_INPUTS
    from ocdsl.catalog import METRICS as CATALOG
    from ocdsl.spec.schema import spec_schema

    assert list(METRICS) == [n for n, info in CATALOG.items() if info.per_image]
    assert list(DATASET_METRICS) == [n for n, info in CATALOG.items() if not info.per_image]
    enum = spec_schema()["properties"]["eval"]["properties"]["metrics"]["items"]["enum"]
    assert enum == list(CATALOG) and "mse_mean" in enum
    full = dict(zip(("masks", "labels", "recon", "image"), batch()))
    for name, info in CATALOG.items():
        assert info.needs <= set(METRIC_INPUTS)
        if not info.per_image:
            continue
        only = {k: (v if k in info.needs else None) for k, v in full.items()}
        assert METRICS[name](only["masks"], only["labels"], only["recon"], only["image"]).shape == (3,)
        for k in info.needs - {"masks"}:  # mask metrics read the masks' argmax: None is an AttributeError
            with pytest.raises(ValueError, match=k):
                METRICS[name](**dict(full, **{k: None}))


def test_evaluate_matches_the_functions():
    masks, labels, recon, image = batch()
    names = ["ari_fg", "miou", "miou_fg", "mse", "ari", "mse_mean"]
    out = evaluate(names, masks, labels, recon, image)
    assert list(out) == names
    torch.testing.assert_close(out["ari_fg"], ari_fg(masks, labels), equal_nan=True)
    torch.testing.assert_close(out["miou_fg"], miou_fg(masks, labels), equal_nan=True)
    torch.testing.assert_close(out["mse"], mse(recon, image))
    for name in names:
        torch.testing.assert_close(out[name], METRICS[name](masks, labels, recon, image), equal_nan=True)


def test_evaluate_errors():
    masks, labels, recon, image = batch()
    with pytest.raises(ValueError, match="did you mean 'ari_fg'"):
        evaluate(["ari-fg"], masks, labels)
    with pytest.raises(ValueError, match="'mse' needs recon and image"):
        evaluate(["mse"], masks, labels)
    with pytest.raises(ValueError, match="'miou' needs labels"):
        evaluate(["miou"], masks, None, recon, image)
    assert evaluate(["mse"], None, None, recon, image)["mse"].shape == (3,)


def test_evaluate_ignores_autograd():
    masks, labels, recon, image = batch()
    recon.requires_grad_(True)
    out = evaluate(["mse", "ari"], masks.requires_grad_(True), labels, recon, image)
    assert not out["mse"].requires_grad and not out["ari"].requires_grad


def test_summarize_skips_and_counts_nan():
    s = summarize({"ari_fg": torch.tensor([1.0, float("nan"), 0.5]), "mse": torch.tensor([2.0, 4.0])})
    assert s == {"ari_fg": 0.75, "ari_fg_nan": 1.0, "mse": 3.0, "mse_nan": 0.0}
    s = summarize({"miou_fg": torch.tensor([float("nan")])})
    assert math.isnan(s["miou_fg"]) and s["miou_fg_nan"] == 1.0


def test_concat_then_summarize_over_batches():
    per = [evaluate(["ari_fg", "mse"], *batch(seed=i)) for i in range(3)]
    merged = concat(per)
    assert merged["ari_fg"].shape == (9,)
    assert summarize(merged)["mse"] == pytest.approx(torch.cat([p["mse"] for p in per]).mean().item())
    with pytest.raises(ValueError, match="differ"):
        concat([{"ari": torch.zeros(1)}, {"mse": torch.zeros(1)}])


def test_importing_metrics_and_viz_is_light():
    code = ("import sys, ocdsl.metrics, ocdsl.viz; "
            "bad = [m for m in ('matplotlib', 'scipy', 'sklearn') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_evaluate_accepts_slot_labels_and_ignores_autocast():
    masks, labels, recon, image = batch(h=16, w=16)
    names = ["ari", "ari_fg", "miou", "miou_fg", "mse"]
    ref = evaluate(names, masks, labels, recon, image)
    as_labels = evaluate(names, masks.argmax(1), labels, recon, image)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = evaluate(names, masks, labels, recon, image)
    for n in names:
        torch.testing.assert_close(as_labels[n], ref[n], equal_nan=True)
        torch.testing.assert_close(under_autocast[n], ref[n], equal_nan=True)


def test_needing_picks_the_metrics_that_read_an_input_in_order():
    """The metrics that need ground-truth masks (``labels``) are the ones evaluation skips
    on a dataset without masks and validation warns about."""
    from ocdsl.catalog import needing

    names = ["mse", "otsu_iou", "ari_fg", "nope", "probe_ap", "ari", "miou_fg", "miou"]
    assert needing(names, "labels") == ["otsu_iou", "ari_fg", "ari", "miou_fg", "miou"]
    assert needing(names, "recon") == ["mse"]
    with pytest.raises(ValueError, match="unknown metric input 'label'"):
        needing(names, "label")
