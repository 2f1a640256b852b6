"""The JSON Schema of the run sections of a spec: ``[train]`` (its optimizer and phases) and
``[[invariances]]``; ocdsl/spec/schema.py assembles them into the whole spec's schema."""

from __future__ import annotations

from typing import Any

from ocdsl.spec.bounds import MAX_BATCH
from ocdsl.spec.config import OPTIMIZERS, OptimizerSpec, PhaseSpec, TrainSpec, default_of
from ocdsl.spec.schema_base import (_BATCH_HINT, IDENT, PATH_PATTERN, _d, _number_or_expression,
                                    _pos_int, _ref)

__all__ = ["INVARIANCE_KINDS"]

INVARIANCE_KINDS = ("permutation_equivariance", "permutation_invariance",
                    "translation_equivariance", "translation_invariance")


def _optimizer_branches() -> list[dict]:
    """One ``if name == <optimizer> then only its options`` branch per optimizer; the
    ``x-optimizer`` mark lets validation word the error (ocdsl/spec/validate.py)."""
    return [{"if": {"properties": {"name": {"const": o.name}}, "required": ["name"]},
             "then": {"properties": {k: _d(f"'{k}' of {o.name}: see the table's '{k}'.")
                                     for k in ("name", "lr", *o.options)},
                      "additionalProperties": False, "x-optimizer": o.name}}
            for o in OPTIMIZERS.values()]


