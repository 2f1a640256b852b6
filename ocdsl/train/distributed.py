"""Training in several processes: ``ocdsl run SPEC --devices N`` on torchrun and DDP.

``ocdsl run --devices N`` does not train itself: it starts PyTorch's own launcher,
``python -m torch.distributed.run --nproc-per-node N [torchrun options] -m ocdsl.cli run
SPEC ...`` (:func:`launch_argv`), which runs N copies of ``ocdsl run`` with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous in the environment. Each copy joins the
process group (:func:`from_env`: gloo on the CPU, nccl on CUDA, process ``r`` on GPU
``LOCAL_RANK``) and trains the same model wrapped in
``torch.nn.parallel.DistributedDataParallel``, which averages the gradients of the N
processes in the backward pass. Across machines, the torchrun options (``--nnodes``,
``--node-rank``, ``--rdzv-backend``, ``--rdzv-endpoint``, ``--rdzv-id``, ``--master-addr``,
``--master-port``) are passed through (README, "Several processes and machines").

**The rule: the spec means the same whatever N is.** ``train.batch_size`` is the global
batch: each of the N processes (over all machines) gets ``batch_size / N`` consecutive
samples of each global batch of the same stream (ocdsl/train/stream.py; ``batch_size``
must be a multiple of N), and one step is one optimizer update on the whole global batch.
So ``steps``, the learning rate and every schedule are those of the spec, unscaled, and the
gradient is that of one process on the whole batch wherever the loss is a mean over the
batch (the loss terms of generated modules are means; DDP averages the per-process
gradients). The logged loss terms are averaged over the processes. Random noise inside the
model (slot sampling, masking) comes from each process's own stream (rank 0 draws the
``"noise"`` stream of one process, rank r > 0 the ``"noise/rank<r>"`` stream), so a run on
N processes matches a one-process run within float rounding where the model draws no
noise, and statistically otherwise.

Only rank 0 writes: checkpoints (with every rank's RNG state), metrics.jsonl, TensorBoard
events, figures, summary.json; it also runs the evaluations while the other ranks wait. A
checkpoint holds the global data position and one copy of the model and optimizer, so a
run resumes with any N (the RNG streams of ranks the checkpoint does not have start afresh).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch

from ocdsl.errors import Diagnostic, UserError

__all__ = ["Dist", "LOCAL", "from_env", "launch_argv", "launch", "TORCHRUN_OPTIONS", "check_batch"]

#: torchrun options ``ocdsl run`` passes through (argparse dest -> torchrun flag).
TORCHRUN_OPTIONS = {"nnodes": "--nnodes", "node_rank": "--node-rank", "rdzv_backend": "--rdzv-backend",
                    "rdzv_endpoint": "--rdzv-endpoint", "rdzv_id": "--rdzv-id", "master_addr": "--master-addr",
                    "master_port": "--master-port"}


@dataclass(frozen=True)
class Dist:
    """This process's place: ``rank`` of ``world`` processes (``world == 1``: no group)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of ``x`` over the processes (``x`` itself for one process)."""
        if self.world == 1:
            return x
        y = x.detach().float().to(_device()).clone()
        torch.distributed.all_reduce(y)
        return (y / self.world).to(x.device)

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true where it is true in any process."""
        if self.world == 1:
            return tuple(bool(f) for f in flags)
        t = torch.tensor([float(bool(f)) for f in flags], device=_device())
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return tuple(bool(v) for v in t.tolist())

    def gather(self, obj) -> list:
        """Every process's ``obj`` (pickled), in rank order."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


LOCAL = Dist()


def _backend() -> str:
    return torch.distributed.get_backend()


def _device() -> torch.device:
    if _backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def from_env(device: str) -> tuple[Dist, str]:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1)
    -> (Dist, this process's device: ``cuda:<LOCAL_RANK>`` or ``cpu``); ``(LOCAL, device)``
    outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return LOCAL, device
    if not torch.distributed.is_initialized():
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend)
    if str(device).startswith("cuda"):
        device = f"cuda:{torch.cuda.current_device()}"
    return Dist(torch.distributed.get_rank(), torch.distributed.get_world_size()), device


def check_batch(spec, world: int) -> None:
    """``train.batch_size`` must split evenly over ``world`` processes (SpecError at the key)."""
    from ocdsl.errors import SpecError

    b = spec.train.batch_size
    if world > 1 and b % world:
        raise SpecError(spec.diag(("train", "batch_size"),
                                  f"batch_size {b} does not split over {world} processes "
                                  f"(each gets batch_size / N samples of every global batch)",
                                  hint=f"use a multiple of {world}, or another --devices"))


def launch_argv(n: int, argv: list[str], options: dict) -> list[str]:
    """The torchrun command line that runs ``ocdsl <argv>`` (``argv`` without
    ``--devices``) in ``n`` processes per machine; ``options``: the torchrun options
    given (keys of :data:`TORCHRUN_OPTIONS`, None where not given). Raises UserError for
    ``n`` < 1."""
    if n < 1:
        raise UserError(Diagnostic(f"--devices must be >= 1, got {n}", file="ocdsl"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n)]
    for key, flag in TORCHRUN_OPTIONS.items():
        if options.get(key) is not None:
            cmd += [flag, str(options[key])]
    if str(options.get("nnodes") or 1) == "1" and all(options.get(k) is None for k in (
            "rdzv_endpoint", "master_addr", "master_port")):
        cmd.append("--standalone")  # one machine: a local rendezvous on a free port
    return cmd + ["-m", "ocdsl.cli", *argv]


def _run_argv(args, out) -> list[str]:
    """The ``ocdsl run`` arguments each process gets: the launcher's, without ``--devices``
    and the torchrun options, with the run directory fixed (every process must agree)."""
    argv = ["run", str(args.spec)]
    for o in args.overrides:
        argv += ["--set", o]
    if args.resume:
        argv += ["--resume", str(args.resume)]
    argv += ["--out", str(out if out is not None else args.out)] if not args.resume else []
    if args.steps is not None:
        argv += ["--steps", str(args.steps)]
    return argv + [flag for flag, on in (("--gpu", args.gpu), ("--no-compile", args.no_compile),
                                         ("--no-progress", args.no_progress),
                                         ("--allow-spec-change", args.allow_spec_change)) if on]


def launch(args, spec, out) -> int:
    """``ocdsl run --devices N``: run torchrun (:func:`launch_argv`) with this run's
    arguments in the foreground; its exit status (torchrun stops every process when one
    fails). ``spec``: the validated spec (its batch must split over every process, a
    SpecError otherwise, before anything starts); ``out``: the run directory chosen here
    when ``--out``/``--resume`` name none."""
    import subprocess

    n = int(args.devices)
    if n < 1:
        raise UserError(Diagnostic(f"--devices must be >= 1, got {n}", file="ocdsl"))
    try:
        nodes = int(args.nnodes or 1)
    except ValueError:  # an elastic range "MIN:MAX": the batch is checked by each process
        nodes = 1
    check_batch(spec, n * nodes)
    options = {k: getattr(args, k, None) for k in TORCHRUN_OPTIONS}
    cmd = launch_argv(n, _run_argv(args, out), options)
    print("launching: " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:  # torchrun passed it on to the processes, which saved
        return 130
