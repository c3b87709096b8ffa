"""One W&B run per run folder, however many ranks start at once (issue 18, item 5)."""

import multiprocessing
import os
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from vivit.tracking.wandb import finish_wandb, wandb_logger

RANKS, TRIALS = 8, 20


def start_rank(rank: int, root: Path, barrier, ids) -> None:
    """One rank as a run starts it: agree on the id, start W&B (rank 0 only, Lightning's rule), close it."""
    rank_zero_only.rank = rank
    for trial in range(TRIALS):
        barrier.wait()  # all ranks ask for the id at the same instant
        logger = wandb_logger(save_dir=str(root / str(trial)), project="race")
        ids[trial * RANKS + rank] = logger.version if rank else logger.experiment.id
        finish_wandb()


def test_eight_ranks_starting_wandb_twenty_times_make_one_run_each_time(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    context = multiprocessing.get_context("fork")  # the test process has imported W&B and Lightning already
    barrier, ids = context.Barrier(RANKS), context.Manager().list([""] * RANKS * TRIALS)
    procs = [context.Process(target=start_rank, args=(k, tmp_path, barrier, ids)) for k in range(RANKS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=240)
    assert [proc.exitcode for proc in procs] == [0] * RANKS
    for trial in range(TRIALS):
        agreed = set(ids[trial * RANKS : (trial + 1) * RANKS])
        runs = sorted(p.name for p in (tmp_path / str(trial) / "wandb").glob("offline-run-*"))
        assert len(agreed) == 1, f"trial {trial}: the ranks hold ids {agreed}"
        assert len(runs) == 1 and runs[0].endswith(agreed.pop()), f"trial {trial}: W&B runs {runs}"
        assert (tmp_path / str(trial) / "wandb" / "run_id").read_text().strip() in runs[0]
        assert not [p for p in os.listdir(tmp_path / str(trial) / "wandb") if p.startswith("run_id.")]
