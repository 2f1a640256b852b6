"""Training and evaluation of a generated module (docs/internals.md).

- :func:`train` -- ``ocdsl run``: optimizer, schedules, loop, checkpoints, evaluation.
- :func:`evaluate_checkpoint` -- ``ocdsl eval``.
- :func:`resolve_device` -- ``--gpu`` -> "cuda" (UserError without CUDA), else "cpu".
"""

from ocdsl.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from ocdsl.train.evaluate import evaluate_checkpoint
from ocdsl.train.run import NonFiniteLoss, TrainingInterrupted, resolve_device, seed_everything, train

__all__ = ["train", "evaluate_checkpoint", "resolve_device", "seed_everything", "TrainingInterrupted",
           "NonFiniteLoss", "load_checkpoint", "save_checkpoint", "CHECKPOINT_NAME"]
