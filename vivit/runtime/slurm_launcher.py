"""The SLURM launcher of conf/hydra/launcher/slurm.yaml: hydra-submitit-launcher, with each job sized by its own
config.

Hydra's submitit launcher reads its resources once per sweep (they are resolved when the launcher is built), so a
sweep over `trainer.devices` or `trainer.num_nodes` asked every job for the first job's allocation. Here each job's
config is composed first and its resources follow from it (`job_resources`): nodes = trainer.num_nodes, GPUs and
tasks per node = trainer.devices, and CPUs and memory from the per-GPU table `slurm_resources` (the preset's,
overridable), capped at the node's size. Jobs that ask the same are submitted together, as one array; the arrays
of a sweep are all submitted before any result is awaited. Imported only when that preset is used (its `_target_`):
hydra-submitit-launcher is an optional dependency (requirements-slurm.txt).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError
from .ranks import device_count

log = logging.getLogger(__name__)

TABLE_OR_LAUNCHER = ("cpus_per_task", "mem_gb")  # hydra.launcher.<key> given (not null) wins over the table
EXECUTOR_KEYS = ("submitit_folder", "max_num_timeout")  # the executor's own, not sbatch's


def job_resources(cfg: DictConfig, fixed: dict[str, Any], node: dict[str, int] | None = None) -> dict[str, Any]:
    """What one job asks SLURM for, from its config: nodes, GPUs and tasks from its trainer, CPUs per task and
    memory per node from the table `slurm_resources`, capped at the node's size (the table's `node_cpus` /
    `node_mem_gb`, else `node`: the partition's smallest node as sinfo reports it). `hydra.launcher.cpus_per_task`
    or `mem_gb` given (in `fixed`, not null) win."""
    try:
        devices = device_count(cfg.trainer.devices)
    except ValueError:
        raise ConfigError(
            f"trainer.devices: hydra/launcher=slurm needs a number of GPUs per node, not {cfg.trainer.devices!r} "
            "(e.g. trainer.devices=8)"
        ) from None
    nodes = int(cfg.trainer.get("num_nodes") or 1)
    table = cfg.get("slurm_resources") or {}
    per_gpu_cpus, per_gpu_mem = int(table.get("cpus_per_gpu") or 1), table.get("mem_gb_per_gpu")
    node_cpus = table.get("node_cpus") or (node or {}).get("cpus")
    node_mem = table.get("node_mem_gb") or (node or {}).get("mem_gb")
    # one task per GPU: its data workers and itself
    cpus = max(per_gpu_cpus, int(cfg.data.get("num_workers") or 0) + 1)
    if node_cpus:
        cpus = min(cpus, max(1, int(node_cpus) // devices))
    mem = None if per_gpu_mem is None else int(per_gpu_mem) * devices  # --mem is per node
    if mem is not None and node_mem:
        mem = min(mem, int(node_mem))
    sized = {"nodes": nodes, "gpus_per_node": devices, "tasks_per_node": devices, "cpus_per_task": cpus}
    sized["mem_gb"] = mem
    return {key: fixed[key] if fixed.get(key) is not None else value for key, value in sized.items()}


def partition_node(partition: str | None) -> dict[str, int] | None:
    """The CPUs and memory (GB) of the smallest node of `partition` (None: the default one), as sinfo reports
    them; None without sinfo or an answer."""
    command = ["sinfo", "--noheader", "--Node", "--format=%c %m", *(["--partition", partition] if partition else [])]
    try:
        answer = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    nodes = [line.split() for line in answer.splitlines() if len(line.split()) == 2]
    sizes = [(int(cpus), int(mem) // 1024) for cpus, mem in nodes if cpus.isdigit() and mem.isdigit()]
    if not sizes:
        return None
    return {"cpus": min(cpus for cpus, _ in sizes), "mem_gb": min(mem for _, mem in sizes)}


class SizedSlurmLauncher(SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher, each job asking for what its own config needs (module doc)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Submitit 'slurm' sweep output dir : %s", sweep_dir)
        fixed = {key: self.params.get(key) for key in TABLE_OR_LAUNCHER}
        node = partition_node(self.params.get("partition"))
        groups: dict[tuple, list[tuple]] = {}  # resources -> the arguments of each job asking for them
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            job_cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            resources = job_resources(job_cfg, fixed, node)
            log.info("\t#%d : %s  (%s)", number, " ".join(filter_overrides(overrides)), _shown(resources))
            arguments = (list(overrides), "hydra.sweep.dir", number, f"job_id_for_{number}", Singleton.get_state())
            groups.setdefault(tuple(sorted(resources.items())), []).append(arguments)
        submitted = {}
        for resources, jobs in groups.items():
            executor = self._executor()
            executor.update_parameters(**self._queue_parameters(dict(resources)))
            for arguments, job in zip(jobs, executor.map_array(self, *zip(*jobs)), strict=True):
                submitted[arguments[2]] = job
        return [submitted[number].results()[0] for number in sorted(submitted)]

    def _executor(self) -> submitit.AutoExecutor:
        return submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=self.params["submitit_folder"],
            **{f"{self._EXECUTOR}_max_num_timeout": self.params["max_num_timeout"]},
        )

    def _queue_parameters(self, resources: dict[str, Any]) -> dict[str, Any]:
        """The launcher's parameters with this group's resources, named as submitit's AutoExecutor takes them."""
        shared = set(OmegaConf.structured(BaseQueueConf).keys())  # the names every submitit cluster takes
        params = {key: value for key, value in {**self.params, **resources}.items() if key not in EXECUTOR_KEYS}
        return {key if key in shared else f"{self._EXECUTOR}_{key}": value for key, value in params.items()}


def _shown(resources: dict[str, Any]) -> str:
    mem = f", {resources['mem_gb']} GB" if resources.get("mem_gb") else ""
    return (
        f"{resources['nodes']} node(s) x {resources['gpus_per_node']} GPU(s), "
        f"{resources['cpus_per_task']} CPUs per task{mem}"
    )
