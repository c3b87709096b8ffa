"""Runs that never lie: last.ckpt is the latest state, and a signal-stopped run saves it and exits non-zero."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.test_train import small_overrides


def start_train(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    began = time.monotonic()
    while not path.is_file():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() - began < timeout, f"{path} did not appear"
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_signal_saves_a_resumable_checkpoint_and_exits_non_zero(synthetic_root, tmp_path, signum):
    out = tmp_path / "run"
    process = start_train(*small_overrides(synthetic_root), "trainer.max_epochs=1000", "threads=1", "test=false",
                          f"hydra.run.dir={out}", cwd=tmp_path)
    last = out / "checkpoints" / "last.ckpt"
    try:
        wait_for(last, process)  # the first epoch is done
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, stderr[-3000:]
    assert "preempted: stopped by a signal" in stderr and f"ckpt_path={last}" in stderr
    assert "interrupted: saved a resumable checkpoint" in stdout + stderr  # Hydra logs to stdout
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] >= 4 and "loops" in checkpoint and "optimizer_states" in checkpoint
    assert not (out / "metrics.json").exists()  # not reported as a finished run
