"""Runs that never lie: last.ckpt is the latest state, a signal-stopped run saves it and exits non-zero, a killed
run resumed with resume=<folder> ends exactly like the uninterrupted one, and run folders never collide."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.test_train import small_overrides


def start_train(*args: str, cwd: Path, wandb: str = "disabled", env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python train.py args` in `cwd`, W&B in `wandb` mode, offline; `env`: more environment (a SLURM task's)."""
    env = {**os.environ, "WANDB_MODE": wandb, "HF_HUB_OFFLINE": "1", **(env or {})}
    # a W&B run earlier in this pytest process leaves WANDB_SERVICE set: a child would share that service, where a
    # SIGKILLed child's run id stays "in use" and its resume is refused. A user's train.py has its own service.
    env.pop("WANDB_SERVICE", None)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    began = time.monotonic()
    while not path.is_file():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() - began < timeout, f"{path} did not appear"
        time.sleep(0.2)


# SIGUSR1 (SLURM's timeout signal) takes the same handler (vivit/training/preemption.py): tests/test_preemption.py
# sends it to both ranks of a fake SLURM job
@pytest.mark.parametrize("signum", [signal.SIGTERM], ids=["SIGTERM"])
def test_a_signal_saves_a_resumable_checkpoint_and_exits_non_zero(synthetic_root, tmp_path, signum):
    out = tmp_path / "run"
    process = start_train(
        *small_overrides(synthetic_root),
        "trainer.max_epochs=1000",
        "threads=1",
        "test=false",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    last = out / "checkpoints" / "last.ckpt"
    try:
        wait_for(last, process)  # the first epoch is done
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, stderr[-3000:]
    # the README's way back, from the folder the command was started in: the run folder, overrides kept
    assert "preempted: stopped by a signal" in stderr, stderr[-3000:]
    assert f"continue it with: python {ROOT / 'train.py'} resume=run\n" in stderr, stderr[-3000:]
    assert "interrupted: saved a resumable checkpoint" in stdout + stderr  # Hydra logs to stdout
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] >= 4 and "loops" in checkpoint and "optimizer_states" in checkpoint
    assert not (out / "metrics.json").exists()  # not reported as a finished run


# ------------------------------------------------------------------------------ kill, resume, compare
# Tiny and short, but with what decides a real run's randomness: a DataLoader worker (persistent, as the real
# data configs use 8), mixup, dropout and shuffling. SIGKILL: no handler runs, last.ckpt is the last epoch end.
EXACT = [
    "data.index.num_train=32",
    "data.index.num_val=16",
    "data.index.num_test=16",
    "data.batch_size=16",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=8",
    "threads=1",
    "test=false",
    "data.num_workers=1",
    "regularisation.mixup_alpha=0.3",
    "model.dropout=0.1",
    "logger=[csv,wandb]",
]


STOP_MID_EPOCH = [
    "+callbacks.stop._target_=tests.ddp_probe.SignalAtBatch",
    "+callbacks.stop.epoch=2",
    "+callbacks.stop.batch=0",
]


def run_folders(runs: Path) -> set[Path]:
    return {p for p in runs.iterdir() if p.is_dir()} if runs.is_dir() else set()


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def _overrides(folder: Path) -> str:
    path = folder / ".hydra" / "overrides.yaml"
    return path.read_text() if path.is_file() else ""