def _optimizer() -> dict:
    def opt(key: str) -> dict:
        users = [o.name for o in OPTIMIZERS.values() if key in o.options]
        return {"default": list(v) if isinstance(v := default_of(OptimizerSpec, key), tuple) else v,
                "x-optimizers": users}

    return _d(
        "The optimizer: torch.optim.<name> with these settings; each optimizer takes only its "
        "own options (" + "; ".join(f"{o.name}: {', '.join(o.options)}" for o in OPTIMIZERS.values()) + ").",
        type="object",
        properties={
            "name": _d("Which optimizer.", enum=list(OPTIMIZERS)),
            "lr": _number_or_expression(
                "Learning rate: a number, or an expression over step, [dims] and [schedules] "
                "(e.g. \"lr\" naming a schedule).", exclusiveMinimum=0),
            "betas": _d("Adam/AdamW coefficients (beta1, beta2).", type="array",
                        items={"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                        minItems=2, maxItems=2, **opt("betas")),
            "eps": _d("Term added to the denominator for numerical stability (Adam/AdamW).",
                      type="number", exclusiveMinimum=0, **opt("eps")),
            "weight_decay": _d("L2 penalty (decoupled for AdamW).", type="number", minimum=0,
                               **opt("weight_decay")),
            "momentum": _d("Momentum factor (SGD).", type="number", minimum=0, **opt("momentum")),
        },
        required=["name", "lr"],
        additionalProperties=False,
        allOf=_optimizer_branches(),
    )


def _phase_schema() -> dict:
    """One entry of ``train.phases``."""
    return _d(
        "A training phase: runs `steps` steps optimising `loss`, training only some nodes. Phases "
        "run in order; each starts a new optimizer unless fresh_optimizer = false.",
        type="object",
        properties={
            "name": _d("Name of the phase (logs, metrics rows, checkpoints); default phase1, phase2, ...",
                       type="string", pattern=IDENT),
            "steps": _pos_int("Number of steps in this phase (--steps N scales every phase to a total of N)."),
            "loss": _d("The loss this phase minimises (a name from [losses]); default train.loss.",
                       type="string"),
            "trainable": _d("Nodes whose parameters are trained; every other node is frozen "
                            "(default: all nodes not listed in `frozen`).",
                            type="array", items={"type": "string", "pattern": IDENT}, uniqueItems=True),
            "frozen": _d("Nodes whose parameters are frozen in this phase (requires_grad off, eval mode).",
                         type="array", items={"type": "string", "pattern": IDENT}, uniqueItems=True),
            "optimizer": _optimizer(),
            "fresh_optimizer": _d("Start this phase with a new optimizer (default true); false keeps the "
                                  "previous phase's optimizer and its state (same trainable nodes and "
                                  "optimizer settings required).", type="boolean",
                                  default=default_of(PhaseSpec, "fresh_optimizer")),
            "clock": _d("Consecutive phases with the same clock share one schedule clock: in [schedules], "
                        "`phase_step` counts from the first of them and `phase_steps` is their total "
                        "(default: each phase has its own clock).", type="string", pattern=IDENT),
        },
        required=["steps"],
        additionalProperties=False,
    )


def _train_schema() -> dict:
    """The ``[train]`` table."""
    def tdef(key: str) -> Any:
        return default_of(TrainSpec, key)

    return _d(
        "How to train: loss, optimizer, batch size, length, logging and checkpoints.",
        type="object",
        properties={
            "loss": _d("The loss to minimise: a name from [losses].", type="string", minLength=1),
            "optimizer": _optimizer(),
            "batch_size": _pos_int("Examples per step (over all processes).", default=tdef("batch_size"),
                                   maximum=MAX_BATCH, **{"x-hint": _BATCH_HINT}),
            "steps": _pos_int("Number of optimisation steps."),
            "steps_per_epoch": _d("Length of an epoch in steps: expressions may then use `epoch` = "
                                  "step / steps_per_epoch (fractional; floor(epoch) for whole epochs).",
                                  type="number", exclusiveMinimum=0),
            "epoch_size": _pos_int("Length of an epoch in training images: expressions may then use "
                                   "`epoch` = step * batch_size / epoch_size (fractional)."),
            "log_every": _pos_int("Log losses and schedules every this many steps.", default=tdef("log_every")),
            "checkpoint_every": _pos_int("Save a checkpoint every this many steps (and always at the end).",
                                         default=tdef("checkpoint_every"),
                                         **{"x-hint": "to checkpoint only at the end, set it to train.steps "
                                                      "or more"}),
            "time_limit": _d("Wall-clock budget in seconds; the run stops cleanly (checkpoint and "
                             "final evaluation) when it is spent. 0 means no limit.", type="number", minimum=0),
            "grad_clip": _d("Clip the global gradient norm to this value (0: no clipping).",
                            type="number", minimum=0, default=tdef("grad_clip")),
            "seed": _d("Seed of the run: parameter initialisation, training noise (slot sampling, "
                       "masking, dropout) and, unless data.seed is set, the training data stream each "
                       "draw from their own stream, seeded with a seed derived from this one and the "
                       "purpose (ocdsl/train/rng.py). Evaluation does not depend on it.",
                       type="integer", minimum=0, default=tdef("seed"),
                       **{"x-hint": "seeds are integers >= 0"}),
            "precision": _d("Arithmetic of the training forward pass: fp32, bf16 autocast (matmuls and "
                            "convolutions in bfloat16, losses in fp32; about 2x faster on CPUs with "
                            "AVX512-BF16 and on recent GPUs, 10x slower where bf16 is emulated), or "
                            "auto (bf16 where the device computes it natively, else fp32). "
                            "Evaluation always runs in fp32.",
                            enum=["fp32", "bf16", "auto"], default=tdef("precision")),
            "compile": _d("torch.compile the model for `ocdsl run`: \"auto\" (default: on CUDA, and on "
                          "the CPU for models whose ops all gain from it), \"gpu\" (on CUDA only), "
                          "true or false. --no-compile turns it off.",
                          anyOf=[{"type": "boolean"}, {"enum": ["auto", "gpu"]}], default=tdef("compile")),
            "num_workers": _d("DataLoader worker processes (0: load in the training process).",
                              type="integer", minimum=0, default=tdef("num_workers")),
            "shuffle": _d("Shuffle file-backed training data (generated data is a fresh stream anyway).",
                          type="boolean", default=tdef("shuffle")),
            "phases": _d("Training phases run in order (their steps replace train.steps).",
                         type="array", items=_phase_schema(), minItems=1),
        },
        additionalProperties=False,
    )


def _invariance_schema() -> dict:
    """One entry of ``[[invariances]]``."""
    return _d(
        "A declared symmetry, checked by `ocdsl check` with property-based tests.",
        type="object",
        properties={
            "kind": _d("Which symmetry.", enum=list(INVARIANCE_KINDS)),
            "node": _d("The node whose output has the symmetry; `node.inner` names node `inner` of "
                       "the block that `node` runs.", type="string", pattern=PATH_PATTERN),
            "port": _d("Compare only this output port of the node (default: every output of the "
                       "node, plus downstream outputs for permutation kinds).", type="string",
                       pattern=IDENT),
            "axis": _d("The axis that is permuted or shifted: one name for a permutation (K, "
                       "(H W)), one or two for a translation (H W); looked up in the signature "
                       "of what feeds the transformed input, or as the op's own port letter (N).",
                       type="string", minLength=1),
            "inputs": _d("What is transformed: model inputs, input ports of the node, or node.port; "
                         "default: every port of the node that has the axis. A list, or a table "
                         "input -> axis name.",
                         anyOf=[{"type": "array", "items": {"type": "string"}},
                                {"type": "object", "additionalProperties": {"type": "string"}}]),
            "outputs": _d("The outputs to compare (node or node.port references); default: see port.",
                          type="array", items=_ref("An output to compare."), minItems=1),
            "max_shift": _d("Largest shift, in pixels, tried by translation checks.", type="integer",
                            minimum=0),
            "tolerance": _d("Absolute tolerance of the check (the relative part stays the dtype's "
                            "default).", type="number", exclusiveMinimum=0),
            "losses": _d("A symmetry of the losses: these [losses] stay unchanged when the node's "
                         "output is permuted along the axis (kind permutation_invariance).",
                         type="array", items={"type": "string", "pattern": IDENT}, minItems=1),
            "view": _d("With losses: permute only this view (1-based) of the views stacked along "
                       "the batch ([data] views).", type="integer", minimum=1),
            "views": _d("With losses: the number of views stacked along the batch (default 2).",
                        type="integer", minimum=1),
        },
        required=["kind", "node", "axis"],
        additionalProperties=False,
    )
