"""Reconstruction grid and curve figures: files, sizes, colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from ocdsl.viz import PALETTE, save_curve, save_reconstruction_figure


def inputs(b=2, k=3, c=3, h=35, w=35, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, c, h, w, generator=g)
    recon = torch.rand(b, c, h, w, generator=g)
    masks = torch.softmax(torch.randn(b, k, h, w, generator=g) * 3, dim=1)
    slot_rgb = torch.rand(b, k, c, h, w, generator=g)
    labels = torch.randint(0, 4, (b, h, w), generator=g)
    return image, recon, masks, slot_rgb, labels


@pytest.mark.parametrize("with_gt", [False, True])
def test_grid_png_has_expected_columns_and_size(tmp_path, with_gt):
    image, recon, masks, slot_rgb, labels = inputs(b=3, k=3)
    lay = save_reconstruction_figure(tmp_path / "sub" / "rec.png", image, recon, masks, slot_rgb,
                                     labels if with_gt else None, max_images=2)
    k = masks.shape[1]
    assert lay.cols == (4 if with_gt else 3) + 2 * k and lay.rows == 2
    assert lay.titles[:3] == ("input", "recon", "pred seg") and lay.titles[-2:] == ("slot 2", "mask 2")
    png = imread(lay.path)
    assert png.shape[:2] == (lay.height, lay.width)
    # square panels of >= 120 px for a 35x35 image; the grid is cols x rows panels wide/high
    x0, y0, x1, y1 = lay.boxes[(0, 0)]
    pw, ph = x1 - x0, y1 - y0
    assert abs(pw - ph) <= 1 and pw >= 120
    assert lay.cols * pw <= lay.width <= lay.cols * pw * 1.1
    assert lay.rows * ph <= lay.height <= lay.rows * ph * 1.5
    assert max(b[2] for b in lay.boxes.values()) <= lay.width


def test_width_grows_with_two_columns_per_slot(tmp_path):
    sizes = {}
    for k in (1, 4):
        image, recon, masks, slot_rgb, _ = inputs(b=1, k=k)
        lay = save_reconstruction_figure(tmp_path / f"k{k}.png", image, recon, masks, slot_rgb)
        sizes[k] = imread(lay.path).shape[:2]
    assert sizes[1][0] == sizes[4][0]                              # same height
    assert sizes[4][1] / sizes[1][1] == pytest.approx((3 + 8) / (3 + 2), rel=0.03)


def test_all_slot_zero_gives_one_colour_segmentation(tmp_path):
    image, recon, masks, slot_rgb, labels = inputs(b=2, k=4)
    masks = torch.zeros_like(masks)
    masks[:, 0] = 1.0                                              # every pixel in slot 0
    lay = save_reconstruction_figure(tmp_path / "one.png", image, recon, masks, slot_rgb, labels)
    png = imread(lay.path)[..., :3]
    col = lay.titles.index("pred seg")
    for row in range(lay.rows):
        x0, y0, x1, y1 = lay.boxes[(row, col)]
        inner = png[y0 + 3:y1 - 3, x0 + 3:x1 - 3].reshape(-1, 3)   # inside the frame
        assert np.unique(inner, axis=0).shape[0] == 1
        np.testing.assert_allclose(inner[0], PALETTE[0], atol=1 / 255 + 1e-6)
        # slot 0 shows its appearance, the other slots are blank (white) and their masks black
        x0, y0, x1, y1 = lay.boxes[(row, lay.titles.index("slot 1"))]
        assert np.all(png[y0 + 3:y1 - 3, x0 + 3:x1 - 3] == 1.0)
        x0, y0, x1, y1 = lay.boxes[(row, lay.titles.index("mask 1"))]
        assert np.all(png[y0 + 3:y1 - 3, x0 + 3:x1 - 3] == 0.0)
    # the ground-truth panel is not one colour (labels are random)
    x0, y0, x1, y1 = lay.boxes[(0, lay.titles.index("true seg"))]
    assert np.unique(png[y0 + 3:y1 - 3, x0 + 3:x1 - 3].reshape(-1, 3), axis=0).shape[0] > 1


def test_optional_columns_and_grayscale(tmp_path):
    image, _, masks, _, _ = inputs(b=1, k=2, c=1)
    lay = save_reconstruction_figure(tmp_path / "g.png", image, None, masks, None)
    assert lay.titles == ("input", "pred seg", "mask 0", "mask 1")
    assert lay.path.exists()


def test_shape_errors(tmp_path):
    image, recon, masks, slot_rgb, labels = inputs(b=2, k=3)
    with pytest.raises(ValueError, match=r"slot_rgb: expected \(b k c h w\) = \(2, 3, 3, 35, 35\)"):
        save_reconstruction_figure(tmp_path / "x.png", image, recon, masks, slot_rgb[:, :2])
    with pytest.raises(ValueError, match="masks"):
        save_reconstruction_figure(tmp_path / "x.png", image, recon, masks[..., :20], slot_rgb)
    with pytest.raises(ValueError, match="true_labels"):
        save_reconstruction_figure(tmp_path / "x.png", image, recon, masks, slot_rgb, labels[:1])


def test_save_curve(tmp_path):
    records = [{"step": 10 * i, "loss": 1.0 / (i + 1), "ari_fg": i / 10} for i in range(20)]
    records.append({"step": 200, "loss": float("nan"), "note": "nan skipped"})
    records.append({"ari_fg": 0.95})                               # no step: uses its index
    path = save_curve(tmp_path / "curves" / "c.png", records, ["loss", "ari_fg", "missing"], logy=["loss"])
    png = imread(path)
    assert png.shape[0] > 300 and png.shape[1] == 600
    with pytest.raises(ValueError, match="at least one key"):
        save_curve(tmp_path / "c2.png", records, [])


def test_masked_input_and_attention_columns(tmp_path):
    image, recon, masks, slot_rgb, labels = inputs(b=2, k=2)
    hidden = torch.zeros(2, 1, 35, 35)
    hidden[:, :, :, :20] = 1.0
    masked = image * (1 - hidden) + 0.5 * hidden                   # grey where hidden
    attention = torch.zeros(2, 2, 35, 35)
    attention[:, 1] = 1.0                                          # slot 1 takes every patch
    lay = save_reconstruction_figure(tmp_path / "m.png", image, recon, masks, slot_rgb, labels,
                                     attention=attention, masked_input=masked)
    assert lay.titles[:5] == ("input", "masked", "recon", "pred seg", "true seg")
    assert lay.titles[5:] == ("slot 0", "mask 0", "attn 0", "slot 1", "mask 1", "attn 1")
    png = imread(lay.path)[..., :3]

    def centre(col):
        x0, y0, x1, y1 = lay.boxes[(0, lay.titles.index(col))]
        return png[(y0 + y1) // 2, x0 + (x1 - x0) // 5]            # left fifth: hidden part

    assert np.allclose(centre("masked"), 0.5, atol=0.02)
    assert np.allclose(centre("attn 0"), 0.0, atol=0.02) and np.allclose(centre("attn 1"), 1.0, atol=0.02)
    with pytest.raises(ValueError, match=r"attention: expected \(b k h w\) = \(2, 2, 35, 35\)"):
        save_reconstruction_figure(tmp_path / "x.png", image, recon, masks, slot_rgb,
                                   attention=attention[:, :1])


def test_object_layers_with_their_boxes(tmp_path):
    image, recon, masks, _, labels = inputs(b=1, k=3, h=32, w=32)
    image = torch.ones_like(image)                                 # white: boxes stand out
    layers = torch.zeros(1, 2, 4, 32, 32)
    layers[:, :, :3] = 0.5                                         # grey objects ...
    layers[:, 0, 3, 8:16, 8:16] = 1.0                              # ... where the mask is on
    # box 0: the left half of the image; box 1: the right quarter (normalized, -1/+1 = edges)
    boxes = torch.tensor([[[-1.0, -1.0, 0.0, 1.0], [0.5, -0.5, 1.0, 0.5]]])
    lay = save_reconstruction_figure(tmp_path / "l.png", image, recon, masks, None, labels,
                                     layers=layers, boxes=boxes)
    assert lay.titles[-2:] == ("layer 0", "layer 1")
    png = imread(lay.path)[..., :3]

    def at(col, fx, fy):
        """Pixel at a fraction (fx, fy) of panel ``col``'s width / height."""
        x0, y0, x1, y1 = lay.boxes[(0, lay.titles.index(col))]
        return png[round(y0 + fy * (y1 - y0)), round(x0 + fx * (x1 - x0))]

    colour = [PALETTE[1], PALETTE[2]]                              # RGB in [0, 1], not near-black
    # box 0's right edge runs down the middle of the input and of layer 0, in colour 1
    assert np.allclose(at("input", 0.5, 0.5), colour[0], atol=0.08)
    assert np.allclose(at("layer 0", 0.5, 0.5), colour[0], atol=0.08)
    assert np.allclose(at("input", 0.75, 0.5), colour[1], atol=0.08)  # box 1's left edge
    assert not np.allclose(at("layer 0", 0.75, 0.5), colour[1], atol=0.08)  # only its own box
    # layer 0 is its object (grey) over white; layer 1 has a zero mask: white
    assert np.allclose(at("layer 0", 12 / 32, 12 / 32), 0.5, atol=0.02)
    assert np.allclose(at("layer 0", 0.8, 0.8), 1.0, atol=0.02)
    assert np.allclose(at("layer 1", 0.3, 0.3), 1.0, atol=0.02)
    with pytest.raises(ValueError, match=r"boxes: expected \(b k 4\) = \(1, 2, 4\)"):
        save_reconstruction_figure(tmp_path / "x.png", image, recon, masks, None, layers=layers,
                                   boxes=boxes[:, :1])


