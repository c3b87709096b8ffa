"""A cluster's bad days on gloo: SLURM's requeue signal reaching every rank of a 2-task job (one decision, one
checkpoint, one requeue, the same exit code, no hang), and a rank dying in the middle of an epoch.

The 2-task SLURM job is started the way srun starts it on a node: two train.py processes with SLURM's variables
(SLURM_PROCID 0 and 1), Lightning's SLURM environment reading the ranks; `scontrol` is a fake on PATH that logs
its arguments and, as SLURM does on a requeue, sends SIGTERM to the process that ran it. `VIVIT_REQUEUE_REPEATS`
repeats the requeue (benchmarks/preemption_stress.sh runs it 20 times).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.test_resume import start_train
from tests.test_slurm import fake_slurm
from tests.test_train import small_overrides

REPEATS = int(os.environ.get("VIVIT_REQUEUE_REPEATS", "1"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_slurm_task(rank: int, args: list[str], cwd: Path, bin_dir: Path, port: int) -> subprocess.Popen:
    """One task of a 1-node x 2-task SLURM job step, as srun starts it."""
    env = {
        "SLURM_JOB_ID": "4343",
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NNODES": "1",
        "SLURM_PROCID": str(rank),
        "SLURM_LOCALID": str(rank),
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
        "SLURM_RESTART_COUNT": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    return start_train(*args, cwd=cwd, env=env)


def requeue_once(synthetic_root: Path, tmp: Path) -> dict:
    """Start the 2-task job, wait for its first last.ckpt, send SIGUSR1 to both tasks (rank 1 first, rank 0 up to
    0.3 s later, as two nodes' signals land), and collect what happened."""
    fake_slurm(tmp / "bin", tmp / "scontrol.log")
    out = tmp / "job"
    args = [
        *small_overrides(synthetic_root),
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_epochs=1000",
        "threads=1",
        "test=false",
        "callbacks.curves=null",
        "callbacks.rich_progress_bar=null",
        f"hydra.run.dir={out}",
    ]
    port = free_port()
    tasks = [start_slurm_task(rank, args, tmp, tmp / "bin", port) for rank in (0, 1)]
    last = out / "checkpoints" / "last.ckpt"
    began = time.monotonic()
    try:
        while not last.is_file():
            assert all(t.poll() is None for t in tasks), [t.communicate()[1][-2000:] for t in tasks]
            assert time.monotonic() - began < 120, "no checkpoint"
            time.sleep(0.1)
        time.sleep(random.uniform(0, 0.5))
        tasks[1].send_signal(signal.SIGUSR1)
        time.sleep(random.uniform(0, 0.3))
        tasks[0].send_signal(signal.SIGUSR1)
        signalled = time.monotonic()
        outputs = [t.communicate(timeout=90) for t in tasks]  # a hang fails here
        seconds = time.monotonic() - signalled
    finally:
        for t in tasks:
            t.kill()
    return {
        "codes": [t.returncode for t in tasks],
        "seconds": seconds,
        "requeues": (tmp / "scontrol.log").read_text().splitlines() if (tmp / "scontrol.log").exists() else [],
        "logs": [o + e for o, e in outputs],
        "folder": out,
        "saved": torch.load(last, map_location="cpu", weights_only=False),
    }


@pytest.mark.parametrize("attempt", range(REPEATS))
def test_a_requeue_signal_to_every_rank_stops_them_together_and_requeues_once(synthetic_root, tmp_path, attempt):
    result = requeue_once(synthetic_root, tmp_path)
    print(f"attempt {attempt}: exit codes {result['codes']}, {result['seconds']:.1f} s from the signal to the exit")
    assert result["codes"] == [143, 143], [log[-3000:] for log in result["logs"]]
    assert result["requeues"] == ["requeue 4343"]  # once, by rank 0
    assert not list(result["folder"].glob("hpc_ckpt_*"))  # Lightning's handler did not run: one checkpoint
    assert sum("interrupted: saved a resumable checkpoint" in log for log in result["logs"]) == 2  # both ranks
    stops = [line for log in result["logs"] for line in log.splitlines() if "stopping on a signal at" in line]
    assert len(stops) == 2 and len({line.split("stopping on a signal at")[1] for line in stops}) == 1  # one step
    saved = result["saved"]
    epoch, done = next(v for k, v in saved.items() if k.endswith("VideoDataModule"))["train_position"]
    assert saved["global_step"] == 2 * epoch + done  # 2 batches per rank and epoch: the last finished batch
    assert not (result["folder"] / "metrics.json").exists()
