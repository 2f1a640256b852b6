"""The ASAE figures' geometry: the window box and the write segmentation."""

from __future__ import annotations

import torch

from ocdsl.ops.filterbank import gaussian_filterbank
from ocdsl.viz.sequential import save_canvas_steps, window_box, write_segmentation


def test_window_box_spans_the_filter_centres():
    window = torch.tensor([[0.3, -0.2, 1.0, -1.5, 0.0]])  # filters well inside the frame
    h, w, n = 40, 50, 6
    fx, fy, _ = gaussian_filterbank(window.double(), h, w, n)
    x0, y0, x1, y1 = window_box(window.double(), h, w, n)[0].tolist()
    cols = torch.arange(w, dtype=torch.float64) + 1          # index origin 1
    centres = (fx[0] * cols).sum(-1) - 1                      # 0-based, each filter's mean
    delta = (centres[1] - centres[0]).item()
    assert abs(x0 - (centres[0].item() - delta / 2)) < 1e-6 and abs(x1 - (centres[-1].item() + delta / 2)) < 1e-6
    rows = torch.arange(h, dtype=torch.float64) + 1
    cy = (fy[0] * rows).sum(-1) - 1
    assert abs((y0 + y1) / 2 - cy.mean().item()) < 1e-6


def test_write_segmentation_picks_the_step_with_most_ink(tmp_path):
    writes = torch.zeros(1, 3, 1, 2, 2)
    writes[0, 1, 0, 0, 0] = 0.9
    writes[0, 2, 0, 1, 1] = 0.5
    writes[0, 0, 0, 1, 1] = 0.2
    seg = write_segmentation(writes)
    assert seg.tolist() == [[[1, 0], [0, 2]]]
    img = torch.rand(1, 1, 2, 2)
    boxes = window_box(torch.zeros(1, 3, 5), 2, 2, 2)
    out = save_canvas_steps(tmp_path / "c.png", img, torch.rand(1, 3, 1, 2, 2), boxes, seg, seg)
    assert out.stat().st_size > 0
