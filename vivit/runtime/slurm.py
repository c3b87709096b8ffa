"""SLURM jobs (conf/hydra/launcher/slurm.yaml): requeue and resume.

hydra-submitit-launcher submits each job of a sweep as a SLURM array task; srun starts one process per GPU
(tasks per node = trainer.devices), Lightning's `SLURMEnvironment` reads the ranks from SLURM's variables, so
`vivit.runtime.ranks` starts no ranks. A job's folder is `<sweep dir>/<job number>`, fixed at submission (the
pickled sweep config carries the resolved `${now:...}`), so a requeued job comes back to the same folder and
resumes from the last.ckpt there.

Requeue: SLURM sends SIGUSR1 before the time limit (`--signal=USR1@<delay>`); Lightning's handler saves
`hpc_ckpt_<n>.ckpt` and runs `scontrol requeue`; SLURM then stops the job with SIGTERM, on which the run saves
last.ckpt (vivit.training.callbacks.LastCheckpoint) and exits 143. Preemption with `--requeue` is the SIGTERM half.
"""

from __future__ import annotations

import os

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig

LAUNCHER = "slurm"  # the preset's name in conf/hydra/launcher/


def restart_count() -> int:
    """How many times SLURM has restarted (requeued) this job: 0 for a first run and outside SLURM."""
    value = os.environ.get("SLURM_RESTART_COUNT", "").strip()
    return int(value) if value.isdigit() else 0


def lightning_requeues(trainer: L.Trainer) -> bool:
    """Whether Lightning's SLURM handler owns the requeue signal in this run (it installs its handler only when
    the signal has none: a handler set before `fit` would silently switch the requeue off)."""
    environment = trainer._accelerator_connector.cluster_environment  # what Lightning's signal connector reads
    return isinstance(environment, SLURMEnvironment) and environment.auto_requeue


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