@pytest.fixture(scope="module")
def killed_and_resumed(synthetic_root, tmp_path_factory):
    """Three train.py runs started at once (the reference; one SIGKILLed at a random point after its first
    checkpoint; one sent SIGTERM after batch 0 of epoch 2's two, in the middle of the epoch), then
    `train.py resume=<its folder>` for both. Every second of the next ten minutes already has a run folder, so the
    runs must pick suffixed names."""
    from vivit.runtime.runs import TIME_FORMAT

    tmp = tmp_path_factory.mktemp("kill")
    runs = tmp / "outputs" / "train" / "runs"
    runs.mkdir(parents=True)
    now = time.time()
    taken = {runs / time.strftime(TIME_FORMAT, time.localtime(now + s)) for s in range(-1, 600)}
    for folder in taken:
        folder.mkdir()
    common = [f"data.root={synthetic_root}", *EXACT, f"paths.log_dir={tmp / 'outputs'}"]
    reference = start_train(*common, cwd=tmp)
    killed = start_train(*common, "tags=[killed]", cwd=tmp, wandb="offline")  # tags: to tell the runs apart
    stopped = start_train(*common, "tags=[stopped]", *STOP_MID_EPOCH, cwd=tmp)
    try:
        began = time.monotonic()
        while not (mine := [f for f in run_folders(runs) - taken if "tags=[killed]" in _overrides(f)]):
            assert killed.poll() is None and time.monotonic() - began < 240, killed.communicate()[1][-3000:]
            time.sleep(0.2)
        folder = mine[0]
        wait_for(folder / "checkpoints" / "last.ckpt", killed)
        time.sleep(random.uniform(0, 1.0))  # an epoch here is ~0.1-0.5 s: somewhere in epochs 1-4
        assert killed.poll() is None, "the run finished before it could be killed"
        killed.kill()
        killed.wait()
        killed_at = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
        _, stopped_err = stopped.communicate(timeout=300)
        assert stopped.returncode == 143, stopped_err[-3000:]
        stopped_folder = next(f for f in run_folders(runs) - taken if "tags=[stopped]" in _overrides(f))
        stopped_at = torch.load(stopped_folder / "checkpoints" / "last.ckpt", weights_only=False)
        resumed = start_train(f"resume={folder}", cwd=tmp, wandb="offline")
        # trusted: the overrides name the test probe, a class outside the configs
        resumed_stopped = start_train(f"resume={stopped_folder}", "trusted=true", cwd=tmp)
        _, resumed_err = resumed.communicate(timeout=300)
        _, resumed_stopped_err = resumed_stopped.communicate(timeout=300)
        _, reference_err = reference.communicate(timeout=300)
    finally:
        for process in (reference, killed, stopped):
            process.kill()
    assert reference.returncode == 0, reference_err[-3000:]
    assert resumed.returncode == 0, resumed_err[-3000:]
    assert resumed_stopped.returncode == 0, resumed_stopped_err[-3000:]
    new = run_folders(runs) - taken - {stopped_folder}
    return {
        "runs": runs,
        "new": new,
        "folder": folder,
        "reference": next(iter(new - {folder}), None),
        "killed_at": killed_at,
        "stopped": stopped_folder,
        "stopped_at": stopped_at,
    }


def test_two_runs_started_at_once_get_their_own_folders(killed_and_resumed):
    assert len(killed_and_resumed["new"]) == 2  # the reference and the killed run; the resume made none
    assert all("_" in f.name[len("2026-12-03_10-00-00") :] for f in killed_and_resumed["new"])  # suffixed names


def test_a_killed_run_resumed_ends_with_the_weights_of_the_uninterrupted_run(killed_and_resumed):
    a, b = weights(killed_and_resumed["reference"]), weights(killed_and_resumed["folder"])
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"killed after step {killed_and_resumed['killed_at']}; max |diff| of the final weights: {diff:.3g}")
    assert diff <= 1e-6


def test_a_run_stopped_mid_epoch_resumes_bit_exactly(killed_and_resumed):
    """SIGTERM after batch 0 of epoch 2: last.ckpt holds 5 steps and where the data stopped; the resumed run goes
    on from batch 1 of the same order, with the same draws, to the uninterrupted run's weights."""
    saved = killed_and_resumed["stopped_at"]
    assert saved["global_step"] == 5
    assert next(v for k, v in saved.items() if k.endswith("VideoDataModule"))["train_position"] == [2, 1]
    a, b = weights(killed_and_resumed["reference"]), weights(killed_and_resumed["stopped"])
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"stopped mid-epoch at step 5; max |diff| of the final weights: {diff:.3g}")
    assert diff == 0.0