def test_mask_strip_has_a_row_per_evaluation(tmp_path):
    from ocdsl.viz.figures import save_mask_strip, strip_rows

    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 35, 35, generator=g)
    labels = torch.randint(0, 4, (4, 35, 35), generator=g)
    heights = []
    for t in (1, 2, 3):
        segs = torch.randint(0, 4, (t, 4, 35, 35), generator=g)
        lay = save_mask_strip(tmp_path / "strip.png", images, [100 * (i + 1) for i in range(t)], segs, labels)
        assert lay.rows == 2 + t and lay.cols == 4
        assert lay.titles == ("input", "true seg", *(f"step {100 * (i + 1)}" for i in range(t)))
        png = imread(lay.path)
        assert png.shape[:2] == (lay.height, lay.width)
        heights.append(lay.height)
        # the last row is the last evaluation's segmentation of image 0, in the palette's colours
        x0, y0, x1, y1 = lay.boxes[(lay.rows - 1, 0)]
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        want = PALETTE[int(segs[-1, 0, round((cy - y0) / (y1 - y0) * 35 - 0.5), round((cx - x0) / (x1 - x0) * 35 - 0.5)])]
        assert np.allclose(png[cy, cx, :3], want, atol=0.02)
    assert heights[0] < heights[1] < heights[2]
    # without the truth row; uint8 images; many evaluations: evenly spaced rows, first and last kept
    segs = torch.randint(0, 4, (50, 4, 35, 35), generator=g)
    lay = save_mask_strip(tmp_path / "many.png", (images * 255).to(torch.uint8), list(range(50)), segs, max_rows=6)
    assert lay.titles[0] == "input" and lay.titles[1] == "step 0" and lay.titles[-1] == "step 49"
    assert lay.rows == 7 and strip_rows(50, 6) == [0, 10, 20, 29, 39, 49] and strip_rows(3, 6) == [0, 1, 2]
    with pytest.raises(ValueError, match="segs"):
        save_mask_strip(tmp_path / "x.png", images, [1, 2], segs[:1])


def test_metric_curves_one_panel_per_metric_a_line_per_group(tmp_path):
    from ocdsl.viz.figures import save_metric_curves

    rows = [{"step": s, "split": split, "seed": seed, "ari_fg": s / 100 + seed, "mse": 1.0, "count": 4,
             "ari_fg_nan": 1}
            for seed in (0, 1) for split in ("test", "real") for s in (10, 20, 30)]
    rows.append({"step": 30, "event": "resume"})
    one = save_metric_curves(tmp_path / "one.png", [r for r in rows if r.get("seed") == 0])
    two = save_metric_curves(tmp_path / "seeds.png", rows, colour="seed", style="split", title="t")
    wide = imread(one).shape
    # 2 metrics (count, *_nan left out): one row of two panels; a title adds 0.4 in
    assert wide[:2] == (295, 1000) and imread(two).shape[:2] == (335, 1000)
    assert imread(save_metric_curves(tmp_path / "m.png", rows, ["ari_fg"])).shape[1] == 500
    with pytest.raises(ValueError, match="at least one metric"):
        save_metric_curves(tmp_path / "none.png", [{"step": 1, "split": "test", "count": 3}])
