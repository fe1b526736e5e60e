"""ZeroPad2d and ConstantPad2d: pad (or, with negative amounts, crop) the last two axes of
(N, C, H, W) or (C, H, W) with a constant, as PyTorch. A NumPy copy: no kernel needed."""
from __future__ import annotations

import numpy as np

from fastnn._args import check_int, check_real
from fastnn.nn.module import Module, Stateless


def _padding4(padding) -> tuple:
    """int or (left, right, top, bottom) as a 4-tuple of ints (negative crops)."""
    if isinstance(padding, (tuple, list)):
        if len(padding) != 4:
            raise ValueError(f"padding must be an int or a 4-tuple (left, right, top, bottom), "
                             f"got {padding!r}")
        return tuple(check_int(p, "padding", None) for p in padding)
    p = check_int(padding, "padding", None)
    return (p, p, p, p)


class ConstantPad2d(Stateless, Module):
    """Pads W by (left, right) and H by (top, bottom) with `value`; negative amounts crop."""

    def __init__(self, padding, value: float):
        super().__init__()
        self.padding = _padding4(padding)
        self.value = check_real(value, "value", finite=False)

    def forward(self, input):
        x = np.asarray(input, dtype=np.float32)
        if x.ndim not in (3, 4):
            raise ValueError(f"{type(self).__name__}: input must be (N, C, H, W) or (C, H, W), "
                             f"got shape {x.shape}")
        left, right, top, bottom = self.padding
        H, W = x.shape[-2:]
        OH, OW = H + top + bottom, W + left + right
        if OH < 0 or OW < 0:
            raise ValueError(f"{type(self).__name__}: padding {self.padding} gives a negative "
                             f"output size ({OH}, {OW}) for an input of shape {x.shape}")
        out = np.full(x.shape[:-2] + (OH, OW), self.value, dtype=np.float32)
        src, dst = self._regions(H, W)
        out[dst] = x[src]
        self._save(x.shape)
        return out

    def _regions(self, H: int, W: int):
        """(input slices, output slices) of the part of the input that is kept"""
        left, right, top, bottom = self.padding
        ih = slice(max(-top, 0), H - max(-bottom, 0))
        iw = slice(max(-left, 0), W - max(-right, 0))
        oh = slice(max(top, 0), max(top, 0) + max(ih.stop - ih.start, 0))
        ow = slice(max(left, 0), max(left, 0) + max(iw.stop - iw.start, 0))
        if ih.stop <= ih.start or iw.stop <= iw.start:  # everything cropped
            ih = oh = iw = ow = slice(0, 0)
        return (Ellipsis, ih, iw), (Ellipsis, oh, ow)

    def backward(self, grad_out, input_grad: bool = True):
        shape, = self._saved()
        if not input_grad:
            return None
        g = np.asarray(grad_out, dtype=np.float32)
        left, right, top, bottom = self.padding
        want = shape[:-2] + (shape[-2] + top + bottom, shape[-1] + left + right)
        if g.shape != want:
            raise ValueError(f"{type(self).__name__}.backward: grad_out must have shape {want}, "
                             f"got {g.shape}")
        grad = np.zeros(shape, dtype=np.float32)
        src, dst = self._regions(shape[-2], shape[-1])
        grad[src] = g[dst]
        return grad

    def get_config(self) -> dict:
        return {"padding": self.padding, "value": self.value}

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(ConstantPad2d):
    """ConstantPad2d with value 0."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def get_config(self) -> dict:
        return {"padding": self.padding}

    def extra_repr(self) -> str:
        return f"{self.padding}"
