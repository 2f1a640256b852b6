"""Training in several processes (ocdsl/train/distributed.py): 2 gloo processes on the CPU
follow the loss trajectory of one process, only rank 0 writes, and a 2-process checkpoint
resumes in one process.

The model is the tiny fake without noise (``TinyModel.noise = 0``), so one process and two
see the same gradients up to float rounding: the two processes' mean gradients are
averaged by DistributedDataParallel instead of one mean over the whole batch. Tolerance:
relative 1e-5 on every logged loss term (float32 rounding of a different summation order).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch

from ocdsl.train import train
from ocdsl.train.distributed import Dist, launch_argv
from tests.train.conftest import TinyModel, install_fakes, make_spec

RTOL = 1e-5


class Still(TinyModel):
    noise = 0.0


def _spec(folder: Path, steps: int):
    return make_spec(folder, train={"steps": steps, "checkpoint_every": 2}, eval={"every": 2})


def _worker(rank: int, world: int, port: int, folder: str, steps: int) -> None:
    """One of the ``world`` processes (torch.multiprocessing calls it with its rank)."""
    # A forked child must not enter the OpenMP pool the parent may have started (it would
    # wait forever on the parent's threads): one intra-op thread, as torchrun sets it.
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        install_fakes(setattr)
        spec = _spec(Path(folder), steps)
        train(spec, Still(), out_dir=Path(folder) / "run", progress=False, dist=Dist(rank, world))
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(run: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    if kind == "train":
        return [r for r in rows if "loss" in r and "split" not in r and "event" not in r]
    return [r for r in rows if "split" in r]


def _close(a: list[dict], b: list[dict], keys=("loss", "reconstruction", "reg")) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for k in keys:
            assert ra[k] == pytest.approx(rb[k], rel=RTOL), (ra["step"], k)


@pytest.mark.timeout(900)  # a hang guard (a collective waiting for a process that died)
def test_two_gloo_processes_follow_one_and_resume_in_one(fakes, tmp_path):
    two = tmp_path / "two"
    two.mkdir()
    # fork: the processes start with this one's modules loaded (no second import of torch)
    torch.multiprocessing.start_processes(_worker, args=(2, _free_port(), str(two), 4), nprocs=2,
                                          start_method="fork")
    run2 = two / "run"
    one = tmp_path / "one"
    one.mkdir()
    train(_spec(one, 4), Still(), out_dir=one / "run", progress=False)
    _close(_rows(run2, "train"), _rows(one / "run", "train"))
    _close(_rows(run2, "eval"), _rows(one / "run", "eval"), keys=("fake_ari", "fake_mse"))
    summary = json.loads((run2 / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["images_seen"] == 4 * 4  # the global batch
    state = torch.load(run2 / "checkpoint.pt", weights_only=True)
    assert state["data_position"] == 16 and len(state["rng_ranks"]) == 1
    # only rank 0 wrote: one events file, one metrics.jsonl with each row once
    assert len(list(run2.glob("events.out.tfevents.*"))) == 1
    assert [r["step"] for r in _rows(run2, "train")] == [1, 2, 3, 4]

    # the 2-process checkpoint at step 4 resumes in one process, to step 6
    train(_spec(two, 6), Still(), out_dir=run2, resume=run2, progress=False)
    train(_spec(one, 6), Still(), out_dir=one / "run", resume=one / "run", progress=False)
    _close(_rows(run2, "train"), _rows(one / "run", "train"))


def test_launch_argv_passes_the_torchrun_options_through():
    one = launch_argv(2, ["run", "s.toml", "--out", "r"], {})
    assert one[1:6] == ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone"]
    assert one[-5:] == ["ocdsl.cli", "run", "s.toml", "--out", "r"]
    many = launch_argv(4, ["run", "s.toml"], {"nnodes": "2", "node_rank": "1", "rdzv_backend": "c10d",
                                              "rdzv_endpoint": "host0:29400", "rdzv_id": "job7"})
    text = " ".join(many)
    assert "--nnodes 2 --node-rank 1 --rdzv-backend c10d --rdzv-endpoint host0:29400 --rdzv-id job7" in text
    assert "--standalone" not in many


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cli_devices_2_on_torchrun_matches_one_process_and_resumes_in_one(tmp_path):
    """The whole path: ``ocdsl run --devices 2`` -> torchrun -> 2 gloo processes, on a tiny
    generated Slot Attention model (learned initial slots: no noise)."""
    import subprocess
    import sys

    from tests.graph.test_graph import TINY

    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY.replace("steps = 2", "steps = 3\nlog_every = 1")
                    + '\n[eval]\ntest_size = 2\nmetrics = ["mse"]\nmasks = "composite.masks"\n'
                      'reconstruction = "composite.image"\n')
    common = ["--set", "dims.H=35", "--set", "dims.W=35", "--set", "model.nodes.slots.slot_init=learned",
              "--no-progress", "--no-compile"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))

    def ocdsl(*args):
        done = subprocess.run([sys.executable, "-m", "ocdsl.cli", "run", str(spec), *common, *args], env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    two = ocdsl("--devices", "2", "--out", str(tmp_path / "two"))
    assert "torch.distributed.run --nproc-per-node 2" in two.stderr
    ocdsl("--out", str(tmp_path / "one"))
    _close(_rows(tmp_path / "two", "train"), _rows(tmp_path / "one", "train"), keys=("loss",))
    _close(_rows(tmp_path / "two", "eval"), _rows(tmp_path / "one", "eval"), keys=("mse",))
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["processes"] == 2
    ocdsl("--resume", str(tmp_path / "two"), "--steps", "4")
    ocdsl("--resume", str(tmp_path / "one"), "--steps", "4")
    _close(_rows(tmp_path / "two", "train"), _rows(tmp_path / "one", "train"), keys=("loss",))


def test_devices_that_do_not_split_the_batch_are_refused_before_launching(tmp_path, capsys):
    from ocdsl.cli import main
    from tests.graph.test_graph import TINY

    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)  # batch_size = 2
    assert main(["run", str(spec), "--devices", "3", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "batch_size 2 does not split over 3 processes" in err and "Traceback" not in err
    assert "launching" not in err and not (tmp_path / "r").exists()
    assert main(["run", str(spec), "--devices", "0"]) == 2
    assert "--devices must be >= 1" in capsys.readouterr().err
    assert main(["run", str(spec), "--devices", "2", "--seeds", "0,1"]) == 2
    assert "--seeds and --devices do not combine" in capsys.readouterr().err