def test_the_resumed_run_continues_its_history_logs_best_score_and_wandb_run(killed_and_resumed):
    import csv

    ref, folder = killed_and_resumed["reference"], killed_and_resumed["folder"]

    def history(run):  # each epoch's row, timings (perf/*) aside; train/unreadable: see docs/resume.md
        return [
            {k: v for k, v in row.items() if not k.startswith("perf/") and k != "train/unreadable"}
            for row in json.loads((run / "history.json").read_text())
        ]

    assert [row["epoch"] for row in history(folder)] == list(range(8))
    assert history(folder) == history(ref)

    def rows(run):  # (step, epoch, metric names) of each CSV row
        with (run / "csv" / "metrics.csv").open() as file:
            return [
                (r["step"], r["epoch"], sorted(k for k, v in r.items() if v and "/" in k and "clips_per_s" not in k))
                for r in csv.DictReader(file)
            ]

    assert rows(folder) == rows(ref)  # no epoch lost or logged twice

    def best(run):
        callbacks = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]
        state = next(v for k, v in callbacks.items() if k.startswith("ModelCheckpoint"))
        return float(state["best_model_score"]), Path(state["best_model_path"]).name

    assert best(folder) == best(ref)
    offline = sorted((folder / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and len({p.name.rsplit("-", 1)[1] for p in offline}) == 1  # two starts, one run id
    summary = json.loads((folder / "metrics.json").read_text())
    assert summary["checkpoint"] == str(folder / "checkpoints" / "last.ckpt")
    assert summary["unreadable"]["train"] == [0] * 8  # every epoch's pass, also those before the kill


# ------------------------------------------------------------------------------ run folders and resume=
def test_run_folders_made_at_the_same_moment_never_collide(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from vivit.runtime.runs import new_run_dir

    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: new_run_dir(tmp_path), range(16)))
    assert len(set(folders)) == 16 and all(f.is_dir() for f in folders)
    stamps = {f.name.split("_")[0] + "_" + f.name.split("_")[1] for f in folders}
    assert sorted(folders) == sorted(folders, key=lambda f: f.name)  # names sort by start time
    assert len(stamps) <= 2  # one or two seconds: the rest are suffixed, not renamed


def test_resume_repeats_the_runs_overrides_in_its_folder(tmp_path):
    from vivit.runtime.resume import resume_arguments

    run = tmp_path / "runs" / "2026-12-03_10-00-00"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- trainer.max_epochs=4\n- ckpt_path=old.ckpt\n- data.root=/d\n")
    with pytest.raises(ValueError, match=r"resume=.*no checkpoints/last.ckpt"):
        resume_arguments(["train.py", f"resume={run}"])
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    args = resume_arguments(["train.py", f"resume={run}", "trainer.max_epochs=8"])
    assert args[1:4] == ["trainer.max_epochs=4", "data.root=/d", "trainer.max_epochs=8"]  # the later one wins
    same_folder = [f'hydra.run.dir="{run}"', "hydra.output_subdir=null"]  # Hydra rewrites none of the run's records
    assert args[4:] == [f'resume="{run}"', f'ckpt_path="{run}/checkpoints/last.ckpt"', *same_folder]
    # a continuation that started recorded its overrides beside the first ones: the next resume replays those
    (run / ".hydra" / "continued.yaml").write_text("- trainer.max_epochs=8\n- data.root=/d\n- resume=x\n")
    assert resume_arguments(["train.py", f"resume={run}"])[1:3] == ["trainer.max_epochs=8", "data.root=/d"]
    # ckpt_path= a run's last.ckpt continues in that folder; another checkpoint branches off into a new one
    assert resume_arguments(["train.py", f"ckpt_path={run}/checkpoints/last.ckpt"])[-2:] == same_folder
    (run / "checkpoints" / "epoch001.ckpt").write_bytes(b"")
    assert resume_arguments(["train.py", f"ckpt_path={run}/checkpoints/epoch001.ckpt"]) == [
        "train.py",
        f"ckpt_path={run}/checkpoints/epoch001.ckpt",
    ]


def test_the_stop_message_gives_the_readme_command_of_the_way_the_run_was_started(tmp_path, monkeypatch):
    from vivit.runtime.resume import resume_command

    run = tmp_path / "outputs" / "train" / "runs" / "2026-12-03_10-43-51"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    started = {
        "train.py": "python train.py",
        "/venv/bin/vivit-train": "vivit-train",
        str(ROOT / "vivit" / "tasks" / "train.py"): "python -m vivit.tasks.train",
    }
    for argv0, command in started.items():
        monkeypatch.setattr(sys, "argv", [argv0, "seed=1"])
        assert (
            resume_command(str(run / "checkpoints" / "last.ckpt")) == f"{command} resume=outputs/train/runs/{run.name}"
        )
    # not the last.ckpt of a run folder: only the checkpoint can be named
    assert resume_command(str(tmp_path / "my run.ckpt")) == "python -m vivit.tasks.train ckpt_path='my run.ckpt'"


def test_hydra_flags_may_come_after_the_overrides():
    from vivit.tasks.command import hydra_flags_first

    argv = ["train.py", "resume=r", "--cfg", "job", "seed=1", "-i", "defaults", "--resolve", "-cn", "x", "+a=1", "-m"]
    assert hydra_flags_first(argv) == [
        "train.py",
        "--cfg",
        "job",
        "-i",
        "defaults",
        "--resolve",
        "-cn",
        "x",
        "-m",
        "resume=r",
        "seed=1",
        "+a=1",
    ]
    assert hydra_flags_first(["train.py", "a=1", "--info", "b=2", "--cfg=job"]) == [
        "train.py",
        "--info",
        "--cfg=job",
        "a=1",
        "b=2",
    ]
