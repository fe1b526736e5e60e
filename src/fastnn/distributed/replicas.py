"""What fit() does differently when it trains on several ranks (fastnn.training
calls these; a script with its own loop uses DistributedSampler,
DistributedOptimizer and the broadcasts directly).

- Before training: rank 0's parameters and optimizer state go to every rank; the
  optimizer becomes a DistributedOptimizer; the data is split by a
  DistributedSampler whose seed rank 0 draws from fastnn's random stream (so
  fastnn.manual_seed on rank 0 fixes the order); every rank must then have the
  same number of batches, or fit raises on all of them.
- Each batch, before its backward: one small Allgather of (loss, samples, stop
  requests). Every rank then logs the same batch loss, stops on the same
  non-finite loss, and leaves the epoch at the same batch when any rank asked to
  stop (a callback's model.stop_training, Ctrl-C).
- Each epoch: the loss and metric sums (and validation on each rank's share of
  the validation data, after rank 0's buffers, BatchNorm's statistics, went to
  every rank) are gathered and summed in rank order, so every rank has the same
  logs, bit for bit (but "time"), and EarlyStopping or ReduceLROnPlateau take the
  same decision everywhere; writing callbacks (rank_zero_only: ModelCheckpoint,
  CSVLogger) and the progress bar run on rank 0 only. A rank_zero_only callback
  must not call collectives (the other ranks never reach them).
- A stop one rank asks for after batch k is agreed at batch k+1's exchange, after
  its forward (and on_batch_begin) ran, before its backward: that batch is not
  trained on, as in one process, but its on_batch_begin hooks did run.
"""
from __future__ import annotations

import warnings
from typing import List, Tuple

import numpy as np

from fastnn.distributed import world
from fastnn.distributed.broadcast import (broadcast_buffers, broadcast_optimizer_state,
                                          broadcast_parameters)
from fastnn.distributed.optimizer import DistributedOptimizer, _Averaging
from fastnn.distributed.sampler import DistributedSampler
from fastnn.random import generator

__all__ = ["Replicas"]

STOP_TRAINING, INTERRUPTED = 1, 2   # bits of a rank's stop request


class Replicas:
    """The ranks fit() trains on."""

    def __init__(self):
        self.rank = world.get_rank()
        self.size = world.get_world_size()

    @classmethod
    def for_fit(cls, distributed):
        """A Replicas when fit should train data-parallel, else None. distributed:
        None (when init() was called and the world has several ranks), True
        (required: RuntimeError without init()) or False (this process alone)."""
        if distributed is None:
            if not world.is_initialized():
                if world.launcher_size() > 1:
                    warnings.warn(f"fit: this process is one of {world.launcher_size()} an "
                                  f"MPI launcher started, but fastnn.distributed.init() was "
                                  f"not called: each trains alone", RuntimeWarning,
                                  stacklevel=3)
                return None
        elif distributed is True:
            if not world.is_initialized():
                raise RuntimeError("fit(distributed=True) needs fastnn.distributed.init() "
                                   "first")
        elif distributed is False:
            return None
        else:
            raise TypeError(f"distributed must be None, True or False, got {distributed!r}")
        return cls() if world.get_world_size() > 1 else None

    @property
    def is_writer(self) -> bool:
        """Whether this rank writes files and shows progress (rank 0)."""
        return self.rank == 0

    def sampler(self, n: int, shuffle: bool, sampler):
        """The per-rank sampler fit's DataLoader uses."""
        if sampler is not None:  # the caller's, e.g. a DistributedSampler of their own
            if not isinstance(sampler, DistributedSampler):
                warnings.warn(f"fit: training on {self.size} ranks with a "
                              f"{type(sampler).__name__}, not a DistributedSampler: each rank "
                              f"iterates all it gives", RuntimeWarning, stacklevel=3)
            return sampler
        seed = int(generator().integers(2**62))  # every rank draws: streams stay in step
        return DistributedSampler(n, shuffle=shuffle, seed=world.bcast_object(seed))

    def prepare(self, model, optimizer, batches: int):
        """Broadcast rank 0's state; returns the averaging optimizer."""
        counts = world.allgather_object(batches)
        if len(set(counts)) > 1:
            raise ValueError(f"fit: the ranks have different numbers of batches per epoch "
                             f"({counts}); with a sampler of your own every rank must get "
                             f"as many samples (DistributedSampler does)")
        broadcast_parameters(model)
        if not isinstance(optimizer, _Averaging):
            optimizer = DistributedOptimizer(optimizer)
        broadcast_optimizer_state(optimizer)
        return optimizer

    def sync_buffers(self, model) -> None:
        """Rank 0's buffers (BatchNorm statistics) on every rank, as torch's DDP."""
        broadcast_buffers(model)

    def agree(self, values: List[float], stop: int) -> Tuple[np.ndarray, int]:
        """(every rank's values summed in rank order, the OR of every rank's stop
        bits): one Allgather; the same bits on every rank."""
        total = world.sum_over_ranks(list(values) + [stop & STOP_TRAINING, stop & INTERRUPTED])
        bits = (STOP_TRAINING if total[-2] else 0) | (INTERRUPTED if total[-1] else 0)
        return total[:-2], bits

    def agree_on_batch(self, loss: float, n: int, stop: int) -> Tuple[float, int]:
        """(the batch loss over all ranks, the OR of every rank's stop bits)."""
        (total, count), bits = self.agree([loss * n, n], stop)
        return float(total / count), bits

    def sum(self, values: List[float]) -> np.ndarray:
        """Every rank's values summed in rank order (the same bits on every rank)."""
        return world.sum_over_ranks(values)

    def any(self, flag: bool) -> bool:
        """Whether any rank's flag is set."""
        return bool(self.sum([float(bool(flag))])[0])

    def share(self, X, y):
        """This rank's contiguous share of (X, y), for validation."""
        lo, hi = (len(X) * r // self.size for r in (self.rank, self.rank + 1))
        return X[lo:hi], y[lo:hi]

