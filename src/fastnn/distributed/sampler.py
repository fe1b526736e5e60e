"""DistributedSampler: each rank's share of the sample indices, with PyTorch's
semantics (torch.utils.data.distributed.DistributedSampler).

    sampler = DistributedSampler(len(X), shuffle=True, seed=0)   # rank, world from init()
    loader = fastnn.data.DataLoader(X, y, batch_size=64, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)          # a new order each epoch (fit() calls it)
        for xb, yb in loader: ...

Every rank draws the same permutation of 0..n-1 (from seed + epoch, so all ranks
must pass the same seed and call set_epoch alike), then takes every
num_replicas-th index starting at its rank. Without drop_last the permutation
is padded by repeating its start so that all ranks get the same count,
ceil(n / num_replicas) (a few samples then count twice per epoch); with
drop_last its tail is cut to a multiple of num_replicas instead. Equal counts
mean equal numbers of batches, so no rank waits in an allreduce the others
never reach.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from fastnn._args import check_bool, check_int
from fastnn.data.loader import Sampler
from fastnn.distributed.world import get_rank, get_world_size, is_initialized, launcher_size

__all__ = ["DistributedSampler"]


class DistributedSampler(Sampler):
    """Rank `rank`'s indices of a dataset of n samples split over num_replicas
    ranks (defaults: this process's rank and the world size)."""

    def __init__(self, data_source, num_replicas: Optional[int] = None,
                 rank: Optional[int] = None, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        super().__init__(data_source)
        self.dataset_size = self.num_samples
        if (num_replicas is None or rank is None) and not is_initialized() \
                and launcher_size() > 1:
            raise RuntimeError(f"DistributedSampler: this process is one of {launcher_size()} "
                               f"an MPI launcher started; call fastnn.distributed.init() first "
                               f"(or give num_replicas and rank)")
        self.num_replicas = (get_world_size() if num_replicas is None
                             else check_int(num_replicas, "num_replicas", 1))
        self.rank = get_rank() if rank is None else check_int(rank, "rank")
        if self.rank >= self.num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas - 1] = [0, "
                             f"{self.num_replicas - 1}], got {self.rank}")
        self.shuffle = check_bool(shuffle, "shuffle")
        self.seed = check_int(seed, "seed", low=None, high=None)
        self.drop_last = check_bool(drop_last, "drop_last")
        self.epoch = 0
        n, r = self.dataset_size, self.num_replicas
        if self.drop_last and n % r:
            self.num_samples = n // r
        else:
            self.num_samples = math.ceil(n / r)
        self.total_size = self.num_samples * r

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next pass draws (call it on every rank)."""
        self.epoch = check_int(epoch, "epoch")

    def order(self) -> np.ndarray:
        n = self.dataset_size
        if self.shuffle:
            seed = (self.seed + self.epoch) % 2**64  # any int, as torch's
            indices = np.random.Generator(np.random.PCG64(seed)).permutation(n)
        else:
            indices = np.arange(n)
        if self.total_size > n:
            indices = np.resize(indices, self.total_size)  # repeats from the start
        else:
            indices = indices[:self.total_size]
        return indices[self.rank:self.total_size:self.num_replicas]
