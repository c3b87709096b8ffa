"""The training order: which items each rank sees in each epoch, and from which seed each item is augmented, as
functions of (seed, epoch, rank) alone, so that a resumed run repeats them.

Lightning's own `DistributedSampler` takes its seed from the `PL_GLOBAL_SEED` variable when the loader is made: a
rank's `seed_everything(seed + rank)` before a loader is (re)made (`reload_dataloaders_every_n_epochs`) gives each
rank another permutation, and the ranks' shards overlap. `EpochShards` is given its seed, and being a
`DistributedSampler`, Lightning keeps it as it is (`use_distributed_sampler` wraps only other samplers).

A run resumed in the middle of an epoch starts that epoch's iterator `skip` items into its shard
(`VideoDataModule.load_state_dict`), which is where the interrupted run stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

ITEMS = 1  # a constant word that separates the items' seeds from the processes' seeds
SHUFFLE = 2  # ... and from the epoch's permutation


def derive_seed(*words: int) -> int:
    """A well-mixed 32-bit seed from integers (numpy's SeedSequence hash), e.g. (seed, rank, epoch)."""
    return int(np.random.SeedSequence([int(w) & 0xFFFFFFFFFFFFFFFF for w in words]).generate_state(1)[0])


def items_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch`'s training items (each item's own seed mixes in its index: VideoDataset)."""
    return derive_seed(seed, ITEMS, epoch)


class EpochShards(DistributedSampler):
    """Every `num_replicas`-th item of a permutation drawn from (seed, epoch), from `rank` on (one process: all
    of it). Iterating also sets the dataset's items seed for the epoch (`item_seed`, shared with its workers), so
    the items' augmentation follows the epoch the sampler is at, whichever hook set it."""

    def __init__(self, dataset: Any, num_replicas: int, rank: int, seed: int, epoch: int = 0, skip: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=int(seed))
        self.epoch = int(epoch)
        self.skip = int(skip)  # items of the shard the next iterator leaves out (a mid-epoch resume), once

    def shard(self, epoch: int) -> list[int]:
        """This rank's items of epoch `epoch`, in order (padded by repeating, as DistributedSampler pads)."""
        order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.epoch_seed(epoch)))
        indices = order.tolist()
        while 0 < len(indices) < self.total_size:
            indices += indices[: self.total_size - len(indices)]
        return indices[self.rank : self.total_size : self.num_replicas]

    def epoch_seed(self, epoch: int) -> int:
        return derive_seed(self.seed, SHUFFLE, epoch)

    def __iter__(self) -> Iterator[int]:
        item_seed = getattr(self.dataset, "item_seed", None)
        if item_seed is not None:  # a multiprocessing.Value: the workers read it when they load an item
            item_seed.value = items_seed(self.seed, self.epoch)
        skip, self.skip = self.skip, 0
        return iter(self.shard(self.epoch)[skip:])
