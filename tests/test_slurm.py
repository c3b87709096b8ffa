"""The SLURM launcher preset (conf/hydra/launcher/slurm.yaml): what submitit gives sbatch, and a requeued job
resuming from its own last.ckpt. There is no SLURM here: `sbatch`, `srun` and `scontrol` are small fakes on PATH,
and the job is run the way srun runs it on a node (`python -m submitit.core._submit <folder>`, SLURM variables)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF, ROOT, compose_config
from tests.test_train import SMALL_DATA
from vivit.runtime.errors import ConfigError
from vivit.tasks.build import build, build_trainer

JOB_ID = "4242"  # what the fake sbatch answers


def fake_slurm(bin_dir: Path, log: Path) -> None:
    """sbatch keeps the script it is given and answers a job id; srun exists (submitit checks); scontrol logs its
    arguments and, like SLURM's `scontrol requeue`, stops the job with SIGTERM (its parent: the training process)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    scripts = {
        "sbatch": f'#!/bin/sh\ncp "$1" "{log.parent}/sbatch_$(date +%s%N).sh"\necho "Submitted batch job {JOB_ID}"\n',
        "srun": "#!/bin/sh\nexit 1\n",
        "scontrol": f'#!/bin/sh\necho "$@" >> "{log}"\nkill -TERM $PPID\n',
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)


def submit(
    tmp_path: Path,
    overrides: list[str],
    sweep: list[list[str]],
    task_function,
    monkeypatch,
    sweep_dir: bool = True,
    command: str = "train",
    launcher: str = "slurm",
) -> list[str]:
    """Compose `-m hydra/launcher=<launcher> <overrides>` for conf/<command>.yaml, and let the real launcher submit
    `sweep` (one list of overrides per job) through submitit to the fake sbatch. Returns the sbatch scripts."""
    import submitit
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.types import HydraContext

    fake_slurm(tmp_path / "bin", tmp_path / "scontrol.log")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    # the submitting process waits for the jobs' results: there are none here
    monkeypatch.setattr(submitit.core.core.Job, "results", lambda self: [None])
    fixed = [f"hydra.sweep.dir={tmp_path / 'sweep'}"] if sweep_dir else []  # else: outputs/.../multiruns/<time>
    cfg = compose_config(
        command, [f"hydra/launcher={launcher}", "hydra.mode=MULTIRUN", *fixed, f"hydra.job.name={command}", *overrides]
    )  # the command's job name
    launcher = instantiate(cfg.hydra.launcher)
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF)))
    launcher.setup(
        hydra_context=HydraContext(config_loader=loader, callbacks=Callbacks(cfg)),
        task_function=task_function,
        config=cfg,
    )
    task = OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)  # as typed: `${...}` kept
    launcher.launch([task + job for job in sweep], initial_job_idx=0)
    return [p.read_text() for p in sorted(tmp_path.glob("sbatch_*.sh"))]


def test_slurm_preset_gives_sbatch_nodes_gpus_tasks_and_the_requeue_signal(tmp_path, monkeypatch):
    """`-m seed=0,1 hydra/launcher=slurm trainer=ddp trainer.devices=4 trainer.num_nodes=2` + the account keys:
    one array of 2 jobs, each 2 nodes x 4 GPUs with one task per GPU, SIGUSR1 before the limit, requeue on."""
    scripts = submit(
        tmp_path,
        [
            "trainer=ddp",
            "trainer.devices=4",
            "trainer.num_nodes=2",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.account=vivit",
            "hydra.launcher.mem_gb=256",
            "hydra.launcher.cpus_per_task=8",
            "hydra.launcher.timeout_min=600",
        ],
        [["seed=0"], ["seed=1"]],
        print,
        monkeypatch,
    )
    assert len(scripts) == 1  # one array for the sweep
    flags = {
        line.split("=", 1)[0]: line.split("=", 1)[1] if "=" in line else True
        for line in scripts[0].splitlines()
        if line.startswith("#SBATCH ")
    }
    print("\n".join(line for line in scripts[0].splitlines() if line.startswith("#SBATCH ")))
    expected = {
        "--nodes": "2",
        "--gpus-per-node": "4",
        "--ntasks-per-node": "4",
        "--cpus-per-task": "8",
        "--mem": "256GB",
        "--time": "600",
        "--partition": "gpu",
        "--account": "vivit",
        "--signal": "USR1@120",
        "--requeue": True,
        "--array": "0-1%2",
    }
    assert {f"#SBATCH {k}": v for k, v in expected.items()}.items() <= flags.items()
    assert "srun --unbuffered" in scripts[0] and "-m submitit.core._submit" in scripts[0]
    # Lightning's SLURM environment, with the requeue on the same signal as sbatch's --signal
    cfg = compose_config("train", ["hydra/launcher=slurm", "trainer=ddp"])
    environment = instantiate(cfg.trainer.plugins.cluster_environment)
    assert (
        cfg.trainer.plugins.checkpoint_io._target_ == "vivit.weights.lightning.AtomicCheckpointIO"
    )  # added, not replaced
    assert type(environment).__name__ == "SLURMEnvironment" and environment.auto_requeue
    assert environment.requeue_signal.name == "SIG" + flags["#SBATCH --signal"].split("@")[0]


