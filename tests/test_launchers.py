"""One run, one folder, whatever starts its ranks (issue 18, item 6): torchrun and a hand-written srun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import ROOT
from tests.test_distributed import DDP
from tests.test_train import SMALL_DATA
from vivit.runtime import runs


def test_torchrun_two_ranks_make_one_run_folder_one_wandb_run_and_one_metrics_file(synthetic_root, tmp_path):
    out = tmp_path / "outputs"
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    args = [*DDP, "trainer.devices=2", *SMALL_DATA, f"data.root={synthetic_root}", f"paths.log_dir={out}", *BRIEF]
    start = time.monotonic()
    result = subprocess.run(
        [*command, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400
    )
    print(f"torchrun x 2: rc {result.returncode}, {time.monotonic() - start:.1f} s")
    assert result.returncode == 0, result.stderr[-3000:]
    folders = [p for p in (out / "train" / "runs").iterdir() if p.is_dir()]
    assert len(folders) == 1, f"the ranks made {sorted(p.name for p in folders)}"
    run = folders[0]
    assert len(list(run.rglob("metrics.json"))) == 1 and (run / "checkpoints" / "last.ckpt").is_file()
    tf32 = json.loads((run / "metrics.json").read_text())["tf32"]  # item 8: what the run set is on record
    assert tf32 == {"requested": None, "precision": "32-true", "enabled": False, "why": "no CUDA GPU"}
    assert len(list((run / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
    assert sorted(p.name for p in out.iterdir()) == ["train"]


BRIEF = ["+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1"]
SRUN = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "2"}


def test_srun_and_torchrun_ranks_are_told_apart_from_a_single_process(monkeypatch):
    for name in ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(name, raising=False)
    assert runs.outside_launch() is None
    monkeypatch.setenv("SLURM_PROCID", "1")
    for name, value in SRUN.items():
        monkeypatch.setenv(name, value)
    assert runs.outside_launch() == ("slurm-4242.0.0", 1)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # a requeued job is a new start: its own folder
    assert runs.outside_launch() == ("slurm-4242.0.1", 1)
    monkeypatch.setenv("SLURM_NTASKS", "1")  # one task (Lightning or nothing starts the ranks)
    assert runs.outside_launch() is None


def test_srun_tasks_resolve_one_run_folder_per_job_step_and_attempt(tmp_path):
    """The tasks of three srun starts (two attempts of job 4242, job 4243), the waiting rank 1 first."""
    parent = tmp_path / "runs"
    folders = []
    with ThreadPoolExecutor(2) as pool:
        for launch in ("slurm-4242.0.0", "slurm-4242.0.1", "slurm-4243.0.0"):
            tasks = [pool.submit(runs.shared_run_dir, parent, "", launch, rank) for rank in (1, 0)]
            named = {str(task.result(timeout=60)) for task in tasks}
            assert len(named) == 1, named
            folders.append(named.pop())
    assert len(set(folders)) == 3, "a new start made no new folder"
    assert sorted(str(p) for p in parent.iterdir() if not p.name.startswith(".")) == sorted(folders)
