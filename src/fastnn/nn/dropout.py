"""Dropout: zero each element with probability p in training, scale the rest
by 1 / (1 - p); the identity in eval mode. Masks come from fastnn's random
stream (fastnn.manual_seed)."""
from __future__ import annotations


import numpy as np

from fastnn._args import check_real
from fastnn.nn.module import Module, Stateless, to_float32
from fastnn.random import generator


class Dropout(Stateless, Module):
    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = check_real(p, "p", 0.0, 1.0)  # the dropout probability
        self.inplace = bool(inplace)

    def forward(self, x):
        x = to_float32(x)
        if not self.training or self.p == 0.0:
            self._save(None)
            return x
        if self.p == 1.0:
            mask = np.zeros(x.shape, np.float32)
        else:
            keep = generator().random(x.shape, dtype=np.float32) >= np.float32(self.p)
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