def test_slurm_preset_without_multirun_is_a_one_line_error(tmp_path):
    cfg = compose_config("train", ["hydra/launcher=slurm"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^hydra/launcher=slurm submits sweeps only: add -m"):
        build(cfg, "fit")


def run_on_node(folder: Path, job: str, cwd: Path, restart: int, bin_dir: Path) -> subprocess.CompletedProcess:
    """What srun runs on the node for job `job` (`<id>` or an array task `<id>_<task>`; 1 node x 1 process),
    on attempt `restart`."""
    array_id, _, task_id = job.partition("_")
    slurm = {
        "SLURM_JOB_ID": array_id,
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NNODES": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
        "SLURM_RESTART_COUNT": str(restart),
        "SUBMITIT_EXECUTOR": "slurm",
    }
    if task_id:
        slurm.update(
            SLURM_JOB_ID=str(int(array_id) + 1 + int(task_id)), SLURM_ARRAY_JOB_ID=array_id, SLURM_ARRAY_TASK_ID=task_id
        )
    env = {
        **os.environ,
        **slurm,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-u", "-m", "submitit.core._submit", str(folder)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_requeued_slurm_job_comes_back_to_its_folder_and_resumes_from_its_last_ckpt(
    synthetic_root, tmp_path, monkeypatch
):
    """Attempt 0 gets SLURM's timeout signal after epoch 0 (of 2): Lightning requeues (scontrol), the run saves
    last.ckpt and exits 143. Attempt 1 (SLURM_RESTART_COUNT=1) runs the same submission in the same folder,
    resumes from that last.ckpt and finishes epoch 1 only."""
    from vivit.tasks.train import job

    submit(
        tmp_path,
        [
            f"data.root={synthetic_root}",
            *SMALL_DATA,
            "logger=none",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
            "trainer.max_epochs=2",
            "threads=1",
            "test=false",
            "+trainer.limit_train_batches=2",
            "+trainer.limit_val_batches=1",
            "trainer.num_sanity_val_steps=0",
            "callbacks.curves=null",
            "callbacks.rich_progress_bar=null",
            "callbacks.throughput=null",
            "+callbacks.signal._target_=tests.ddp_probe.SignalAtEpochEnd",
            "+callbacks.signal.output_dir=${paths.output_dir}",
        ],
        [["seed=0"]],
        job,
        monkeypatch,
    )
    job, folder = JOB_ID, tmp_path / "sweep" / ".submitit" / "%j"
    assert (tmp_path / "sweep" / ".submitit" / job / f"{job}_submitted.pkl").is_file()
    job_dir = tmp_path / "sweep" / "0"

    start = time.monotonic()
    first = run_on_node(folder, job, tmp_path, restart=0, bin_dir=tmp_path / "bin")
    print(f"attempt 0: rc {first.returncode}, {time.monotonic() - start:.1f} s")
    assert first.returncode == 143, first.stdout[-3000:] + first.stderr[-3000:]
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", job]  # Lightning's auto-requeue
    assert json.loads((job_dir / "signal_sent.json").read_text())["epoch"] == 0
    assert (job_dir / "hpc_ckpt_1.ckpt").is_file() and not (job_dir / "metrics.json").exists()
    saved = torch.load(job_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["epoch"] == 1 and saved["global_step"] == 2  # saved on the SIGTERM: epoch 0 (2 steps) done

    (job_dir / "signal_sent.json").unlink()
    start = time.monotonic()
    second = run_on_node(folder, job, tmp_path, restart=1, bin_dir=tmp_path / "bin")
    print(f"attempt 1: rc {second.returncode}, {time.monotonic() - start:.1f} s")
    assert second.returncode == 0, second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert f"resuming from {job_dir / 'checkpoints' / 'last.ckpt'}" in log
    assert not (job_dir / "signal_sent.json").exists()  # epoch 0 was not trained again
    final = torch.load(job_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert final["epoch"] == 1 and final["global_step"] == 4
    assert json.loads((job_dir / "metrics.json").read_text())["output_dir"] == str(job_dir)
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == [".submitit", "0", "multirun.yaml"] or sorted(
        p.name for p in (tmp_path / "sweep").iterdir()
    ) == [".submitit", "0"]


def test_under_slurm_srun_starts_the_ranks_and_lightning_spawns_none(tmp_path, monkeypatch):
    """Rank 1 of a 2-task SLURM job: the trainer of the preset takes its rank from SLURM, and vivit/runtime/ranks.py
    keeps Lightning's launcher (it would start extra ranks from ranks.yaml on one node)."""
    from hydra.core.hydra_config import HydraConfig
    from lightning.fabric.utilities.rank_zero import rank_zero_only
    from lightning_utilities.core.rank_zero import rank_zero_only as utilities_rank_zero_only

    # the rank-1 trainer sets the process-wide rank-zero flags to 1: restore them, or later tests' loggers stay mute
    for flag in (rank_zero_only, utilities_rank_zero_only):
        monkeypatch.setattr(flag, "rank", flag.rank)

    from vivit.runtime.ranks import JobRankLauncher, start_ranks_from_job

    slurm = {
        "SLURM_JOB_ID": JOB_ID,
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NNODES": "1",
        "SLURM_PROCID": "1",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
    }
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    cfg = compose_config(
        "train",
        [
            "hydra/launcher=slurm",
            "hydra.mode=MULTIRUN",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "logger=none",
        ],
        output_dir=tmp_path,
    )
    assert HydraConfig.initialized()
    trainer = build_trainer(cfg.trainer, callbacks=[], logger=False)
    assert trainer.global_rank == 1 and trainer.world_size == 2  # from SLURM's variables
    start_ranks_from_job(trainer, cfg)
    assert not isinstance(trainer.strategy.launcher, JobRankLauncher)
    assert (
        trainer.strategy.launcher is None or trainer.strategy.launcher.cluster_environment.creates_processes_externally
    )
    assert not (tmp_path / ".hydra" / "ranks.yaml").exists()


def test_a_requeued_job_finds_the_same_timestamped_folder(tmp_path, monkeypatch):
    """The default sweep folder is outputs/train/multiruns/<time>: the pickled submission that SLURM runs again on
    a requeue carries the time resolved at submission, so a later attempt computes the same job folder."""
    import submitit
    from hydra.core.utils import setup_globals

    submit(tmp_path, [f"paths.log_dir={tmp_path / 'out'}"], [["seed=0"]], print, monkeypatch, sweep_dir=False)
    (pickle,) = (tmp_path / "out" / "train" / "multiruns").glob(f"*/.submitit/{JOB_ID}/{JOB_ID}_submitted.pkl")
    time.sleep(1.1)  # `${now:%Y-%m-%d_%H-%M-%S}` would give another folder now
    delayed = submitit.helpers.DelayedSubmission.load(pickle)  # what the job (and every requeue of it) unpickles
    launcher, overrides = delayed.function, delayed.args[0]
    setup_globals()  # what the launcher does in the job: registers `now`
    job = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    assert Path(job.hydra.sweep.dir) == pickle.parents[2]
