"""SLURM jobs (conf/hydra/launcher/slurm.yaml): requeue and resume.

hydra-submitit-launcher submits each job of a sweep as a SLURM array task; srun starts one process per GPU
(tasks per node = trainer.devices), Lightning's `SLURMEnvironment` reads the ranks from SLURM's variables, so
`vivit.runtime.ranks` starts no ranks. A job's folder is `<sweep dir>/<job number>`, fixed at submission (the
pickled sweep config carries the resolved `${now:...}`), so a requeued job comes back to the same folder and
resumes from the last.ckpt there.

Requeue: SLURM sends SIGUSR1 before the time limit (`--signal=USR1@<delay>`) to every task; all ranks stop at one
agreed batch and save last.ckpt (vivit.training.preemption), rank 0 runs `scontrol requeue` once
(`requeue_job`), and every rank exits 143 (also on the SIGTERM SLURM sends then). Preemption with `--requeue` is
the SIGTERM half. Lightning's own SLURM handler (hpc_ckpt_<n>.ckpt) does not run.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig

log = logging.getLogger(__name__)
LAUNCHER = "slurm"  # the preset's name in conf/hydra/launcher/


def restart_count() -> int:
    """How many times SLURM has restarted (requeued) this job: 0 for a first run and outside SLURM."""
    value = os.environ.get("SLURM_RESTART_COUNT", "").strip()
    return int(value) if value.isdigit() else 0


def requeue_signal(trainer: L.Trainer) -> int | None:
    """The signal that asks this run to requeue its job: the SLURM environment's (SIGUSR1 unless set) when it has
    auto-requeue on (conf/hydra/launcher/slurm.yaml), else None (SIGUSR1 then only stops the run).
    Lightning keeps the environment on a private connector (a one-device strategy has none of its own)."""
    environment = trainer._accelerator_connector.cluster_environment
    if not (isinstance(environment, SLURMEnvironment) and environment.auto_requeue):
        return None
    return environment.requeue_signal or getattr(signal, "SIGUSR1", None)


def requeue_job() -> None:
    """`scontrol requeue` this job (an array task by its array id): once per stop, from rank 0, after last.ckpt is
    saved (vivit.tasks.train.fit). A failure is logged: the run still exits 143 and can be resumed by hand."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array_job}_{task}" if array_job and task else os.environ.get("SLURM_JOB_ID", "")
    if not re.fullmatch(r"[0-9_]+", job):
        log.warning("no SLURM job id (SLURM_JOB_ID=%r): not requeued", job)
        return
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("scontrol requeue %s failed: %s", job, error)
        return
    if result.returncode:
        log.warning("scontrol requeue %s failed (%d): %s", job, result.returncode, result.stderr.strip())
    else:
        log.warning("requeued SLURM job %s", job)


def check_launcher(cfg: DictConfig) -> None:
    """`hydra/launcher=slurm` without -m would run here, not on SLURM (Hydra uses launchers for sweeps only)."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.runtime.choices.get("hydra/launcher") == LAUNCHER and hydra_cfg.mode != RunMode.MULTIRUN:
        raise ValueError(
            "hydra/launcher=slurm submits sweeps only: add -m (one job is a one-point sweep), e.g. "
            "`python train.py -m hydra/launcher=slurm ...`"
        )
