"""DDP jobs under Hydra multirun: each job's extra ranks re-create that job, and only that job.

Lightning starts the extra ranks of `strategy=ddp` by re-running `sys.argv`; under a sweep (`-m`, or
`hydra.mode: MULTIRUN` in a preset) that starts a whole new sweep per rank. Here (Hydra issue #2070's plan) rank 0
saves the job's resolved config in the job's folder and starts every extra rank from it:

    python train.py -cp <job dir>/.hydra -cn ranks hydra.run.dir=<job dir> hydra.output_subdir=null

(a resumed job writes ranks_2.yaml, ...: the run's files are never rewritten, vivit.runtime.runs.write_once)

so all ranks share the job's folder and values (also `${now:...}` and `${hydra:...}`, resolved once by rank 0).
`one_job()` around a job destroys its process group, waits for (or kills) its ranks and restores the
environment, so the next job of the sweep gets a fresh MASTER_PORT and its own process count.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from lightning.fabric.utilities.distributed import _set_num_threads_if_needed
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from omegaconf import DictConfig, OmegaConf, open_dict

import __main__

from .runs import write_once

log = logging.getLogger(__name__)

RANKS_CONFIG = "ranks"  # <job dir>/.hydra/ranks[_N].yaml: the resolved config the extra ranks start from
DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_children: list[subprocess.Popen] = []  # the extra ranks of the job running in this process


def rank_command(local_rank: int, ranks_config: Path, run_dir: Path, job_name: str) -> list[str]:
    """The command line of one extra rank: the entry point, started from the job's saved config `ranks_config`."""
    spec = getattr(__main__, "__spec__", None)
    entry = ["-m", spec.name] if spec is not None else [os.path.abspath(sys.argv[0])]
    return [
        sys.executable,
        *entry,
        "-cp",
        str(ranks_config.parent),
        "-cn",
        ranks_config.stem,
        f'hydra.run.dir="{run_dir}"',
        "hydra.output_subdir=null",
        f"hydra.job.name={job_name}_rank{local_rank}",
    ]


class JobRankLauncher(_SubprocessScriptLauncher):
    """Lightning's script launcher, with the extra ranks started by `rank_command` and watched by `_watch`."""

    def __init__(self, launcher: _SubprocessScriptLauncher, ranks_config: Path, run_dir: Path, job_name: str) -> None:
        super().__init__(launcher.cluster_environment, launcher.num_processes, launcher.num_nodes)
        self.ranks_config, self.run_dir, self.job_name = ranks_config, run_dir, job_name

    def launch(self, function: Callable, *args: Any, trainer: L.Trainer | None = None, **kwargs: Any) -> Any:
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            # Lightning's observer SIGKILLs this process when a rank dies, which would end the whole sweep
            threading.Thread(target=_watch, args=(list(self.procs),), daemon=True).start()
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        env = self.cluster_environment
        os.environ.update(
            MASTER_ADDR=env.main_address,
            MASTER_PORT=str(env.main_port),
            NODE_RANK=str(env.node_rank()),
            LOCAL_RANK=str(env.local_rank()),
            WORLD_SIZE=str(self.num_processes * self.num_nodes),
        )
        for local_rank in range(1, self.num_processes):
            command = rank_command(local_rank, self.ranks_config, self.run_dir, self.job_name)
            proc = subprocess.Popen(command, env={**os.environ, "LOCAL_RANK": str(local_rank)}, cwd=get_original_cwd())
            self.procs.append(proc)
            _children.append(proc)


def _watch(procs: list[subprocess.Popen], period: float = 1.0) -> None:
    """When one rank fails, kill the job's other extra ranks (rank 0 then fails on its next collective)."""
    while any(p.poll() is None for p in procs):
        if any(p.returncode for p in procs):
            for p in procs:
                if p.poll() is None:
                    p.kill()
            return
        time.sleep(period)


