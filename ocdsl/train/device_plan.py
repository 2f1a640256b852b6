"""What a run of a spec does on a device: the decisions ``ocdsl run --gpu`` (and the CPU run)
takes, gathered from the functions the run itself calls, so they can be shown and tested on
a machine without the device.

- arithmetic: :func:`ocdsl.train.model_io.resolve_precision` (``train.precision``; ``"auto"``
  is bf16 autocast where the device computes bf16 natively, a CUDA GPU with
  ``torch.cuda.is_bf16_supported()``; ``"fp32"`` stays fp32 everywhere);
- torch.compile: :meth:`ocdsl.pipeline.Compiled.will_compile` (``train.compile``; ``"auto"``
  and ``"gpu"`` compile on CUDA; ``--no-compile`` turns it off);
- memory layout: the nodes the compiler's ``channels_last`` rewrite put on channels-last
  convolutions (cuDNN's fast layout for bf16 / TF32 convolutions on tensor cores, oneDNN's
  native one on the CPU);
- data: batches come from a DataLoader (``train.num_workers`` worker processes generate the
  next batches while the device computes), in pinned memory on CUDA, copied with
  ``non_blocking=True`` (``make_train_loader`` in ocdsl/train/stream.py and
  ``model_inputs`` in ocdsl/train/model_io.py).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DevicePlan", "plan_device", "format_plan"]


@dataclass(frozen=True)
class DevicePlan:
    """The decisions of a run on ``device`` (see the module docstring for where each comes
    from). ``channels_last``: names of the nodes with channels-last convolutions;
    ``warnings``: decisions that leave the device waiting (e.g. no data workers on CUDA);
    ``present``: whether this machine has the device (without it, ``precision = "auto"``
    is resolved as the machine sees it, and :func:`format_plan` says what a GPU would get);
    ``spec_precision``: ``train.precision`` as written."""

    device: str
    precision: str
    torch_compile: bool
    channels_last: tuple[str, ...]
    num_workers: int
    pin_memory: bool
    non_blocking: bool
    warnings: tuple[str, ...] = ()
    present: bool = True
    spec_precision: str = "fp32"


def plan_device(compiled, device: str, compile_mode: bool | str | None = None) -> DevicePlan:
    """The :class:`DevicePlan` of ``compiled`` (an ``ocdsl.pipeline.Compiled``) on ``device``
    (``"cpu"``, ``"cuda"``, ``"cuda:1"``); ``compile_mode``: ``False`` for ``--no-compile``,
    else the spec's ``train.compile``. Needs no such device: only the decisions are made."""
    import torch

    from ocdsl.train.model_io import resolve_precision

    cfg = compiled.spec.train
    mode = cfg.compile if compile_mode is None else compile_mode
    cuda = str(device).startswith("cuda")
    layout = tuple(n for n, d in compiled.graph.nodes(data=True)
                   if "channels_last" in (d.get("rewrites") or {}))
    warnings = []
    if cuda and int(cfg.num_workers) == 0:
        warnings.append("train.num_workers = 0: the batches are generated in the training process "
                        "between steps; set train.num_workers (e.g. 4) to keep the GPU busy")
    return DevicePlan(device=str(device), precision=resolve_precision(cfg.precision, str(device)),
                      torch_compile=compiled.will_compile(str(device), mode), channels_last=layout,
                      num_workers=int(cfg.num_workers), pin_memory=cuda, non_blocking=True,
                      warnings=tuple(warnings), spec_precision=str(cfg.precision),
                      present=not cuda or torch.cuda.is_available())


def format_plan(plan: DevicePlan) -> str:
    """One line of decisions, then one line per warning."""
    arith = "bf16 autocast" if plan.precision == "bf16" else "fp32"
    if not plan.present and plan.spec_precision == "auto":  # the answer depends on the GPU
        arith = "bf16 autocast on a GPU that computes bf16 (precision = \"auto\"), else fp32"
    layout = f"channels-last convolutions in {', '.join(plan.channels_last)}" if plan.channels_last \
        else "no channels-last rewrite"
    data = (f"{plan.num_workers} data worker(s)" + (", pinned memory" if plan.pin_memory else "")
            + (", non-blocking copies" if plan.non_blocking else ""))
    lines = [f"  on {plan.device}: {arith}, torch.compile {'on' if plan.torch_compile else 'off'}, "
             f"{layout}, {data}"]
    lines += [f"  note: {w}" for w in plan.warnings]
    return "\n".join(lines)
