"""Randomness that a resumed run repeats exactly: every batch's draws are a function of (seed, rank, epoch, batch).

A run resumed from `last.ckpt` gets the weights, optimiser, schedule and loop counters back from the checkpoint,
not the random generators' states, and a fresh process's DataLoader workers start from new seeds. Instead of
saving generator states (a checkpoint holds rank 0's callbacks only):

- `EpochSeeds` re-seeds the process's torch (CPU and CUDA), numpy and python generators before every training
  batch from (seed, global rank, epoch, batch index): mixup, dropout and drop-path follow, and a run resumed in the
  middle of an epoch draws for its next batch what the uninterrupted run drew, on every rank;
- the training order and each item's augmentation come from (seed, epoch, rank) and (seed, epoch, dataset index)
  (vivit.datamodules.sampler: `EpochShards`, and the items' seed shared with the DataLoader workers). Lightning
  makes the first iterator of every `fit` before any epoch hook runs; the data module therefore makes that loader
  at the epoch and position the checkpoint holds (`VideoDataModule.state_dict`), with no hook fixing it up after.

So a run stopped anywhere (SIGTERM, SLURM's requeue) continues bit-exactly on the CPU; on a GPU, up to its
documented nondeterminism. `data.format=shards` resumes at epoch granularity: a mid-epoch checkpoint restarts that
epoch's stream.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

from vivit.datamodules.sampler import derive_seed, items_seed

__all__ = ["EpochSeeds", "RankSeed", "derive_seed", "items_seed", "seed_process"]


def seed_process(seed: int) -> None:
    """torch (every device), numpy and python `random`."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


class EpochSeeds(L.Callback):
    """Re-seed every process before each training batch, and the shards' items at each epoch (see the module doc)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for loader in _loaders(trainer.train_dataloader):  # the shards plan each epoch from the items' seed
            item_seed = getattr(loader.dataset, "item_seed", None)
            if item_seed is not None:
                item_seed.value = items_seed(self.seed, trainer.current_epoch)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        seed_process(derive_seed(self.seed, trainer.global_rank, trainer.current_epoch, batch_idx))


def _loaders(loaders: object) -> list[Any]:
    """The DataLoaders in what `trainer.train_dataloader` returns (one, or a list/dict of them)."""
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    if isinstance(loaders, (list, tuple)):
        return [dl for item in loaders for dl in _loaders(item)]
    return [loaders] if hasattr(loaders, "dataset") else []


class RankSeed(L.Callback):
    """Seed + global rank for every rank's generators at the start of fitting (scenic binds mixup's lambda and the
    dropout / drop-path masks to the device). The model is built before, from the shared seed, so all ranks start
    from the same weights; a one-process run is left as it is. Dataloader workers follow (Lightning seeds them
    from the process seed, the worker id and the rank)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size > 1:
            L.seed_everything(self.seed + trainer.global_rank, workers=True, verbose=False)
