"""otsu_iou (Table 2 protocol) and the probe_ap linear probe (Table 3 protocol)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ocdsl.metrics import evaluate
from ocdsl.metrics.otsu import otsu_iou, otsu_masks
from ocdsl.metrics.probe import probe_ap, questions


def _scene():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :4, :4] = 1
    labels[0, 4:, 4:] = 2
    return labels


def test_otsu_iou_matches_slots_to_objects_and_drops_the_background():
    labels = _scene()
    maps = torch.full((1, 3, 8, 8), 0.1)
    maps[0, 2][labels[0] == 1] = 0.9                  # slot 2 covers object 1
    maps[0, 0][labels[0] == 2] = 0.8                  # slot 0 covers object 2
    maps[0, 1][labels[0] == 0] = 0.7                  # slot 1: the background, not scored
    assert otsu_iou(maps, labels).tolist() == [1.0]
    maps[0, 0][:, :] = 0.1
    maps[0, 0][4:, 4:6] = 0.8                          # half of object 2
    assert otsu_iou(maps, labels).tolist() == [0.75]  # (1 + 0.5) / 2
    assert otsu_masks(np.zeros((1, 4, 4))).sum() == 0  # a constant map: empty
    assert math.isnan(float(otsu_iou(maps, torch.zeros_like(labels))[0]))   # no object
    assert evaluate(["otsu_iou"], maps, labels)["otsu_iou"].tolist() == [0.75]


def _factors(n, rng):
    shape = rng.integers(1, 4, size=(n, 4))
    shape[:, 0] = 0                                     # slot 0: background
    scale = rng.choice([0.5, 1.0], size=(n, 4))
    color = rng.choice([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], size=(n, 4))
    return {"shape": shape.astype(np.float32), "scale": scale, "color": color,
            "visibility": np.ones((n, 4))}


def test_questions_are_size_colour_shape_combinations():
    f = {"shape": np.array([[0, 1, 2]]), "scale": np.array([[0, 0.5, 1.0]]),
         "color": np.array([[[0.5, 0.5, 0.5], [1, 0, 0], [0, 0, 1]]]), "visibility": np.array([[0, 1, 1]])}
    answers, names = questions(f)
    # values seen: size {0, 1}, colour {red 0, blue 4}, shape {1, 2}: 8 questions, 2 answered yes
    assert len(names) == 8 and answers.sum() == 2
    yes = {names[q] for q in np.nonzero(answers[0])[0]}
    assert yes == {(("size", 0), ("colour", 0), ("shape", 1)), (("size", 1), ("colour", 4), ("shape", 2))}


def test_probe_reads_answers_that_the_features_hold():
    rng = np.random.default_rng(0)
    f = _factors(400, rng)
    answers, _ = questions(f)
    good = answers.astype(float) + 0.1 * rng.normal(size=answers.shape)
    noise = rng.normal(size=answers.shape)
    hit = probe_ap(good, f)
    miss = probe_ap(noise, f)
    assert hit["probe_questions"] == answers.shape[1] and hit["probe_ap"] > 0.95
    assert miss["probe_ap"] < hit["probe_ap"] - 0.2
