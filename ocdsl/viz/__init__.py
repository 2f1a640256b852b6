"""Figures: model decompositions (input, reconstruction, segmentations, slots) and curves.

matplotlib is imported only when a figure is drawn, so importing this package is cheap.
"""

from __future__ import annotations

from ocdsl.viz.figures import (PALETTE, FigureLayout, colorize, save_curve, save_mask_strip, save_metric_curves,
                               save_reconstruction_figure)

__all__ = ["PALETTE", "FigureLayout", "colorize", "save_curve", "save_mask_strip", "save_metric_curves",
           "save_reconstruction_figure"]
