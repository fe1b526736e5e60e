"""Flatten: merge the axes start_dim..end_dim (a view, no copy)."""
from __future__ import annotations


import numpy as np

from fastnn._args import check_int
from fastnn.nn.module import Module, Stateless


class Flatten(Stateless, Module):
    """(N, C, H, W) -> (N, C*H*W) with the defaults start_dim=1, end_dim=-1."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = check_int(start_dim, "start_dim", None)
        self.end_dim = check_int(end_dim, "end_dim", None)

    def forward(self, input):
        x = np.asarray(input)
        nd = max(x.ndim, 1)
        start = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        end = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        if not (0 <= start < nd and 0 <= end < nd) or start > end:
            raise ValueError(f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) does "
                             f"not fit an input of shape {x.shape}")
        self._save(x.shape)
        shape = x.shape[:start] + (int(np.prod(x.shape[start:end + 1])),) + x.shape[end + 1:]
        return x.reshape(shape)

    def backward(self, grad_out, input_grad: bool = True):
        shape, = self._saved()
        return np.asarray(grad_out).reshape(shape) if input_grad else None

    def get_config(self) -> dict:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
