"""The ``ocdsl`` command line. Thin: parses arguments, calls the pipeline, prints errors.

A user error (the spec, its data, its checkpoint, an argument) prints
``path:line:col: error: ...`` (or ``path: error: ...`` where no line applies, with a hint
where one helps) and exits 2 without a traceback. Anything else is a bug in ocdsl: one line
asks for a report and the command exits 3; ``--debug`` adds the traceback. Ctrl-C exits 130
after the run has saved what it had.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ocdsl.errors import Diagnostic, UserError, shown

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130
#: where an internal error is to be reported (README.md, "Reporting a bug", says what to send)
REPORT_TO = "the ocdsl issue tracker (README.md, 'Reporting a bug')"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocdsl", description="Declarative compiler for object-centric learning.")
    p.add_argument("--version", action="version", version=_version())
    debug_help = "on an internal error (exit 3), also print the Python traceback"
    p.add_argument("--debug", action="store_true", help=debug_help)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def spec_cmd(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        # SUPPRESS: `ocdsl --debug run ...` is not reset to False by the subcommand's default
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
        sp.add_argument("spec", help="spec file (.toml, .yaml)")
        sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec value before validation, e.g. --set train.steps=100 (repeatable)")
        return sp

    sp = spec_cmd("validate", "check a spec: schema, references, graph, every tensor shape, loss types, "
                              "schedule values over the run, the datasets, and the memory estimate")
    _max_memory_arg(sp)

    sp = spec_cmd("compile", "generate compiled/<spec>.py")
    sp.add_argument("-o", "--out", help="output file (default: compiled/<spec file stem>.py)")
    sp.add_argument("--check", action="store_true", help="exit 1 if the file on disk is stale")

    sp = spec_cmd("graph", "write the model graph as DOT and as a picture")
    sp.add_argument("-o", "--out", help="picture file, .png or .svg (default: <spec stem>.graph.png); "
                                        "the DOT file is written beside it")

    sp = spec_cmd("run", "train a spec and evaluate it")
    _run_args(sp)

    sp = spec_cmd("eval", "evaluate a run's checkpoint")
    sp.add_argument("run_dir", help="run directory holding checkpoint.pt")
    sp.add_argument("--gpu", action="store_true", help="evaluate on CUDA")
    sp.add_argument("--allow-spec-change", action="store_true",
                    help="evaluate although the spec changed since the checkpoint")

    sp = spec_cmd("export", "write a run's weights as safetensors (model.safetensors in the run)")
    sp.add_argument("run_dir", help="run directory (holds checkpoint.pt)")
    sp.add_argument("-o", "--out", help="output file (default: <run_dir>/model.safetensors)")
    sp.add_argument("--allow-spec-change", action="store_true",
                    help="export although the spec changed since the checkpoint")

    sp = spec_cmd("bench", "time a training step of the spec's model here: eager vs torch.compile, "
                           "with and without the exact rewrites, FLOP/s against the measured peak")
    _bench_args(sp)

    sp = spec_cmd("data", "describe the spec's dataset and write a preview of images and masks")
    sp.add_argument("--split", default="train", choices=["train", "val", "test"])
    sp.add_argument("-n", type=_positive_int, default=16, help="images in the preview (default 16)")
    sp.add_argument("-o", "--out", help="preview PNG (default: <spec stem>.data.png)")

    sp = spec_cmd("check", "run the spec's declared symmetries as property-based tests")
    sp.add_argument("--examples", type=int, default=20, help="examples per property (default 20)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the example search")

    sub.add_parser("ops", help="list the registered ops with their ports and parameters")

    sub.add_parser("schema", help="print the JSON Schema of the spec language (for editors)")
    return p


def _run_args(sp: argparse.ArgumentParser) -> None:
    """The options of `ocdsl run`."""
    sp.add_argument("--gpu", action="store_true", help="train on CUDA (an error where there is none)")
    sp.add_argument("--steps", type=int, help="number of training steps (overrides train.steps)")
    sp.add_argument("--out", help="run directory (default: runs/<spec stem>/<timestamp>)")
    sp.add_argument("--resume", help="continue the run in this directory from its last checkpoint")
    sp.add_argument("--no-compile", action="store_true", help="do not torch.compile the model")
    _max_memory_arg(sp)
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp.add_argument("--allow-spec-change", action="store_true",
                    help="with --resume: continue although the spec changed since the checkpoint")
    sp.add_argument("--seeds", metavar="LIST",
                    help="train once per seed (0,1,2 or 0-4), each exactly as --set train.seed=N, in "
                         "<out>/seed<N>/, then print mean ± std of every metric over the seeds and how many "
                         "failed [eval] success; writes <out>/seeds_summary.json and seeds_curves.png. One "
                         "seed after another, except with --gpu and several CUDA devices (one process per "
                         "device). With --resume PARENT: resumes each seed<N>/ holding a checkpoint, skips "
                         "completed ones, starts missing ones")
    sp.add_argument("--devices", type=int, metavar="N",
                    help="train in N processes per machine through torchrun and DistributedDataParallel (gloo "
                         "on the CPU, nccl with --gpu); train.batch_size stays the global batch (README)")
    for flag in ("--nnodes", "--node-rank", "--rdzv-backend", "--rdzv-endpoint", "--rdzv-id", "--master-addr",
                 "--master-port"):
        sp.add_argument(flag, help=f"with --devices: torchrun's {flag}")


def _bench_args(sp: argparse.ArgumentParser) -> None:
    """The options of `ocdsl bench`."""
    sp.add_argument("--gpu", action="store_true", help="on CUDA")
    sp.add_argument("--scale", action="store_true",
                    help="also time the eager step as the image (dims H, W x1, x2) and the slot "
                         "count (dim K x1, x2) grow")
    sp.add_argument("--batch", type=_positive_int, help="batch size (default: train.batch_size)")
    sp.add_argument("--rounds", type=_positive_int, default=5, help="alternating rounds (default 5)")
    sp.add_argument("--no-compile", action="store_true", help="eager only")
    sp.add_argument("--phase", help="the [[train.phases]] phase to time (default: the last)")


def _max_memory_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--max-memory", metavar="SIZE", help="refuse a spec whose memory estimate exceeds SIZE "
                                                          "(4GB, 512MB, 2GiB; default: this machine's memory)")


def _max_memory(args) -> int | None:
    """``--max-memory`` in bytes (None: the machine's memory); a bad value is a user error."""
    text = getattr(args, "max_memory", None)
    if text is None:
        return None
    from ocdsl.graph.resources import parse_memory
    try:
        return parse_memory(text)
    except ValueError as e:
        raise UserError(Diagnostic(f"--max-memory: {e}", file="ocdsl")) from None


def _positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1 (else argparse's usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _output_file(text: str, flag: str) -> Path:
    """``text`` as the path of a file to write; a UserError where it names a directory or
    where a file stands in the place of one of its folders."""
    path = Path(text)
    if path.is_dir():
        raise UserError(Diagnostic(f"{flag}: '{text}' is a folder, expected a file to write",
                                   file=text, hint="name a file inside it"))
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(Diagnostic(f"{flag}: cannot write '{text}': '{blocking}' is a file, not a folder",
                                   file=text))
    return path


def _version() -> str:
    from ocdsl import __version__
    return f"ocdsl {__version__}"


def _print_warnings(compiled) -> None:
    """The warnings of a built spec (``ocdsl.pipeline.Compiled.warnings``), on stderr."""
    for w in compiled.warnings:
        print(w.format(), file=sys.stderr)


def cmd_validate(args) -> int:
    from ocdsl.pipeline import build, check_data
    from ocdsl.invariance.declarations import resolve
    c = build(args.spec, overrides=args.overrides, max_memory=_max_memory(args))
    resolve(c)  # [[invariances]] name real nodes, axes and inputs
    data_warnings = check_data(c.spec)  # names, paths and resolutions, as `run` finds them
    _print_warnings(c)
    for w in data_warnings:
        print(w.format(), file=sys.stderr)
    n_ops = sum(1 for _, d in c.graph.nodes(data=True) if d["kind"] == "op")
    print(f"{args.spec}: ok ({n_ops} nodes, {len(c.spec.losses)} losses, {len(c.spec.schedules)} schedules)")
    print(f"  estimate: {c.graph.graph['estimate'].describe()}")
    return 0


def cmd_compile(args) -> int:
    from ocdsl.pipeline import build, compiled_path
    c = build(args.spec, overrides=args.overrides)
    _print_warnings(c)
    out = _output_file(args.out, "-o") if args.out else compiled_path(c.spec)
    if args.check:
        current = out.read_text() if out.exists() else None
        if current != c.source:
            why = "missing" if current is None else "stale"
            print(f"{out}: error: generated code is {why} for {args.spec}", file=sys.stderr)
            print(f"  hint: run `ocdsl compile {args.spec}`", file=sys.stderr)
            return 1
        print(f"{out}: up to date")
        return 0
    c.write(out)
    print(f"wrote {out}")
    return 0


def cmd_graph(args) -> int:
    from ocdsl.pipeline import build
    from ocdsl.viz.graph import write_graph
    c = build(args.spec, overrides=args.overrides)
    out = _output_file(args.out, "-o") if args.out else Path(f"{c.spec.path.stem}.graph.png")
    for path in write_graph(c.spec, c.graph, out):
        print(f"wrote {path}")
    return 0


def cmd_run(args) -> int:
    from ocdsl.pipeline import build
    from ocdsl.train import resolve_device, train
    from ocdsl.train.distributed import from_env, launch
    from ocdsl.train.rng import INIT, seed_for

    if getattr(args, "seeds", None) is not None:
        if getattr(args, "devices", None) is not None:
            raise UserError(Diagnostic("--seeds and --devices do not combine", file="ocdsl",
                                       hint="train the seeds one after another, or each seed with --devices"))
        return _run_seeds(args)
    launcher = getattr(args, "devices", None) is not None  # torchrun runs N of this command
    device = resolve_device(args.gpu)
    dist, device = from_env(device) if not launcher else (None, device)
    overrides = list(args.overrides)
    c = build(args.spec, overrides=overrides, max_memory=_max_memory(args))
    if args.steps:  # the schedules over the run's real length
        from ocdsl.errors import SpecError
        from ocdsl.graph.values import check_values
        if errors := check_values(c.spec, c.graph, total_steps=args.steps):
            raise SpecError(errors)
    if launcher or dist.world == 1:
        _print_warnings(c)
    if launcher:
        return launch(args, c.spec, _out_dir(args) if not (args.resume or args.out) else None)
    if args.resume:
        out_dir = Path(args.resume)
        if not out_dir.is_dir():
            raise UserError(Diagnostic(f"--resume: no run directory '{out_dir}'", file=str(out_dir),
                                       hint="pass the directory a previous `ocdsl run` printed"))
    else:
        out_dir = _out_dir(args)
    compile_mode = False if args.no_compile else c.spec.train.compile
    if c.will_compile(device, compile_mode) and dist.main:
        print(f"torch.compile: on for {device} (first steps include compilation)", file=sys.stderr)
    # same initial weights every run of a seed, from their own stream (ocdsl/train/rng.py)
    seed_for(c.spec.train.seed, INIT)
    model = c.instantiate(device=device, torch_compile=compile_mode)
    summary = train(c.spec, model, device=device, out_dir=out_dir, steps=args.steps,
                    resume=out_dir if args.resume else None, progress=not args.no_progress and dist.main,
                    allow_spec_mismatch=args.allow_spec_change, model_source=c.source, dist=dist)
    return EXIT_INTERRUPTED if summary.get("status") == "interrupted" else 0


def _out_dir(args) -> Path:
    """``--out``, else ``runs/<spec file stem>/<timestamp>`` (a run, or the parent of seeds)."""
    import time

    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(Diagnostic(f"--out: '{args.out}' is a file, not a run directory", file=str(args.out),
                                   hint="name a new or existing directory"))
    return Path(args.out) if args.out else Path("runs") / Path(args.spec).stem / time.strftime("%Y%m%d-%H%M%S")


def _run_seeds(args) -> int:
    """``ocdsl run --seeds``: ocdsl/train/seeds.py runs the seeds, each one through
    :func:`cmd_run` as ``--set train.seed=N --out <parent>/seed<N>`` (or, in parallel on
    several CUDA devices, as that same command in a child process)."""
    from ocdsl.spec import load
    from ocdsl.train import resolve_device
    from ocdsl.train.seeds import parse_seeds, run_seeds

    seeds = parse_seeds(args.seeds)
    resolve_device(args.gpu)  # --gpu without CUDA fails before anything runs
    spec = load(args.spec, list(args.overrides))
    if args.resume:
        parent = Path(args.resume)
    else:
        parent = _out_dir(args)

    def one(seed: int, out_dir: Path, resume: bool) -> int:
        return cmd_run(argparse.Namespace(**{**vars(args), "seeds": None,
                                             "overrides": [*args.overrides, f"train.seed={seed}"],
                                             "out": str(out_dir), "resume": str(out_dir) if resume else None}))

    def command(seed: int, out_dir: Path, resume: bool) -> list[str]:
        argv = [sys.executable, "-m", "ocdsl.cli", "run", str(args.spec), "--no-progress"]
        for o in [*args.overrides, f"train.seed={seed}"]:
            argv += ["--set", o]
        argv += ["--resume" if resume else "--out", str(out_dir)]
        if args.steps is not None:
            argv += ["--steps", str(args.steps)]
        argv += [flag for flag, on in (("--gpu", args.gpu), ("--no-compile", args.no_compile),
                                       ("--allow-spec-change", args.allow_spec_change)) if on]
        return argv

    devices = None
    if args.gpu:
        import os

        import torch
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = ([d.strip() for d in visible.split(",") if d.strip()] if visible
                   else [str(i) for i in range(torch.cuda.device_count())])
    return run_seeds(spec, seeds, parent, one, resume=bool(args.resume), steps=args.steps,
                     devices=devices, command=command)


def cmd_eval(args) -> int:
    from ocdsl.pipeline import build
    from ocdsl.train import evaluate_checkpoint, resolve_device

    device = resolve_device(args.gpu)
    c = build(args.spec, overrides=args.overrides)
    model = c.instantiate(device=device, torch_compile=False)
    evaluate_checkpoint(c.spec, model, Path(args.run_dir), device=device,
                        allow_spec_mismatch=args.allow_spec_change)
    return 0


def cmd_export(args) -> int:
    from ocdsl.pipeline import build
    from ocdsl.train.export import export_weights

    c = build(args.spec, overrides=args.overrides)
    model = c.instantiate(device="cpu", torch_compile=False)
    path = export_weights(c.spec, model, Path(args.run_dir), _output_file(args.out, "-o") if args.out else None,
                          allow_spec_mismatch=args.allow_spec_change)
    n = sum(p.numel() for p in model.state_dict().values())
    print(f"wrote {path} ({n:,} numbers; safetensors.torch.load_file reads it)")
    return 0


def cmd_bench(args) -> int:
    import time

    from ocdsl.graph import analyse
    from ocdsl.pipeline import build
    from ocdsl.spec import load
    from ocdsl.train import resolve_device
    from ocdsl.train.bench import benchmark_step, format_bench, format_scaling, scaling_points, scaling_sweep
    from ocdsl.train.device_plan import format_plan, plan_device

    device = resolve_device(args.gpu)
    t0 = time.perf_counter()
    spec = load(args.spec, args.overrides)
    t1 = time.perf_counter()
    analyse(spec)
    t2 = time.perf_counter()
    c = build(spec)
    t3 = time.perf_counter()
    modes = ("eager",) if args.no_compile else ("eager", "compiled")
    rewritten = any(d.get("rewrites") for _, d in c.graph.nodes(data=True))
    unrewritten = build(load(args.spec, [*args.overrides, "compile.rewrites=[]"])) if rewritten else None
    res = benchmark_step(c, device=device, batch=args.batch, rounds=args.rounds, modes=modes, phase=args.phase,
                         unrewritten=unrewritten)
    print(format_bench(c.spec.name, res, {"load": 1e3 * (t1 - t0), "graph": 1e3 * (t2 - t1),
                                          "codegen": 1e3 * (t3 - t2)}))
    print(f"`ocdsl run {args.spec}` would run")
    for dev in dict.fromkeys([device, "cuda"]):  # here, and with --gpu (no GPU needed to say so)
        print(format_plan(plan_device(c, dev)))
    if args.scale:
        points = [(dims, build(load(args.spec, [*args.overrides, *(f"dims.{k}={v}" for k, v in dims.items())])))
                  for dims in scaling_points(c.spec)]
        rows = scaling_sweep(points, device=device, batch=args.batch, rounds=args.rounds)
        print(format_scaling(rows))
    return 0


def cmd_data(args) -> int:
    import torch

    from ocdsl.data import make_dataset
    from ocdsl.spec import load
    from ocdsl.train.evaluate import dataset_cfg
    from ocdsl.viz.figures import save_data_figure

    spec = load(args.spec, args.overrides)
    cfg = dataset_cfg(spec, ("data",))
    ds = make_dataset(cfg, args.split, spec.path.parent, args.n, spec_file=str(spec.path))
    info = ds.info  # the size of the items it returns (after any crop / resize)
    items = [ds[i] for i in range(min(args.n, len(ds)))]
    image = torch.stack([it["image"] for it in items])
    masks = "mask" in items[0]          # an image folder has none: drawn as all background
    labels = (torch.stack([it["mask"] for it in items]) if masks
              else torch.zeros(image.shape[0], *image.shape[-2:], dtype=torch.long))
    source = cfg.get("path") or f"procedural generator (seed {cfg.get('seed', 0)})"
    slots = f"up to {info.max_objects} mask slots (slot 0 = background)" if masks else "no masks"
    print(f"dataset {info.name}: {info.channels}x{info.height}x{info.width}, {slots}, "
          f"split {args.split}, from {source}")
    if masks:
        counts = [int(l.unique().numel()) - int((l == 0).any()) for l in labels]
        print(f"objects per image in the preview: min {min(counts)}, mean {sum(counts) / len(counts):.2f}, "
              f"max {max(counts)}")
    out = _output_file(args.out, "-o") if args.out else Path(f"{spec.path.stem}.data.png")
    save_data_figure(out, image, labels, max_images=args.n, title=f"{info.name} ({args.split})")
    print(f"wrote {out}")
    return 0


def cmd_check(args) -> int:
    from ocdsl.invariance import main_check
    return main_check(args.spec, examples=args.examples, overrides=args.overrides, seed=args.seed)


def cmd_ops(args) -> int:
    from ocdsl.ops.registry import all_ops, param_type
    for op in all_ops():
        ins = ", ".join(p.name + ("?" if p.optional else "") + (f" {p.signature}" if p.signature else "")
                        for p in op.inputs)
        print(f"{op.name}  (v{op.version}, {op.module.__module__}.{op.module.__name__})")
        if op.summary:
            print(f"    {op.summary}")
        print(f"    inputs:  {ins}")
        print(f"    outputs: {', '.join(op.outputs)}")
        print("    params:" + ("" if op.params else "  -"))
        for key, prop in op.params.items():
            default = "required" if key in op.required else (
                f"default {prop['default']!r}" if "default" in prop else "optional")
            print(f"      {key}: {param_type(prop)}, {default}")
            if prop.get("description"):
                print(f"          {prop['description']}")
        for s in op.symmetries:
            print(f"    symmetry: {s.kind} {dict(s.transform)} -> {dict(s.output)}")
    return 0


def cmd_schema(args) -> int:
    import json

    from ocdsl.spec.schema import spec_schema
    print(json.dumps(spec_schema(), indent=2, sort_keys=True))
    return 0


COMMANDS = {
    "validate": cmd_validate, "compile": cmd_compile, "graph": cmd_graph, "run": cmd_run,
    "eval": cmd_eval, "export": cmd_export, "check": cmd_check, "bench": cmd_bench, "data": cmd_data,
    "ops": cmd_ops, "schema": cmd_schema,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as e:
        print(e.format(), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `ocdsl ops | head`
        sys.stderr.close()
        return 0
    except Exception as e:  # noqa: BLE001 - anything else is a bug in ocdsl, not in the spec
        return _internal_error(e, debug=getattr(args, "debug", False))


def _internal_error(e: BaseException, *, debug: bool) -> int:
    """An exception that is not a :class:`UserError`: with ``debug`` its traceback, then one
    line naming it and asking for a report; :data:`EXIT_INTERNAL_ERROR`."""
    if debug:
        import traceback
        traceback.print_exception(e, file=sys.stderr)
    what = shown(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
    if len(what) > 200:
        what = what[:197] + "..."
    again = "" if debug else "; run the command again with --debug for the traceback"
    print(f"ocdsl: internal error ({what}): this is a bug in ocdsl, please report it with the "
          f"command and the spec to {REPORT_TO}{again}", file=sys.stderr)
    return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
