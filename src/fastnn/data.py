"""DataLoader: mini-batches over in-memory arrays.

    loader = DataLoader(X, y, batch_size=64, shuffle=True, seed=0)
    for xb, yb in loader: ...            # a new order every pass (epoch)

X and y (optional) must have the same first dimension. With shuffle, each
pass draws a permutation from the loader's own generator when seed is given
(reproducible on its own), else from fastnn's random stream (fastnn.manual_seed).
"""
from __future__ import annotations

import math
from typing import Iterator, Optional

import numpy as np

from fastnn._args import check_int
from fastnn.random import generator


class DataLoader:
    def __init__(self, X, y=None, batch_size: int = 32, shuffle: bool = False,
                 drop_last: bool = False, seed: Optional[int] = None):
        self.X = np.asarray(X)
        self.y = None if y is None else np.asarray(y)
        if self.X.ndim == 0:
            raise ValueError("X must have a first (sample) dimension, got a 0-d array")
        if self.y is not None and (self.y.ndim == 0 or len(self.y) != len(self.X)):
            raise ValueError(f"y must have {len(self.X)} samples like X, got shape {self.y.shape}")
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self._rng = None if seed is None else np.random.Generator(np.random.PCG64(seed))

    def __len__(self) -> int:
        n = len(self.X)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batch_indices(self) -> Iterator[np.ndarray]:
        """The index array of each batch of one pass."""
        n = len(self.X)
        if self.shuffle:
            order = (self._rng or generator()).permutation(n)
        else:
            order = np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start:start + self.batch_size]

    def __iter__(self):
        for idx in self.batch_indices():
            if self.y is None:
                yield self.X[idx]
            else:
                yield self.X[idx], self.y[idx]