def start_ranks_from_job(trainer: L.Trainer, cfg: DictConfig) -> None:
    """Under Hydra, make a DDP/FSDP trainer start its extra ranks from this job's config (see the module doc)."""
    launcher = trainer.strategy.launcher
    if not isinstance(launcher, _SubprocessScriptLauncher) or not HydraConfig.initialized():
        return
    if launcher.cluster_environment.creates_processes_externally:  # an extra rank, or SLURM / torchrun
        return
    run_dir = Path(cfg.paths.output_dir).resolve()
    config_dir = run_dir / ".hydra"
    config_dir.mkdir(parents=True, exist_ok=True)
    task = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}
    # a new file per start (a resumed job adds ranks_2.yaml, ...): a run's files are never rewritten
    ranks_config = write_once(config_dir, RANKS_CONFIG, OmegaConf.to_yaml(OmegaConf.create(task)))
    # the launcher is private to the strategy; swapping it covers `trainer=ddp`, `trainer.strategy=ddp` and FSDP
    trainer.strategy._launcher = JobRankLauncher(launcher, ranks_config, run_dir, HydraConfig.get().job.name)


@contextmanager
def one_job(timeout_s: float = 120.0) -> Iterator[None]:
    """One job of a sweep: on exit, close its process group, end its extra ranks, restore the DDP environment."""
    saved = {key: os.environ.get(key) for key in DDP_ENV}
    failed = True
    try:
        yield
        failed = False
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        codes = _end_children(kill=failed, timeout_s=timeout_s)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if any(codes):
        raise RuntimeError(f"the job's extra ranks exited with codes {codes} (see their logs above)")


def _end_children(kill: bool, timeout_s: float, grace_s: float = 10.0) -> list[int]:
    """Wait for the job's extra ranks, at most `grace_s` when the job failed (time for a failed rank to print
    its traceback, often the real cause), then kill them; their exit codes (0 for a failed job: already raised)."""
    codes = []
    while _children:
        proc = _children.pop()
        try:
            proc.wait(timeout=grace_s if kill else timeout_s)
        except subprocess.TimeoutExpired:
            if not kill:
                log.warning("rank process %d did not exit within %.0f s: killed", proc.pid, timeout_s)
            proc.kill()
            proc.wait()
        codes.append(0 if kill else proc.returncode)
    return codes


# ------------------------------------------------------------------------------------------------ global batch
def device_count(devices: Any) -> int:
    """How many devices `trainer.devices` names: a count, a list of ids or a string of comma-separated ids."""
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, (list, tuple)) and devices:
        return len(devices)
    if isinstance(devices, str) and devices.strip().isdigit():
        return int(devices)
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    raise ValueError(f"trainer.devices={devices!r}: with global_batch, give a number of devices (e.g. 8) or a list")


def accumulation_for(global_batch: int, per_device: int, devices: int, nodes: int) -> int:
    """Gradient accumulation steps so that per_device x devices x nodes x accumulation = global_batch."""
    step = per_device * devices * nodes
    if global_batch <= 0 or global_batch % step:
        raise ValueError(
            f"global_batch={global_batch} is not a multiple of data.batch_size x trainer.devices x "
            f"trainer.num_nodes = {per_device} x {devices} x {nodes} = {step}; change one of them"
        )
    return global_batch // step


def apply_global_batch(cfg: DictConfig) -> str | None:
    """Set `trainer.accumulate_grad_batches` from `global_batch`; the split as a line for the log (None: unset)."""
    if cfg.get("global_batch") is None:
        return None
    devices, nodes = device_count(cfg.trainer.devices), int(cfg.trainer.get("num_nodes") or 1)
    accumulation = accumulation_for(int(cfg.global_batch), int(cfg.data.batch_size), devices, nodes)
    with open_dict(cfg):
        cfg.trainer.accumulate_grad_batches = accumulation
    per_node = f" x {nodes} nodes" if nodes > 1 else ""
    return (
        f"global batch {cfg.global_batch} = {cfg.data.batch_size} per device x {devices} device"
        f"{'s' if devices > 1 else ''}{per_node} "
        f"x {accumulation} accumulation"
    )
