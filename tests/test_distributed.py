"""Several processes (gloo on the CPU): sweeps of DDP jobs, metrics reduced over ranks, per-rank randomness,
the global batch (the SLURM launcher preset: tests/test_slurm.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, compose_config
from tests.test_docs import run_in_process
from tests.test_train import SMALL_DATA
from vivit.runtime.errors import ConfigError
from vivit.runtime.ranks import accumulation_for, apply_global_batch
from vivit.tasks.build import build

DDP = ["trainer.accelerator=cpu", "trainer.strategy=ddp", "trainer.max_epochs=1", "threads=1"]
PROBE = ["+callbacks.probe._target_=tests.ddp_probe.Probe", "+callbacks.probe.output_dir=${paths.output_dir}"]


def run_train(
    *args: str, cwd: Path, wandb: str = "disabled", entry: Path = ROOT / "train.py"
) -> tuple[subprocess.CompletedProcess, float]:
    env = {
        **os.environ,
        "WANDB_MODE": wandb,
        "WANDB_DIR": str(cwd / "wandb"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(entry), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=400
    )
    return result, time.monotonic() - start


def console_script(folder: Path, name: str, target: str) -> Path:
    """The script pip writes for a console command (`vivit-train = vivit.tasks.train:main`), here for the clone."""
    module, function = target.split(":")
    path = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"import re\nimport sys\nfrom {module} import {function}\nif __name__ == '__main__':\n"
        f"    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        f"    sys.exit({function}())\n"
    )
    return path


def probes(job_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(job_dir.glob("probe_rank*.json"))]


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_multirun_of_ddp_jobs_one_folder_and_one_wandb_run_per_job(synthetic_root, tmp_path):
    """`-m` x 2 processes through the console command of an installed package (`vivit-train`, started outside the
    clone; train.py is the same `main`): each job's extra rank re-creates that job, not the sweep."""
    out = tmp_path / "outputs"
    command = console_script(tmp_path / "bin", "vivit-train", "vivit.tasks.train:main")
    result, seconds = run_train(
        "-m",
        "trainer.log_every_n_steps=5,10",
        "trainer.devices=2",
        *DDP,
        *SMALL_DATA,
        f"data.root={synthetic_root}",
        "regularisation.mixup_alpha=0.5",
        *PROBE,
        f"paths.log_dir={out}",
        f"hydra.sweep.dir={out}/sweep",
        cwd=tmp_path,
        wandb="offline",
        entry=command,
    )
    print(f"multirun x DDP: rc {result.returncode}, {seconds:.1f} s")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Launching 2 jobs") + result.stderr.count("Launching 2 jobs") == 1
    # exactly the sweep folder with its two jobs; nothing else in the outputs or the working folder
    assert sorted(p.name for p in out.iterdir()) == ["sweep"]
    assert sorted(p.name for p in (out / "sweep").iterdir() if p.is_dir()) == ["0", "1"]
    assert not (tmp_path / "lightning_logs").exists() and not (tmp_path / "outputs" / "train").exists()
    jobs = [out / "sweep" / name for name in ("0", "1")]
    for job in jobs:
        assert len(list(job.glob("metrics.json"))) == 1 and (job / "checkpoints" / "last.ckpt").is_file()
        assert [p.name for p in job.iterdir() if p.is_dir() and p.name not in (".hydra", "wandb")] == ["checkpoints"]
        # one W&B run per job (rank 0's), in the sweep's group
        runs = list((job / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(runs) == 1 and b"train-sweep" in runs[0].read_bytes()
        print(f"{job.name}: " + ", ".join(sorted(p.name for p in job.iterdir())))
    # every rank of both jobs has exited
    ranks = [r for job in jobs for r in probes(job)]
    assert [r["world_size"] for r in ranks] == [2, 2, 2, 2]
    assert not any(alive(r["pid"]) for r in ranks)

    # per-rank randomness (scenic binds mixup and dropout to the device): disjoint samples, different lambdas
    first, second = (probes(job) for job in jobs)
    rank0, rank1 = first
    assert len(rank0["indices"]) == len(rank1["indices"]) == 32 and not set(rank0["indices"]) & set(rank1["indices"])
    assert len(rank0["lambdas"]) == 2 and rank0["lambdas"] != rank1["lambdas"]
    # ... because each rank is seeded seed + rank (different lambdas alone also come from the samples' own draws)
    assert [rank0["seed"], rank1["seed"]] == [0, 1]
    # ... and a seeded job is reproducible: the second job (same seed) draws the same on each rank
    assert [r["lambdas"] for r in second] == [r["lambdas"] for r in first]
    assert [r["indices"] for r in second] == [r["indices"] for r in first]
    assert [r["seed"] for r in second] == [r["seed"] for r in first]


def test_sweep_declared_in_a_preset_changes_process_count_and_survives_a_dead_rank(synthetic_root, tmp_path):
    """experiment=demo_ddp sweeps trainer.devices=2,1 (hydra.mode: MULTIRUN); rank 1 of the first job is killed
    (SIGKILL, as the out-of-memory killer does) in the middle of its first epoch. The job ends well within the
    collective timeout, says which rank died and why, and the sweep runs its next job; the collector lists the
    failed job with the reason."""
    from datetime import datetime

    out = tmp_path / "outputs"
    timeout_s = 120
    result, seconds = run_train(
        "experiment=demo_ddp",
        *DDP,
        *SMALL_DATA,
        f"data.root={synthetic_root}",
        "logger=none",
        *PROBE,
        "+callbacks.probe.crash_rank=1",
        "+callbacks.probe.crash_how=kill",
        f"collective_timeout_s={timeout_s}",
        f"paths.log_dir={out}",
        f"hydra.sweep.dir={out}/sweep",
        cwd=tmp_path,
    )
    print(f"preset sweep trainer.devices=2,1 with a rank killed: rc {result.returncode}, {seconds:.1f} s")
    assert result.returncode == 1  # Hydra reports the failed job at the end of the sweep
    starts = [  # when Hydra started each job: job 0 lasted until job 1 started
        datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
        for line in result.stdout.splitlines()
        if "[HYDRA] \t#" in line
    ]
    job_seconds = (starts[1] - starts[0]).total_seconds()
    print(f"the job with the killed rank ended after {job_seconds:.1f} s (collective timeout {timeout_s} s)")
    assert job_seconds < timeout_s, "the job waited for the collective timeout"
    assert "rank(s) died: rank 1 killed by SIGKILL" in result.stdout + result.stderr
    failed, done = out / "sweep" / "0", out / "sweep" / "1"
    assert not (failed / "metrics.json").exists()
    assert json.loads((failed / "failure.json").read_text())["dead_ranks"]["1"].startswith("killed by SIGKILL")
    table = subprocess.run(
        [sys.executable, "-m", "vivit.experiments.collect", str(out / "sweep")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0, table.stderr[-2000:]
    assert "1/2 jobs finished" in table.stdout and "job 0: rank 1 killed by SIGKILL" in table.stdout
    assert json.loads((done / "metrics.json").read_text())["val"]["val/top1"] >= 0
    assert [r["world_size"] for r in probes(failed)] == [2, 2] and [r["world_size"] for r in probes(done)] == [1]
    assert not any(alive(r["pid"]) for r in probes(failed) + probes(done))
    assert sorted(p.name for p in (out / "sweep").iterdir() if p.is_dir()) == ["0", "1"]


def test_eval_on_one_and_two_processes_gives_the_same_numbers(synthetic_root, tmp_path, monkeypatch):
    """Top-1, top-5 and loss are reduced over ranks: 2 processes report what 1 process reports, also when the ranks'
    shares differ (31 videos: one padding item evens out their batch counts and is dropped)."""
    import torch
    from omegaconf import OmegaConf

    from vivit.common.files import load_torch_file
    from vivit.models import build_model
    from vivit.weights.checkpoint import save_checkpoint

    cfg = compose_config("train", [f"data.root={synthetic_root}", *SMALL_DATA], output_dir=tmp_path)
    model = {
        k: {**OmegaConf.to_container(cfg.model, resolve=r), "num_classes": 8}
        for k, r in (("source", False), ("resolved", True))
    }
    net = build_model(model["resolved"])
    torch.manual_seed(0)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    save_checkpoint(tmp_path / "model.pt", net.state_dict(), model["source"], model["resolved"])
    metrics = {}
    for devices in (1, 2):
        env = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
        args = [
            f"ckpt_path={tmp_path / 'model.pt'}",
            "split=val",
            "data=synthetic",
            f"data.root={synthetic_root}",
            *SMALL_DATA,
            "data.index.num_val=31",  # uneven shares: 16 and 15 videos, 4 and 3 batches of 5 before padding
            "data.batch_size=5",
            "eval.save_predictions=true",
            "trainer.accelerator=cpu",
            f"trainer.devices={devices}",
            "trainer.strategy=ddp" if devices > 1 else "trainer.strategy=auto",
            "logger=none",
            "threads=1",
            f"hydra.run.dir={tmp_path / str(devices)}",
        ]
        if devices == 1:  # eval.py's entry point in this process; the 2-process run is the real command
            monkeypatch.chdir(tmp_path)
            assert run_in_process("eval.py", args) == 0
        else:
            result = subprocess.run(
                [sys.executable, str(ROOT / "eval.py"), *args],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, result.stderr[-3000:]
        metrics[devices] = json.loads((tmp_path / str(devices) / "metrics.json").read_text())["val"]
        predictions = load_torch_file(tmp_path / str(devices) / "predictions_val.pt")
        ids = predictions["ids"]
        assert len(ids) == len(set(ids)) == 31 and len(predictions["logits"][""]) == 31  # each video once, no padding
    for key in ("val/top1", "val/top5", "val/loss"):
        assert metrics[2][key] == pytest.approx(metrics[1][key], abs=1e-6), key
    assert 0 < metrics[1]["val/top1"] < 1  # a model that is neither always right nor always wrong


@pytest.mark.parametrize(
    "devices,nodes,per_device,accumulation", [(1, 1, 8, 8), (8, 1, 8, 1), (16, 1, 4, 1), (8, 2, 4, 1), (2, 1, 8, 4)]
)
def test_global_batch_sets_the_accumulation(devices, nodes, per_device, accumulation):
    assert accumulation_for(64, per_device, devices, nodes) == accumulation


def test_global_batch_that_does_not_divide_is_a_one_line_error_naming_the_keys(synthetic_root, tmp_path):
    overrides = ["experiment=paper/table2_variants", "data.root=/nonexistent", "trainer.devices=16"]
    cfg = compose_config("train", overrides, output_dir=tmp_path)
    with pytest.raises(ConfigError) as error:
        build(cfg, "fit")
    message = str(error.value)
    assert message.startswith("global_batch=64 is not a multiple of data.batch_size x trainer.devices")
    assert "8 x 16 x 1 = 128" in message and "\n" not in message
    cfg = compose_config("train", [*overrides, "data.batch_size=4"], output_dir=tmp_path)
    assert apply_global_batch(cfg) == "global batch 64 = 4 per device x 16 devices x 1 accumulation"
    assert cfg.trainer.accumulate_grad_batches == 1
    cfg = compose_config("train", [*overrides[:2], "trainer=ddp"], output_dir=tmp_path)
    assert apply_global_batch(cfg) == "global batch 64 = 8 per device x 8 devices x 1 accumulation"


def test_a_rank_that_dies_before_the_rendezvous_does_not_hang_the_others(synthetic_root, tmp_path):
    """Rank 1 exits while its job is built, before the process group exists: rank 0 waits for it at the rendezvous
    no longer than collective_timeout_s (Lightning's default: 30 minutes), then the job fails naming rank 1."""
    timeout_s = 10
    result, seconds = run_train(
        *DDP,
        "trainer.devices=2",
        *SMALL_DATA,
        f"data.root={synthetic_root}",
        "logger=none",
        *PROBE,
        "+callbacks.probe.crash_rank=1",
        "+callbacks.probe.crash_how=before_rendezvous",
        f"collective_timeout_s={timeout_s}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    print(f"rank 1 dead before the rendezvous: rc {result.returncode} after {seconds:.1f} s (timeout {timeout_s} s)")
    printed = result.stdout + result.stderr
    assert result.returncode != 0 and seconds < 60, printed[-3000:]  # ~25 s here; 30 min without the timeout
    assert "rank 1" in printed and "exit code 3" in printed, printed[-3000:]
    assert not (tmp_path / "run" / "metrics.json").exists()
