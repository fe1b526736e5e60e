"""Dropout: zero each element with probability p in training, scale the rest
by 1 / (1 - p); the identity in eval mode. Dropout1d / Dropout2d zero whole
channels (each (sample, channel) of an (N, C, *) input). Masks come from
fastnn's random stream (fastnn.manual_seed)."""
from __future__ import annotations


import numpy as np

from fastnn._args import check_real
from fastnn.nn.module import Module, Stateless, to_float32
from fastnn.random import generator


class _DropoutNd(Stateless, Module):
    """The shared dropout layer: a keep mask of _mask_shape(x) (broadcast over x)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = check_real(p, "p", 0.0, 1.0)  # the dropout probability
        self.inplace = bool(inplace)

    def _mask_shape(self, x: np.ndarray) -> tuple:
        return x.shape

    def forward(self, input):
        x = to_float32(input)
        shape = self._mask_shape(x)
        if not self.training or self.p == 0.0:
            self._save(None)
            return x
        if self.p == 1.0:
            mask = np.zeros(shape, np.float32)
        else:
            keep = generator().random(shape, dtype=np.float32) >= np.float32(self.p)
            mask = keep * np.float32(1.0 / (1.0 - self.p))
        self._save(mask)
        if self.inplace and x.flags.writeable:
            return np.multiply(x, mask, out=x)
        return x * mask

    def backward(self, grad_out, input_grad: bool = True):
        mask, = self._saved()
        if not input_grad:
            return None
        g = to_float32(grad_out, "grad_out")
        return g if mask is None else g * mask

    def get_config(self) -> dict:
        return {"p": self.p, "inplace": self.inplace}

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Element-wise dropout."""


def channel_mask_shape(shape: tuple, batched: bool) -> tuple:
    """One mask value per (sample, channel): (N, C, 1, ...), or (C, 1, ...) unbatched."""
    lead = 2 if batched else 1
    return shape[:lead] + (1,) * (len(shape) - lead)


class Dropout1d(_DropoutNd):
    """Channel-wise dropout of (N, C, L), or (C, L) without a batch axis."""

    def _mask_shape(self, x):
        if x.ndim not in (2, 3):
            raise ValueError(f"Dropout1d expects input of shape (N, C, L) or (C, L), "
                             f"got {x.shape}")
        return channel_mask_shape(x.shape, x.ndim == 3)


class Dropout2d(_DropoutNd):
    """Channel-wise dropout of (N, C, H, W). As torch: a 3-D input is taken as
    (N, C, L) (1-D channel dropout) with a warning; other inputs of at least 2
    axes as (N, C, *) with a warning."""

    def _mask_shape(self, x):
        if x.ndim < 2:
            raise ValueError(f"Dropout2d expects input of shape (N, C, H, W), got {x.shape}")
        if x.ndim != 4:
            import warnings
            warnings.warn(f"Dropout2d: received a {x.ndim}-D input; as torch, it is taken as "
                          f"(N, C, *) with channels on axis 1 (3-D: 1-D channel dropout over "
                          f"(N, C, L)); use Dropout1d or Dropout for such inputs", stacklevel=3)
        return channel_mask_shape(x.shape, True)
