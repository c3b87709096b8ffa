"""Randomness that a resumed run repeats exactly: every epoch's draws are a function of (seed, rank, epoch).

A run resumed from `last.ckpt` (saved at an epoch end) gets the weights, optimiser, schedule and loop counters
back from the checkpoint, but not the random generators' states, and a fresh process's DataLoader workers start
from new seeds. Instead of saving generator states, `EpochSeeds` re-seeds at the start of every training epoch:

- the process's torch (CPU and CUDA), numpy and python generators from (seed, global rank, epoch): the shuffling
  of `RandomSampler` (it draws its seed from torch's generator when the epoch's iterator is made), mixup, dropout,
  drop-path and the workers' base seed all follow;
- each training item's augmentation from (seed, epoch, dataset index), through `VideoDataset.item_seed`, a value
  shared with the DataLoader workers: persistent workers keep their generators across epochs, so seeding them
  once at start-up would make epoch k of a resumed run differ from epoch k of the uninterrupted one. Per-item
  seeds also make the augmentation independent of the number of workers and of which worker loads an item.

Lightning makes the first epoch's iterator of every `fit` (and prefetches a batch from it) before the hooks run
(`FitLoop.setup_data`), and sets the samplers' epoch (DDP's `DistributedSampler` shuffles with seed + epoch)
after that: on a resume the first epoch would shuffle and augment from other states than the uninterrupted run.
`EpochSeeds` therefore makes that iterator again once it has seeded the epoch, as Lightning does itself at the
start of every later epoch (one prefetched batch per `fit` is loaded twice).

Resuming from a checkpoint taken in the middle of an epoch (SIGTERM) is not exact: Lightning restarts that
epoch's data from its first batch.
"""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import DataLoader


def derive_seed(*words: int) -> int:
    """A well-mixed 32-bit seed from integers (numpy's SeedSequence hash), e.g. (seed, rank, epoch)."""
    return int(np.random.SeedSequence([int(w) & 0xFFFFFFFFFFFFFFFF for w in words]).generate_state(1)[0])


def seed_process(seed: int) -> None:
    """torch (every device), numpy and python `random`."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


ITEMS = 1  # a constant word that separates the items' seeds from the processes' seeds


class EpochSeeds(L.Callback):
    """Re-seed every process and the training items at each training epoch start (see the module doc)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._first_epoch_of_fit = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_epoch_of_fit = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        seed_process(derive_seed(self.seed, trainer.global_rank, epoch))
        for loader in _loaders(trainer.train_dataloader):
            item_seed = getattr(loader.dataset, "item_seed", None)
            if item_seed is not None:  # a multiprocessing.Value: the workers read it when they load an item
                item_seed.value = derive_seed(self.seed, ITEMS, epoch)
            _set_sampler_epoch(loader, epoch)
        if self._first_epoch_of_fit:
            self._first_epoch_of_fit = False
            fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)  # private: Lightning 2.6 (requirements.txt)
            if fetcher is not None:
                iter(fetcher)  # the epoch's iterator, from the states just set (see the module doc)


def _loaders(loaders: object) -> list[DataLoader]:
    """The DataLoaders in what `trainer.train_dataloader` returns (one, or a list/dict of them)."""
    if isinstance(loaders, DataLoader):
        return [loaders]
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    if isinstance(loaders, (list, tuple)):
        return [dl for item in loaders for dl in _loaders(item)]
    return []


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
