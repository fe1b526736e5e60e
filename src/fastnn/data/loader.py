"""DataLoader: mini-batches over in-memory arrays, in the order a sampler gives.

    loader = DataLoader(X, y, batch_size=64, shuffle=True, seed=0)
    for xb, yb in loader: ...            # a new order every pass (epoch)
    loader = DataLoader(X, y, batch_size=64, sampler=my_sampler)

X and y (optional) must have the same first dimension. A sampler is any
iterable of sample indices with __len__ (the number of indices of one pass);
it is iterated once per pass, and if it has set_epoch(epoch), fit() calls it
at each epoch start (so a data-parallel sampler can reshuffle per epoch, as
PyTorch's DistributedSampler). Without one, the loader uses SequentialSampler,
or RandomSampler with shuffle=True; sampler and shuffle=True exclude each other
(ValueError), as in PyTorch. RandomSampler draws each pass's permutation from
its own generator when seed is given (reproducible on its own), else from
fastnn's random stream (fastnn.manual_seed).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Iterator, Optional

import numpy as np

from fastnn._args import check_int
from fastnn.random import generator

__all__ = ["DataLoader", "Sampler", "SequentialSampler", "RandomSampler"]


def _length(data_source) -> int:
    """data_source's length: an int n, or anything with len()."""
    if isinstance(data_source, (int, np.integer)) and not isinstance(data_source, bool):
        return check_int(data_source, "the number of samples")
    try:
        return len(data_source)
    except TypeError:
        raise TypeError(f"a sampler takes a number of samples or a sized data source, got "
                        f"{type(data_source).__name__}") from None


class Sampler(ABC):
    """Base of the built-in samplers: iterate the indices of one pass, len() of
    them. Subclasses define order() (an int64 index array, drawn anew each pass)."""

    def __init__(self, data_source):
        self.num_samples = _length(data_source)

    @abstractmethod
    def order(self) -> np.ndarray:
        """The indices of one pass, in order."""

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())

    def __len__(self) -> int:
        return self.num_samples


class SequentialSampler(Sampler):
    """0, 1, ..., n - 1 every pass."""

    def order(self) -> np.ndarray:
        return np.arange(self.num_samples)


class RandomSampler(Sampler):
    """A new permutation of 0..n-1 every pass, from a generator seeded with `seed`,
    or from fastnn's random stream when seed is None."""

    def __init__(self, data_source, seed: Optional[int] = None):
        super().__init__(data_source)
        self._rng = None if seed is None else np.random.Generator(np.random.PCG64(seed))

    def order(self) -> np.ndarray:
        return (self._rng or generator()).permutation(self.num_samples)


class DataLoader:
    def __init__(self, X, y=None, batch_size: int = 32, shuffle: bool = False,
                 drop_last: bool = False, seed: Optional[int] = None, sampler=None):
        self.X = np.asarray(X)
        self.y = None if y is None else np.asarray(y)
        if self.X.ndim == 0:
            raise ValueError("X must have a first (sample) dimension, got a 0-d array")
        if self.y is not None and (self.y.ndim == 0 or len(self.y) != len(self.X)):
            raise ValueError(f"y must have {len(self.X)} samples like X, got shape {self.y.shape}")
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if sampler is None:
            sampler = (RandomSampler(len(self.X), seed=seed) if self.shuffle
                       else SequentialSampler(len(self.X)))
        elif self.shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        elif seed is not None:
            raise ValueError("seed is for shuffle=True; a sampler gives its own order")
        elif not (hasattr(sampler, "__iter__") and hasattr(sampler, "__len__")):
            raise TypeError(f"sampler must be an iterable of indices with __len__, got "
                            f"{type(sampler).__name__}")
        self.sampler = sampler

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def num_samples(self) -> int:
        """How many samples one pass yields (drop_last leaves out a partial batch)."""
        return min(len(self) * self.batch_size, len(self.sampler))

    def set_epoch(self, epoch: int) -> None:
        """Tell the sampler which epoch starts, if it wants to know (set_epoch)."""
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)

    def batch_indices(self) -> Iterator[np.ndarray]:
        """The index array of each batch of one pass."""
        if isinstance(self.sampler, Sampler) and type(self.sampler).__iter__ is Sampler.__iter__:
            order = self.sampler.order()  # the same indices, without a Python int each
        else:
            order = np.fromiter(self.sampler, dtype=np.int64, count=len(self.sampler))
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start:start + self.batch_size]

    def __iter__(self):
        for idx in self.batch_indices():
            if self.y is None:
                yield self.X[idx]
            else:
                yield self.X[idx], self.y[idx]
